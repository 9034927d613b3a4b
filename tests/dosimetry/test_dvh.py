"""Dose-volume metrics against hand-computed small cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from theraquant import dosimetry as dm
from theraquant.errors import TheraquantError


def _ten():
    dose = np.arange(1.0, 11.0).reshape(2, 1, 5)  # 1..10 Gy, one voxel each
    return dose, np.ones(dose.shape, bool)


def test_dx_vx_hand_computed():
    dose, mask = _ten()
    r = dm.dose_volume(dose, mask, d=(2, 50, 70, 98), v_gy=(5, 8, 10, 11))
    # hottest 2 % of 10 voxels rounds up to 1 voxel (10 Gy); hottest 50 % = {10..6} -> 6; 70 % -> 4; 98 % -> 1
    assert (r["D2"], r["D50"], r["D70"], r["D98"]) == (10.0, 6.0, 4.0, 1.0)
    assert (r["V5"], r["V8"], r["V10"], r["V11"]) == (60.0, 30.0, 10.0, 0.0)
    assert (r["Dmean"], r["Dmedian"], r["Dmin"], r["Dmax"], r["n_voxels"]) == (5.5, 5.5, 1.0, 10.0, 10)


def test_default_keys_and_mask_selection():
    dose = np.array([[[50.0, 120.0, 160.0, 250.0, 999.0]]])
    mask = np.array([[[True, True, True, True, False]]])  # the 999 Gy voxel is outside the lesion
    r = dm.dose_volume(dose, mask)
    for key in ("Dmean", "Dmedian", "D2", "D50", "D70", "D98", "V100", "V150", "V200", "Dmin", "Dmax", "dvh"):
        assert key in r
    assert r["Dmax"] == 250.0
    assert (r["V100"], r["V150"], r["V200"]) == (75.0, 50.0, 25.0)
    assert r["D50"] == 160.0 and r["D70"] == 120.0  # ceil(0.7 x 4) = 3rd hottest


def test_ties_and_dvh_table():
    dose = np.array([[[5.0, 5.0, 5.0, 10.0]]])
    r = dm.dose_volume(dose, np.ones(dose.shape, bool), d=(50,), v_gy=(10,))
    assert r["D50"] == 5.0 and r["V10"] == 25.0
    dvh = r["dvh"]
    assert list(dvh.columns) == ["dose_Gy", "volume_pct"]
    np.testing.assert_allclose(dvh["dose_Gy"], [0.0, 5.0, 10.0])
    np.testing.assert_allclose(dvh["volume_pct"], [100.0, 100.0, 25.0])
    assert dvh["dose_Gy"].is_monotonic_increasing


def test_bed_dale_hand_computed():
    # Dale 1985, complete decay: BED = D (1 + D lambda / ((mu + lambda) alpha/beta))
    dose = np.full((1, 1, 2), 100.0)
    r = dm.dose_volume(dose, np.ones(dose.shape, bool), alpha_beta_gy=10.0, repair_half_time_h=1.5)
    lam, mu = math.log(2) / 64.05, math.log(2) / 1.5  # 90Y physical half-life (analytic_checks.json)
    assert r["BEDmean"] == pytest.approx(100 * (1 + 100 * lam / ((mu + lam) * 10)), rel=1e-12)
    r2 = dm.dose_volume(dose, np.ones(dose.shape, bool), effective_half_life_h=60.0, alpha_beta_gy=2.5,
                        repair_half_time_h=2.5)
    lam, mu = math.log(2) / 60.0, math.log(2) / 2.5
    assert r2["BEDmean"] == pytest.approx(100 * (1 + 100 * lam / ((mu + lam) * 2.5)), rel=1e-12)


def test_eud_uniform_and_two_voxel():
    dose = np.full((1, 1, 4), 80.0)
    r = dm.dose_volume(dose, np.ones(dose.shape, bool))
    assert r["EUD"] == pytest.approx(80.0, rel=1e-12)  # uniform dose is its own EUD
    dose = np.array([[[0.0, 100.0]]])
    r = dm.dose_volume(dose, np.ones(dose.shape, bool), eud_alpha_per_gy=0.01)
    assert r["EUD"] == pytest.approx(-math.log((1 + math.exp(-1.0)) / 2) / 0.01, rel=1e-12)  # 37.99 Gy
    assert r["EUD"] < r["Dmean"]


def test_summary_is_fixed_width_text():
    dose, mask = _ten()
    text = dm.dose_volume(dose, mask).summary()
    assert "Dmean" in text and "V100" in text and "%" in text


@pytest.mark.parametrize(("mask", "match"), [
    (np.ones((2, 1, 4), bool), r"mask has shape \(2, 1, 4\) but the image has \(2, 1, 5\)"),
    (np.zeros((2, 1, 5), bool), "mask is empty"),
])
def test_bad_mask(mask, match):
    dose, _ = _ten()
    with pytest.raises(TheraquantError, match=match):
        dm.dose_volume(dose, mask)


def test_nan_dose_inside_mask():
    dose, mask = _ten()
    dose[0, 0, 0] = np.nan
    with pytest.raises(TheraquantError, match="NaN"):
        dm.dose_volume(dose, mask)
