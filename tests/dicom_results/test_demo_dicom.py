"""Every DICOM object the demo writes passes dciodvfy, and its Parametric Maps hold the NIfTI values."""

from __future__ import annotations

import importlib.util
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

_spec = importlib.util.spec_from_file_location("tq_dicom_synthetic", Path(__file__).parent / "synthetic.py")
syn = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(syn)


def _objects(demo_results) -> list[Path]:
    return sorted(p for key in ("tare", "prrt") for p in Path(demo_results[key]).glob("patients/*/dicom/*.dcm"))


@pytest.mark.demo
@pytest.mark.skipif(shutil.which("dciodvfy") is None,
                    reason="dciodvfy (Debian package dicom3tools) is not installed; .ci/run installs it")
def test_every_demo_dicom_object_passes_dciodvfy(demo_results):
    objs = _objects(demo_results)
    kinds = {p.name.split("_")[0] for p in objs}
    # TARE: 90Y dose -> RT Dose + RTSTRUCT; both studies have maps and masks
    assert {"pm", "seg", "rtdose", "rtstruct"} <= kinds, sorted(kinds)
    for key in ("tare", "prrt"):
        assert list(Path(demo_results[key]).glob("patients/*/dicom/pm_*.dcm")), f"no Parametric Map in {key}"
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(syn.dciodvfy, objs))
    bad = {p.relative_to(demo_results["root"]).as_posix(): errors for p, (errors, _) in zip(objs, results) if errors}
    assert not bad, bad


@pytest.mark.demo
def test_demo_parametric_maps_hold_the_nifti_values(demo_results):
    from theraquant.io import read_nifti, read_parametric_map

    objs = [p for p in _objects(demo_results) if p.name.startswith("pm_")]
    assert objs
    for p in objs[:: max(1, len(objs) // 12)]:  # a dozen spread over patients and maps
        name = p.name[3:-4]
        nifti = read_nifti(p.parents[1] / "maps" / f"{name}.nii.gz")
        pm = read_parametric_map(p)
        assert pm.same_grid(nifti, atol_mm=1e-3), p
        np.testing.assert_array_equal(pm.array, np.asarray(nifti.array, np.float32), err_msg=str(p))


@pytest.mark.demo
def test_demo_dicom_identifiers_follow_the_run(demo_results):
    """Pseudonymised demo: PatientID is the pseudonym and every StudyDate is one of the patient's
    (shifted) session dates in study.json, so DICOM and tables tell the same time line."""
    import json

    import pydicom

    for key in ("tare", "prrt"):
        results = Path(demo_results[key])
        study = json.loads((results / "study.json").read_text())
        assert study["pseudonymised"] is True
        for p in study["patients"]:
            dates = {str(s["date"])[:10].replace("-", "") for s in p["sessions"] if s.get("date")}
            for f in sorted((results / "patients" / p["patient"] / "dicom").glob("*.dcm")):
                ds = pydicom.dcmread(f, stop_before_pixels=True)
                assert ds.PatientID == p["patient"] and ds.PatientIdentityRemoved == "YES", f
                assert ds.StudyDate in dates, (f, ds.StudyDate, sorted(dates))
