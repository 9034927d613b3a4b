"""Shared helpers for the dosimetry tests (reference data in tests/data/nm)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

NM = Path(__file__).resolve().parents[1] / "data" / "nm"


@pytest.fixture(scope="session")
def analytic() -> dict:
    """analytic_checks.json: worked examples compiled for theraquant (project data, BSD-3-Clause)."""
    return json.loads((NM / "analytic" / "analytic_checks.json").read_text())


@pytest.fixture(scope="session")
def kernel_summary() -> pd.DataFrame:
    """Lanconelli 2012 kernel sums and LDM ratios (tests/data/nm/vsv_lanconelli2012, MIT)."""
    return pd.read_csv(NM / "vsv_lanconelli2012" / "kernel_summary.csv")


def _original_table(nuclide: str, voxel_mm: float, tissue: str = "soft") -> np.ndarray:
    """Read one upstream Lanconelli .txt table (latin-1, CRLF, tab-separated) and mirror the octant.

    Source: Lanconelli et al. Phys Med Biol 2012;57:517, via mghro/MIRDCalculation (MIT licence).
    """
    name = f"{'90Y' if nuclide == 'Y-90' else '177Lu'}{voxel_mm:g}mm{tissue}.txt"
    lines = (NM / "vsv_lanconelli2012" / "original" / name).read_text(encoding="latin-1").splitlines()[2:]
    octant = np.zeros((6, 6, 6))
    for line in lines:
        parts = line.split()
        if len(parts) >= 4:
            i, j, k = (int(p) for p in parts[:3])
            octant[i, j, k] = float(parts[3])
    idx = np.abs(np.arange(-5, 6))
    return octant[np.ix_(idx, idx, idx)]


@pytest.fixture(scope="session")
def original_table():
    """Function (nuclide, voxel_mm, tissue) -> full 11^3 upstream Lanconelli table, mGy/(MBq s)."""
    return _original_table
