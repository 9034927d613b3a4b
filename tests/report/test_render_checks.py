"""The report as readers get it: headless Chromium (DevTools protocol) on the HTML, pdftoppm on the PDF.

Skipped only when the binaries are absent (Debian packages ``chromium`` and ``poppler-utils``;
``.ci/run`` installs both).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from theraquant.report._chromium import Chromium, find_chromium

SECTION_IDS = ("study", "cohort", "patients", "validation", "provenance")

CHROMIUM = find_chromium()
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (apt-get install chromium)")
needs_poppler = pytest.mark.skipif(shutil.which("pdftoppm") is None,
                                   reason="no pdftoppm (apt-get install poppler-utils)")

PAGE_STATE = """
Promise.all(Array.from(document.images).map(i => i.decode().then(() => true, () => false))).then(ok => ({
  decoded: ok,
  widths: Array.from(document.images).map(i => i.naturalWidth),
  sections: %s.map(id => { const e = document.getElementById(id);
      return e ? {id: id, tag: e.tagName, chars: e.innerText.trim().length,
                  height: e.getBoundingClientRect().height} : {id: id, tag: null}; }),
  height: document.documentElement.scrollHeight,
}))
""" % (list(SECTION_IDS),)


def check_in_chromium(html: Path, screenshot: Path, section_ids=SECTION_IDS) -> dict:
    """Open ``html`` in headless Chromium; assert the contract; return the page state."""
    with Chromium(CHROMIUM, width=1280, height=900) as c:
        c.open(html)
        state = c.evaluate(PAGE_STATE)
        assert c.errors() == [], c.errors()
        # nothing but the file itself and its inline data: URIs
        assert all(u.startswith(("file:", "data:")) for u in c.requests()), c.requests()
        assert state["widths"] and all(w > 0 for w in state["widths"]), state["widths"]
        assert all(state["decoded"])
        present = {s["id"]: s for s in state["sections"] if s["tag"]}
        for sid in section_ids:
            assert sid in present, f"section {sid} missing"
            assert present[sid]["tag"] == "SECTION"
            assert present[sid]["chars"] > 200 and present[sid]["height"] > 100, present[sid]
        c.screenshot(screenshot, full_page=True)
    return state


@needs_chromium
def test_report_in_headless_chromium(results_dir, tmp_path):
    from PIL import Image

    state = check_in_chromium(results_dir / "report.html", tmp_path / "full.png")
    assert len(state["widths"]) == 15
    with Image.open(tmp_path / "full.png") as im:
        # the full page, not just the 900-px viewport
        assert im.size[0] == 1280 and im.size[1] == pytest.approx(state["height"], abs=2)
        assert im.size[1] > 3000
        lo, hi = im.convert("L").getextrema()
        assert hi - lo > 100  # drawn, not blank


@needs_chromium
def test_lesion_table_sorts_and_filters(results_dir):
    js_sort = """(() => {
      const t = document.getElementById('lesion-table');
      const col = Array.from(t.tHead.rows[0].cells).findIndex(th => th.textContent === 'Dmean (Gy)');
      t.tHead.rows[0].cells[col].click(); t.tHead.rows[0].cells[col].click();   // descending
      const desc = Array.from(t.tBodies[0].rows).map(r => parseFloat(r.cells[col].dataset.v));
      const box = document.querySelector('input.filter[data-for="lesion-table"]');
      box.value = 'P002'; box.dispatchEvent(new Event('input'));
      const shown = Array.from(t.tBodies[0].rows).filter(r => r.style.display !== 'none').map(r => r.cells[0].textContent);
      const count = document.querySelector('span.count[data-for="lesion-table"]').textContent;
      return {desc: desc, shown: shown, count: count};
    })()"""
    with Chromium(CHROMIUM) as c:
        c.open(results_dir / "report.html")
        r = c.evaluate(js_sort)
        assert c.errors() == []
    assert r["desc"] == sorted(r["desc"], reverse=True) and r["desc"][0] == 185.0
    assert r["shown"] == ["P002", "P002"] and r["count"] == "2 of 6 rows"


@needs_poppler
def test_pdf_pages_render_and_are_not_blank(results_dir, tmp_path):
    from PIL import Image, ImageStat

    pdf = results_dir / "report.pdf"
    subprocess.run(["pdftoppm", "-r", "30", "-png", str(pdf), str(tmp_path / "page")], check=True, timeout=120)
    pages = sorted(tmp_path.glob("page-*.png"))
    # each of the 5 sections starts a page; patients hold 3 figures each: far more than 5 pages
    assert 10 <= len(pages) <= 60, len(pages)
    for page in pages:
        with Image.open(page) as im:
            g = im.convert("L")
            assert g.size[0] > g.size[1]  # A4 landscape
            # a blank page is all white (mean 255, no spread); ink covers at least a heading or a table
            assert ImageStat.Stat(g).stddev[0] > 5, page.name
    if shutil.which("pdftotext"):
        text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True,
                              check=True, timeout=60).stdout
        for title in ("Study", "Cohort", "Patients", "Validation against ground truth", "Provenance"):
            assert title in text
        assert "D50 = 88.7 Gy (95 % CI 61.2–116 Gy)" in text
        assert "DOE^JANE" not in text and "MRN-4711-0815" not in text


@needs_chromium
def test_chromium_starts_whatever_fds_the_caller_holds(tmp_path):
    """The DevTools pipe must reach fds 3 and 4 also when the caller's pipe ends have other numbers
    (a dup that lands on 3 or 4 is close-on-exec: a browser started after a report render once died)."""
    import sys

    code = ("import os, sys\n"
            "held = [os.open(os.devnull, os.O_RDONLY) for _ in range(6)]\n"  # the pipes get fds >= 9
            "from theraquant.report._chromium import Chromium\n"
            "with Chromium(sys.argv[1]) as c:\n"
            "    assert c.evaluate('6 * 7') == 42\n"
            "print('ok')\n")
    r = subprocess.run([sys.executable, "-c", code, CHROMIUM], capture_output=True, text=True, timeout=180)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-1500:]
