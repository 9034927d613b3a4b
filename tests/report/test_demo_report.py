"""The report of the real demo run (session fixture ``demo_results``): size, sections, browser, PDF."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from theraquant.report._chromium import Chromium, find_chromium, section_screenshots

pytestmark = pytest.mark.demo

SECTION_IDS = ("study", "cohort", "patients", "validation", "provenance")
CHROMIUM = find_chromium()


@pytest.mark.parametrize("design", ["tare", "prrt"])
def test_demo_report_files(demo_results, design):
    res = demo_results[design]
    html, pdf = res / "report.html", res / "report.pdf"
    assert html.is_file() and pdf.is_file()
    assert html.stat().st_size < 25e6, "the demo's report must stay under 25 MB"
    text = html.read_text(encoding="utf-8")
    for sid in SECTION_IDS:  # ground truth exists in the demo, so validation is there too
        assert f'<section id="{sid}">' in text
    assert pdf.read_bytes()[:5] == b"%PDF-"
    # every patient of the run has its part
    import pandas as pd

    for pid in pd.read_csv(res / "patients.csv")["patient"].astype(str):
        assert f'id="patient-{pid}"' in text


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (apt-get install chromium)")
@pytest.mark.parametrize("design", ["tare", "prrt"])
def test_demo_report_in_chromium(demo_results, design, tmp_path):
    state_js = """Promise.all(Array.from(document.images).map(i => i.decode().then(() => true, () => false)))
      .then(ok => ({ok: ok, widths: Array.from(document.images).map(i => i.naturalWidth),
                    chars: %s.map(id => (document.getElementById(id) || {innerText: ''}).innerText.length)}))
    """ % (list(SECTION_IDS),)
    with Chromium(CHROMIUM) as c:
        c.open(demo_results[design] / "report.html")
        state = c.evaluate(state_js)
        assert c.errors() == []
        assert all(u.startswith(("file:", "data:")) for u in c.requests())
        c.screenshot(tmp_path / "full.png", full_page=True)
    assert state["ok"] and all(state["ok"]) and all(w > 0 for w in state["widths"])
    assert all(n > 200 for n in state["chars"]), state["chars"]
    shots = section_screenshots(demo_results[design] / "report.html", tmp_path / "sections", SECTION_IDS,
                                binary=CHROMIUM)
    assert [p.name for p in shots] == [f"report-{s}.png" for s in SECTION_IDS]


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="no pdftoppm (apt-get install poppler-utils)")
def test_demo_report_pdf_pages(demo_results, tmp_path):
    from PIL import Image, ImageStat

    pdf = demo_results["tare"] / "report.pdf"
    subprocess.run(["pdftoppm", "-r", "20", "-png", str(pdf), str(tmp_path / "p")], check=True, timeout=300)
    pages = sorted(tmp_path.glob("p-*.png"))
    assert len(pages) >= 5 + 12  # the sections, and at least a page per patient of the 12
    for page in pages:
        with Image.open(page) as im:
            assert ImageStat.Stat(im.convert("L")).stddev[0] > 5, page.name
