"""process_patient end to end on a tiny DICOM study (tests/pipeline/_patient_study.py).

The study is a stand-in for PHANTOM's studies: one patient, two lesions of known DCE parameters,
FMISO uptake ratios and 90Y activity, written as real DICOM (pydicom) with a SEG (io.write_seg)
on the DCE grid; the PET series share the frame of reference on a coarser grid.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

from theraquant import io
from theraquant.pipeline import discover_study
from theraquant.pipeline._patient import LESION_COLUMNS, process_patient


def load_study_module():
    name = "_theraquant_patient_study"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("_patient_study.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


_ps = load_study_module()
TRUTH = _ps.TRUTH
write_study = _ps.write_study


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    info = write_study(root)
    return root, info


@pytest.mark.slow
def test_one_patient_end_to_end(study, tmp_path):
    root, info = study
    s = discover_study(root)
    assert len(s.patients) == 1
    p = s.patients[0]
    out = process_patient(p, s.config, tmp_path, study_dir=root)
    assert out.failures == ()
    les = out.lesions.set_index("lesion")
    assert list(out.lesions.columns[: len(LESION_COLUMNS)]) == list(LESION_COLUMNS)
    assert out.lesions.columns[-1] == "notes"
    # DCE from DICOM (uint16 with slope 0.01: quantisation 5e-6 of the signal), VFA T10, measured AIF: 2 %
    for k in ("1", "2"):
        assert les.loc[k, "ktrans"] == pytest.approx(TRUTH[k]["Ktrans"], rel=0.02)
        assert les.loc[k, "ve"] == pytest.approx(TRUTH[k]["ve"], rel=0.02)
    assert les.loc["1", "dce_model"] == "etofts"
    assert "VFA (3 flip angles" in out.settings["dce"]["t10"]
    # FMISO on the 4 mm grid: lesion 1 SUVmax 1.5 / blood pool 1.0; lesion 2 1.1 (uint16 round-off 1e-4)
    assert les.loc["1", "t_bp"] == pytest.approx(1.5, rel=1e-3) and bool(les.loc["1", "hypoxic"])
    assert les.loc["2", "t_bp"] == pytest.approx(1.1, rel=1e-3) and not bool(les.loc["2", "hypoxic"])
    assert les.loc["1", "t_m"] == pytest.approx(1.5 / 0.9, rel=1e-3)
    # 90Y LDM (uint16 round-off < 1e-3 of the liver value): D = 49.67 Gy kg/GBq x C_admin / rho, the
    # activity taken back 20 h to the administration
    for k, c in (("1", 2.5e6), ("2", 1.0e6)):
        assert les.loc[k, "dmean_gy"] == pytest.approx(49.67 * c * 1e-6 / 1.04, rel=1e-3)
    assert out.patient_row["dose_normal_liver_gy"] == pytest.approx(49.67 * 2.0e5 * 1e-6 / 1.04, rel=1e-3)
    # volumes on the DCE grid: 2 x 4 x 4 voxels of 16 uL
    assert les.loc["1", "volume_ml"] == pytest.approx(32 * 0.016)
    # no follow-up: response NE, said so
    assert out.patient_row["response"] in ("", "NE")
    assert (out.lesions["notes"] == "").all()
    # files: maps + sidecars, masks as label images with the study's own labels
    pdir = tmp_path / "patients" / p.pseudonym
    for name in ("ktrans", "kep", "ve", "vp", "iaugc60", "t10", "anatomy_mr", "suv_fmiso", "fmiso_tbp", "hypoxic",
                 "activity_y90", "dose_gy"):
        assert (pdir / "maps" / f"{name}.nii.gz").is_file(), name
    side = json.loads((pdir / "maps" / "dose_gy.json").read_text())
    assert side["Units"] == "Gy" and side["Session"] == "post_therapy" and side["Grid"] == "y90"
    assert side["Provenance"]["Settings"]["method"] == "ldm" and side["Provenance"]["Settings"]["nuclide"] == "Y-90"
    kside = json.loads((pdir / "maps" / "ktrans.json").read_text())
    assert kside["Units"] == "1/min" and kside["Provenance"]["Settings"]["model"] == "etofts"
    ms = json.loads((pdir / "masks" / "dce.json").read_text())
    assert ms["labels"]["1"] == "Lesion 1" and ms["labels"]["10"] == "Liver"
    lab = io.read_nifti(pdir / "masks" / "dce.nii.gz")
    assert int((np.asarray(lab.array) == 1).sum()) == 32
    ktr = io.read_nifti(pdir / "maps" / "ktrans.nii.gz")
    assert ktr.same_grid(io.read_dicom_series(root / "mr" / "dce"))
    # curves and DVH
    c = out.curves
    assert set(c["kind"]) == {"data", "fit", "aif"} and set(c.columns) == {"patient", "lesion", "session", "kind",
                                                                          "t_s", "value_mM"}
    assert set(out.dvh["lesion"]) == {"1", "2", "liver"}
    # no identifier and no date of the patient's in anything written
    for f in pdir.rglob("*.json"):
        text = f.read_text()
        assert "SECRET-ID-7" not in text and "Doe^Jane" not in text and "2026-03" not in text and "202603" not in text


@pytest.mark.slow
def test_broken_series_fails_only_its_step(study, tmp_path):
    """FMISO slices without DecayCorrection fail the FMISO step only; a DCE series whose RepetitionTime
    was stored in s (0.004) instead of ms runs as written with a warning naming the file, the tag and
    the value."""
    root, info = study
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(root, broken)
    for f in sorted((broken / "pet" / "fmiso").iterdir())[:3]:
        ds = pydicom.dcmread(f)
        del ds.DecayCorrection              # SUV cannot be computed
        ds.save_as(f)
    for f in (broken / "mr" / "dce").iterdir():
        ds = pydicom.dcmread(f)
        ds.RepetitionTime = 0.004
        ds.save_as(f)
    s = discover_study(broken)
    out = process_patient(s.patients[0], s.config, tmp_path / "res", study_dir=broken)
    w = [x for x in out.warnings if "repetition time" in x]
    assert len(w) == 1 and "mr/dce/im00000.dcm RepetitionTime" in w[0] and "4e-06" in w[0]
    assert [f.step for f in out.failures] == ["fmiso"]
    assert out.failures[0].file.startswith("pet/fmiso/")
    assert "DecayCorrection" in out.failures[0].message and "im0000" in out.failures[0].message
    les = out.lesions.set_index("lesion")
    assert np.isnan(les.loc["1", "t_bp"]) and "fmiso failed" in les.loc["1", "notes"]
    assert np.isfinite(les.loc["1", "ktrans"]) and np.isfinite(les.loc["1", "dmean_gy"])  # the rest computed
    assert out.patient_row["status"] == "partial"


@pytest.mark.slow
def test_prrt_followup_recist_and_lu177(tmp_path):
    from theraquant import dosimetry

    root = tmp_path / "prrt"
    info = _ps.write_prrt_study(root)
    s = discover_study(root)
    p = s.patients[0]
    assert len(p.lu177) == 3 and "dce_followup" in p.timepoints
    out = process_patient(p, s.config, tmp_path / "res", study_dir=root)
    assert out.failures == (), out.failures
    les = out.lesions.set_index("lesion")
    # default T10 (0.81 s tissue, 1.6 s blood, as simulated): 2 %
    assert les.loc["1", "ktrans"] == pytest.approx(0.25, rel=0.02)
    assert les.loc["1", "ktrans_followup"] == pytest.approx(0.15, rel=0.02)
    assert les.loc["1", "ktrans_change_pct"] == pytest.approx(-40.0, abs=1.5)
    assert les.loc["2", "ktrans_change_pct"] == pytest.approx(0.0, abs=1.5)
    assert "default tissue T10" in out.settings["dce"]["t10"]
    # RECIST 1.1 per lesion on the mask diameters: 4x4 px of 2 mm -> hypot(8, 8) mm; 2x2 px -> hypot(4, 4)
    assert les.loc["1", "response_baseline"] == pytest.approx(np.hypot(8, 8))
    assert les.loc["1", "response_followup"] == pytest.approx(np.hypot(4, 4))
    assert les.loc["1", "response"] == "PR" and les.loc["1", "responder"] == 1.0
    assert les.loc["2", "response"] == "SD" and les.loc["2", "responder"] == 0.0
    assert les.loc["1", "response_criteria"] == "RECIST 1.1" and les.loc["1", "response_unit"] == "mm"
    # patient: sum 22.6 -> 17.0 mm (-25 %): SD
    assert out.patient_row["response"] == "SD"
    # 177Lu: voxel TAC fits of exact mono-exponentials -> the engine's LDM dose of TIA = A0 / lambda_eff
    a_bq = dosimetry.activity_from_concentration(info["a0"], _ps.SP_PET)
    tia = a_bq / info["lambda_per_h"] * 3600.0
    ref = np.asarray(dosimetry.absorbed_dose(tia, _ps.SP_PET, nuclide="Lu-177", method="ldm", density=1.04))
    for k in ("1", "2"):
        truth = float(ref[info["pet_masks"][f"Lesion {k}"]].mean())
        assert les.loc[k, "dmean_gy"] == pytest.approx(truth, rel=2e-3)   # uint16 round-off and the fit
    assert set(out.curves["session"]) == {"baseline", "followup"}
    pdir = tmp_path / "res" / "patients" / p.pseudonym
    assert (pdir / "maps" / "ktrans_followup.nii.gz").is_file() and (pdir / "masks" / "dce_followup.nii.gz").is_file()
    assert json.loads((pdir / "maps" / "dose_gy.json").read_text())["Grid"] == "lu177"
    # the 177Lu scans found their masks through the frame of reference: the baseline session's (nearest)
    lab = np.asarray(io.read_nifti(pdir / "masks" / "lu177.nii.gz").array)
    np.testing.assert_array_equal(lab == 1, info["pet_masks"]["Lesion 1"])


@pytest.mark.slow
def test_rtstruct_masks_rasterised_on_each_grid(tmp_path):
    root = tmp_path / "rt"
    write_study(root, masks="rtstruct")
    s = discover_study(root)
    out = process_patient(s.patients[0], s.config, tmp_path / "res", study_dir=root)
    assert out.failures == (), out.failures
    les = out.lesions.set_index("lesion")
    # contours along voxel edges rasterise back to the same voxels: the SEG results
    assert les.loc["1", "volume_ml"] == pytest.approx(32 * 0.016)
    assert les.loc["1", "ktrans"] == pytest.approx(TRUTH["1"]["Ktrans"], rel=0.02)
    assert les.loc["1", "t_bp"] == pytest.approx(1.5, rel=1e-3)



def test_mask_outside_its_image_is_an_error_naming_the_seg(study, tmp_path):
    """The only SEG, moved 30 mm off its DCE series: every step fails on it, so the patient raises one
    error listing each step, each naming the SEG file (relative to the study) and the segment."""
    root, _ = study
    import shutil

    from theraquant.errors import TheraquantError

    d = tmp_path / "shifted"
    shutil.copytree(root, d)
    seg = d / "seg" / "seg.dcm"
    ds = pydicom.dcmread(seg)
    for fr in ds.PerFrameFunctionalGroupsSequence:
        pos = fr.PlanePositionSequence[0].ImagePositionPatient
        fr.PlanePositionSequence[0].ImagePositionPatient = [pos[0] + 30.0, pos[1], pos[2]]
    ds.save_as(seg)
    s = discover_study(d)
    with pytest.raises(TheraquantError, match=r"nothing could be computed \(dce_baseline: seg/seg.dcm: segment "
                                              r"'Lesion 1' falls outside the dce image \(32 of 32 mask voxels"):
        process_patient(s.patients[0], s.config, tmp_path / "res", study_dir=d)



@pytest.mark.slow
def test_recist_on_a_plain_mr_followup(tmp_path):
    """No follow-up DCE: RECIST 1.1 measures the masks of the first MR series after therapy that has a SEG."""
    root = tmp_path / "mrfu"
    _ps.write_mr_followup_study(root)
    s = discover_study(root)
    p = s.patients[0]
    assert "dce_followup" not in p.timepoints and any(x.role == "mr" for x in p.series)
    out = process_patient(p, s.config, tmp_path / "res", study_dir=root)
    assert out.failures == (), out.failures
    les = out.lesions.set_index("lesion")
    assert les.loc["1", "response_followup"] == pytest.approx(np.hypot(4, 4))
    assert les.loc["1", "response"] == "PR" and les.loc["2", "response"] == "SD"
    assert (tmp_path / "res" / "patients" / p.pseudonym / "masks" / "mr_followup.nii.gz").is_file()
