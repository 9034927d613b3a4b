"""Issue #14: the liver models' fits reach the least-squares minimum, and say when they do not.

The reference is an independent ``scipy.optimize.curve_fit`` (trf, the same bounds) of the same
exact convolution written with ``lfilter`` (tests/dce/reference_models.py), started from three
points - the middle of the bounds, OSIPI's recommended values and the true parameters - keeping
the lowest residual. theraquant passes a voxel when its residual is at most that minimum x
(1 + 1e-6): the relative tolerance covers the two optimisers' stopping rules (both stop on
relative SSE changes of 1e-8), not a different basin (those differ by 1e-5 to 1e+1).
Samples are seeded and small; the full-size figures are in bench/RESULTS.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from theraquant import dce

sys.path.insert(0, str(Path(__file__).parent))
from reference_models import FREE, OSIPI_START, best_of_starts, mid_start, sample_params  # noqa: E402

T = np.arange(60) * 5.0  # s: 60 frames, 5 s apart (the setting)
CA = dce.aif.parker(T, delay=30.0, hct=0.42)
CV = dce.aif.portal_venous(T, CA)
NOISE = 0.02  # mM


def _sse(model, y, params):
    return np.sum((y - dce.simulate(T, model, params, cp=CA, cp_portal=CV)) ** 2, axis=-1)


def _reached(model, truth, y, res):
    ours = _sse(model, y, {k: res[k] for k in FREE[model]})
    ref = np.array([best_of_starts(model, T, CA, CV, y[i],
                                   [mid_start(model), OSIPI_START[model], [truth[k][i] for k in FREE[model]]])[0]
                    for i in range(y.shape[0])])
    return ours <= ref * (1 + 1e-6), ours / ref


def test_dual_input_high_ktrans_high_fa_reaches_the_minimum():
    # Ktrans 1.34/min with fa 0.83: the linear (integral-form) start is NaN here and the fit used
    # to stop at Ktrans = 0 with 3-22x the minimum residual and success True
    rng = np.random.default_rng(14)
    n = 60
    truth = {"Ktrans": np.full(n, 1.34), "ve": rng.uniform(0.2, 0.5, n), "vp": rng.uniform(0.02, 0.1, n),
             "fa": np.full(n, 0.83)}
    y = dce.simulate(T, "dual_input_etofts", truth, cp=CA, cp_portal=CV) + rng.normal(0, NOISE, (n, T.size))
    res = dce.fit(T, y, "dual_input_etofts", cp=CA, cp_portal=CV)
    ok, ratio = _reached("dual_input_etofts", truth, y, res)
    assert ok.all(), f"residual above the minimum in {np.count_nonzero(~ok)} voxels (max ratio {ratio.max():.3g})"
    assert res["success"].all() and np.all(res["status"] >= 0)
    # no voxel left at Ktrans = 0; at this noise the median error is ~5 % (measured 3-6 % over
    # seeds; single voxels reach 30 % as fa and Ktrans trade off), 12 % allows for the seed
    assert res["Ktrans"].min() > 0.5
    assert np.median(np.abs(res["Ktrans"] / 1.34 - 1)) < 0.12


@pytest.mark.parametrize("model, n, need", [
    ("dual_input_etofts", 200, 0.995),  # issue #14 target 99.5 %: at most 1 of 200 voxels may miss
    ("dual_input_1c", 120, 0.995),
    ("2cum", 120, 0.995),
    # 2CXM with two thirds of the sample in the flow-limited and PS -> 0 corners, where a single
    # exponential (PS = 0, or its flow-limited twin) nearly fits and the grid alone picks it:
    # 200 of 200 here (600 of 600 in bench/RESULTS.md; 90 % without the second, other-side
    # exponential start, 59 % with the earlier linear starts); at most 1 of 200 may miss
    ("2cxm", 200, 0.995),
])
def test_fitted_residual_reaches_best_of_three_curve_fit(model, n, need):
    rng = np.random.default_rng(2014)
    truth = sample_params(model, n, rng)
    y = dce.simulate(T, model, truth, cp=CA, cp_portal=CV) + rng.normal(0, NOISE, (n, T.size))
    res = dce.fit(T, y, model, cp=CA, cp_portal=CV)
    ok, ratio = _reached(model, truth, y, res)
    assert ok.mean() >= need, f"{model}: minimum reached in {ok.mean():.1%} of voxels (need {need:.1%})"


def test_fit_on_a_bound_with_a_residual_far_above_the_noise_is_a_failure():
    # a falling curve cannot be fitted by a non-negative model: every amplitude ends on its lower
    # bound with a residual ~ the whole signal, far above the 0.01 mM noise
    rng = np.random.default_rng(3)
    good = dce.simulate(T, "dual_input_etofts", {"Ktrans": 0.3, "ve": 0.3, "vp": 0.05, "fa": 0.3}, cp=CA,
                        cp_portal=CV)
    y = np.stack([good, -0.5 * CV]) + rng.normal(0, 0.01, (2, T.size))
    res = dce.fit(T, y, "dual_input_etofts", cp=CA, cp_portal=CV)
    assert res["success"].tolist() == [True, False]
    assert res["status"].tolist()[1] == -4 and res["status"].tolist()[0] in (0, 1)
    assert np.isnan(res["Ktrans"][1]) and "bound" in dce.FIT_STATUS[-4]


def test_noise_estimate_matches_the_added_noise():
    # the residual-versus-noise check rests on this estimate: never below the true variance on
    # average (that would flag good fits) and at most 1.5x it (measured 1.25x: the bolus bends
    # the curves in a few of the 58 second differences); averaged over 400 curves
    from theraquant.dce._fit import _noise_var

    rng = np.random.default_rng(5)
    truth = sample_params("dual_input_etofts", 400, rng)
    y = dce.simulate(T, "dual_input_etofts", truth, cp=CA, cp_portal=CV) + rng.normal(0, NOISE, (400, T.size))
    ratio = np.mean(_noise_var(y)) / NOISE ** 2
    assert 1.0 <= ratio <= 1.5
    flat = rng.normal(0, NOISE, (400, T.size))  # pure noise: unbiased within the 400-curve spread
    assert np.mean(_noise_var(flat)) / NOISE ** 2 == pytest.approx(1.0, abs=0.08)


def test_noise_estimate_is_not_far_below_the_noise_on_any_curve():
    # a curve whose estimate falls far below the true variance has a good fit on a bound flagged
    # as -4 (seen once in 20,000 with the median of the squared second differences, 0.21x the true
    # variance); on these 5,000 pure-noise curves the trimmed mean's lowest is 0.243x, the
    # median's 0.197x: 0.22x separates the two
    from theraquant.dce._fit import _noise_var

    rng = np.random.default_rng(8)
    flat = rng.normal(0, NOISE, (5000, T.size))
    assert np.min(_noise_var(flat)) / NOISE ** 2 > 0.22


def test_second_start_finds_the_bi_exponential_the_grid_misses():
    # a flow-limited curve (PS 465 >> Fp 38): nearly a single exponential (PS -> 0) fits within
    # 2 % of the minimum, and the coarse rate grid (two neighbouring rates mixing into one
    # exponential) can prefer it; the start built from the main exponential plus one on the
    # other side (at a first-order corrected main rate) reaches the flow-limited minimum
    from theraquant.dce._starts import grid_start

    rng = np.random.default_rng(43)
    truth = {"Fp": 37.66, "PS": 464.7, "ve": 0.5716, "vp": 0.2095}
    y = dce.simulate(T, "2cxm", truth, cp=CA) + rng.normal(0, NOISE, T.size)
    res = dce.fit(T, y, "2cxm", cp=CA)
    ok, ratio = _reached("2cxm", {k: np.array([v]) for k, v in truth.items()}, y[None], res)
    assert ok.all(), ratio
    lo = np.array([0, 0, 1e-4, 1e-4])
    hi = np.array([2.0, 5.0, 1, 1])  # kernel units: Fp, PS in mL/mL/min
    p0, s0, p1, s1 = grid_start(3, np.diff(T) / 60.0, True, CA, CA, y[None], lo, hi)
    # the two refined starts sit in different basins: the better one flow-limited (PS > 50
    # mL/100 mL/min; 130 measured) and within 1e-4 of the fit's residual (a few refinement
    # steps; 4e-6 measured), the other nearly a single exponential (PS 3) 1.8 % above it
    assert p0[0, 1] * 100 > 50 and p1[0, 1] * 100 < 10
    assert s1[0] > 1.005 * s0[0]
    assert s0[0] <= _sse("2cxm", y, {k: res[k] for k in FREE["2cxm"]}) * (1 + 1e-4)


def test_first_fit_warms_up_an_empty_cache(tmp_path):
    # a first fit on an empty cache calls warm_up: the start kernel compiles in a child process
    # while the LM kernel compiles here; the child must leave its kernel in numba's disk cache,
    # and the fit's result must be the same as on a warm cache
    import subprocess

    code = ("import numpy as np; from theraquant import dce; assert not dce.kernels_ready('2cum'); "
            "t = np.arange(60) * 5.0; ca = dce.aif.parker(t, delay=30.0, hct=0.42); "
            "y = dce.simulate(t, '2cum', {'Fp': 40.0, 'PS': 5.0, 'vp': 0.1}, cp=ca); "
            "r = dce.fit(t, y, '2cum', cp=ca); assert dce.kernels_ready('2cum'); "
            "print(round(float(r['Fp']), 6), round(float(r['PS']), 6))")
    env = {**__import__("os").environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert [float(v) for v in out.stdout.split()] == pytest.approx([40.0, 5.0], rel=1e-5)  # noise-free curve
    assert any(tmp_path.rglob("*_grid_impl*.nbc")) and any(tmp_path.rglob("*_lm_impl*.nbc"))
