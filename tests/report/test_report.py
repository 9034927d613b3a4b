"""The study report (issue #13) on a synthetic RESULTS folder: sections, content, self-containment, privacy."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from theraquant.errors import TheraquantError
from theraquant.report import ReportFiles, render_report

SECTION_IDS = ["study", "cohort", "patients", "validation", "provenance"]


class _Parser(HTMLParser):
    """Collects every tag with its attributes, and the text inside each top-level <section>."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.section_text: dict[str, list[str]] = {}
        self.section_tags: dict[str, list[tuple[str, dict]]] = {}
        self._current: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "section":
            self._current = a.get("id")
            self.section_text[self._current] = []
            self.section_tags[self._current] = []
        elif self._current:
            self.section_tags[self._current].append((tag, a))

    def handle_endtag(self, tag):
        if tag == "section":
            self._current = None

    def handle_data(self, data):
        if self._current:
            self.section_text[self._current].append(data)


def _parse(path: Path) -> _Parser:
    p = _Parser()
    p.feed(path.read_text(encoding="utf-8"))
    return p


def _text(p: _Parser, sid: str) -> str:
    return " ".join(" ".join(p.section_text[sid]).split())


# --------------------------------------------------------------------------------------------- structure
def test_sections_present_in_order_and_not_empty(results_dir):
    p = _parse(results_dir / "report.html")
    ids = [a["id"] for t, a in p.tags if t == "section"]
    assert ids == SECTION_IDS
    for sid in SECTION_IDS:
        # a heading alone is ~10 characters: every section must say something real
        assert len(_text(p, sid)) > 200, sid


def test_render_report_returns_both_files(report_files, results_dir):
    assert isinstance(report_files, ReportFiles)
    assert report_files.html == results_dir / "report.html" and report_files.pdf == results_dir / "report.pdf"
    assert report_files.pdf.read_bytes()[:5] == b"%PDF-"
    assert report_files.html.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_study_paragraph_is_generated_from_the_run(results_dir):
    text = _text(_parse(results_dir / "report.html"), "study")
    assert "3 patients with 6 lesions (2 ok, 1 partial)" in text
    assert "TARE, 90Y" in text and "therapy dates from therapy.date" in text
    assert "3 DCE-MRI" in text and "6 FDG PET" in text and "3 FMISO PET" in text
    assert "fdg followup (2 patients)" in text  # P003 has no FDG follow-up
    # baseline 7, 4, 5 days before therapy (x3 patients); follow-up 70 and 77 days after
    assert "Median timing: baseline imaging 5 days (range 4–7) before therapy; follow-up 73.5 days (range 70–77)" in text
    assert "dual_input_etofts (r1 4.50 1/(s mM), hematocrit 0.450)" in text
    assert "PERCIST 1.0 on SULpeak" in text
    assert "FMISO T/BP 1.29, Dmean 89.0 Gy" in text
    assert "1 step in 1 patient (fdg_followup ×1)" in text
    assert "Missing: 1 item (listed under each patient)" in text
    assert "RadionuclideTotalDose (0018,1074) missing" in text  # the failures table


def test_cohort_tables_and_figures(results_dir):
    p = _parse(results_dir / "report.html")
    text = _text(p, "cohort")
    tags = p.section_tags["cohort"]
    table = [a for t, a in tags if t == "table" and a.get("id") == "lesion-table"]
    assert table and "interactive" in table[0]["class"]
    assert any(t == "input" and a.get("data-for") == "lesion-table" for t, a in tags)
    for header in ("Ktrans (1/min)", "ve (mL/mL)", "Dmean (Gy)", "V100 (%)", "baseline (g/mL)", "change (%)"):
        assert header in text, header
    # ROC: AUC, CI, clustered and the variance method, as in cohort.json
    assert "FMISO T/BP (1): AUC 0.812 (95 % CI 0.612–0.962, clustered, Obuchowski)" in text
    assert "D50 = 88.7 Gy (95 % CI 61.2–116 Gy)" in text
    assert "0.0456–0.699" in text and "0.342–1.00" in text  # Wilson CIs of the strata
    assert "Regression (GEE)" in text and "FMISO T/BP (1) 0.214 0.0510–0.897" in text
    assert "cross-validated AUC 0.771 (95 % CI 0.520–0.930, patient-grouped folds)" in text
    # ROC, waterfall, dose-response, markers by category, calibration
    assert sum(t == "img" for t, _ in tags) == 5
    rows = re.search(r'<table id="lesion-table".*?<tbody>(.*?)</tbody>', (results_dir / "report.html").read_text(), re.S)
    assert rows.group(1).count("<tr>") == 6


def test_patients_maps_curves_dvh_and_decisions(results_dir):
    p = _parse(results_dir / "report.html")
    text = _text(p, "patients")
    tags = p.section_tags["patients"]
    for pid in ("P001", "P002", "P003"):
        assert any(a.get("id") == f"patient-{pid}" for _, a in tags)
        assert any(t == "a" and a.get("href") == f"#patient-{pid}" for t, a in tags)  # the patient index
    # per patient: maps, concentration curves, DVH
    assert sum(t == "img" for t, _ in tags) == 9
    assert "slice through the largest lesion (lesion 1)" in text
    assert text.count("SULpeak change -85 % vs thresholds -30 %/+30 % -> CMR") == 1
    assert text.count("PERCIST 1.0") >= 6
    assert "P003: 2 lesions; therapy TARE on 2026-03-15" in text and "FDG follow-up missing" in text
    assert "missing: FDG PET at follow-up" in text


def test_validation_section_from_truth(results_dir):
    text = _text(_parse(results_dir / "report.html"), "validation")
    assert "0.0162" in text and "0.00400" in text and "0.0280" in text  # ktrans bias and LoA
    assert "response" in text and "1.00" in text  # categorical agreement 6/6
    assert "1 of 6 lesions flagged" in text and "DCE fit failed in 40 % of voxels" in text


def test_provenance_lists_settings_and_warnings(results_dir):
    text = _text(_parse(results_dir / "report.html"), "provenance")
    assert "theraquant 0.9.0" in text
    assert "dce.r1" in text and "4.5" in text and "fmiso.threshold" in text and "dosimetry.method" in text
    assert "2.25.11" in text and "InputSeries" in text  # input series UIDs
    assert "123.4" in text and "2026-12-03T17:58:00Z" in text  # run time
    assert "P003: FDG follow-up missing" in text


# --------------------------------------------------------------------------------------------- self-contained
def test_html_is_self_contained(results_dir):
    html = (results_dir / "report.html").read_text(encoding="utf-8")
    p = _parse(results_dir / "report.html")
    for tag, a in p.tags:
        for attr in ("src", "href", "action", "data", "poster"):
            v = a.get(attr)
            if v is not None:
                assert v.startswith(("data:", "#")), (tag, attr, v[:80])
        if tag == "link":
            assert a.get("rel") == "icon" and a.get("href", "").startswith("data:")
        if tag == "script":
            assert "src" not in a
    assert not re.search(r"https?://", html), "no address of any server in the report"
    assert "@import" not in html and "url(" not in html
    assert "default-src 'none'" in html  # the page's CSP forbids fetching anything


def test_images_are_inline_pngs_that_decode(results_dir):
    from PIL import Image

    p = _parse(results_dir / "report.html")
    imgs = [a for t, a in p.tags if t == "img"]
    assert len(imgs) == 5 + 9 + 1  # cohort, patients, validation
    for a in imgs:
        assert a["src"].startswith("data:image/png;base64,")
        png = base64.b64decode(a["src"].split(",", 1)[1], validate=True)
        with Image.open(io.BytesIO(png)) as im:
            im.load()
            assert im.size == (int(a["width"]), int(a["height"]))
            assert 200 <= im.size[0] <= 1400  # downsampled: ~96 dpi figures, readable, small
        assert a.get("alt")


# --------------------------------------------------------------------------------------------- privacy
def test_identifiers_withheld_by_default(results_dir, secrets):
    SECRET_NAME, SECRET_ID = secrets
    html = (results_dir / "report.html").read_text(encoding="utf-8")
    assert SECRET_NAME not in html and SECRET_ID not in html
    assert "(withheld)" in html and "Pseudonymised." in html


def test_identifiers_shown_when_the_run_showed_them(tmp_path, make_results, secrets):
    SECRET_NAME, SECRET_ID = secrets
    root = make_results(tmp_path / "R", show_identifiers=True, n_patients=1)
    html = render_report(root, pdf=False).html.read_text(encoding="utf-8")
    assert SECRET_NAME in html and SECRET_ID in html
    assert "Identifiers shown: the run had --show-identifiers." in html


# --------------------------------------------------------------------------------------------- variants
def _digest(root: Path) -> dict[str, str]:
    return {str(f.relative_to(root)): hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(root.rglob("*")) if f.is_file() and not f.name.startswith("report.")}


@pytest.fixture(scope="module")
def small(tmp_path_factory, make_results):
    """One patient, no ground truth, one damaged map; rendered without PDF. Digests before/after."""
    root = make_results(tmp_path_factory.mktemp("small") / "R", truth=False, n_patients=1)
    (root / "patients" / "P001" / "maps" / "ve.nii.gz").write_bytes(b"not a nifti")
    cohort = json.loads((root / "cohort.json").read_text())
    cohort.update(predictor=None, notes=["predictor not fitted: 1 lesion in the smaller outcome class"])
    cohort["regression"]["description"] = "GEE, exchangeable correlation within 'patient', robust errors"
    (root / "cohort.json").write_text(json.dumps(cohort))
    import pandas as pd

    les = pd.read_parquet(root / "lesions.parquet")
    les["hypoxic_fraction"] = float("nan")  # a column this study does not have
    les.to_parquet(root / "lesions.parquet")
    before = _digest(root)
    files = render_report(root, pdf=False)
    return root, files, before


def test_no_validation_section_without_truth(small):
    root, files, _ = small
    p = _parse(files.html)
    assert [a["id"] for t, a in p.tags if t == "section"] == ["study", "cohort", "patients", "provenance"]
    assert files.pdf is None and not (root / "report.pdf").exists()


def test_no_predictor_said_with_the_reason(small):
    text = _text(_parse(small[1].html), "cohort")
    assert "No predictor was fitted: predictor not fitted: 1 lesion in the smaller outcome class" in text
    assert "GEE, exchangeable correlation within 'patient', robust errors: odds ratios of response" in text


def test_empty_columns_left_out_of_the_lesion_table(small, results_dir):
    def heads(path):
        m = re.search(r'<table id="lesion-table".*?<thead>(.*?)</thead>', path.read_text(encoding="utf-8"), re.S)
        return re.findall(r"<th[^>]*>(.*?)</th>", m.group(1))

    assert "hypoxic fraction (1)" in heads(results_dir / "report.html")
    small_heads = heads(small[1].html)
    assert "hypoxic fraction (1)" not in small_heads and "Ktrans (1/min)" in small_heads


def test_damaged_map_leaves_the_rest_of_the_report(small):
    p = _parse(small[1].html)
    text = _text(p, "patients")
    assert "Maps of P001 could not be drawn: ve.nii.gz" in text
    assert sum(t == "img" for t, _ in p.section_tags["patients"]) == 2  # its curves and DVH are still drawn


def test_report_reads_but_never_changes_results(small):
    root, _, before = small
    assert _digest(root) == before
    assert sorted(f.name for f in root.iterdir() if f.name.startswith(("report", ".tqtmp"))) == ["report.html"]


def test_not_a_results_folder(tmp_path):
    with pytest.raises(TheraquantError, match=r"results_dir .*no/such.* is not a folder"):
        render_report(tmp_path / "no" / "such")
    with pytest.raises(TheraquantError, match=r"holds no study results .*theraquant run STUDY --out"):
        render_report(tmp_path)


def test_cli_report_in_a_fresh_process_without_pyplot(tmp_path, make_results):
    """``theraquant report RESULTS`` writes both files; the report draws on Figure + Agg canvas, so
    pyplot is never imported and the process-wide backend is left as it was."""
    root = make_results(tmp_path / "R", truth=False, n_patients=1)
    code = ("import sys, matplotlib; matplotlib.rcParams['backend'] = 'svg'\n"
            "from theraquant.cli import app\n"
            "app(['report', sys.argv[1]], standalone_mode=False)\n"
            "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'\n"
            "assert matplotlib.get_backend().lower() == 'svg', matplotlib.get_backend()\n")
    r = subprocess.run([sys.executable, "-c", code, str(root)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "report.html" in r.stdout and "report.pdf" in r.stdout
    assert (root / "report.pdf").read_bytes()[:5] == b"%PDF-"
    assert (root / "report.html").stat().st_size > 10_000


def test_cli_report_bad_folder(tmp_path):
    from typer.testing import CliRunner

    from theraquant.cli import app

    bad = CliRunner().invoke(app, ["report", str(tmp_path / "missing")])
    assert bad.exit_code == 1
    assert "is not a folder" in bad.output and "Traceback" not in bad.output
    assert len(bad.output.strip().splitlines()) == 1


def test_run_where_everything_failed(tmp_path):
    """Only provenance, patients and failures: the report still renders and says what is missing."""
    root = tmp_path / "R"
    root.mkdir()
    (root / "provenance.json").write_text(json.dumps({"SoftwareVersion": "0.9.0", "Warnings": []}))
    (root / "patients.csv").write_text("patient,n_lesions,therapy_type,status,notes\nP001,0,tare,failed,no DCE\n")
    (root / "failures.csv").write_text("patient,step,file,message\nP001,dce_baseline,P001/dce/1.dcm,unreadable\n")
    p = _parse(render_report(root, pdf=True).html)
    assert [a["id"] for t, a in p.tags if t == "section"] == ["study", "cohort", "patients", "provenance"]
    assert "1 patient with 0 lesions (1 failed)" in _text(p, "study")
    assert "No cohort analysis (cohort.json)" in _text(p, "cohort")
    assert "dce_baseline: unreadable (P001/dce/1.dcm)" in _text(p, "patients")
    assert (root / "report.pdf").stat().st_size > 1000
