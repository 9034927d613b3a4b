"""Shared fixtures for the PET tests: the oncoray SUV DROs extracted once per session."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1] / "data" / "nm"
DRO_TAR = DATA / "suv_dro_oncoray" / "oncoray_suv_dro_v2026-02.tar.xz"


@pytest.fixture(scope="session")
def dro_root(tmp_path_factory) -> Path:
    """Folder holding DRO_x_y/{PT,RS,mask} for all 17 DROs.

    Source: oncoray/suv_computation (commit bf11a08), (c) 2026 Michael Vacha, CC BY 4.0
    (tests/data/nm/suv_dro_oncoray/LICENSE_CC-BY-4.0.txt).
    """
    root = tmp_path_factory.mktemp("suv_dro")
    with tarfile.open(DRO_TAR, "r:xz") as tar:
        tar.extractall(root, filter="data")
    return root / "DRO"
