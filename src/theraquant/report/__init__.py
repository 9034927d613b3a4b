"""The study report (HTML + PDF) and figures: reads results, never computes them.

:func:`render_report` turns a RESULTS folder (docs/results-layout.md) into ``report.html`` (one
self-contained file) and ``report.pdf``. Figures are drawn on ``matplotlib.figure.Figure`` with an
Agg canvas: the report never touches pyplot's global state or the process-wide backend.
"""

from ._figures import dce_phantom_figure
from ._render import ReportFiles, render_report

__all__ = ["render_report", "ReportFiles", "dce_phantom_figure"]
