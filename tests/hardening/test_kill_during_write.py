"""Kill a writer at random moments: only complete, readable files under final names, never a map
without its own record, and a later run is never blocked by what the killed one left."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from theraquant import TheraquantError
from theraquant.io import atomic_path, atomic_write, clean_temporaries, write_json, write_table, write_text
from theraquant.io._atomic import TEMP_PREFIX

WRITER = Path(__file__).with_name("_writer.py")
FINAL = ("map.nii.gz", "map.json", "raw.nii", "raw.json", "record.json", "provenance.json", "table.csv",
         "table.parquet")


def _check_folder(out: Path) -> int:
    """Every file under a final name is complete; return how many final files there are."""
    present = {p.name for p in out.iterdir() if not p.name.startswith(TEMP_PREFIX)}
    assert present <= set(FINAL), f"unexpected files {present - set(FINAL)}"
    for stem, ext in (("map", ".nii.gz"), ("raw", ".nii")):
        if stem + ext in present:
            # a map is never there without its record, and the record is the map's own
            assert stem + ".json" in present, f"{stem}{ext} without its sidecar"
            arr = np.asarray(nib.load(str(out / (stem + ext))).dataobj)  # reads every byte
            assert arr.shape == (64, 64, 24)
            side = json.loads((out / (stem + ".json")).read_text())
            assert arr[0, 0, 0] == side["Round"], "map and sidecar from different rounds"
        elif stem + ".json" in present:
            json.loads((out / (stem + ".json")).read_text())  # a record alone: complete JSON
    for name in ("record.json", "provenance.json"):
        if name in present:
            rec = json.loads((out / name).read_text())
            assert rec["values"] == list(range(2000))
    for name, read in (("table.csv", pd.read_csv), ("table.parquet", pd.read_parquet)):
        if name in present:
            tab = read(out / name)
            assert len(tab) == tab["round"].iloc[0] + 1 and (tab["round"] == tab["round"].iloc[0]).all()
    return len(present)


def _spawn(out: Path, n_rounds: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(WRITER), str(out), str(n_rounds)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_sigkill_at_random_moments_leaves_only_complete_files(tmp_path):
    """At least five SIGKILLs at random moments after the first complete round, until one of them has
    landed mid-write (a temporary file left behind), at most 15."""
    rng = np.random.default_rng(11)
    out = tmp_path / "out"
    out.mkdir()
    killed_with_temps = kills = 0
    while kills < 5 or (killed_with_temps == 0 and kills < 15):
        kills += 1
        proc = _spawn(out, 10_000)
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        time.sleep(float(rng.uniform(0.0, 0.4)))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL
        killed_with_temps += any(p.name.startswith(TEMP_PREFIX) for p in out.iterdir())
        assert _check_folder(out) >= 1
    # a later run is not blocked, completes, and removes the killed writers' temporaries
    proc = _spawn(out, 2)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert stdout.split() == ["ready", "done"]
    assert _check_folder(out) == len(FINAL)
    assert not [p.name for p in out.iterdir() if p.name.startswith(TEMP_PREFIX)]
    # the kills did land mid-write at least once (else this test would prove nothing)
    assert killed_with_temps >= 1


def test_error_inside_the_block_keeps_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "a.json"
    target.write_text('{"old": true}\n')
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_write(target, "w") as fh:
            fh.write('{"new": ')
            raise RuntimeError("boom")
    assert target.read_text() == '{"old": true}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_leftover_of_a_dead_writer_is_removed_but_a_live_writers_is_not(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = tmp_path / f"{TEMP_PREFIX}{dead}-0123abcd-r.json"
    stale.write_text("{")
    live = tmp_path / f"{TEMP_PREFIX}{os.getppid()}-0123abcd-r.json"  # our parent is alive
    live.write_text("{")
    write_json({"a": 1}, tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text()) == {"a": 1}
    assert not stale.exists() and live.exists()
    assert clean_temporaries(tmp_path) == []


def test_atomic_path_keeps_the_suffixes_for_suffix_driven_writers(tmp_path):
    with atomic_path(tmp_path / "m.nii.gz") as tmp:
        assert tmp.name.endswith("-m.nii.gz") and tmp.parent == tmp_path
        tmp.write_bytes(b"x")
    assert (tmp_path / "m.nii.gz").read_bytes() == b"x"


def test_output_below_a_regular_file_is_an_error_naming_it(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("keep me")
    with pytest.raises(TheraquantError, match="file.txt is a file, not a folder"):
        write_text("x", blocker / "sub" / "out.txt")
    assert blocker.read_text() == "keep me"


def test_write_table_refuses_an_unknown_extension(tmp_path):
    with pytest.raises(TheraquantError, match=r"unsupported table extension '\.xlsx'.*\.csv or \.parquet"):
        write_table(pd.DataFrame({"a": [1]}), tmp_path / "t.xlsx")
    assert list(tmp_path.iterdir()) == []
