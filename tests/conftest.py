"""Session-wide fixtures.

``demo_results`` runs the default demo (both phantom studies through the whole pipeline) once per
test session, so the pipeline, DICOM-export and report tests that need a real study share one run.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def demo_results(tmp_path_factory) -> dict[str, Path]:
    """The default ``theraquant demo`` output: ``{"root", "tare", "prrt"}`` (the two RESULTS folders)."""
    from theraquant.pipeline import run_demo

    root = tmp_path_factory.mktemp("demo")
    run_demo(root)
    out = {"root": root, "tare": root / "tare" / "results", "prrt": root / "prrt" / "results"}
    for key in ("tare", "prrt"):
        assert (out[key] / "lesions.csv").is_file(), f"the demo wrote no {key} lesion table"
    return out
