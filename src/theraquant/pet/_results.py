"""PET results use the package-wide :class:`theraquant.results.Result` (kept here for old imports)."""

from __future__ import annotations

from ..results import Result

__all__ = ["Result"]
