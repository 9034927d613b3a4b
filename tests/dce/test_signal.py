"""Signal <-> concentration (SPGR, fast exchange) against OSIPI and analytic references."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from theraquant.dce import (
    ConcentrationResult,
    InvalidSignalWarning,
    concentration_to_signal,
    signal_to_concentration,
    spgr_signal,
)
from theraquant.errors import TheraquantError

OSIPI = Path(__file__).resolve().parents[1] / "data" / "osipi"
TOL = json.loads((OSIPI / "tolerances.json").read_text())["si_to_conc/SI2Conc_data.csv"]


def _arr(cell: str) -> np.ndarray:
    return np.array(str(cell).split(), dtype=float)


def _si2conc_cases():
    df = pd.read_csv(OSIPI / "si_to_conc" / "SI2Conc_data.csv")
    return [pytest.param(r, id=r.label) for r in df.itertuples(index=False)]


# Source: OSIPI DCE-DSC-MRI_CodeCollection SI2Conc_data.csv (Apache-2.0), 5 uterus/aorta voxels.
# OSIPI's baseline is mean(s[1:numbaselinepts]) (first sample excluded), so we pass
# baseline_start=1 and n_baseline=numbaselinepts-1; tolerance (atol 1e-5 mM, rtol 1e-5, every
# sample but the first) from tests/data/osipi/tolerances.json.
@pytest.mark.parametrize("case", _si2conc_cases())
def test_si_to_conc_matches_osipi(case):
    s, ref = _arr(case.s), _arr(case.conc)
    conc = signal_to_concentration(s, t10=case.T1base, r1=case.r1, tr=case.TR, flip_angle=case.FA,
                                   n_baseline=int(case.numbaselinepts) - 1, baseline_start=1)
    assert conc.shape == s.shape
    assert_allclose(conc[1:], ref[1:], atol=TOL["atol"], rtol=TOL["rtol"])


def test_si_to_conc_osipi_all_voxels_at_once():
    """The same five OSIPI curves converted as one (5, T) batch with per-voxel T10 and FA."""
    df = pd.read_csv(OSIPI / "si_to_conc" / "SI2Conc_data.csv")
    # the cases differ in TR, r1 and baseline length, so group the ones sharing them
    for (tr, r1, nb), g in df.groupby(["TR", "r1", "numbaselinepts"]):
        s = np.stack([_arr(v) for v in g.s])
        ref = np.stack([_arr(v) for v in g.conc])
        conc = signal_to_concentration(s, t10=g.T1base.to_numpy(), r1=r1, tr=tr, flip_angle=g.FA.to_numpy(),
                                       n_baseline=int(nb) - 1, baseline_start=1)
        assert_allclose(conc[:, 1:], ref[:, 1:], atol=TOL["atol"], rtol=TOL["rtol"])


def test_default_baseline_is_mean_of_first_n_frames():
    # S_BL = mean(100, 110) = 105 sets M0; a sample equal to S_BL must give C = 0 exactly
    s = np.array([100.0, 110.0, 105.0, 300.0])
    conc = signal_to_concentration(s, t10=1.2, r1=4.5, tr=0.004, flip_angle=12.0, n_baseline=2)
    assert conc[2] == pytest.approx(0.0, abs=1e-12)
    assert conc[0] < 0 < conc[1]


def test_spgr_signal_madym_calibration_point():
    # Madym calibration_data/T1.dat: FA 2, 10, 18 deg, TR 3.5 ms, T1 1500 ms, M0 1000 -> signals
    sig = spgr_signal(1000.0, 1 / 1.5, 0.0035, np.array([2.0, 10.0, 18.0]))
    assert_allclose(sig, [27.68110434929892, 23.142692111604916, 14.077378652726502], rtol=1e-12)


@settings(max_examples=40, deadline=None)
@given(t10=st.floats(0.3, 3.0), fa=st.floats(5.0, 40.0), tr=st.floats(0.002, 0.01),
       cmax=st.floats(0.05, 8.0))
def test_round_trip_concentration_signal_concentration(t10, fa, tr, cmax):
    c = cmax * np.concatenate([np.zeros(4), np.linspace(0.0, 1.0, 20)])
    s = concentration_to_signal(c, t10=t10, r1=4.5, tr=tr, flip_angle=fa, m0=1234.0)
    back = signal_to_concentration(s, t10=t10, r1=4.5, tr=tr, flip_angle=fa, n_baseline=4)
    assert_allclose(back, c, atol=1e-9 * max(1.0, cmax))  # noiseless: float64 round-off only


def test_volume_with_per_voxel_t10_and_flip_angle():
    rng = np.random.default_rng(4)
    t10 = rng.uniform(0.4, 2.0, size=(2, 3, 4))
    fa = rng.uniform(10.0, 30.0, size=(2, 3, 4))
    c = rng.uniform(0.0, 3.0, size=(2, 3, 4, 12))
    c[..., :3] = 0.0
    s = concentration_to_signal(c, t10=t10, r1=3.4, tr=0.005, flip_angle=fa, m0=rng.uniform(500, 900, (2, 3, 4)))
    res = signal_to_concentration(s, t10=t10, r1=3.4, tr=0.005, flip_angle=fa, n_baseline=3, return_info=True)
    assert isinstance(res, ConcentrationResult)
    assert res.conc.shape == c.shape and res.n_invalid == 0
    assert_allclose(res.conc, c, atol=1e-9)


def test_saturated_negative_and_nan_samples_become_nan_and_are_counted():
    t10, fa, tr = 1.0, 20.0, 0.005
    s = concentration_to_signal(np.array([0.0, 0.0, 1.0, 2.0, 1.0, 0.5]), t10=t10, r1=4.5, tr=tr,
                                flip_angle=fa, m0=1000.0)
    s_max = 1000.0 * np.sin(np.deg2rad(fa))  # SPGR maximum (R1 -> infinity)
    s[2] = 1.01 * s_max   # saturated: no finite R1 can give it
    s[3] = -5.0           # impossible
    s[4] = np.nan         # missing
    res = signal_to_concentration(s, t10=t10, r1=4.5, tr=tr, flip_angle=fa, n_baseline=2, return_info=True)
    assert res.n_invalid == 3 and res.n_invalid_voxels == 1
    assert np.array_equal(res.invalid, [False, False, True, True, True, False])
    assert np.all(np.isnan(res.conc[2:5]))
    assert res.conc[5] == pytest.approx(0.5, rel=1e-9)
    # default call: a plain ndarray and a warning carrying the count
    with pytest.warns(InvalidSignalWarning, match="3 of 6 signal samples") as rec:
        conc = signal_to_concentration(s, t10=t10, r1=4.5, tr=tr, flip_angle=fa, n_baseline=2)
    assert type(conc) is np.ndarray and rec[0].message.count == 3


def test_bad_voxels_in_t10_map_are_nan_not_errors():
    s = np.full((3, 5), 100.0)
    s[:, 3:] = 150.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InvalidSignalWarning)
        res = signal_to_concentration(s, t10=np.array([1.0, np.nan, 0.0]), r1=4.5, tr=0.005, flip_angle=15.0,
                                      n_baseline=2, return_info=True)
    assert res.n_invalid_voxels == 2 and res.n_invalid == 10
    assert np.all(np.isfinite(res.conc[0])) and np.all(np.isnan(res.conc[1:]))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(t10=np.ones(4)), r"t10 must be a scalar or one value per voxel .*\(3,\)"),
        (dict(tr=-0.005), r"tr must be a positive finite number in s"),
        (dict(tr=np.nan), r"tr must be a positive finite number in s"),
        (dict(flip_angle=0.26), r"flip_angle must be in degrees.*looks like radians.*numpy.degrees"),
        (dict(flip_angle=np.nan), r"flip_angle must hold finite flip angles"),
        (dict(t10=1400.0), r"t10 must be in seconds.*milliseconds"),
        (dict(r1=0.0), r"r1 must be a positive finite number"),
        (dict(n_baseline=12), r"baseline frames 0\.\.11 do not fit in the 10 frames"),
        (dict(n_baseline=0), r"n_baseline must be a positive integer"),
    ],
)
def test_bad_input_is_rejected_with_a_clear_message(kwargs, match):
    args = dict(t10=1.0, r1=4.5, tr=0.005, flip_angle=15.0, n_baseline=3)
    args.update(kwargs)
    with pytest.raises(TheraquantError, match=match):
        signal_to_concentration(np.full((3, 10), 100.0), **args)


def test_scalar_signal_is_rejected():
    with pytest.raises(ValueError, match=r"time on its last axis with >= 2 frames"):
        signal_to_concentration(5.0, t10=1.0, r1=4.5, tr=0.005, flip_angle=15.0, n_baseline=1)
    with pytest.raises(TheraquantError, match=r"flip_angle must be in degrees"):
        concentration_to_signal(np.zeros(5), t10=1.0, r1=4.5, tr=0.005, flip_angle=0.2)


def test_flip_angle_map_with_nan_voxels_and_float32_volume():
    # a B1-corrected flip-angle map is NaN outside its mask: those voxels become NaN (counted);
    # a float32 volume is converted block by block without a float64 copy of the input
    c = np.tile(np.array([0.0, 0.0, 0.4, 1.1, 0.7]), (2, 3, 1))
    fa = np.array([[18.0, 20.0, 22.0], [np.nan, 20.0, 19.0]])
    s = concentration_to_signal(c, t10=1.1, r1=4.5, tr=0.005, flip_angle=np.nan_to_num(fa, nan=20.0), m0=900.0)
    res = signal_to_concentration(s.astype(np.float32), t10=1.1, r1=4.5, tr=0.005, flip_angle=fa,
                                  n_baseline=2, return_info=True)
    assert res.n_invalid_voxels == 1 and res.n_invalid == 5 and np.all(np.isnan(res.conc[1, 0]))
    ok = np.isfinite(fa)
    assert_allclose(res.conc[ok], c[ok], atol=2e-5)  # float32 signal: ~1e-7 relative rounding
