"""Input functions: OSIPI population-AIF references, Madym's AIF/PIF, measured ROI AIF, shifting."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose
from scipy.integrate import quad

from theraquant import dce
from theraquant.dce import aif
from theraquant.errors import TheraquantError

DATA = Path(__file__).resolve().parents[1] / "data"
POP = DATA / "osipi" / "population_aif"
TOLS = json.loads((DATA / "osipi" / "tolerances.json").read_text())
MADYM = pd.read_csv(DATA / "madym_calibration" / "madym_calibration_curves.csv")
ALL = [aif.parker, aif.orton, aif.weinmann, aif.fritz_hansen, aif.georgiou, aif.mcgrath]

# Georgiou: the OSIPI reference is the *published measured curve*; we implement the published
# functional form (Eq. 1, Table 3 of doi:10.1002/mrm.27524). Measured deviation per label
# (max |dCb| mM, samples outside atol 1e-4 + rtol 0.01 / total); all misses are in the first
# pass (t <= 20.2 s), where a 9-parameter form cannot follow the measured bolus exactly.
_GEORGIOU_XFAIL = {
    "original_AIF": "max |dCb| 0.0816 mM (2.54x tol), 114/3001 samples, all t <= 20.2 s",
    "temp_res_0.5s": "max |dCb| 0.0815 mM (2.53x tol), 23/600 samples, all t <= 20 s",
    "temp_res_1.0s": "max |dCb| 0.0803 mM (2.37x tol), 12/300 samples, all t <= 20 s",
    "temp_res_2.0s": "max |dCb| 0.0785 mM (2.37x tol), 6/150 samples, all t <= 20 s",
    "temp_res_2.5s": "max |dCb| 0.0803 mM (2.16x tol), 5/120 samples, all t <= 20 s",
    "temp_res_5.0s": "max |dCb| 0.0803 mM (1.30x tol), 3/60 samples, all t <= 20 s",
    "temp_res_7.5s": "max |dCb| 0.0518 mM (1.15x tol), 1/40 samples, at t = 15 s",
}

# (file, function, seconds per unit of the file's time column); a delay column, when present, is in s
_FILES = [
    ("ParkerAIF_ref.csv", aif.parker, 60.0),
    ("ParkerAIF_ref_with_delay.csv", aif.parker, 60.0),
    ("GeorgiouAIF_ref.csv", aif.georgiou, 60.0),
    ("preclinicalAIF_ref.csv", aif.mcgrath, 1.0),
    ("preclinicalAIF_ref_delay.csv", aif.mcgrath, 1.0),
]


def _cases():
    out = []
    for fname, fn, unit in _FILES:
        df = pd.read_csv(POP / fname)
        for label in df.label.unique():
            marks = []
            if fname == "GeorgiouAIF_ref.csv":
                marks = [pytest.mark.xfail(reason="published measured curve vs functional form: "
                                           + _GEORGIOU_XFAIL[label], strict=True)]
            out.append(pytest.param(fname, fn, unit, label, marks=marks, id=f"{fname[:-4]}-{label}"))
    return out


# Source: OSIPI DCE-DSC-MRI_CodeCollection test/PopulationAIF_DCE/data (Apache-2.0): Parker 2006
# (blood, times in min), its delayed variants (delay column in s), Georgiou 2019 published curve,
# McGrath 2009 model B (times in s). Tolerances per file from tolerances.json (every sample).
@pytest.mark.parametrize("fname, fn, unit, label", _cases())
def test_population_aif_matches_osipi(fname, fn, unit, label):
    df = pd.read_csv(POP / fname)
    g = df[df.label == label]
    delay = float(g["delay"].iloc[0]) if "delay" in g else 0.0
    tol = TOLS[f"population_aif/{fname}"]
    cb = fn(g.time.to_numpy() * unit, delay=delay)
    assert_allclose(cb, g.Cb.to_numpy(), atol=tol["atol"], rtol=tol["rtol"])


def test_parker_delay_variants_meet_the_undelayed_tolerance_too():
    # OSIPI allows atol 0.1 / rtol 0.1 for the delayed Parker curves because some implementations
    # shift by resampling; ours evaluates the formula at t - delay, so the tight 1e-4 / 1 % holds.
    df = pd.read_csv(POP / "ParkerAIF_ref_with_delay.csv")
    for label, g in df.groupby("label"):
        cb = aif.parker(g.time.to_numpy() * 60.0, delay=float(g.delay.iloc[0]))
        assert_allclose(cb, g.Cb.to_numpy(), atol=1e-4, rtol=0.01, err_msg=label)


@pytest.mark.parametrize("fn", ALL, ids=lambda f: f.__name__)
def test_delay_hct_and_zero_before_delay(fn):
    t = np.arange(0.0, 400.0, 0.7)
    cb = fn(t)
    cd = fn(t, delay=12.3)
    assert np.all(cd[t < 12.3] == 0.0)
    assert_allclose(cd, np.where(t >= 12.3, fn(np.maximum(t - 12.3, 0.0)), 0.0), rtol=1e-12)
    assert_allclose(fn(t, hct=0.4), cb / 0.6, rtol=1e-12)
    assert_allclose(fn(t, delay=5.0, hct=0.0), fn(t, delay=5.0), rtol=1e-12)
    assert np.all(cb >= 0) and cb.max() > 0.5 and np.all(fn(-5.0 - t) == 0.0)


@pytest.mark.parametrize(
    "fn, expected_mM_min",
    [
        # Orton model 3: int_0^inf A_B u e^(-mu_B u) + A_G (e^(-mu_G u) - e^(-mu_B u)) du
        #   = A_B/mu_B^2 + A_G (1/mu_G - 1/mu_B), u in min
        (aif.orton, 323.0 / 20.2**2 + 1.07 * (1 / 0.172 - 1 / 20.2)),
        # Weinmann / Tofts-Kermode plasma: D (a1/m1 + a2/m2); blood = plasma x (1 - 0.42)
        (aif.weinmann, 0.1 * (3.99 / 0.144 + 4.78 / 0.0111) * 0.58),
        # Fritz-Hansen: a1/m1 + a2/m2, blood = plasma x (1 - 0.42)
        (aif.fritz_hansen, (2.4 / 3.0 + 0.62 / 0.016) * 0.58),
        # McGrath model B: triangle to t0 plus A_i/k_i (s -> min: / 60)
        (aif.mcgrath, (0.5 * 5.21 * 7.0 + 3.4 / 0.045 + 1.81 / 0.0015) / 60.0),
    ],
    ids=["orton", "weinmann", "fritz_hansen", "mcgrath"],
)
def test_population_aif_area_matches_closed_form(fn, expected_mM_min):
    # independent of the implementation's algebra: numerical quadrature (s) of the function vs
    # the closed-form area of the published formula with its published parameters
    area_s = quad(lambda x: float(fn(x)), 0.0, 7.0, limit=200)[0] + quad(lambda x: float(fn(x)), 7.0, np.inf, limit=500)[0]
    assert area_s / 60.0 == pytest.approx(expected_mM_min, rel=1e-6)


def test_georgiou_first_pass_is_a_unit_gamma_variate_times_envelope():
    # before the first recirculation (u < tau = 0.129 min) only j = 0 contributes:
    # Cb = (sum A_i e^(-m_i u)) * u^alpha e^(-u/beta) / (beta^(alpha+1) Gamma(alpha+1))
    from math import gamma
    u = np.array([0.02, 0.05, 0.1, 0.12])
    env = 0.37 * np.exp(-0.11 * u) + 0.33 * np.exp(-1.17 * u) + 10.06 * np.exp(-16.02 * u)
    g0 = u**5.26 * np.exp(-u / 0.032) / (0.032**6.26 * gamma(6.26))
    assert_allclose(aif.georgiou(u * 60.0), env * g0, rtol=1e-12)


def test_madym_aif_is_parker_plasma_with_bolus_at_injection_image():
    # Madym calibration aif.dat: Parker, onset t[7] (injection image 8, 1-based), Hct 0.42,
    # dose 0.1 mmol/kg, plasma. README: reproduced analytically to 7e-5 mM. Madym evaluates the
    # Gaussians' tails before the onset (up to 5.8e-3 mM at t[6]); we return 0 there by contract.
    t = MADYM.time_min.to_numpy() * 60.0
    ref = MADYM.aif_plasma_mM.to_numpy()
    cp = aif.parker(t, delay=t[7], hct=0.42)
    assert_allclose(cp[7:], ref[7:], atol=1e-4, rtol=0)
    assert np.all(cp[:7] == 0.0) and np.all(ref[:7] < 6e-3)


def test_portal_venous_reproduces_madym_pif():
    # Madym pif.dat from its aif.dat with the normalised gut IRF; README: reproduced to 4e-5 mM
    t = MADYM.time_min.to_numpy() * 60.0
    cv = aif.portal_venous(t, MADYM.aif_plasma_mM.to_numpy())
    assert_allclose(cv, MADYM.pif_plasma_mM.to_numpy(), atol=4e-5, rtol=0)


def test_portal_venous_delay_and_conservation():
    t = np.arange(0.0, 600.0, 2.0)
    # a compact bolus (gamma variate, back to ~0 by 200 s): the unit-sum gut IRF conserves tracer,
    # so the areas agree up to the IRF tail beyond 400 s (~1e-5 of its mass)
    u = np.clip(t - 20.0, 0.0, None)
    bolus = (u / 15.0) ** 3 * np.exp(-u / 5.0)
    cv_b = aif.portal_venous(t, bolus)
    assert np.trapezoid(cv_b, t) == pytest.approx(np.trapezoid(bolus, t), rel=1e-4)
    ca = aif.parker(t, delay=20.0, hct=0.42)
    cv = aif.portal_venous(t, ca)
    assert t[np.argmax(cv)] > t[np.argmax(ca)] and cv.max() < ca.max()   # later, dispersed
    cv_d = aif.portal_venous(t, ca, delay=4.0)
    assert_allclose(cv_d, aif.shift(t, cv, 4.0), rtol=1e-12)


def test_shift_is_cubic_and_sub_frame_accurate():
    # delayed Parker resampled from 1-s frames vs the formula at t - delay: away from the
    # onset step (Parker starts at 0.08 mM) cubic error 3.8e-4 mM measured, linear 0.061 mM
    t = np.arange(0.0, 300.0, 1.0)
    c = aif.parker(t, delay=10.0)
    ref = aif.parker(t, delay=10.5)
    away = t > 10.5 + 3.0
    err_cubic = np.abs(aif.shift(t, c, 0.5) - ref)[away].max()
    err_linear = np.abs(np.interp(t - 0.5, t, c, left=0.0) - ref)[away].max()
    assert err_cubic < 1e-3 and err_linear > 50 * err_cubic
    shifted = aif.shift(t, c, 12.0)
    assert np.all(shifted[t < 12.0] == 0.0)
    assert_allclose(aif.shift(t, np.stack([c, 2 * c]), 3.3)[1], 2 * aif.shift(t, c, 3.3), rtol=1e-12)
    assert_allclose(aif.shift(t, c, -2.0)[-1], c[-1])  # negative delay: last sample held


def test_measured_aif_from_roi():
    rng = np.random.default_rng(3)
    t = np.arange(0.0, 240.0, 3.0)
    cb = aif.parker(t, delay=15.0)
    vol = np.zeros((4, 5, 6, t.size))
    mask = np.zeros((4, 5, 6), dtype=bool)
    mask[1:3, 2, 2:5] = True
    vol[mask] = cb * rng.uniform(0.8, 1.2, (mask.sum(), 1))
    vol[mask] -= vol[mask].mean(axis=0) - cb  # ROI mean is exactly the blood curve
    vol[0, 0, 0] = np.nan                     # outside the ROI: ignored
    vol[~mask] += 50.0                        # background must not leak in
    assert_allclose(aif.measured(t, vol, mask=mask), cb, rtol=1e-12, atol=1e-12)
    assert_allclose(aif.measured(t, vol, mask=mask, hct=0.45), cb / 0.55, rtol=1e-12, atol=1e-12)
    # a saturated voxel (NaN samples) inside the ROI is left out of the mean
    vol2 = vol.copy()
    extra = mask.copy()
    extra[0, 0, 0] = True
    assert_allclose(aif.measured(t, vol2, mask=extra), cb, rtol=1e-12, atol=1e-12)
    assert_allclose(aif.measured(t, vol, mask=mask, delay=6.0), aif.shift(t, cb, 6.0), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: aif.parker([0.0, 1.0], hct=42.0), r"hct must be a haematocrit fraction.*divided by 100"),
        (lambda: aif.parker([0.0, np.nan]), r"t must hold finite times in s"),
        (lambda: aif.orton([0.0, 1.0], delay=np.inf), r"delay must be a finite number of seconds"),
        (lambda: aif.population("tofts", [0.0]), r"unknown population AIF 'tofts'; choose one of"),
        (lambda: aif.measured([0.0, 1.0, 2.0], np.ones((4, 2))), r"conc must have 3 samples"),
        (lambda: aif.measured([0.0, 1.0], np.ones((4, 2)), mask=np.ones(3, bool)), r"mask must have the leading shape"),
        (lambda: aif.measured([0.0, 1.0], np.full((4, 2), np.nan)), r"no curve without NaN"),
        (lambda: aif.portal_venous([0.0, 1.0, 3.0], np.ones(3)), r"uniformly spaced frame times"),
        (lambda: aif.portal_venous([0.0, 2.0, 1.0], np.ones(3)), r"strictly increasing, but t\[1\] = 2 s"),
        (lambda: aif.shift([0.0, 1.0, 2.0], np.ones(4), 1.0), r"c must have 3 samples on its last axis"),
    ],
)
def test_bad_input_is_rejected(call, match):
    with pytest.raises(TheraquantError, match=match):
        call()


def test_population_dispatch_names():
    t = np.linspace(0.0, 100.0, 11)
    for name in aif.POPULATION_AIFS:
        assert_allclose(aif.population(name, t, delay=3.0, hct=0.4), getattr(aif, name)(t, delay=3.0, hct=0.4))


def test_info_records_every_population_aif():
    for name in aif.POPULATION_AIFS:
        d = aif.info(name)
        assert set(d["parameters"]) == set(d["units"]) and d["doi"].startswith("10.")
    # the constants recorded are the ones the function uses: Parker's Eq. from the recorded values
    p = aif.info("parker")["parameters"]
    u = np.array([0.1, 0.17046, 0.5, 3.0])  # min
    gauss = sum(p[f"A{i}"] / (p[f"sigma{i}"] * np.sqrt(2 * np.pi))
                * np.exp(-((u - p[f"T{i}"]) ** 2) / (2 * p[f"sigma{i}"] ** 2)) for i in (1, 2))
    expected = gauss + p["alpha"] * np.exp(-p["beta"] * u) / (1 + np.exp(-p["s"] * (u - p["tau"])))
    assert_allclose(aif.parker(60 * u), expected, rtol=1e-12)
    with pytest.raises(TheraquantError, match=r"unknown population AIF 'foo'"):
        aif.info("foo")


def test_one_shift_for_aif_and_fitter_with_a_baseline_offset():
    # issue #9: aif.shift used to zero-fill before the first frame while the fitter held the
    # first sample (0.02 mM apart for an input with a baseline offset). One definition now: the
    # first sample (the baseline) is held, so simulate/fit with delay=d see exactly shift(cp, d)
    t = np.arange(0.0, 300.0, 3.0)
    cp = aif.parker(t, delay=20.0, hct=0.42) + 0.3   # measured AIF with a 0.3 mM baseline offset
    shifted = aif.shift(t, cp, 7.5)
    assert_allclose(shifted[t < 7.5], 0.3, rtol=0, atol=1e-12)   # baseline held, not zero
    params = {"Ktrans": 0.25, "ve": 0.3, "vp": 0.05}
    with_delay = dce.simulate(t, "etofts", params, cp=cp, delay=7.5)
    pre_shifted = dce.simulate(t, "etofts", params, cp=shifted)
    assert_allclose(with_delay, pre_shifted, rtol=1e-12, atol=1e-14)
    # per-voxel delays: the rows of shift(t, cp, [d1, d2]) are the one-delay shifts
    both = aif.shift(t, cp, [2.0, 7.5])
    assert_allclose(both[1], shifted, rtol=1e-13)
    # the fitted-delay kernel evaluates the same spline: a fit of the pre-shifted input's curve
    # finds the delay to 0.05 s (noise-free; the grid step is 1 s, the LM refines it)
    res = dce.fit(t, with_delay, "etofts", cp=cp, delay="fit")
    assert float(res["delay"]) == pytest.approx(7.5, abs=0.05)
