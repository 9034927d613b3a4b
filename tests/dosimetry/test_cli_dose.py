"""`theraquant dose` on the example files the project ships (examples/data/dose)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from theraquant import dosimetry
from theraquant.cli import app
from theraquant.io import read_nifti

runner = CliRunner()
EX = Path(__file__).resolve().parents[2] / "examples" / "data" / "dose"
Y90, LU, LAB = str(EX / "y90_activity_bq_ml.nii.gz"), str(EX / "lu177_tia_bq_s_ml.nii.gz"), str(EX / "labels.nii.gz")
RHO_KG_PER_ML = 1.04e-3  # soft tissue, the default density


def _run(*args):
    return runner.invoke(app, ["dose", *map(str, args)])


def test_y90_ldm_is_k_a_over_m_in_every_voxel(tmp_path):
    # 90Y LDM, permanent implant: D = k A / m = 49.67 Gy kg/GBq x 2e-3 GBq / 1.04e-3 kg per mL of tumour
    res = _run(Y90, "--method", "ldm", "--mask", LAB, "--out", tmp_path / "out")
    assert res.exit_code == 0, res.output
    table = pd.read_csv(tmp_path / "out" / "dvh.csv").set_index("name")
    want_tumour = 49.67 * 2.0e-3 / RHO_KG_PER_ML
    want_liver = 49.67 * 0.25e-3 / RHO_KG_PER_ML
    # dvh.csv holds 10 significant digits: 1e-9 relative
    assert table.loc["tumour", "Dmean"] == pytest.approx(want_tumour, rel=1e-9)
    assert table.loc["tumour", "Dmin"] == pytest.approx(want_tumour, rel=1e-9)
    assert table.loc["normal liver", "Dmean"] == pytest.approx(want_liver, rel=1e-9)
    assert table.loc["tumour", "V100"] == 0.0 and table.loc["tumour", "volume_mL"] == pytest.approx(33 * 0.064)
    dose = read_nifti(tmp_path / "out" / "dose_gy.nii.gz")
    assert dose.units == "Gy" and float(np.max(dose.array)) == pytest.approx(want_tumour, rel=1e-6)  # float32 map
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert files == ["dose.json", "dose_gy.json", "dose_gy.nii.gz", "dvh.csv", "dvh_curves.csv", "manifest.json"]
    assert f"wrote {len(files)} files" in res.output  # counts what it wrote
    side = json.loads((tmp_path / "out" / "dose_gy.json").read_text())
    assert side["Command"].startswith("theraquant.pipeline.run_dose(DoseSettings(")


def test_lu177_tia_ldm_and_vsv(tmp_path):
    # 177Lu TIA concentration 0.2 MBq/mL x 60 h / ln 2 in the tumour; LDM deposits the mean electron
    # energy per decay locally: D = TIA E / m
    e_j = dosimetry.get_nuclide("Lu-177").electron_energy_mev * 1.602176634e-13
    want = 0.2e6 * 60.0 * 3600.0 / math.log(2.0) * e_j / RHO_KG_PER_ML
    res = _run(LU, "--nuclide", "Lu-177", "--input", "tia", "--method", "ldm", "--mask", LAB, "--out", tmp_path / "l")
    assert res.exit_code == 0, res.output
    t = pd.read_csv(tmp_path / "l" / "dvh.csv").set_index("label")
    # the example TIA image is stored as float32: relative rounding up to 6e-8
    assert t.loc[1, "Dmean"] == pytest.approx(want, rel=1e-7)
    # VSV spreads energy out of a 2 mL sphere: lower mean, same order (Lanconelli self-dose fraction ~0.9)
    res = _run(LU, "--nuclide", "Lu-177", "--input", "tia", "--mask", LAB, "--out", tmp_path / "v")
    assert res.exit_code == 0, res.output
    v = pd.read_csv(tmp_path / "v" / "dvh.csv").set_index("label")
    assert 0.8 * want < v.loc[1, "Dmean"] < want
    curves = pd.read_csv(tmp_path / "v" / "dvh_curves.csv")
    assert set(curves["label"]) == {1, 2} and curves["volume_pct"].max() == 100.0


@pytest.mark.parametrize(("args", "line"), [
    (["--nuclide", "I-131"], "error: --nuclide: must be one of Y-90, Lu-177, got 'I-131'"),
    (["--method", "mc"], "error: --method: must be one of vsv, ldm, got 'mc'"),
    (["--density", "-1"], "error: --density: density_g_ml must be a positive density in g/mL"),
    (["--v", "100,lots"], "error: --v: must be comma-separated numbers"),
    ([], "error: theraquant dose: Missing option '--out'"),
])
def test_errors_are_one_line_naming_the_flag(tmp_path, args, line):
    extra = [] if not args else ["--out", str(tmp_path / "o")]
    res = _run(Y90, *args, *extra)
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert res.exit_code == 1 and len(lines) == 1, res.output
    assert lines[0].startswith(line), lines[0]


def test_negative_voxels_error_or_clipped(tmp_path):
    from theraquant import Image
    from theraquant.io import write_nifti

    a = np.full((6, 8, 8), 1.0e5)
    a[0, 0, 0] = -5.0e3  # reconstruction noise
    src = write_nifti(Image.from_spacing(a, (4.0, 4.0, 4.0), units="Bq/mL"), tmp_path / "a.nii.gz")
    res = _run(src, "--method", "ldm", "--out", tmp_path / "o")
    assert res.exit_code == 1 and "1 negative voxel(s)" in res.output
    res = _run(src, "--method", "ldm", "--clip-negative", "--out", tmp_path / "c")
    assert res.exit_code == 0, res.output
    side = json.loads((tmp_path / "c" / "dose.json").read_text())
    assert side["Input"]["negative_voxels_set_to_0"] == {"n_voxels": 1, "sum": -5000.0}
    # every other voxel: D = k A / m, 49.67 Gy kg/GBq x 1e-4 GBq / 1.04e-3 kg
    want = 49.67e-4 / 1.04e-3
    assert read_nifti(tmp_path / "c" / "dose_gy.nii.gz").array[3, 3, 3] == pytest.approx(want, rel=1e-6)  # float32
