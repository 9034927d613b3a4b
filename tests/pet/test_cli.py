"""``theraquant pet suv``: outputs, overrides, and one-line errors naming the tag (oncoray DROs, CC BY 4.0)."""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from theraquant.cli import app


def _run(*args):
    return CliRunner().invoke(app, ["pet", "suv", *map(str, args)])


@pytest.fixture()
def no_dose_series(dro_root, tmp_path):
    import pydicom

    series = tmp_path / "PT"
    shutil.copytree(dro_root / "DRO_0_0" / "PT", series)
    for f in sorted(series.glob("*.dcm")):
        ds = pydicom.dcmread(f)
        del ds.RadiopharmaceuticalInformationSequence[0].RadionuclideTotalDose
        ds.save_as(f)
    return series


def test_missing_dose_exits_1_with_one_line_naming_the_tag(no_dose_series, tmp_path):
    res = _run(no_dose_series, "--out", tmp_path / "s.nii.gz")
    assert res.exit_code == 1
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    # the error names the command-line option (from the error's .argument), the file, the tag and the fix
    assert lines[0].startswith("error: --injected-dose-bq: pet_dro_0_0_slice_000.dcm: RadionuclideTotalDose "
                               "(0018,1074) is missing") and lines[0].endswith("injected_dose_bq=370e6")
    assert not (tmp_path / "s.nii.gz").exists()


def test_override_supplies_the_dose_and_is_recorded(no_dose_series, dro_root, tmp_path):
    out = tmp_path / "s.nii.gz"
    res = _run(no_dose_series, "--out", out, "--injected-dose-bq", "368.08e6")
    assert res.exit_code == 0, res.output
    assert "override injected_dose_bq" in res.output
    side = json.loads((tmp_path / "s.json").read_text())
    assert side["Overrides"]["injected_dose_bq"]["value"] == pytest.approx(368.08e6)
    assert side["Settings"]["injected_dose_bq"] == pytest.approx(368.08e6)
    mask = np.asarray(nib.load(str(dro_root / "DRO_0_0" / "mask" / "DRO_mask.nii.gz")).dataobj) > 0
    assert np.median(np.asarray(nib.load(str(out)).dataobj)[mask]) == pytest.approx(1.0, abs=5e-3)


def test_sul_normalisation_of_stored_lbm_suv(dro_root, tmp_path):
    # DRO_2_1 stores SUVlbm(James) (sex M, 70 kg, 1.75 m -> 56.52 kg): SUL = SUVbw x 56.52 / 70
    out = tmp_path / "sul.nii.gz"
    res = _run(dro_root / "DRO_2_1" / "PT", "--out", out, "--normalization", "lbm-james")
    assert res.exit_code == 0, res.output
    mask = np.asarray(nib.load(str(dro_root / "DRO_2_1" / "mask" / "DRO_mask.nii.gz")).dataobj) > 0
    assert np.median(np.asarray(nib.load(str(out)).dataobj)[mask]) == pytest.approx(56.52 / 70, abs=1e-3)


def test_refuses_to_overwrite_and_rejects_unknown_normalisation(dro_root, tmp_path):
    out = tmp_path / "s.nii.gz"
    out.write_bytes(b"")
    res = _run(dro_root / "DRO_0_0" / "PT", "--out", out)
    assert res.exit_code == 1 and "pass --overwrite" in res.output
    res = _run(dro_root / "DRO_0_0" / "PT", "--out", tmp_path / "t.nii.gz", "--normalization", "sul")
    assert res.exit_code == 1 and "error: --normalization: must be one of bw, lbm-james" in res.output


def test_metrics_command_on_the_written_suv(dro_root, tmp_path):
    suv = tmp_path / "suv.nii.gz"
    assert _run(dro_root / "DRO_0_0" / "PT", "--out", suv).exit_code == 0
    mask = dro_root / "DRO_0_0" / "mask" / "DRO_mask.nii.gz"
    out = tmp_path / "m.json"
    res = CliRunner().invoke(app, ["pet", "metrics", str(suv), "--mask", str(mask), "--mtv-threshold", "2.5",
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    lesion = json.loads(out.read_text())["Lesions"]["1"]
    # DRO design (README): hot sphere SUV 4.00, cold 0.20; the hot sphere holds a 1 mL sphere
    assert lesion["SUVmax"] == pytest.approx(4.0, abs=1e-5) and lesion["SUVmin"] == pytest.approx(0.2, abs=1e-5)
    assert lesion["SUVpeak"] == pytest.approx(4.0, abs=1e-5)
    assert lesion["SUVmean_MTV"] == pytest.approx(4.0, abs=1e-5)
    assert lesion["TLG"] == pytest.approx(4.0 * lesion["MTV_mL"], rel=1e-5)


def test_metrics_mask_on_a_different_grid(dro_root, tmp_path):
    suv = tmp_path / "suv.nii.gz"
    assert _run(dro_root / "DRO_0_0" / "PT", "--out", suv).exit_code == 0
    m = nib.load(str(dro_root / "DRO_0_0" / "mask" / "DRO_mask.nii.gz"))
    shifted = m.affine.copy()
    shifted[2, 3] += 2.0  # half a slice
    nib.save(nib.Nifti1Image(np.asarray(m.dataobj), shifted), str(tmp_path / "mask.nii.gz"))
    res = CliRunner().invoke(app, ["pet", "metrics", str(suv), "--mask", str(tmp_path / "mask.nii.gz")])
    assert res.exit_code == 1
    assert "error: SUV and mask are on different grids" in res.output


def test_check_command_lists_all_problems(no_dose_series, dro_root):
    ok = CliRunner().invoke(app, ["pet", "check", str(dro_root / "DRO_3_3" / "PT")])
    assert ok.exit_code == 0 and "0 error(s)" in ok.output
    bad = CliRunner().invoke(app, ["pet", "check", str(no_dose_series)])
    assert bad.exit_code == 1
    assert "pet.dose: pet_dro_0_0_slice_000.dcm: RadionuclideTotalDose (0018,1074) is missing" in bad.output
