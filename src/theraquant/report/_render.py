"""``render_report``: RESULTS folder -> RESULTS/report.html (self-contained) and RESULTS/report.pdf."""

from __future__ import annotations

import contextlib
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

from ._html import to_html
from ._load import _find_key, load_results
from ._sections import build_sections

__all__ = ["ReportFiles", "render_report"]


class ReportFiles(NamedTuple):
    """Paths of the rendered report: ``html`` always, ``pdf`` ``None`` when not asked for."""

    html: Path
    pdf: Path | None


def _write_bytes(data: bytes, path: Path) -> None:
    try:
        from ..io import atomic_write
    except ImportError:  # before io's atomic writer exists: same folder temp + rename
        tmp = path.with_name(f".tqtmp-{os.getpid()}-{path.name}")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            with contextlib.suppress(OSError):
                os.fsync(fh.fileno())
        os.replace(tmp, path)
        return
    with atomic_write(path, mode="wb") as fh:
        fh.write(data)


def render_report(results_dir: str | Path, *, pdf: bool = True) -> ReportFiles:
    """Render the study report of a RESULTS folder (docs/results-layout.md) to HTML and PDF.

    The report reads the folder's tables, JSON documents and NIfTI maps and only draws them: it never
    fits, convolves or simulates. Sections (element ids, a contract): ``study``, ``cohort``,
    ``patients``, ``validation`` (only when ground truth exists: vs_truth.csv / validation.json) and
    ``provenance``. The HTML is one self-contained file (images as base64 PNG, style and script
    inline, a Content-Security-Policy that forbids any fetch); the PDF (fpdf2) holds the same
    content. Identifier fields are withheld unless the run had ``--show-identifiers``.

    Parameters
    ----------
    results_dir : str or Path
        The ``--out`` folder of ``theraquant run`` or ``theraquant demo``.
    pdf : bool
        Also write ``report.pdf``.

    Returns
    -------
    ReportFiles
        ``html`` = ``results_dir/report.html``, ``pdf`` = ``results_dir/report.pdf`` (or ``None``).

    Raises
    ------
    TheraquantError
        When ``results_dir`` is not a folder of study results.

    Examples
    --------
    >>> from theraquant.report import render_report
    >>> render_report("no/such/folder")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    theraquant.errors.TheraquantError: results_dir 'no/such/folder' is not a folder; ...
    """
    from .. import __version__

    res = load_results(results_dir)
    rendered = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    sections = build_sections(res, report_info={"version": __version__, "rendered": rendered,
                                                "folder": "this RESULTS folder"})
    n_pat = len(res.patient_ids())
    run_time = None
    for key in ("Started", "Created", "started", "created"):
        run_time = _find_key(res.provenance, key)
        if run_time:
            break
    elapsed = _find_key(res.provenance, "RunTime_s")
    title = "theraquant study report"
    subtitle = (f"{n_pat} patients, {len(res.lesions)} lesions"
                + (f"; results of the run started {run_time}" if run_time else "")
                + (f" ({float(elapsed):.0f} s)" if isinstance(elapsed, (int, float)) else "")
                + f"; rendered {rendered} by theraquant {__version__}. "
                + ("Identifiers shown: the run had --show-identifiers. " if res.show_identifiers else "Pseudonymised. ")
                + "For research use, not for clinical decisions.")
    root = Path(results_dir)
    html_path = root / "report.html"
    _write_bytes(to_html(sections, title=title, subtitle=subtitle).encode("utf-8"), html_path)
    pdf_path = None
    if pdf:
        from ._pdf import to_pdf

        pdf_path = root / "report.pdf"
        _write_bytes(to_pdf(sections, title=title, subtitle=subtitle), pdf_path)
    return ReportFiles(html=html_path, pdf=pdf_path)
