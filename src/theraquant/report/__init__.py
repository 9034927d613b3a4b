"""Plots (and, with the report issue, the clinical HTML/PDF report): read results, never compute them."""

from ._figures import dce_phantom_figure

__all__ = ["dce_phantom_figure"]
