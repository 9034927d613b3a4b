"""VFA T1 mapping against the OSIPI T1 reference data and Madym's calibration point."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from theraquant.dce import T1Result, spgr_signal, t1_vfa
from theraquant.errors import TheraquantError

DATA = Path(__file__).resolve().parents[1] / "data"
OSIPI_T1 = DATA / "osipi" / "t1_mapping"
TOLS = json.loads((DATA / "osipi" / "tolerances.json").read_text())


def _arr(cell) -> np.ndarray:
    return np.array(str(cell).split(), dtype=float)


def _load(name: str):
    """One OSIPI T1 file as (labels, signals (n, K), FA deg (n, K), TR s (n,), reference R1 1/s)."""
    df = pd.read_csv(OSIPI_T1 / name)
    s = np.stack([_arr(v) for v in df.s])
    fa = np.stack([_arr(v) for v in df.FA])
    tr = np.stack([_arr(v) for v in df.TR])[:, 0]
    if name == "t1_quiba_data.csv":
        r1 = df.R1.to_numpy() * 1000.0        # the QIBA file stores R1 in 1/ms
    elif name == "t1_prostate_data.csv":
        tr = tr / 1000.0                      # TR in ms in this file
        r1 = 1000.0 / df[" T1 nonlinear"].to_numpy()  # T1 in ms; note the leading space
    else:
        r1 = df.R1.to_numpy()
    return df, s, fa, tr, r1


# OSIPI's one known failure: low SNR voxel, linear VFA only (tolerances.json). Measured here:
# R1 2.357 1/s (T1 424.306 ms, identical to OSIPI's own 'T1 linear' 424.31 ms) against the
# nonlinear reference 2.785 1/s: |dR1| = 0.428 > 0.05 + 0.05 * 2.785 = 0.189 (2.26x tolerance).
_XFAIL_LINEAR = {"Pat5_voxel5_prostaat": "OSIPI xfail (linear VFA, low SNR): |dR1| = 0.428 1/s vs 0.189 allowed"}


def _cases():
    out = []
    for name in ("t1_brain_data.csv", "t1_quiba_data.csv", "t1_prostate_data.csv"):
        df = pd.read_csv(OSIPI_T1 / name)
        for i, label in enumerate(df.label):
            for method in ("linear", "nonlinear"):
                marks = []
                if method == "linear" and label in _XFAIL_LINEAR:
                    marks = [pytest.mark.xfail(reason=_XFAIL_LINEAR[label], strict=True)]
                out.append(pytest.param(name, i, method, marks=marks, id=f"{name[3:-9]}-{method}-{label}"))
    return out


_CACHE: dict = {}


def _fitted(name: str, method: str):
    """Fit a whole OSIPI file at once (vectorised), cached across the per-voxel test cases."""
    key = (name, method)
    if key not in _CACHE:
        df, s, fa, tr, r1 = _load(name)
        assert np.all(tr == tr[0])
        _CACHE[key] = (t1_vfa(s, fa, tr[0], method=method), r1)
    return _CACHE[key]


# Source: OSIPI DCE-DSC-MRI_CodeCollection test/T1_mapping/data (Apache-2.0): brain (Edinburgh,
# in-house MATLAB reference), QIBA T1 DRO v3 (ground truth), prostate (NKI, nonlinear reference).
# Tolerance R1 atol 0.05 1/s + rtol 0.05 (tolerances.json), every voxel.
@pytest.mark.parametrize("name, i, method", _cases())
def test_t1_vfa_matches_osipi(name, i, method):
    res, r1_ref = _fitted(name, method)
    tol = TOLS[f"t1_mapping/{name}"]
    assert res["valid"][i]
    assert_allclose(1.0 / res["T1"][i], r1_ref[i], atol=tol["atol"], rtol=tol["rtol"])


def test_prostate_agrees_with_osipi_nki_implementation():
    """Cross-implementation: the NKI columns of the prostate file, computed by their code.

    Linear T1 agrees to 6.1e-5 and nonlinear to 2.6e-6 (relative, measured), so rtol 2e-4 / 2e-5
    leaves only float and stopping-rule slack; M0 likewise.
    """
    df, s, fa, tr, _ = _load("t1_prostate_data.csv")
    lin = t1_vfa(s, fa, tr[0], method="linear")
    non = t1_vfa(s, fa, tr[0], method="nonlinear")
    assert_allclose(lin["T1"] * 1000, df["T1 linear"], rtol=2e-4)
    assert_allclose(lin["M0"], df["s0 linear"], rtol=2e-4)
    assert_allclose(non["T1"] * 1000, df[" T1 nonlinear"], rtol=2e-5)
    assert_allclose(non["M0"], df[" s0 nonlinear"], rtol=2e-5)


def test_b1_correction_matches_osipi_nki_b1_corrected_nonlinear():
    """B1 map (column B1, percent) applied as b1 = B1/100; reference ' T1 nonlinear B1cor' (ms).

    Not one of OSIPI's graded tests (README: "no B1-corrected T1 test"), so we hold it to the
    same R1 tolerance and to the measured cross-implementation agreement (3.2e-6 relative).
    """
    df, s, fa, tr, _ = _load("t1_prostate_data.csv")
    res = t1_vfa(s, fa, tr[0], method="nonlinear", b1=df.B1.to_numpy() / 100.0)
    ref_t1_s = df[" T1 nonlinear B1cor"].to_numpy() / 1000.0
    assert_allclose(1 / res["T1"], 1 / ref_t1_s, atol=0.05, rtol=0.05)
    assert_allclose(res["T1"], ref_t1_s, rtol=2e-5)
    # and the correction matters: without it T1 is off by more than the agreement above
    assert np.max(np.abs(t1_vfa(s, fa, tr[0])["T1"] / ref_t1_s - 1)) > 1e-3


def _madym_t1_dat():
    """Madym calibration_data/T1.dat: int32 k, k FAs (rad), k signals, T1 (ms), M0, TR (ms)."""
    raw = (DATA / "madym_calibration" / "original_dat" / "T1.dat").read_bytes()
    k = int(np.frombuffer(raw[:4], dtype="<i4")[0])
    vals = np.frombuffer(raw[4:], dtype="<f8")
    return np.degrees(vals[:k]), vals[k:2 * k], vals[2 * k], vals[2 * k + 1], vals[2 * k + 2]


@pytest.mark.parametrize("method", ["nonlinear", "linear"])
def test_madym_vfa_calibration_point(method):
    # Madym's own criterion: fitted T1 and M0 within 0.01 % (BOOST_CHECK_CLOSE 0.01) - README
    fa_deg, sig, t1_ms, m0, tr_ms = _madym_t1_dat()
    res = t1_vfa(sig, fa_deg, tr_ms / 1000.0, method=method)
    assert isinstance(res, T1Result) and res.n_invalid == 0
    assert float(res["T1"]) == pytest.approx(t1_ms / 1000.0, rel=1e-4)
    assert float(res["M0"]) == pytest.approx(m0, rel=1e-4)


def test_volume_with_b1_map_and_invalid_voxels():
    rng = np.random.default_rng(7)
    shape = (2, 3, 4)
    t1 = rng.uniform(0.3, 4.0, shape)
    m0 = rng.uniform(500.0, 5000.0, shape)
    b1 = rng.uniform(0.8, 1.2, shape)
    fa = np.array([2.0, 5.0, 10.0, 15.0, 25.0])
    s = spgr_signal(m0[..., None], 1 / t1[..., None], 0.004, b1[..., None] * fa)
    s[0, 0, 0] = 0.0            # no signal: unusable
    s[1, 2, 3, 2] = np.nan      # missing sample
    res = t1_vfa(s, fa, 0.004, b1=b1)
    assert res["T1"].shape == shape and res.n_invalid == 2
    assert np.isnan(res["T1"][0, 0, 0]) and np.isnan(res["M0"][1, 2, 3])
    ok = res["valid"]
    assert ok.sum() == 22
    assert_allclose(res["T1"][ok], t1[ok], rtol=1e-8)   # noiseless: the fit must be exact
    assert_allclose(res["M0"][ok], m0[ok], rtol=1e-8)


def test_nonlinear_beats_linear_on_noisy_data():
    # DESPOT1 weights low-signal points badly; NLLS is the ML estimate for Gaussian noise
    rng = np.random.default_rng(11)
    n, fa = 4000, np.array([3.0, 6.0, 10.0, 20.0, 30.0])
    s_true = spgr_signal(1000.0, 1 / 1.2, 0.005, fa)
    s = s_true + rng.normal(0.0, 2.0, (n, fa.size))
    err = {m: np.nanmedian(np.abs(t1_vfa(s, fa, 0.005, method=m)["T1"] - 1.2)) for m in ("linear", "nonlinear")}
    assert err["nonlinear"] < err["linear"]


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        ((np.ones((4, 3)), [2.0, 10.0], 0.005), {}, r"one angle per signal sample: the signal has 3"),
        ((np.ones((4, 3)), [0.03, 0.17, 0.31], 0.005), {}, r"flip_angles must be in degrees.*radians"),
        ((np.ones((4, 3)), [2.0, 10.0, 18.0], -0.005), {}, r"tr must be a positive finite number in s"),
        ((np.ones((4, 3)), [2.0, 10.0, 18.0], 5.0), {}, r"tr must be in seconds.*milliseconds"),
        ((np.ones((4, 3)), [2.0, 10.0, 18.0], 0.005), {"method": "despot2"}, r"method must be one of"),
        ((np.ones((4, 3)), [2.0, 10.0, 18.0], 0.005), {"b1": 95.0}, r"b1 must be a factor near 1.*percent"),
        ((np.ones((4, 3)), [2.0, 10.0, 18.0], 0.005), {"b1": np.ones(5)}, r"b1 must be a scalar or one value per voxel"),
        ((np.ones((4, 3)), [10.0, 10.0, 10.0], 0.005), {}, r"flip_angles must differ"),
        ((np.ones((4, 3)), [2.0, np.nan, 18.0], 0.005), {}, r"finite flip angles"),
    ],
)
def test_bad_input_is_rejected(args, kwargs, match):
    with pytest.raises(TheraquantError, match=match):
        t1_vfa(*args, **kwargs)


@settings(max_examples=30, deadline=None)
@given(t1=st.floats(0.2, 5.0), m0=st.floats(10.0, 1e6), b1=st.floats(0.7, 1.3),
       method=st.sampled_from(["linear", "nonlinear"]))
def test_round_trip_over_the_physiological_range(t1, m0, b1, method):
    # noiseless SPGR signals at a typical liver VFA protocol: both methods must be exact
    fa = np.array([2.0, 5.0, 10.0, 15.0])
    s = spgr_signal(m0, 1 / t1, 0.004, b1 * fa)
    res = t1_vfa(s, fa, 0.004, method=method, b1=b1)
    assert float(res["T1"]) == pytest.approx(t1, rel=1e-6)
    assert float(res["M0"]) == pytest.approx(m0, rel=1e-6)


def test_compiled_lm_kernel_matches_numpy_oracle():
    """The numba kernel used by t1_vfa against the vectorised numpy LM (same algorithm).

    Noisy voxels, some with bad starts (T1 = 1 s guess) and some that run onto the bounds; the
    two agree on validity everywhere and on T1/M0 to 1e-6 (measured 8e-8: the floating-point
    order of the sums changes where the stopping rule fires).
    """
    from theraquant.dce._t1 import _despot1, _nlls, _nlls_compiled

    rng = np.random.default_rng(5)
    n, fa = 3000, np.deg2rad([2.0, 5.0, 10.0, 15.0, 25.0])
    t1 = rng.uniform(0.2, 4.0, n)
    m0 = rng.uniform(200.0, 5000.0, n)
    a = np.broadcast_to(fa, (n, fa.size)) * rng.uniform(0.8, 1.2, (n, 1))
    s = spgr_signal(m0[:, None], 1 / t1[:, None], 0.004, np.degrees(a)) + rng.normal(0.0, 3.0, (n, fa.size))
    s[:20] = rng.uniform(1.0, 5.0, (20, fa.size))   # pure noise: fits that hit the bounds
    t1_l, m0_l, ok_l = _despot1(s, a, 0.004)
    t1_0 = np.where(ok_l, np.clip(t1_l, 1e-4, 100.0), 1.0)
    m0_0 = np.where(ok_l, m0_l, s.mean(axis=-1) * 20)
    ref = _nlls(s, a, 0.004, t1_0, m0_0)
    got = _nlls_compiled(s, a, 0.004, t1_0, m0_0)
    assert np.array_equal(ref[2], got[2]) and ref[2].sum() > 0.95 * n
    ok = ref[2]
    assert_allclose(got[0][ok], ref[0][ok], rtol=1e-6)
    assert_allclose(got[1][ok], ref[1][ok], rtol=1e-6)
