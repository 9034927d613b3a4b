"""Madym calibration curves (incl. the dual-input liver models) reproduced and fitted.

Source: michaelberks/madym_cxx calibration_data (Apache-2.0) at commit bec09bf, converted to
tests/data/madym_calibration/madym_calibration_curves.csv (README.md beside it). Madym's
parameters are in minutes; ours follow CAPLEX (Fp, PS in mL/100mL/min = 100 x 1/min; delay in s).

Tolerances (README "Discretisation"): Madym integrates ETM/PATLAK/DIETM/DISCM with its own
trapezoid-like recursion, so an exact piecewise-linear convolution differs from its curves by up
to ~0.3 % of peak (ETM 3.4e-3 mM); the README sets ~1 % of peak for an exact-convolution
implementation, which we use. Fits to the _noise curves use Madym's own pass criteria (README
"Madym's own pass criteria"): relative error < 0.1 (ETM), 0.2 (2CXM), 0.5 (PATLAK, DIETM, DISCM),
and SSE < 0.0005 mM^2.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from theraquant import dce

DATA = Path(__file__).resolve().parents[1] / "data" / "madym_calibration"
CURVES = pd.read_csv(DATA / "madym_calibration_curves.csv")
META = json.loads((DATA / "madym_calibration_meta.json").read_text())
T = CURVES["time_min"].to_numpy() * 60.0  # s
CA = CURVES["aif_plasma_mM"].to_numpy()
CV = CURVES["pif_plasma_mM"].to_numpy()
HCT = META["aif"]["hct"]
ONSET_S = META["aif"]["bolus_start_time_min"] * 60.0


def _madym_params(model: str) -> tuple[str, dict[str, float], float]:
    """Our model name, our parameters (CAPLEX units) and the delay (s) of a Madym model."""
    p = META["model_params_true"][model]
    delay = p["tau_a"] * 60.0
    if model == "ETM":
        return "etofts", {"Ktrans": p["Ktrans"], "ve": p["v_e"], "vp": p["v_p"]}, delay
    if model == "PATLAK":
        return "patlak", {"Ktrans": p["Ktrans"], "vp": p["v_p"]}, delay
    if model == "2CXM":
        return "2cxm", {"Fp": 100 * p["F_p"], "PS": 100 * p["PS"], "ve": p["v_e"], "vp": p["v_p"]}, delay
    if model == "DIETM":
        return "dual_input_etofts", {"Ktrans": p["Ktrans"], "ve": p["v_e"], "vp": p["v_p"], "fa": p["f_a"]}, delay
    if model == "DISCM":  # dC/dt = F_p cin - k_2 C: ve = F_p / k_2 (MTT = 1/k_2)
        return "dual_input_1c", {"Fp": 100 * p["F_p"], "fa": p["f_a"], "ve": p["F_p"] / p["k_2"]}, delay
    raise KeyError(model)


def _parker_min(tm: np.ndarray) -> np.ndarray:
    """Parker 2006 blood AIF (mM), t in min, Table 1 parameters (doi:10.1002/mrm.21066)."""
    a1, a2, t1, t2, s1, s2, alpha, beta, s, tau = 0.809, 0.330, 0.17046, 0.365, 0.0563, 0.132, 1.050, 0.1685, 38.078, 0.483
    g = (a1 / (s1 * np.sqrt(2 * np.pi)) * np.exp(-(tm - t1) ** 2 / (2 * s1 ** 2))
         + a2 / (s2 * np.sqrt(2 * np.pi)) * np.exp(-(tm - t2) ** 2 / (2 * s2 ** 2)))
    return g + alpha * np.exp(-beta * tm) / (1 + np.exp(-s * (tm - tau)))


def _madym_inputs(delay_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Madym's AIF and PIF, built as Madym does (README "Acquisition / input functions").

    AIF: Parker evaluated at t - onset - delay (not zeroed before the onset), plasma = blood /
    (1 - Hct). PIF: the delayed AIF convolved, as a discrete sum on the 5-s grid, with the
    normalised population gut impulse response.
    """
    tm = T / 60.0
    aif = _parker_min((T - ONSET_S - delay_s) / 60.0) / (1 - HCT)
    h = np.where(tm < 0.08, 0.0, np.where(tm < 0.17, 24.16 * tm - 2.01,
                                          2.83 * np.exp(-10.80 * tm) + 2.12 * np.exp(-1.82 * tm)))
    h /= h.sum()
    return aif, np.convolve(aif, h)[: T.size]


def test_inputs_rebuilt_like_madym():
    # README: the AIF is reproduced analytically to 7e-5 mM and the PIF to 4e-5 mM.
    aif, pif = _madym_inputs(0.0)
    assert np.max(np.abs(aif - CA)) < 1e-4
    assert np.max(np.abs(pif - CV)) < 1e-4


MODELS = ["ETM", "PATLAK", "2CXM", "DIETM", "DISCM"]


@pytest.mark.parametrize("madym", MODELS)
def test_forward_model_reproduces_madym(madym):
    # Inputs delayed analytically as Madym does. Madym's 2CXM is an exact piecewise-linear
    # convolution and its Patlak integral a trapezoid (= exact for a piecewise-linear input), so
    # those must meet Madym's own forward criterion, 1e-4 mM (measured 9.5e-6 and 1.2e-5 mM).
    # ETM/DIETM/DISCM use Madym's trapezoid-like recursion: 1 % of peak (README; measured
    # 0.31 %, 0.31 %, 0.17 % of peak = 3.4e-3, 2.7e-3, 1.5e-3 mM, as the README predicts).
    model, params, delay = _madym_params(madym)
    aif, pif = _madym_inputs(delay)
    ref = CURVES[f"Ct_{madym}_mM"].to_numpy()
    sim = dce.simulate(T, model, params, cp=aif, cp_portal=pif)
    atol = 1e-4 if madym in ("2CXM", "PATLAK") else 0.01 * ref.max()
    assert np.max(np.abs(sim - ref)) < atol


@pytest.mark.parametrize("madym", MODELS)
def test_forward_model_with_cubic_shift_of_sampled_inputs(madym):
    # Same curves, but the 5-s sampled AIF/PIF of the CSV are shifted by tau_a = 6 s with our
    # cubic spline (both inputs together). Interpolating the bolus between 5-s samples adds up
    # to ~0.6 % of peak (measured total: ETM 0.87 %, PATLAK 0.36 %, 2CXM 0.13 %, DIETM 0.88 %,
    # DISCM 0.17 %), so the README's 1 % of peak still holds.
    model, params, delay = _madym_params(madym)
    ref = CURVES[f"Ct_{madym}_mM"].to_numpy()
    sim = dce.simulate(T, model, params, cp=CA, cp_portal=CV, delay=delay)
    assert np.max(np.abs(sim - ref)) < 0.01 * ref.max()


# Relative tolerances for fits of the noisy curves: about 3x the largest error measured over the
# model's parameters and delay (ETM 0.67 % (Ktrans), PATLAK 0.42 % (delay), 2CXM 1.21 % (PS),
# DIETM 2.54 % (vp), DISCM 2.90 % (fa); theraquant 2026-12-03), so a regression fails; Madym's
# README allows 10-50 %, which passes almost anything.
FIT_TOL = {"ETM": 0.02, "2CXM": 0.04, "PATLAK": 0.015, "DIETM": 0.08, "DISCM": 0.09}


@pytest.mark.parametrize("madym", MODELS)
def test_fit_noisy_madym_curves(madym):
    model, params, delay = _madym_params(madym)
    noisy = CURVES[f"Ct_{madym}_noise_mM"].to_numpy()
    res = dce.fit(T, noisy, model, cp=CA, cp_portal=CV, delay="fit")
    assert bool(res["success"])
    tol = FIT_TOL[madym]
    for name, true in {**params, "delay": delay}.items():
        assert abs(float(res[name]) - true) / abs(true) < tol, (name, float(res[name]), true)
    pred = dce.simulate(T, model, res, cp=CA, cp_portal=CV, delay=res["delay"])
    assert np.sum((pred - noisy) ** 2) < 0.0005  # Madym's model-SSE criterion, mM^2
