"""`theraquant init`, `run`, `predict`, `demo`: the commands over the study pipeline (typer CliRunner)."""

from __future__ import annotations

import datetime as dt
import importlib.util
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from theraquant.cli import app
from theraquant.pipeline import StudyConfig, load_config

runner = CliRunner()
HERE = Path(__file__).parent


def _factory():
    name = "_theraquant_study_factory"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, HERE / "_study_factory.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


fac = _factory()


@pytest.fixture()
def study(tmp_path) -> Path:
    root = tmp_path / "study"
    fac.tare_patient(root, fac.Patient("QQ-7781", name="Quux^Quentin"), dt.date(2024, 3, 1), n_lesions=1)
    fac.tare_patient(root, fac.Patient("QQ-7780", name="Quux^Queenie"), dt.date(2024, 4, 1), n_lesions=2)
    (root / "export.log").write_text("scanner log\n")
    return root


def _one_error_line(res, match: str) -> None:
    assert res.exit_code == 1, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    import re

    assert re.search(match, lines[0]), lines[0]


def test_init_writes_a_commented_study_yaml_and_shows_the_design(study):
    res = runner.invoke(app, ["init", str(study)])
    assert res.exit_code == 0, res.output
    text = (study / "study.yaml").read_text()
    assert load_config(study) == StudyConfig()  # every default, valid
    assert "  r1: 4.5" in text and "# contrast-agent relaxivity r1, 1/(s mM)" in text
    assert '#  "QQ-7780":' in text  # per-patient overrides prepared (in the study folder, not in results)
    out = " ".join(res.stdout.split())
    assert "P001" in out and "P002" in out and "QQ-778" not in out  # pseudonymised table
    for role in ("dce", "vfa", "fmiso", "fdg", "y90", "seg"):
        assert f" {role} " in f" {out} "
    assert "dce_baseline" in out and "fdg_followup" in out and "y90_post" in out
    assert "problem: export.log: not a DICOM file" in out
    shown = runner.invoke(app, ["init", str(study), "--overwrite", "--show-identifiers"])
    assert shown.exit_code == 0 and "QQ-7780" in shown.stdout


def test_init_keeps_edited_values_and_refuses_to_overwrite(study):
    (study / "study.yaml").write_text("dce:\n  r1: 3.2\n")
    _one_error_line(runner.invoke(app, ["init", str(study)]), r"study\.yaml exists; pass --overwrite")
    assert runner.invoke(app, ["init", str(study), "--overwrite", "--quiet"]).exit_code == 0
    cfg = yaml.safe_load((study / "study.yaml").read_text())
    assert cfg["dce"]["r1"] == 3.2 and cfg["dce"]["hematocrit"] == 0.45


def test_init_on_a_missing_folder(tmp_path):
    _one_error_line(runner.invoke(app, ["init", str(tmp_path / "nope")]), "does not exist or is not a folder")


@pytest.mark.parametrize("args, match", [
    (["--workers", "0"], r"workers=0 must be an integer >= 1"),
    (["--resume", "--overwrite"], "resume and overwrite exclude each other"),
])
def test_run_bad_options_give_one_line(study, tmp_path, args, match):
    _one_error_line(runner.invoke(app, ["run", str(study), "--out", str(tmp_path / "r"), *args]), match)


def test_run_bad_study_yaml_names_the_key(study, tmp_path):
    (study / "study.yaml").write_text("dosimetry:\n  method: mird\n")
    _one_error_line(runner.invoke(app, ["run", str(study), "--out", str(tmp_path / "r")]),
                    r"dosimetry\.method = 'mird': Input should be 'ldm' or 'vsv'")


def test_run_end_to_end_on_a_study_whose_masks_are_unusable(study, tmp_path):
    """The tiny study's SEGs hold headers only: every patient's steps fail, each is named, nothing crashes;
    the results are still written, and the exit code (1) tells a script that no patient succeeded."""
    out = tmp_path / "r"
    res = runner.invoke(app, ["run", str(study), "--out", str(out), "--workers", "1", "--no-dicom", "--no-report",
                              "--key", str(tmp_path / "key.csv")])
    assert res.exit_code == 1, res.output
    assert "every patient failed" in res.stderr
    failures = pd.read_csv(out / "failures.csv", keep_default_na=False)
    assert list(failures.columns) == ["patient", "step", "file", "message"]
    assert set(failures["patient"]) >= {"P001", "P002"}
    assert (failures["step"] == "discovery").sum() == 1  # export.log
    patients = pd.read_csv(out / "patients.csv", keep_default_na=False)
    assert patients["patient"].tolist() == ["P001", "P002"]
    assert "patients    2" in res.stdout and "key.csv" in res.stdout
    key = pd.read_csv(tmp_path / "key.csv")
    assert key["patient_id"].tolist() == ["QQ-7780", "QQ-7781"]
    for f in out.rglob("*"):
        if f.is_file():
            text = f.read_bytes().decode("latin-1")
            assert "QQ-778" not in text and "Quux" not in text, f


def test_predict_and_demo_help():
    for cmd in (["predict", "--help"], ["demo", "--help"], ["run", "--help"], ["init", "--help"]):
        res = runner.invoke(app, cmd)
        assert res.exit_code == 0 and "--" in res.stdout
