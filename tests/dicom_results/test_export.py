"""pipeline.export_dicom and `theraquant export` over a small hand-made RESULTS folder."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

from theraquant.errors import TheraquantError
from theraquant.io import (read_dicom_series, read_nifti, read_parametric_map, read_rt_dose, read_rtstruct,
                           read_seg, write_nifti)
from theraquant.pipeline import export_dicom

_spec = importlib.util.spec_from_file_location("tq_dicom_synthetic", Path(__file__).parent / "synthetic.py")
syn = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(syn)

PID, NAME = "TQ-0001", "Test^Patient"


def _series_rec(study: Path, src, role):
    h = src.meta["headers"][0]
    return {"series_uid": h.SeriesInstanceUID, "study_uid": h.StudyInstanceUID, "role": role,
            "frame_of_reference_uid": h.FrameOfReferenceUID,
            "files": [Path(f).relative_to(study).as_posix() for f in src.meta["files"]]}


def _make_results(tmp_path: Path, *, private: bool = True) -> dict:
    study = tmp_path / "study"
    mr_img = syn.oblique_image(shape=(6, 16, 18), spacing=(4.0, 2.5, 2.5), angle_deg=10.0)
    pt_img = syn.oblique_image(shape=(8, 20, 20), spacing=(4.0, 4.0, 4.0), origin=(-40.0, -40.0, 20.0))
    syn.write_series(study / f"{PID}_mr", mr_img.with_array(np.random.default_rng(0).random(mr_img.shape)),
                     patient_id=PID, patient_name=NAME, study_date="20240301")
    syn.write_series(study / "pt", pt_img.with_array(np.random.default_rng(1).random(pt_img.shape) * 1e4),
                     modality="PT", patient_id=PID, patient_name=NAME, study_date="20240320")
    mr = read_dicom_series(study / f"{PID}_mr")
    pt = read_dicom_series(study / "pt")
    results = tmp_path / "RESULTS"
    pdir = results / "patients" / "P001"
    series = [_series_rec(study, mr, "dce"), _series_rec(study, pt, "y90")]
    if private:  # as run_study records them: paths holding the PatientID redacted
        series[0]["files"] = [f.replace(PID, "P001") for f in series[0]["files"]]
        series[0]["files_redacted"] = True
        series[1]["files"] = ["gone/IM0001.dcm"]  # not found: the export scans the study folder
    (results).mkdir(parents=True)
    (results / "study.json").write_text(json.dumps({
        "study_dir": str(study), "pseudonymised": private,
        "patients": [{"patient": "P001", "series": series}]}))
    mr_uid, pt_uid = series[0]["series_uid"], series[1]["series_uid"]
    rng = np.random.default_rng(5)

    def side(q, units, uid, grid, session="baseline"):
        return {"Quantity": q, "Units": units, "SourceSeriesUID": uid, "Session": session, "Grid": grid}

    maps = {
        "ktrans": (mr.with_array(rng.random(mr.shape) * 0.4, units="1/min"), side("Ktrans", "1/min", mr_uid, "dce")),
        "ve": (mr.with_array(rng.random(mr.shape), units="mL/mL"), side("ve", "mL/mL", mr_uid, "dce")),
        "anatomy_mr": (mr.with_array(rng.random(mr.shape), units="a.u."), side("signal", "a.u.", mr_uid, "dce")),
        "dose_gy": (pt.with_array(rng.random(pt.shape) * 200, units="Gy"),
                    side("absorbed dose", "Gy", pt_uid, "y90", "post_therapy")),
        "suv_fdg_baseline": (pt.with_array(rng.random(pt.shape) * 9, units="g/mL"),
                             side("FDG SUL", "g/mL", pt_uid, "y90")),
        "kep": (mr.with_array(rng.random(mr.shape), units="1/min"), side("kep", "1/min", "1.2.3.999", "dce")),
    }
    for name, (img, sc) in maps.items():
        write_nifti(img, pdir / "maps" / f"{name}.nii.gz", sidecar=sc)
    for grid, ref, uid in (("dce", mr, mr_uid), ("y90", pt, pt_uid)):
        lab = np.zeros(ref.shape, np.int16)
        lab[1:5, 3:12, 3:12] = 10
        lab[2:4, 5:9, 5:8] = 1
        write_nifti(ref.with_array(lab), pdir / "masks" / f"{grid}.nii.gz", dtype=np.int16,
                    sidecar={"labels": {"1": "lesion 1", "10": "Liver"}, "Grid": grid, "SourceSeriesUID": uid})
    return {"results": results, "pdir": pdir, "mr": mr, "pt": pt, "maps": maps}


def test_export_writes_every_object_with_the_nifti_values(tmp_path):
    r = _make_results(tmp_path)
    failures = export_dicom(r["results"])
    d = r["pdir"] / "dicom"
    assert sorted(p.name for p in d.iterdir()) == [
        "pm_dose_gy.dcm", "pm_ktrans.dcm", "pm_suv_fdg_baseline.dcm", "pm_ve.dcm", "rtdose_dose_gy.dcm",
        "rtstruct_y90.dcm", "seg_dce.dcm", "seg_y90.dcm"]
    # the map whose source series is not in the study fails alone, named
    assert [(f.patient, f.step, f.file) for f in failures] == [("P001", "export", "patients/P001/maps/kep.nii.gz")]
    assert "1.2.3.999" in failures[0].message
    for name in ("ktrans", "ve", "dose_gy", "suv_fdg_baseline"):
        nifti = read_nifti(r["pdir"] / "maps" / f"{name}.nii.gz")
        pm = read_parametric_map(d / f"pm_{name}.dcm")
        assert pm.same_grid(nifti, atol_mm=1e-3)
        np.testing.assert_array_equal(pm.array, np.asarray(nifti.array, np.float32))
    assert pydicom.dcmread(d / "pm_suv_fdg_baseline.dcm").SharedFunctionalGroupsSequence[0]\
        .RealWorldValueMappingSequence[0].QuantityDefinitionSequence[0].ConceptCodeSequence[0].CodeMeaning \
        == "SUVlbm(Janma)"  # theraquant's SUL (PERCIST): lean body mass of Janmahasatian
    dose = read_nifti(r["pdir"] / "maps" / "dose_gy.nii.gz")
    rd = read_rt_dose(d / "rtdose_dose_gy.dcm")
    assert rd.same_grid(dose, atol_mm=1e-3)
    assert np.max(np.abs(rd.array - dose.array)) < 200 / 65535
    for grid in ("dce", "y90"):
        lab = read_nifti(r["pdir"] / "masks" / f"{grid}.nii.gz")
        seg = read_seg(d / f"seg_{grid}.dcm", reference=lab)
        assert list(seg.masks) == ["lesion 1", "Liver"]
        np.testing.assert_array_equal(seg.masks["lesion 1"].array, lab.array == 1)
        np.testing.assert_array_equal(seg.masks["Liver"].array, lab.array == 10)
    rs = read_rtstruct(d / "rtstruct_y90.dcm", dose)
    lab = read_nifti(r["pdir"] / "masks" / "y90.nii.gz").array
    np.testing.assert_array_equal(rs.masks["lesion 1"].array, lab == 1)


def test_export_pseudonymises_consistently(tmp_path):
    r = _make_results(tmp_path)
    export_dicom(r["results"])
    d = r["pdir"] / "dicom"
    dss = {p.name: pydicom.dcmread(p) for p in sorted(d.iterdir())}
    for name, ds in dss.items():
        raw = (d / name).read_bytes()
        assert PID.encode() not in raw and b"Test" not in raw and b"19600101" not in raw, name
        assert ds.PatientID == "P001" and ds.PatientIdentityRemoved == "YES"
    pt_h = r["pt"].meta["headers"][0]
    mr_h = r["mr"].meta["headers"][0]
    pt_objs = [dss[n] for n in ("pm_dose_gy.dcm", "rtdose_dose_gy.dcm", "rtstruct_y90.dcm", "seg_y90.dcm")]
    # one new frame of reference per source frame of reference, shared by every object on it
    assert len({o.FrameOfReferenceUID for o in pt_objs}) == 1
    assert pt_objs[0].FrameOfReferenceUID not in (pt_h.FrameOfReferenceUID, mr_h.FrameOfReferenceUID)
    assert dss["pm_ktrans.dcm"].FrameOfReferenceUID == dss["seg_dce.dcm"].FrameOfReferenceUID
    assert dss["pm_ktrans.dcm"].FrameOfReferenceUID != pt_objs[0].FrameOfReferenceUID
    # the RTSTRUCT references the (remapped) series the RT Dose and SEG reference
    ref = pt_objs[2].ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0]\
        .RTReferencedSeriesSequence[0].SeriesInstanceUID
    assert ref == pt_objs[3].ReferencedSeriesSequence[0].SeriesInstanceUID != pt_h.SeriesInstanceUID
    # one date shift for the patient: a whole number of weeks into the past, intervals kept
    shifts = set()
    for o, orig in [(dss["pm_ktrans.dcm"], "20240301")] + [(o, "20240320") for o in pt_objs]:
        delta = (dt.datetime.strptime(o.StudyDate, "%Y%m%d") - dt.datetime.strptime(orig, "%Y%m%d")).days
        shifts.add(delta)
    assert len(shifts) == 1 and shifts.pop() % 7 == 0
    assert int(pt_objs[0].StudyDate) < 20240320


def test_export_shown_identifiers_join_the_source_studies(tmp_path):
    r = _make_results(tmp_path, private=False)
    export_dicom(r["results"])
    ds = pydicom.dcmread(r["pdir"] / "dicom" / "rtdose_dose_gy.dcm")
    h = r["pt"].meta["headers"][0]
    assert (ds.PatientID, ds.StudyInstanceUID, ds.FrameOfReferenceUID, ds.StudyDate) == (
        PID, h.StudyInstanceUID, h.FrameOfReferenceUID, "20240320")


def test_export_refuses_existing_objects_without_overwrite(tmp_path):
    r = _make_results(tmp_path)
    export_dicom(r["results"])
    before = (r["pdir"] / "dicom" / "pm_ktrans.dcm").read_bytes()
    with pytest.raises(TheraquantError, match=r"already holds 8 exported DICOM objects.*--overwrite"):
        export_dicom(r["results"])
    assert (r["pdir"] / "dicom" / "pm_ktrans.dcm").read_bytes() == before
    export_dicom(r["results"], overwrite=True)
    assert (r["pdir"] / "dicom" / "pm_ktrans.dcm").read_bytes() != before  # new SOP instance
    with pytest.raises(TheraquantError, match="has no study.json"):
        export_dicom(tmp_path / "study")
    # called by run_study while the run is in progress (a --resume keeps earlier objects): replaced
    (r["results"] / "manifest.json").write_text(json.dumps({"Software": "theraquant", "Outputs": [],
                                                            "Complete": False}))
    export_dicom(r["results"])
    (r["results"] / "manifest.json").write_text(json.dumps({"Software": "theraquant", "Outputs": [],
                                                            "Complete": True}))
    with pytest.raises(TheraquantError, match="already holds"):
        export_dicom(r["results"])


def test_cli_export(tmp_path):
    from typer.testing import CliRunner

    from theraquant.cli import app

    r = _make_results(tmp_path)
    res = CliRunner().invoke(app, ["export", str(r["results"])])
    assert res.exit_code == 1, res.output  # the kep map's source series is missing
    assert "8 DICOM objects" in res.output and "kep.nii.gz" in res.output
    res = CliRunner().invoke(app, ["export", str(r["results"])])
    assert res.exit_code == 1 and "--overwrite" in res.output
    (r["pdir"] / "maps" / "kep.nii.gz").unlink()
    res = CliRunner().invoke(app, ["export", str(r["results"]), "--overwrite"])
    assert res.exit_code == 0, res.output


@pytest.mark.skipif(shutil.which("dciodvfy") is None,
                    reason="dciodvfy (Debian package dicom3tools) is not installed; .ci/run installs it")
def test_every_exported_object_passes_dciodvfy(tmp_path):
    r = _make_results(tmp_path)
    export_dicom(r["results"])
    for p in sorted((r["pdir"] / "dicom").iterdir()):
        errors, text = syn.dciodvfy(p)
        assert errors == [], (p.name, text)


@pytest.mark.parametrize("name, side, settings, want", [
    ("suv_fdg_baseline", {"Quantity": "FDG SUL"}, {}, "suv_lbm_janma"),
    ("suv_fdg_followup", {"Quantity": "FDG SUV"}, {}, "suv_bw"),
    ("suv_fmiso", {"Quantity": "FMISO SUV"}, {"study": {"fmiso": {"normalization": "lbm-james"}}}, "suv_lbm_james"),
    ("suv_fmiso", {"Quantity": "FMISO SUV", "Normalization": "bsa"}, {}, "suv_bsa"),
    ("ktrans_followup", {}, {}, "ktrans"),
    ("anatomy_mr", {}, {}, None),
    ("activity_y90", {}, {}, None),
])
def test_map_quantity(name, side, settings, want):
    from theraquant.pipeline._export import _quantity

    assert _quantity(name, side, settings) == want
