"""Output folders: --overwrite replaces an earlier run's outputs (known from its manifest), never an input,
never anything the run did not write, and a killed run's temporaries never block the next one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from theraquant import Image, TheraquantError
from theraquant.cli import app
from theraquant.io import TEMP_PREFIX, write_nifti
from theraquant.pipeline import (check_out_dir, prepare_out_dir, previous_outputs, read_manifest,
                                 write_manifest)


def _dce(tmp_path: Path) -> Path:
    from theraquant.dce import aif, simulate

    t = np.arange(40) * 5.0
    ct = simulate(t, "etofts", {"Ktrans": [0.2] * 8, "ve": [0.3] * 8, "vp": [0.05] * 8},
                  cp=aif.population("parker", t)).reshape(2, 2, 2, 40)
    return write_nifti(Image.from_spacing(ct, 2.0, frame_times_s=t), tmp_path / "dce.nii.gz")


def test_overwrite_with_another_model_removes_the_stale_maps_and_keeps_the_users_files(tmp_path):
    src, out = _dce(tmp_path), tmp_path / "o"
    first = CliRunner().invoke(app, ["dce", "fit", str(src), "--out", str(out), "--model", "etofts"])
    assert first.exit_code == 0, first.output
    assert (out / "vp.nii.gz").is_file() and (out / "vp.json").is_file()
    (out / "notes.txt").write_text("mine")
    again = CliRunner().invoke(app, ["dce", "fit", str(src), "--out", str(out), "--model", "tofts"])
    assert again.exit_code == 1 and "pass --overwrite" in again.output  # not without --overwrite
    second = CliRunner().invoke(app, ["dce", "fit", str(src), "--out", str(out), "--model", "tofts",
                                      "--overwrite"])
    assert second.exit_code == 0, second.output
    names = {p.name for p in out.iterdir()}
    assert "vp.nii.gz" not in names and "vp.json" not in names  # etofts' vp is not left beside tofts' maps
    assert {"Ktrans.nii.gz", "ve.nii.gz", "notes.txt", "manifest.json", "dce_fit.json"} <= names
    manifest = read_manifest(out)
    assert manifest["Kind"] == "dce fit" and "notes.txt" not in manifest["Outputs"]
    assert set(manifest["Outputs"]) == names - {"notes.txt", "manifest.json"}  # every file it wrote
    assert (out / "notes.txt").read_text() == "mine"


def test_manifest_entries_outside_the_folder_are_never_removed(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    victim = tmp_path / "precious.txt"
    victim.write_text("keep")
    (out / "a.csv").write_text("x")
    (out / "sub").mkdir()
    (out / "sub" / "b.csv").write_text("y")
    write_manifest(out, ["a.csv", "sub"], kind="test", settings={"k": 1})
    rec = json.loads((out / "manifest.json").read_text())
    rec["Outputs"] += ["../precious.txt", str(victim), "", "sub/../../precious.txt"]  # a tampered manifest
    (out / "manifest.json").write_text(json.dumps(rec))
    assert sorted(p.name for p in previous_outputs(out)) == ["a.csv", "sub"]
    prepare_out_dir(out, overwrite=True)
    assert victim.read_text() == "keep"
    assert list(out.iterdir()) == []  # the listed file and folder went, and the manifest with them


def test_write_manifest_refuses_outputs_outside_its_folder(tmp_path):
    with pytest.raises(TheraquantError, match=r"output .*elsewhere.csv is not inside"):
        write_manifest(tmp_path / "run", [tmp_path / "elsewhere.csv"], kind="test")


def test_settings_hash_is_stable_and_sensitive(tmp_path):
    a = read_manifest(write_manifest(tmp_path, [], kind="t", settings={"b": 1, "a": [1, 2]}).parent)
    b = read_manifest(write_manifest(tmp_path, [], kind="t", settings={"a": [1, 2], "b": 1}).parent)
    c = read_manifest(write_manifest(tmp_path, [], kind="t", settings={"a": [1, 2], "b": 2}).parent)
    assert a["SettingsHash"] == b["SettingsHash"] != c["SettingsHash"]


def test_an_input_that_the_overwrite_would_remove_is_refused(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "t1.nii.gz").write_bytes(b"t1 map from the earlier run")
    write_manifest(out, ["t1.nii.gz"], kind="test")
    with pytest.raises(TheraquantError, match=r"input .*t1.nii.gz is an output of the earlier run .*would be "
                                              r"removed by --overwrite"):
        check_out_dir(out, True, inputs=[out / "t1.nii.gz"])
    assert (out / "t1.nii.gz").read_bytes() == b"t1 map from the earlier run"


def test_a_killed_runs_temporaries_do_not_block_the_next_run(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / f"{TEMP_PREFIX}999999999-00000000-Ktrans.nii.gz").write_bytes(b"half a map")
    assert prepare_out_dir(out) == out  # not "exists and is not empty"
    assert list(out.iterdir()) == []  # and the dead writer's temporary is gone


def test_out_folder_equal_to_an_input_folder_is_refused_even_with_overwrite(tmp_path):
    series = tmp_path / "PT"
    series.mkdir()
    (series / "IM1.dcm").write_bytes(b"DICM")
    with pytest.raises(TheraquantError, match=r"--out .*PT is also an input of this command"):
        check_out_dir(series, True, inputs=[series])


def test_unwritable_outputs_are_refused_before_any_work(tmp_path, monkeypatch):
    """Checked with os.access before computing (simulated: the tests may run as root, who can write anywhere)."""
    import os

    from theraquant.pipeline import check_output_file

    real_access = os.access
    locked = tmp_path / "locked"
    locked.mkdir()
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == locked else real_access(p, mode))
    with pytest.raises(TheraquantError, match=r"--json .*r.json: cannot write in .*locked \(permission denied\)"):
        check_output_file(locked / "r.json", option="--json")
    with pytest.raises(TheraquantError, match=r"--out .*locked/o: cannot write in .*locked \(permission denied\)"):
        check_out_dir(locked / "o")
    src = _dce(tmp_path)
    res = CliRunner().invoke(app, ["dce", "fit", str(src), "--out", str(locked / "o")])
    assert res.exit_code == 1 and "permission denied" in res.output and "fitting" not in res.output
    assert list(locked.iterdir()) == []
