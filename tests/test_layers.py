"""The architecture is enforced: import-linter contracts (pyproject.toml) run in the suite.

Contracts (team brief, interface 11): cli -> pipeline -> report | phantom -> io and the engines ->
base modules; engines never import io, pipeline, report, phantom or cli (one documented exception:
``pet.read_suv``, a thin wrapper over ``io.read_pet_series``); io never imports an engine; nobody
imports another subpackage's private modules. ``report`` never sets matplotlib's process-wide
backend.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))


def _lint(cwd: Path, *, env_path: Path | None = None) -> subprocess.CompletedProcess:
    import os

    env = dict(os.environ)
    if env_path is not None:
        env["PYTHONPATH"] = str(env_path)
    return subprocess.run([LINT, "--no-cache", "--config", str(cwd / "pyproject.toml")], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_import_linter_is_a_test_dependency():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert any(d.startswith("import-linter") for d in meta["project"]["optional-dependencies"]["test"])
    names = [c["name"] for c in meta["tool"]["importlinter"]["contracts"]]
    assert len(names) == 5 and {c["type"] for c in meta["tool"]["importlinter"]["contracts"]} == {
        "layers", "forbidden", "private_modules"}


def test_the_package_keeps_its_layers():
    res = _lint(ROOT)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert "5 kept, 0 broken" in res.stdout


def _fake_package(tmp_path: Path, extra: dict[str, str]) -> Path:
    """A skeleton 'theraquant' with every module the contracts name, plus ``extra`` sources."""
    pkg = tmp_path / "src" / "theraquant"
    modules = ["__init__", "cli", "image", "errors", "results", "quantities", "provenance"]
    packages = ["pipeline", "report", "phantom", "io", "dce", "pet", "dosimetry", "response", "stats"]
    for m in modules:
        (pkg / f"{m}.py").parent.mkdir(parents=True, exist_ok=True)
        (pkg / f"{m}.py").write_text("")
    for p in packages:
        (pkg / p).mkdir(parents=True, exist_ok=True)
        (pkg / p / "__init__.py").write_text("")
    (pkg / "pet" / "_suv.py").write_text("def read_suv(d):\n    from ..io import read_pet_series\n")
    (pkg / "pipeline" / "_export.py").write_text("")
    (pkg / "io" / "_seg.py").write_text("")
    (pkg / "report" / "_figures.py").write_text("")
    for rel, src in extra.items():
        (pkg / rel).write_text(textwrap.dedent(src))
    text = (ROOT / "pyproject.toml").read_text()
    (tmp_path / "pyproject.toml").write_text(text[text.index("[tool.importlinter]"):])
    return tmp_path / "src"


@pytest.mark.parametrize(("extra", "broken"), [
    ({"dosimetry/_voxel.py": "from ..io import write_nifti\n"},
     "Engines never import io, pipeline, report, phantom or cli BROKEN"),
    ({"io/_nifti.py": "from ..dce import fit\n"}, "io knows only the base modules (never an engine) BROKEN"),
    ({"stats/_roc.py": "from ..pet._lesion import suv_peak\n", "pet/_lesion.py": ""},
     "Nobody imports another subpackage's private modules"),
    ({"image.py": "from . import pipeline\n"}, "Layers: cli -> pipeline"),
    ({"report/_plots.py": "from ..dosimetry import absorbed_dose\n"},
     "report reads results and never computes: it imports no engine BROKEN"),
])
def test_a_violation_fails(tmp_path, extra, broken):
    # the same contracts on a skeleton package with one forbidden import: lint-imports reports it
    src = _fake_package(tmp_path, extra)
    res = _lint(tmp_path, env_path=src)
    assert res.returncode == 1, res.stdout[-3000:] + res.stderr[-2000:]
    assert broken in " ".join(res.stdout.split())


def test_the_skeleton_itself_is_clean(tmp_path):
    # without a forbidden import the skeleton passes (so the violations above are what breaks it)
    src = _fake_package(tmp_path, {})
    res = _lint(tmp_path, env_path=src)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]


def test_report_figures_never_set_the_process_wide_backend(tmp_path):
    import matplotlib
    import numpy as np

    from theraquant.phantom import liver_dce_phantom
    from theraquant.report import dce_phantom_figure

    before = (matplotlib.get_backend(), matplotlib.rcParams["backend"])
    ph = liver_dce_phantom(shape=(2, 16, 16))
    res = {p: np.asarray(v) for p, v in ph.truth.items()}  # the truth as a perfect "fit"
    res["success"] = np.ones(ph.labels.array.shape, bool)
    curves = [("tumour", ph.image.array[1, 8, 8], ph.image.array[1, 8, 8])]
    out = dce_phantom_figure(tmp_path / "fig.png", ph, res, "etofts", 1, params=("Ktrans", "ve", "vp"),
                             curves=curves)
    assert out.stat().st_size > 10_000  # a real PNG of the panels
    assert (matplotlib.get_backend(), matplotlib.rcParams["backend"]) == before
    import ast

    tree = ast.parse((ROOT / "src" / "theraquant" / "report" / "_figures.py").read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {f"{n.module}.{a.name}" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module
                 for a in n.names}
    calls = {n.func.attr for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)}
    assert "matplotlib.pyplot" not in imported and "use" not in calls
