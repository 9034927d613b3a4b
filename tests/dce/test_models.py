"""Forward models against independent references: closed forms, ODE integration, limits.

* A ramp input u(t) = t is piecewise linear, so the exact convolution must reproduce the closed
  form u conv e^{-kt} = t/k - (1 - e^{-kt})/k^2 to rounding, on any (non-uniform) grid.
* Each model's compartment equations integrated with scipy's solve_ivp (rtol 1e-10) for the same
  piecewise-linear input agree with simulate to 1e-6 of peak (ODE tolerance plus rounding).
* The analytic Jacobians of the numba kernels equal central finite differences (rel 1e-5).
* The numba linear least-squares kernel equals numpy's lstsq on the same design (its oracle).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy.integrate import solve_ivp

from theraquant import dce
from theraquant.dce import _convolve
from theraquant.dce._fit import _cumtrapz, _grid
from theraquant.dce._models import MODELS

T_NU = np.concatenate([[0.0, 0.7, 2.0], np.arange(4.0, 60.0, 2.5), np.arange(61.0, 300.0, 7.3)])


def aif(t):
    """A smooth bolus plus recirculation (mM)."""
    return 6.0 * (t / 20.0) ** 2 * np.exp(2.0 * (1.0 - t / 20.0)) + 0.8 * (1 - np.exp(-t / 40.0))


def pif(t):
    return 3.0 * ((t - 8.0).clip(0) / 35.0) ** 2 * np.exp(2.0 * (1.0 - (t - 8.0).clip(0) / 35.0)) + 0.9 * (1 - np.exp(-t / 60.0))


@pytest.mark.parametrize("k_per_min", [0.0, 1e-4, 0.3, 3.0, 60.0, 3000.0])
def test_ramp_input_closed_form(k_per_min):
    # Tofts with Ktrans = kep * ve: C = Ktrans * (t conv e^{-kt}); t in min inside the formula.
    t = T_NU
    tm = t / 60.0
    ve = 0.5
    if k_per_min == 0.0:
        ct = dce.simulate(t, "patlak", {"Ktrans": 1.0, "vp": 0.0}, cp=t)
        ref = 60.0 * tm ** 2 / 2  # input in "mM" = t in s; integral over min
    else:
        kt = k_per_min * ve
        ct = dce.simulate(t, "tofts", {"Ktrans": kt, "ve": ve}, cp=t)
        x = k_per_min * tm  # t conv e^{-kt} = (x - 1 + e^{-x}) / k^2 = tm^2 sum (-x)^n / (n+2)!
        series = tm ** 2 * sum((-x) ** n / math.factorial(n + 2) for n in range(15))
        with np.errstate(divide="ignore", invalid="ignore"):
            closed = (x - 1 + np.exp(-x)) / k_per_min ** 2
        ref = kt * 60.0 * np.where(x < 0.5, series, closed)  # series avoids the cancellation
    assert_allclose(ct, ref, rtol=1e-10, atol=1e-12 * np.max(np.abs(ref)))


def _ode(t, rhs, n_state, out):
    """Integrate the compartment ODEs (t in min) for piecewise-linear inputs; out(y, t) -> C."""
    sol = solve_ivp(rhs, (t[0] / 60.0, t[-1] / 60.0), np.zeros(n_state), t_eval=t / 60.0,
                    rtol=1e-10, atol=1e-13, max_step=0.5 / 60.0, method="DOP853")
    return np.array([out(sol.y[:, i], sol.t[i]) for i in range(t.size)])


def _lin(t, u):
    return lambda tm: np.interp(tm * 60.0, t, u)


CASES = {
    "tofts": {"Ktrans": 0.25, "ve": 0.3},
    "etofts": {"Ktrans": 0.25, "ve": 0.3, "vp": 0.07},
    "patlak": {"Ktrans": 0.05, "vp": 0.1},
    "2cxm": {"Fp": 45.0, "PS": 12.0, "ve": 0.25, "vp": 0.06},
    "2cum": {"Fp": 45.0, "PS": 12.0, "vp": 0.06},
    "dual_input_1c": {"Fp": 90.0, "fa": 0.3, "ve": 0.25},
    "dual_input_etofts": {"Ktrans": 0.2, "ve": 0.3, "vp": 0.05, "fa": 0.6},
}


@pytest.mark.parametrize("model", list(CASES))
def test_forward_model_matches_ode_integration(model):
    t = T_NU
    ca_s, cv_s = aif(t), pif(t)
    ca, cv = _lin(t, ca_s), _lin(t, cv_s)
    p = CASES[model]
    if model in ("tofts", "etofts"):  # ve dCe/dt = Ktrans (cp - Ce); C = vp cp + ve Ce
        vp = p.get("vp", 0.0)
        ref = _ode(t, lambda tm, y: [p["Ktrans"] * (ca(tm) - y[0]) / p["ve"]], 1,
                   lambda y, tm: vp * ca(tm) + p["ve"] * y[0])
    elif model == "patlak":  # dCe/dt = Ktrans cp
        ref = _ode(t, lambda tm, y: [p["Ktrans"] * ca(tm)], 1, lambda y, tm: p["vp"] * ca(tm) + y[0])
    elif model in ("2cxm", "2cum"):  # vp dcp/dt = Fp (ca - cp) - PS (cp - ce); ve dce/dt = PS (cp - ce)
        fp, ps, vp = p["Fp"] / 100, p["PS"] / 100, p["vp"]
        if model == "2cxm":
            ve = p["ve"]
            rhs = lambda tm, y: [(fp * (ca(tm) - y[0]) - ps * (y[0] - y[1])) / vp, ps * (y[0] - y[1]) / ve]  # noqa: E731
            out = lambda y, tm: vp * y[0] + ve * y[1]  # noqa: E731
        else:  # uptake: no backflux; state 1 is the EES amount
            rhs = lambda tm, y: [(fp * (ca(tm) - y[0]) - ps * y[0]) / vp, ps * y[0]]  # noqa: E731
            out = lambda y, tm: vp * y[0] + y[1]  # noqa: E731
        ref = _ode(t, rhs, 2, out)
    elif model == "dual_input_1c":  # dC/dt = Fp (fa ca + (1-fa) cv) - Fp/ve C
        fp = p["Fp"] / 100
        ref = _ode(t, lambda tm, y: [fp * (p["fa"] * ca(tm) + (1 - p["fa"]) * cv(tm)) - fp / p["ve"] * y[0]], 1,
                   lambda y, tm: y[0])
    else:  # dual-input extended Tofts
        cin = lambda tm: p["fa"] * ca(tm) + (1 - p["fa"]) * cv(tm)  # noqa: E731
        ref = _ode(t, lambda tm, y: [p["Ktrans"] * (cin(tm) - y[0]) / p["ve"]], 1,
                   lambda y, tm: p["vp"] * cin(tm) + p["ve"] * y[0])
    sim = dce.simulate(t, model, p, cp=ca_s, cp_portal=cv_s)
    assert_allclose(sim, ref, atol=1e-6 * np.max(np.abs(ref)))


def test_2cxm_limits():
    t = T_NU
    ca = aif(t)
    # PS -> 0: plasma compartment only, C = Fp ca conv e^{-(Fp/vp) t}
    a = dce.simulate(t, "2cxm", {"Fp": 40.0, "PS": 0.0, "ve": 0.3, "vp": 0.1}, cp=ca)
    b = dce.simulate(t, "dual_input_1c", {"Fp": 40.0, "fa": 1.0, "ve": 0.1}, cp=ca, cp_portal=ca)
    assert_allclose(a, b, rtol=1e-10, atol=1e-14)
    # ve -> infinity: the 2CXM tends to the 2CUM
    a = dce.simulate(t, "2cxm", {"Fp": 40.0, "PS": 8.0, "ve": 1e6, "vp": 0.1}, cp=ca)
    b = dce.simulate(t, "2cum", {"Fp": 40.0, "PS": 8.0, "vp": 0.1}, cp=ca)
    assert_allclose(a, b, rtol=1e-5, atol=1e-9)


def test_dual_input_models_reduce_to_single_input():
    t = T_NU
    ca, cv = aif(t), pif(t)
    a = dce.simulate(t, "dual_input_etofts", {"Ktrans": 0.2, "ve": 0.3, "vp": 0.05, "fa": 1.0}, cp=ca, cp_portal=cv)
    b = dce.simulate(t, "etofts", {"Ktrans": 0.2, "ve": 0.3, "vp": 0.05}, cp=ca)
    assert_allclose(a, b, rtol=1e-12)
    a = dce.simulate(t, "dual_input_etofts", {"Ktrans": 0.2, "ve": 0.3, "vp": 0.05, "fa": 0.0}, cp=ca, cp_portal=cv)
    b = dce.simulate(t, "etofts", {"Ktrans": 0.2, "ve": 0.3, "vp": 0.05}, cp=cv)
    assert_allclose(a, b, rtol=1e-12)


def test_delay_shifts_the_curve():
    # A delay of exactly 3 frames on a uniform grid equals shifting the samples (cubic spline
    # interpolates the samples exactly); the first frames see the constant pre-bolus value.
    t = np.arange(0.0, 200.0, 2.0)
    ca = aif(t)
    base = dce.simulate(t, "etofts", {"Ktrans": 0.2, "ve": 0.3, "vp": 0.05}, cp=ca)
    shifted = dce.simulate(t, "etofts", {"Ktrans": 0.2, "ve": 0.3, "vp": 0.05}, cp=ca, delay=6.0)
    assert_allclose(shifted[3:], base[:-3], atol=1e-12)
    assert_allclose(shifted[:3], 0.0, atol=1e-12)
    # per-voxel delays broadcast with the parameters
    both = dce.simulate(t, "etofts", {"Ktrans": 0.2, "ve": 0.3, "vp": 0.05}, cp=ca, delay=[0.0, 6.0])
    assert_allclose(both, np.stack([base, shifted]), atol=1e-12)


@pytest.mark.parametrize("grid", ["uniform", "nonuniform"])
@pytest.mark.parametrize("model", list(CASES))
def test_analytic_jacobian_matches_finite_differences(model, grid):
    spec = MODELS[model]
    t = T_NU if grid == "nonuniform" else np.arange(0.0, 300.0, 3.0)
    h, uniform = _grid(t)
    ua, uv = aif(t), pif(t)
    th = np.array([CASES[model][n] for n in spec.free]) * np.array(spec.scale())
    T, p = t.size, th.size
    f = np.empty(T)
    J = np.empty((p, T))  # the kernels store the Jacobian transposed
    w = np.empty((6, T))
    g = np.empty(20)
    _convolve._model(spec.code, th, ua, uv, h, uniform, f, J, True, w, g)
    Jfd = np.empty((T, p))
    for j in range(p):
        e = np.zeros(p)
        e[j] = 1e-6 * max(abs(th[j]), 1e-3)
        fp_, fm_ = np.empty(T), np.empty(T)
        _convolve._model(spec.code, th + e, ua, uv, h, uniform, fp_, J.copy(), False, w, g)
        _convolve._model(spec.code, th - e, ua, uv, h, uniform, fm_, J.copy(), False, w, g)
        Jfd[:, j] = (fp_ - fm_) / (2 * e[j])
    for j in range(p):
        assert_allclose(J[j], Jfd[:, j], rtol=1e-5, atol=1e-7 * np.max(np.abs(Jfd[:, j])), err_msg=spec.free[j])


@pytest.mark.parametrize("model", list(CASES))
def test_linear_kernel_equals_numpy_lstsq(model):
    # numpy twin of the numba linear least-squares kernel (STYLE 6: the numpy twin is the oracle)
    spec = MODELS[model]
    t = T_NU
    h, _ = _grid(t)
    rng = np.random.default_rng(3)
    ua, uv = aif(t), pif(t)
    y = dce.simulate(t, model, CASES[model], cp=ua, cp_portal=uv) + rng.normal(0, 0.01, t.size)
    iy, ia, iv = _cumtrapz(y, h), _cumtrapz(ua, h), _cumtrapz(uv, h)
    cols = {
        0: [ia, -iy], 1: [ua, ia, -iy], 2: [ua, ia], 3: [-iy, -_cumtrapz(iy, h), ia, _cumtrapz(ia, h)],
        4: [-iy, ia, _cumtrapz(ia, h)], 5: [-iy, ia, iv], 6: [-iy, ua, uv, ia, iv],
    }[spec.code]
    ref = np.linalg.lstsq(np.stack(cols, axis=1), y, rcond=None)[0]
    x = np.empty((1, len(cols)))
    _convolve.linear_kernel(spec.code, h, ua[None], uv[None], y[None], x)
    assert_allclose(x[0], ref, rtol=1e-6)
