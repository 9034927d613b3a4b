"""Orchestration of a study run (Dask, atomic per-patient results, resume after SIGKILL, failures, privacy).

The science per patient is replaced by the deterministic stand-in of ``_standin.py`` (numbers derived
from the series UIDs), so these tests check the orchestration alone and run in seconds.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

from theraquant import TheraquantError
from theraquant.pipeline._run import FAILURE_COLUMNS, RunSettings, run_study

HERE = Path(__file__).parent


def _load(name: str, file: str):
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, HERE / file)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


fac = _load("_theraquant_study_factory", "_study_factory.py")
standin = _load("_standin", "_standin.py")  # the name worker processes import it by
THERAPY = dt.date(2024, 3, 1)
PATIENTS = (("AA-1001", "Alpha^Annabel", "19500101", "ACCX0001"), ("BB-1002", "Beta^Bernadette", "19610202",
            "ACCX0002"), ("ZZ-BROKEN-3", "Gamma^Gwendolyn", "19720303", "ACCX0003"))
IDENTIFIERS = [x for p in PATIENTS for x in (p[0], *p[1].split("^"), p[2], p[3])] + ["1950-01-01"]


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("study")
    for pid, name, birth, acc in PATIENTS:
        fac.tare_patient(root, fac.Patient(pid, name=name, birth=birth, accession=acc), THERAPY)
    (root / "notes.txt").write_text("not DICOM\n")
    return root


def _run(study: Path, out: Path, **kw) -> object:
    kw = {"workers": 2, "processes": False, "dicom": False, "report": False, "cohort": False, "quiet": True, **kw}
    return run_study(study, RunSettings(out=out, **kw), process=standin.standin_process)


def test_layout_tables_and_a_broken_patient_that_loses_nothing(study, tmp_path):
    out = tmp_path / "results"
    run = _run(study, out, key=tmp_path / "key.csv")
    for name in ("lesions.parquet", "lesions.csv", "patients.csv", "failures.csv", "curves.parquet", "dvh.parquet",
                 "study.json", "provenance.json", "manifest.json"):
        assert (out / name).is_file(), name
    assert run.ran == ("P001", "P002", "P003") or sorted(run.ran) == ["P001", "P002", "P003"]
    assert run.failed == ("P003",)  # ZZ-BROKEN-3 sorts last
    lesions = pd.read_csv(out / "lesions.csv", keep_default_na=False)
    assert list(lesions[["patient", "lesion"]].itertuples(index=False, name=None)) == [
        ("P001", "1"), ("P001", "2"), ("P002", "1"), ("P002", "2")] or lesions["lesion"].astype(str).tolist() == [
        "1", "2", "1", "2"]
    assert lesions["patient"].tolist() == ["P001", "P001", "P002", "P002"]
    assert "notes" in lesions.columns and set(lesions["notes"]) == {""}
    # the same numbers as the stand-in gives for each patient (written per patient, rebuilt into the cohort)
    for pseudonym in ("P001", "P002"):
        part = pd.read_parquet(out / "patients" / pseudonym / "lesions.parquet")
        got = lesions[lesions["patient"] == pseudonym]["ktrans"].to_numpy()
        assert got.tolist() == pytest.approx(part["ktrans"].tolist(), rel=1e-12)
    parquet = pd.read_parquet(out / "lesions.parquet")
    assert parquet["ktrans"].tolist() == pytest.approx(lesions["ktrans"].tolist(), rel=1e-12)
    failures = pd.read_csv(out / "failures.csv", keep_default_na=False)
    assert tuple(failures.columns) == FAILURE_COLUMNS
    broken = failures[failures["patient"] == "P003"]
    assert broken["step"].tolist() == ["patient"]
    assert broken["message"].iloc[0].startswith("RuntimeError: cannot read P003/")  # relative, pseudonymised
    disc = failures[failures["step"] == "discovery"]
    assert disc["file"].tolist() == ["notes.txt"]
    patients = pd.read_csv(out / "patients.csv", keep_default_na=False)
    assert patients["patient"].tolist() == ["P001", "P002", "P003"]
    assert patients["status"].tolist() == ["ok", "ok", "failed"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["Kind"] == "study run" and manifest["Complete"] is True
    assert {k: v["status"] for k, v in manifest["Patients"].items()} == {"P001": "ok", "P002": "ok", "P003": "failed"}
    key = pd.read_csv(tmp_path / "key.csv", dtype=str)
    assert key[["pseudonym", "patient_id"]].values.tolist() == [["P001", "AA-1001"], ["P002", "BB-1002"],
                                                                ["P003", "ZZ-BROKEN-3"]]
    # dates shifted by the key's days: therapy (first 90Y scan) of P001
    shift = int(key["date_shift_days"].iloc[0])
    design = json.loads((out / "study.json").read_text())
    assert design["study_dir"] == str(study.resolve()) and design["pseudonymised"] is True
    p1 = design["patients"][0]
    roles = sorted({s["role"] for s in p1["series"]})
    assert roles == ["dce", "fdg", "fmiso", "seg", "vfa", "y90"]
    dce = next(s for s in p1["series"] if s["role"] == "dce")
    assert dce["n_temporal"] == 4 and dce["n_files"] == len(dce["files"]) == 8
    # the study names its folders by PatientID: in pseudonymised results those paths are redacted
    shifted = (THERAPY - dt.timedelta(days=10) + dt.timedelta(days=shift)).isoformat()
    assert dce["files_redacted"] is True and dce["files"][0] == f"P001/mr/dyn_{shifted}/0000"
    real = (THERAPY - dt.timedelta(days=10)).isoformat()
    assert all((study / f.replace("P001", "aa-1001").replace(shifted, real)).is_file() for f in dce["files"])
    assert shift % 7 == 0 and -3633 <= shift <= -364
    real = THERAPY + dt.timedelta(days=1)
    assert patients["therapy_date"].iloc[0] == (real + dt.timedelta(days=shift)).isoformat()
    assert p1["therapy_date"] == (real + dt.timedelta(days=shift)).isoformat()
    sidecar = json.loads((out / "patients" / "P001" / "maps" / "ktrans.json").read_text())
    assert sidecar == {"Units": "1/min", "Source": "P001/dce", "Date": (real + dt.timedelta(days=shift)).isoformat()}


def _readable_text(f: Path) -> str:
    """What a person (or a tool) could read out of an output file: compressed and binary formats decoded."""
    import gzip
    import re
    import zlib

    data = f.read_bytes()
    name = f.name.lower()
    if name.endswith(".parquet"):
        return pd.read_parquet(f).to_csv(index=False)
    if name.endswith(".gz"):
        with gzip.open(f) as fh:
            data = fh.read(1 << 16)  # NIfTI header and extensions; the rest is voxel data
    elif name.endswith(".dcm") or data[128:132] == b"DICM":
        cut = data.find(b"\xe0\x7f\x10\x00")  # (7FE0,0010) Pixel Data: everything before it is header
        data = data[:cut] if cut > 0 else data
    elif name.endswith(".pdf"):
        streams = [data]
        for m in re.finditer(rb"<<(.*?)>>\s*stream\r?\n(.*?)endstream", data, re.S):
            if b"/Image" in m.group(1):  # picture data, no text
                continue
            try:
                streams.append(zlib.decompress(m.group(2)))
            except zlib.error:
                pass
        data = b"\n".join(streams)
    return data.decode("latin-1")


def _all_text(folder: Path) -> dict[Path, str]:
    return {f: _readable_text(f) for f in folder.rglob("*") if f.is_file()}


def test_no_identifier_or_real_date_anywhere_in_results(study, tmp_path):
    out = tmp_path / "results"
    _run(study, out)
    texts = _all_text(out)
    assert len(texts) > 20
    for f, text in texts.items():
        low = text.lower()
        for ident in IDENTIFIERS:
            assert ident.lower() not in low, f"{ident} in {f.relative_to(out)}"
        for real in ("2024-03-02", "2024-02-20", "20240302", "20240220"):  # therapy / baseline dates
            assert real not in text, f"{real} in {f.relative_to(out)}"


def test_show_identifiers_names_patients_by_id(study, tmp_path):
    run = _run(study, tmp_path / "r", show_identifiers=True)
    assert run.lesions["patient"].unique().tolist() == ["AA-1001", "BB-1002"]
    assert (tmp_path / "r" / "patients" / "AA-1001" / "lesions.parquet").is_file()
    assert run.patients["therapy_date"].iloc[0] == "2024-03-02"


def test_non_empty_results_are_refused_then_overwritten(study, tmp_path):
    out = tmp_path / "r"
    _run(study, out)
    stale = out / "patients" / "P009"
    stale.mkdir()
    (out / "mine.txt").write_text("keep")
    with pytest.raises(TheraquantError, match="exists and is not empty; pass --overwrite"):
        _run(study, out)
    _run(study, out, overwrite=True)
    assert not stale.exists() and (out / "mine.txt").read_text() == "keep"
    with pytest.raises(TheraquantError, match="inside the study folder"):
        _run(study, study / "results")
    with pytest.raises(TheraquantError, match="--key .* is inside RESULTS"):
        _run(study, tmp_path / "r2", key=tmp_path / "r2" / "key.csv")


def test_resume_refuses_other_settings(study, tmp_path):
    out = tmp_path / "r"
    _run(study, out)
    from theraquant.pipeline import StudyConfig
    with pytest.raises(TheraquantError, match="--resume: the settings .* differ"):
        run_study(study, RunSettings(out=out, resume=True, processes=False, dicom=False, report=False, cohort=False,
                                     quiet=True),
                  config=StudyConfig.model_validate({"dce": {"r1": 4.0}}), process=standin.standin_process)
    run = _run(study, out, resume=True)
    assert set(run.resumed) == {"P001", "P002"} and run.ran == ("P003",)  # the failed patient is retried


_KILL_SCRIPT = """
import sys
from pathlib import Path
if __name__ == "__main__":
    sys.path.insert(0, {here!r})  # the worker processes import the stand-in by name
    import _standin
    from theraquant.pipeline._run import RunSettings, run_study
    run_study({study!r}, RunSettings(out=Path({out!r}), workers=1, dicom=False, report=False, cohort=False,
              quiet=True), process=_standin.standin_process)
"""


def test_sigkill_mid_cohort_then_resume_equals_a_clean_run(study, tmp_path):
    out = tmp_path / "killed"
    script = tmp_path / "run.py"
    script.write_text(_KILL_SCRIPT.format(here=str(HERE), study=str(study), out=str(out)))
    env = {**os.environ, "THERAQUANT_TEST_SLEEP": "60"}
    proc = subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    children = []
    try:
        deadline = time.monotonic() + 120
        while not list((out / "patients").glob("*/done.json")):
            assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
            assert time.monotonic() < deadline, "no patient finished in 120 s"
            time.sleep(0.1)
        children = psutil.Process(proc.pid).children(recursive=True)  # the Dask worker process(es)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert children
    # the worker processes exit with their parent: no orphan keeps writing into RESULTS
    gone, alive = psutil.wait_procs(children, timeout=20)
    assert not alive, alive
    finished = sorted(p.parent.name for p in (out / "patients").glob("*/done.json"))
    assert len(finished) == 1 and not (out / "lesions.csv").exists()  # killed mid-cohort
    first = (out / "patients" / finished[0] / "lesions.parquet").stat().st_mtime_ns
    resumed = _run(study, out, resume=True)
    assert resumed.resumed == tuple(finished) and finished[0] not in resumed.ran
    assert (out / "patients" / finished[0] / "lesions.parquet").stat().st_mtime_ns == first  # not redone
    clean = tmp_path / "clean"
    _run(study, clean)
    for name in ("lesions.csv", "patients.csv", "failures.csv", "study.json"):
        assert (out / name).read_text() == (clean / name).read_text(), name
    for name in ("lesions.parquet", "curves.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(out / name), pd.read_parquet(clean / name))


def test_process_workers_give_the_same_tables(study, tmp_path, monkeypatch):
    # worker processes (spawned with this process's sys.path) import the stand-in by module name
    monkeypatch.syspath_prepend(str(HERE))
    run = _run(study, tmp_path / "procs", processes=True, workers=2)
    threads = _run(study, tmp_path / "threads")
    pd.testing.assert_frame_equal(run.lesions, threads.lesions)
    assert run.failed == ("P003",)


def test_failures_csv_is_header_only_when_nothing_failed(tmp_path):
    root = tmp_path / "s"
    fac.tare_patient(root, fac.Patient("OK-1"), THERAPY)
    _run(root, tmp_path / "r")
    assert (tmp_path / "r" / "failures.csv").read_text().strip() == "patient,step,file,message"


def test_settings_are_checked():
    with pytest.raises(TheraquantError, match="workers=0 must be an integer >= 1"):
        RunSettings(out=Path("x"), workers=0)
    with pytest.raises(TheraquantError, match="resume and overwrite exclude each other"):
        RunSettings(out=Path("x"), resume=True, overwrite=True)


def _fake_phantom(kind: str):
    """A stand-in for phantom.write_<kind>_study: a tiny study and a truth derived from the stand-in's numbers
    (Ktrans truth 1/1.1 of what the stand-in recovers, so the relative error is exactly +10 %)."""
    from types import SimpleNamespace

    def write(study_dir, *, n_patients: int = 2, seed: int = 2026):
        rows = []
        for i in range(n_patients):
            p = fac.Patient(f"{kind.upper()}-PHANTOM-{i:03d}", name=f"Phantom^{kind}{i}")
            uids = fac.tare_patient(Path(study_dir), p, THERAPY, n_lesions=2)
            for lid in ("1", "2"):
                rows.append((p.patient_id, lid, "ktrans", "1/min", standin._num(f"{uids['dce']}{lid}") / 1.1))
                rows.append((p.patient_id, lid, "t_bp", "1", 1.0 + standin._num(f"fmiso{p.patient_id}{lid}")))
                rows.append((p.patient_id, lid, "response", "", "PR"))
        truth = pd.DataFrame(rows, columns=["patient_id", "lesion", "biomarker", "unit", "value"])
        return SimpleNamespace(study_dir=Path(study_dir), truth=truth)

    return write


def test_demo_compares_with_truth_and_replaces_its_own_output(tmp_path, monkeypatch):
    from theraquant import phantom
    from theraquant.pipeline import run_demo

    monkeypatch.syspath_prepend(str(HERE))  # worker processes import the stand-in
    monkeypatch.setattr(phantom, "write_tare_study", _fake_phantom("tare"), raising=False)
    monkeypatch.setattr(phantom, "write_prrt_study", _fake_phantom("prrt"), raising=False)
    from theraquant import dce

    warmed, said = [], []
    monkeypatch.setattr(dce, "kernels_ready", lambda model=None: False)  # a cold numba cache
    monkeypatch.setattr(dce, "warm_up", lambda model=None: warmed.append(model) or 0.0)
    out = tmp_path / "demo"
    kw = {"workers": 1, "dicom": False, "report": False, "cohort": False, "process": standin.standin_process}
    run = run_demo(out, **kw, log=said.append)
    assert f"compiling fitting kernels (once, ~{dce.COMPILE_ESTIMATE_S} s)" in said
    assert warmed == ["dual_input_etofts", "etofts"]
    for design in ("tare", "prrt"):
        vt = pd.read_csv(out / design / "results" / "vs_truth.csv", keep_default_na=False)
        assert list(vt.columns) == ["patient", "lesion", "biomarker", "unit", "true", "recovered", "error",
                                    "rel_error_pct"]
        assert set(vt["patient"]) == {"P001", "P002"}  # pseudonyms through the key, not PhantomIDs
        k = vt[vt["biomarker"] == "ktrans"]
        assert k["rel_error_pct"].astype(float).tolist() == pytest.approx([10.0] * 4, abs=1e-9)
        val = json.loads((out / design / "results" / "validation.json").read_text())
        assert val["ktrans"]["n"] == 4 and val["ktrans"]["bias_pct"] == pytest.approx(10.0, abs=1e-9)
        assert val["t_bp"]["bias"] == pytest.approx(0.0, abs=1e-12) and val["t_bp"]["loa_high"] == pytest.approx(
            0.0, abs=1e-12)
        assert val["response"]["n"] == 0  # the stand-in grades nothing
    assert set(run.runs) == {"tare", "prrt"}
    # its own earlier output is replaced without --overwrite; anything else needs it
    (out / "tare" / "results" / "stale.txt").write_text("old")
    run_demo(out, **kw, designs=("tare",))
    assert not (out / "tare" / "results" / "stale.txt").exists()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "mine.txt").write_text("keep")
    with pytest.raises(TheraquantError, match="holds something other than an earlier demo; pass --overwrite"):
        run_demo(foreign, **kw)


@pytest.mark.demo
@pytest.mark.parametrize("design", ["tare", "prrt"])
def test_demo_results_hold_no_identifier_of_the_phantom_patients(demo_results, design):
    """Every file of the demo's RESULTS, grepped for every identifier the study's DICOM headers carry."""
    from theraquant.pipeline import discover_study

    study = discover_study(demo_results["root"] / design / "study")
    idents = set()
    for p in study.patients:
        for key, value in p.identifiers.items():
            idents.update(v for v in str(value).split("\\") if len(v) >= 4)
            if key == "PatientName":  # name parts too, except the generic family name "Phantom" (report prose)
                idents.update(x for x in str(value).replace("^", "\\").split("\\")
                              if len(x) >= 4 and x.lower() != "phantom")
    assert len(idents) >= 4 * len(study.patients)  # ID, full name, given name, birth date, accessions
    # real session dates (ISO and DICOM form): each patient's dates are shifted back by >= 52 weeks, more
    # than the phantom's dates span, so no shifted date equals a real one
    days = sorted({s.date for p in study.patients for s in p.series if s.date is not None})
    assert (days[-1] - days[0]).days < 364
    dates = [d.isoformat() for d in days] + [d.strftime("%Y%m%d") for d in days]
    import re

    # an 8-digit date may occur by chance inside the digits of a UID: not counted (not preceded by a digit or
    # '.', not followed by a digit)
    digits = {x for x in (*idents, *dates) if x.isdigit()}
    others = {x.lower() for x in (*idents, *dates)} - digits
    eight = re.compile(r"(?<![\d.])(\d{8})(?!\d)")
    for f, text in _all_text(demo_results[design]).items():
        low = text.lower()
        found = (set(eight.findall(low)) & digits) | {x for x in others if x in low}
        assert not found, f"{sorted(found)} in {f.relative_to(demo_results[design])}"


@pytest.mark.demo
@pytest.mark.parametrize("design", ["tare", "prrt"])
def test_demo_results_layout(demo_results, design):
    res = demo_results[design]
    lesions = pd.read_csv(res / "lesions.csv", keep_default_na=False)
    for col in ("patient", "lesion", "ktrans", "dmean_gy", "response", "responder", "volume_ml", "notes"):
        assert col in lesions.columns, col
    assert lesions["patient"].str.fullmatch(r"P\d{3}").all()
    assert tuple(pd.read_csv(res / "failures.csv").columns) == FAILURE_COLUMNS
    vt = pd.read_csv(res / "vs_truth.csv")
    assert len(vt) > 0 and vt["patient"].str.fullmatch(r"P\d{3}").all()
    val = json.loads((res / "validation.json").read_text())
    assert "ktrans" in val and val["ktrans"]["n"] > 0
    manifest = json.loads((res / "manifest.json").read_text())
    assert manifest["Complete"] is True and manifest["Kind"] == "study run"


def test_scheduler_address_uses_an_existing_cluster(study, tmp_path):
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        run = _run(study, tmp_path / "r", scheduler=cluster.scheduler_address)
        assert sorted(run.ran) == ["P001", "P002", "P003"]
        assert len(cluster.scheduler.workers) == 1  # still up: run_study left the cluster it did not start
    with pytest.raises(TheraquantError, match="--scheduler tcp://127.0.0.1:9: cannot connect"):
        _run(study, tmp_path / "r2", scheduler="tcp://127.0.0.1:9")
