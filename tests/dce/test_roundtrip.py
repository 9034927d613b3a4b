"""Round trips: forward model, noiseless samples, fit recovers the parameters to < 1 %.

Every model on a grid over the physiological range (issue #4 "Validation": < 1 % for every
model), with a uniform and a non-uniform frame grid; plus a property test (hypothesis) for the
extended Tofts model. Noiseless data have the true parameters as their exact least-squares
solution, so the only error left is the optimiser's tolerance: 1 % is a loose bar.
Also checks the exact convolution against an independent dense numerical quadrature.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from theraquant import dce


def parker_plasma(t_s: np.ndarray, onset_s: float = 20.0, hct: float = 0.42) -> np.ndarray:
    """Parker 2006 population AIF (Table 1, doi:10.1002/mrm.21066), plasma, zero before onset."""
    tm = (np.asarray(t_s) - onset_s) / 60.0
    a1, a2, t1, t2, s1, s2, alpha, beta, s, tau = 0.809, 0.330, 0.17046, 0.365, 0.0563, 0.132, 1.050, 0.1685, 38.078, 0.483
    cb = (a1 / (s1 * np.sqrt(2 * np.pi)) * np.exp(-(tm - t1) ** 2 / (2 * s1 ** 2))
          + a2 / (s2 * np.sqrt(2 * np.pi)) * np.exp(-(tm - t2) ** 2 / (2 * s2 ** 2))
          + alpha * np.exp(-beta * tm) / (1 + np.exp(-s * (tm - tau))))
    return np.where(tm >= 0, cb, 0.0) / (1 - hct)


def portal(t_s: np.ndarray, ca: np.ndarray | None = None) -> np.ndarray:
    """Portal-venous plasma input: the AIF convolved with Madym's population gut impulse response.

    h(t) (t in min) = 0 for t < 0.08; 24.16 t - 2.01 for t < 0.17; 2.83 e^(-10.80 t) +
    2.12 e^(-1.82 t) otherwise (tests/data/madym_calibration/README.md), normalised to unit area,
    convolved on a 0.1-s grid. (A mono-exponential dispersion would make the dual-input ETM
    non-identifiable: its transfer function then has two exact factorisations.)
    """
    fine = np.arange(0.0, float(np.max(t_s)) + 0.1, 0.1)
    tm = fine / 60.0
    h = np.where(tm < 0.08, 0.0, np.where(tm < 0.17, 24.16 * tm - 2.01,
                                          2.83 * np.exp(-10.80 * tm) + 2.12 * np.exp(-1.82 * tm)))
    h /= h.sum()
    return np.interp(t_s, fine, np.convolve(parker_plasma(fine), h)[: fine.size])


T_UNIFORM = np.arange(0.0, 360.0, 2.5)
T_NONUNIFORM = np.concatenate([np.arange(0.0, 60.0, 3.0), np.arange(60.0, 120.0, 1.5), np.arange(120.0, 361.0, 8.0)])

GRIDS = {
    "tofts": {"Ktrans": [0.02, 0.2, 1.0], "ve": [0.05, 0.3, 0.8]},
    "etofts": {"Ktrans": [0.02, 0.2, 1.0], "ve": [0.05, 0.3, 0.8], "vp": [0.01, 0.05, 0.2]},
    "patlak": {"Ktrans": [0.01, 0.1, 0.5], "vp": [0.01, 0.1, 0.3]},
    "2cxm": {"Fp": [10.0, 50.0, 150.0], "PS": [3.0, 10.0, 30.0], "ve": [0.1, 0.2, 0.4], "vp": [0.02, 0.05, 0.2]},
    "2cum": {"Fp": [10.0, 50.0, 150.0], "PS": [1.0, 5.0, 20.0], "vp": [0.02, 0.05, 0.2]},
    "dual_input_1c": {"Fp": [20.0, 80.0, 150.0], "fa": [0.1, 0.5, 0.9], "ve": [0.1, 0.3, 0.6]},
    "dual_input_etofts": {"Ktrans": [0.05, 0.2, 0.5], "ve": [0.1, 0.3, 0.5], "vp": [0.02, 0.05, 0.2],
                          "fa": [0.1, 0.5, 0.9]},
}


def _grid(model: str) -> dict[str, np.ndarray]:
    names = list(GRIDS[model])
    combos = np.array(list(itertools.product(*GRIDS[model].values())))
    return {n: combos[:, i] for i, n in enumerate(names)}


@pytest.mark.parametrize("frames", ["uniform", "nonuniform"])
@pytest.mark.parametrize("model", list(GRIDS))
def test_noiseless_round_trip_every_model(model, frames):
    t = T_UNIFORM if frames == "uniform" else T_NONUNIFORM
    ca = parker_plasma(t)
    cv = portal(t, ca)
    truth = _grid(model)
    ct = dce.simulate(t, model, truth, cp=ca, cp_portal=cv)
    res = dce.fit(t, ct, model, cp=ca, cp_portal=cv)
    assert np.all(res["success"])
    for name, val in truth.items():
        assert_allclose(res[name], val, rtol=0.01, err_msg=name)
    assert np.all(res["r2"] > 0.999999)


@pytest.mark.parametrize("model", ["tofts", "etofts", "patlak", "dual_input_1c"])
def test_linear_method_is_exact_enough_on_fine_grid(model):
    # The integral (Murase/Flouri) form is exact up to trapezoid integration: on 0.5-s frames it
    # recovers noiseless parameters within 2 % (it is the initialiser, not the final answer).
    t = np.arange(0.0, 360.0, 0.5)
    ca = parker_plasma(t)
    cv = portal(t, ca)
    truth = {k: np.array([v[1]]) for k, v in GRIDS[model].items()}
    ct = dce.simulate(t, model, truth, cp=ca, cp_portal=cv)
    res = dce.fit(t, ct, model, cp=ca, cp_portal=cv, method="linear")
    assert res.method == "linear"
    for name, val in truth.items():
        assert_allclose(res[name], val, rtol=0.02, err_msg=name)


@settings(max_examples=30, deadline=None)
@given(ktrans=st.floats(0.01, 1.0), ve=st.floats(0.05, 0.9), vp=st.floats(0.0, 0.2),
       delay=st.floats(-5.0, 5.0))
def test_etofts_round_trip_property(ktrans, ve, vp, delay):
    t = T_UNIFORM
    ca = parker_plasma(t)
    ct = dce.simulate(t, "etofts", {"Ktrans": ktrans, "ve": ve, "vp": vp}, cp=ca, delay=delay)
    res = dce.fit(t, ct, "etofts", cp=ca, delay=delay)
    assert float(res["Ktrans"]) == pytest.approx(ktrans, rel=0.01)
    assert float(res["ve"]) == pytest.approx(ve, rel=0.01)
    assert float(res["vp"]) == pytest.approx(vp, rel=0.01, abs=1e-4)


def test_fitted_delay_round_trip_fraction_of_a_frame():
    # A 3.3-s delay on 2.5-s frames is found to a small fraction of a frame (cubic-spline shift).
    t = T_UNIFORM
    ca = parker_plasma(t)
    truth = {"Fp": np.array([30.0, 60.0]), "PS": np.array([5.0, 10.0]), "ve": np.array([0.2, 0.3]),
             "vp": np.array([0.05, 0.1])}
    ct = dce.simulate(t, "2cxm", truth, cp=ca, delay=3.3)
    res = dce.fit(t, ct, "2cxm", cp=ca, delay="fit")
    assert_allclose(res["delay"], 3.3, atol=0.01)  # delay is an LM parameter: exact here
    for name, val in truth.items():
        assert_allclose(res[name], val, rtol=0.01, err_msg=name)
    assert np.all(res["delay_se"] < 0.01)  # noiseless: tiny standard error
    # the slower golden-section search over full fits lands on the same answer
    gold = dce.fit(t, ct, "2cxm", cp=ca, delay="fit", delay_refine="golden")
    assert_allclose(gold["delay"], 3.3, atol=0.1)
    assert_allclose(gold["Fp"], truth["Fp"], rtol=0.02)


def test_exact_convolution_matches_dense_quadrature():
    # Independent check of the recursion: a piecewise-linear input convolved with e^{-kt} by
    # a dense trapezoid rule on a 0.005-s grid (error O(dt^2) ~ 1e-7 relative) - agreement 1e-5.
    t = T_NONUNIFORM
    ca = parker_plasma(t)
    ktrans, ve = 0.3, 0.25
    ct = dce.simulate(t, "tofts", {"Ktrans": ktrans, "ve": ve}, cp=ca)
    fine = np.arange(t[0], t[-1] + 1e-9, 0.005)
    u = np.interp(fine, t, ca)
    k = ktrans / ve / 60.0  # 1/s
    ref = []
    for ti in t:
        m = fine <= ti + 1e-12
        ref.append(ktrans / 60.0 * np.trapezoid(u[m] * np.exp(-k * (ti - fine[m])), fine[m]))
    assert_allclose(ct, ref, atol=1e-5 * np.max(ref))


def test_dual_input_1c_accepts_fa_fv_and_reports_derived():
    t = T_UNIFORM
    ca = parker_plasma(t)
    cv = portal(t, ca)
    a = dce.simulate(t, "dual_input_1c", {"Fa": 20.0, "Fv": 60.0, "ve": 0.3}, cp=ca, cp_portal=cv)
    b = dce.simulate(t, "dual_input_1c", {"Fp": 80.0, "fa": 0.25, "ve": 0.3}, cp=ca, cp_portal=cv)
    assert_allclose(a, b, rtol=1e-12)
    res = dce.fit(t, b, "dual_input_1c", cp=ca, cp_portal=cv)
    assert float(res["Fa"]) == pytest.approx(20.0, rel=1e-3)
    assert float(res["Fv"]) == pytest.approx(60.0, rel=1e-3)
    assert float(res["MTT"]) == pytest.approx(60.0 * 0.3 / 0.8, rel=1e-3)  # s: ve / Fp (Fp in mL/mL/min)


def test_result_object_api():
    t = T_UNIFORM
    ca = parker_plasma(t)
    truth = {"Ktrans": np.array([[0.1, 0.2], [0.3, 0.4]]), "ve": 0.3, "vp": 0.05}
    ct = dce.simulate(t, "etofts", truth, cp=ca)
    ct[1, 1, 7] = np.nan  # one broken curve fails alone
    res = dce.fit(t, ct, "etofts", cp=ca)
    assert res.shape == (2, 2) and res["Ktrans"].shape == (2, 2)
    assert res["success"].tolist() == [[True, True], [True, False]]
    assert np.isnan(res["Ktrans"][1, 1]) and np.isnan(res["Ktrans_se"][1, 1])
    assert_allclose(res["kep"][0, 0], 0.1 / 0.3, rtol=1e-4)
    assert res.units["Ktrans"] == "1/min" and res.units["Ktrans_se"] == "1/min" and res.units["delay"] == "s"
    assert res.model == "etofts" and res.method == "nlls" and res.free == ("Ktrans", "ve", "vp")
    assert set(res) >= {"Ktrans", "ve", "vp", "kep", "delay", "success", "r2", "aic", "Ktrans_se"}
    with pytest.raises(ValueError):
        res["Ktrans"][0, 0] = 1.0  # read-only maps
    with pytest.raises(TypeError):
        res["new"] = 1  # read-only mapping
    with pytest.raises(KeyError, match="not in this etofts fit"):
        res["Fp"]
    assert res.settings["bounds"]["Ktrans"] == [0.0, 5.0]
    prov = res.provenance
    assert prov["Settings"]["model"] == "etofts" and prov["ModelCAPLEX"] == "M.IC1.005"
    # the common result base (issue #9): attributes, units, summary, JSON, the Python call
    from theraquant.results import Result

    assert isinstance(res, Result) and res.Ktrans is res["Ktrans"] and res.units["Ktrans"] == "1/min"
    assert prov["Command"].startswith(f"theraquant.dce.fit(t=<array ({t.size},) float64>, ct=<array (2, 2, {t.size})")
    assert "Ktrans" in res.summary() and '"Ktrans"' in res.to_json()
    import pickle

    back = pickle.loads(pickle.dumps(res))
    assert back.model == "etofts" and back == res and back.settings["bounds"] == res.settings["bounds"]
    # a FitResult can be passed back to simulate (derived and bookkeeping keys are ignored)
    again = dce.simulate(t, "etofts", {k: np.nan_to_num(v) for k, v in res.items()}, cp=ca)
    assert_allclose(again[0], ct[0], atol=1e-6)


def test_standard_errors_match_monte_carlo():
    # Jacobian standard errors vs the spread of fits to 400 noisy replicates (SD 0.01 mM):
    # agreement within 20 % (Monte-Carlo error of an SD from 400 samples is ~4 %).
    rng = np.random.default_rng(7)
    t = T_UNIFORM
    ca = parker_plasma(t)
    clean = dce.simulate(t, "etofts", {"Ktrans": 0.2, "ve": 0.3, "vp": 0.05}, cp=ca)
    noisy = clean + rng.normal(0, 0.01, (400, t.size))
    res = dce.fit(t, noisy, "etofts", cp=ca)
    for name in ("Ktrans", "ve", "vp"):
        assert np.median(res[name + "_se"]) == pytest.approx(np.std(res[name]), rel=0.2)


def test_per_voxel_fixed_delays_and_chunking_agree():
    # Per-voxel fixed delays (array of the leading shape) and a tiny chunk_size give the same
    # answers as one call per delay: the chunked driver of the CLI relies on this.
    t = T_UNIFORM
    ca = parker_plasma(t)
    delays = np.array([0.0, 2.0, 4.5, 7.0])
    truth = {"Ktrans": np.array([0.1, 0.2, 0.3, 0.4]), "ve": 0.3, "vp": 0.05}
    ct = dce.simulate(t, "etofts", truth, cp=ca, delay=delays)
    res = dce.fit(t, ct, "etofts", cp=ca, delay=delays, chunk_size=3)
    assert_allclose(res["Ktrans"], truth["Ktrans"], rtol=1e-4)
    assert_allclose(res["delay"], delays)
    one = dce.fit(t, ct[2], "etofts", cp=ca, delay=4.5)
    assert float(one["Ktrans"]) == pytest.approx(float(res["Ktrans"][2]), rel=1e-10)


def test_float32_input_and_bounds_option():
    t = T_UNIFORM
    ca = parker_plasma(t)
    ct = dce.simulate(t, "tofts", {"Ktrans": 0.3, "ve": 0.3}, cp=ca).astype(np.float32)
    res = dce.fit(t, ct, "tofts", cp=ca)
    assert float(res["Ktrans"]) == pytest.approx(0.3, rel=1e-4)  # float32 rounding only
    capped = dce.fit(t, ct, "tofts", cp=ca, bounds={"Ktrans": (0.0, 0.2)})
    assert float(capped["Ktrans"]) == pytest.approx(0.2)  # held at the upper bound
    # a bound the caller set is a constraint, not a wrong basin: still a successful fit
    assert bool(capped["success"]) and int(capped["status"]) in (0, 1)
    assert capped.settings["bounds"]["Ktrans"] == [0.0, 0.2]


def test_linear_method_with_fitted_delay():
    # method="linear" searches the delay by a grid of linear fits refined by golden section
    t = np.arange(0.0, 360.0, 1.0)
    ca = parker_plasma(t)
    ct = dce.simulate(t, "patlak", {"Ktrans": 0.1, "vp": 0.1}, cp=ca, delay=4.2)
    res = dce.fit(t, ct, "patlak", cp=ca, method="linear", delay="fit")
    assert float(res["delay"]) == pytest.approx(4.2, abs=0.05)
    assert float(res["Ktrans"]) == pytest.approx(0.1, rel=0.01)
    assert "delay_se" not in res and res.settings["delay_search"].startswith("grid of full fits")


def test_multistart_never_worse_than_single_start():
    # 2CXM surfaces have several minima; multistart=True adds OSIPI's start for every voxel and
    # keeps the lower SSE per voxel, so it can only match or improve the default fit (whose
    # second starts go only where needed, hence multistart False under "auto").
    rng = np.random.default_rng(11)
    n = 300
    t = np.arange(0.0, 300.0, 2.0)
    ca = parker_plasma(t)
    truth = {"Fp": rng.uniform(10, 150, n), "PS": rng.uniform(2, 40, n), "ve": rng.uniform(0.05, 0.5, n),
             "vp": rng.uniform(0.02, 0.2, n)}
    ct = dce.simulate(t, "2cxm", truth, cp=ca) + rng.normal(0, 0.02, (n, t.size))
    multi = dce.fit(t, ct, "2cxm", cp=ca, multistart=True)
    single = dce.fit(t, ct, "2cxm", cp=ca)
    assert multi.settings["multistart"] and not single.settings["multistart"]

    def sse(r):
        return np.sum((dce.simulate(t, "2cxm", r, cp=ca) - ct) ** 2, axis=1)

    assert np.all(sse(multi) <= sse(single) * (1 + 1e-9))
