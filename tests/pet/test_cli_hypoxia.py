"""`theraquant pet hypoxia` on the example files the project ships (examples/data/fmiso)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from theraquant.cli import app

runner = CliRunner()
EX = Path(__file__).resolve().parents[2] / "examples" / "data" / "fmiso"
IMG, LAB = str(EX / "fmiso_suv.nii.gz"), str(EX / "labels.nii.gz")
VOXEL_ML = 0.064  # 4 mm cubes


def _run(*args):
    return runner.invoke(app, ["pet", "hypoxia", *map(str, args)])


def test_readme_example_gives_the_analytic_ratios(tmp_path):
    # examples/data/make_examples.py: tumour max 2.0 (a 7-voxel core), rim 1.4; aorta 1.25; muscle 1.0
    out = tmp_path / "hypoxia.json"
    res = _run(IMG, "--tumour", f"{LAB}:1", "--blood", f"{LAB}:2", "--muscle", f"{LAB}:3", "--out", out)
    assert res.exit_code == 0, res.output
    assert "T/BP = 1.6 > 1.29 (arte-miso)" in res.output
    doc = json.loads(out.read_text())
    f = doc["fields"]
    assert f["T/BP"] == pytest.approx(1.6, rel=1e-12) and f["T/M"] == pytest.approx(2.0, rel=1e-12)
    # voxel / blood: core 2.0/1.25 = 1.6 > 1.29 (7 voxels); rim 1.4/1.25 = 1.12 is not
    assert f["hypoxic_volume_mL"] == pytest.approx(7 * VOXEL_ML, rel=1e-12) and f["hypoxic"] is True
    assert (f["threshold_ratio"], f["threshold_operator"], f["threshold"]) == ("T/BP", ">", 1.29)
    assert doc["units"]["T/BP"] == "ratio" and doc["provenance"]["Command"].startswith("theraquant.pet.hypoxia(")
    assert doc["provenance"]["Masks"]["tumour"].endswith("labels.nii.gz:1")


def test_numeric_threshold_and_operator():
    # 1.6 is not > 1.6 but is >= 1.6
    strict = _run(IMG, "--tumour", f"{LAB}:1", "--blood", f"{LAB}:2", "--threshold", "1.6", "--operator", ">")
    assert strict.exit_code == 0 and "T/BP = 1.6 <= 1.6" in strict.output
    loose = _run(IMG, "--tumour", f"{LAB}:1", "--blood", f"{LAB}:2", "--threshold", "1.6", "--operator", ">=")
    assert loose.exit_code == 0 and "T/BP = 1.6 >= 1.6" in loose.output


@pytest.mark.parametrize(("args", "line"), [
    (["--tumour", LAB, "--blood", f"{LAB}:2"],
     "error: --tumour: tumour=labels.nii.gz is a label image (labels [1, 2, 3]), not a mask; choose one label, "
     "e.g. labels.nii.gz:1"),
    (["--tumour", f"{LAB}:1", "--blood", f"{LAB}:2", "--threshold", "yeh1996"],
     "error: --muscle: threshold 'yeh1996' is a T/M cut-off (T/M >= 1.24"),
    (["--tumour", f"{LAB}:1", "--blood", f"{LAB}:7"], "error: --blood: blood="),
    (["--tumour", f"{LAB}:1", "--blood", f"{LAB}:2", "--tumour-stat", "p90"],
     "error: --tumour-stat: must be one of max, mean, median, peak, got 'p90'"),
    (["--tumour", f"{LAB}:1", "--blood", f"{LAB}:2", "--threshold", "high"], "error: --threshold: must be a ratio"),
    (["--blood", f"{LAB}:2"], "error: theraquant pet hypoxia: Missing option '--tumour'"),
])
def test_errors_are_one_line_naming_the_flag(args, line):
    res = _run(IMG, *args)
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert res.exit_code == 1 and len(lines) == 1, res.output
    assert lines[0].startswith(line), lines[0]


def test_help_lists_the_choices():
    res = runner.invoke(app, ["pet", "hypoxia", "--help"], terminal_width=200)
    text = " ".join(res.output.replace("│", " ").split())  # rich panels: drop the box edges
    assert res.exit_code == 0
    for word in ("arte-miso", "rasey1996", "yeh1996", "max, mean, median, peak", "'>' or '>='"):
        assert word in text, word
