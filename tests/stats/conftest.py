"""Shared fixtures for the theraquant.stats tests: the R reference files in tests/data/r_reference."""

from pathlib import Path

import pandas as pd
import pytest

REF_DIR = Path(__file__).resolve().parent.parent / "data" / "r_reference"


@pytest.fixture(scope="session")
def ref():
    """name -> value printed by make_reference.R (R 4.2.2, pROC 1.18.0, geepack 1.3.9)."""
    table = pd.read_csv(REF_DIR / "reference_values.csv")
    return dict(zip(table["name"], table["value"].astype(float)))


@pytest.fixture(scope="session")
def asah():
    """pROC's aSAH data (Turck et al. 2010), exported by make_reference.R."""
    return pd.read_csv(REF_DIR / "aSAH.csv")


@pytest.fixture(scope="session")
def lesions():
    """Synthetic clustered lesion table (24 patients, 72 lesions) written by make_reference.R."""
    return pd.read_csv(REF_DIR / "clustered_lesions.csv")


@pytest.fixture(scope="session")
def ref_dir():
    return REF_DIR
