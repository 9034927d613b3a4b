"""Benchmark: DCE NLLS fits (extended Tofts and the liver models) vs a per-voxel curve_fit loop.

Run: ``python bench/bench_dce_fit.py [--voxels 200000] [--subsample 400] [--liver-voxels 20000]
[--liver-check 200]``

Timing: every theraquant figure is the min / median / max of ``--repeats`` runs (default 3) of
the same call, as wall-clock voxels/s and as process CPU time per voxel (``time.process_time``,
all threads: independent of how many cores the other jobs on the machine leave free).
(dcmri, when importable - e.g. ``pip install --target /tmp/dcmri_pkg --no-deps dcmri tqdm`` and
``PYTHONPATH=/tmp/dcmri_pkg`` - adds a third column; it is not a theraquant dependency.
osipy, which needs Python >= 3.12, runs side by side in ``bench/bench_dce_osipy.py``.)

Synthetic, noisy data with known truth, generated inline: Parker 2006 population AIF (plasma,
Hct 0.42, bolus at 30 s), 60 frames every 5 s (0-295 s), Ktrans ~ U(0.05, 0.5) 1/min,
ve ~ U(0.1, 0.6), vp ~ U(0.01, 0.1), Gaussian noise SD 0.02 mM. Both methods fit the same
model (exact piecewise-linear convolution) with the same bounds (OSIPI: Ktrans [0, 5] 1/min,
ve [1e-4, 1], vp [0, 1]):

* theraquant ``dce.fit(..., "etofts")``: linear (Murase) initialiser + batched numba
  Levenberg-Marquardt with analytic Jacobians, parallel over voxels (all voxels in one call);
* the usual alternative: ``scipy.optimize.curve_fit`` (trf, bounds) voxel by voxel on a random
  subsample, started mid-range (the middle of the simulated ranges, Ktrans 0.275, ve 0.35,
  vp 0.055; an earlier version started at OSIPI's (0.6, 0.2, 0.01), which slows the loop 2x
  and flattered the ratio), its forward model the same exact convolution vectorised with
  ``scipy.signal.lfilter``; its rate is extrapolated to the full set;
* dcmri (if importable): the same curve_fit loop around ``dcmri.conc_tissue(kinetics="HF")``
  (dcmri's extended Tofts: H = 0 so ca is plasma, vb = vp, vi = ve, PS = Ktrans / 60 s),
  which is also an exact piecewise-linear convolution.

Accuracy: median absolute error of each parameter against the truth, for both methods on the
same subsample (and for theraquant on every voxel). Peak memory: tracemalloc peak of the
theraquant call (numpy buffers) and the process's maximum resident set size.

Liver models (issue #14; ``--liver-voxels``, 0 skips): 2CXM, 2CUM, dual-input one-compartment
and dual-input extended Tofts on curves spanning the OSIPI ranges with the hard corners
over-represented (tests/dce/reference_models.py ``sample_params``: 2CXM flow-limited and
PS -> 0 thirds; dual-input fa -> 0 / Ktrans -> 0 and Ktrans 0.8-1.5 with fa 0.7-0.95 thirds),
Parker AIF, modelled portal input, noise SD 0.02 mM. Reported: voxels/s and CPU us/voxel
(and the ratio to an ETM fit's CPU us/voxel), and on ``--liver-check`` voxels the share whose
fitted residual is <= the best of a three-start ``curve_fit`` (mid-range, OSIPI, true values;
relative 1e-6), plus a mid-range single-start curve_fit loop's rate for the speed ratio.
osipy (Python >= 3.12): ``bench/bench_dce_osipy.py``.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time
import tracemalloc

import sys
from pathlib import Path

import numpy as np
import scipy
from scipy.optimize import curve_fit
from scipy.signal import lfilter

from theraquant import dce

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "dce"))
import reference_models as R  # noqa: E402  (independent lfilter models + curve_fit reference)


def parker_plasma(t_s: np.ndarray, onset_s: float = 30.0, hct: float = 0.42) -> np.ndarray:
    """Parker 2006 AIF (Table 1), blood / (1 - hct), zero before the onset; mM."""
    tm = (t_s - onset_s) / 60.0
    a1, a2, t1, t2, s1, s2, alpha, beta, s, tau = 0.809, 0.330, 0.17046, 0.365, 0.0563, 0.132, 1.050, 0.1685, 38.078, 0.483
    cb = (a1 / (s1 * np.sqrt(2 * np.pi)) * np.exp(-(tm - t1) ** 2 / (2 * s1 ** 2))
          + a2 / (s2 * np.sqrt(2 * np.pi)) * np.exp(-(tm - t2) ** 2 / (2 * s2 ** 2))
          + alpha * np.exp(-beta * tm) / (1 + np.exp(-s * (tm - tau))))
    return np.where(tm >= 0, cb, 0.0) / (1 - hct)


def make_etofts_numpy(t_s: np.ndarray, cp: np.ndarray):
    """Per-voxel extended Tofts forward model (exact piecewise-linear convolution, uniform grid)."""
    h = float(t_s[1] - t_s[0]) / 60.0

    def model(_t, ktrans, ve, vp):
        x = ktrans / ve * h
        e = np.exp(-x)
        if x < 1e-6:
            pa = pb = 0.5
        else:
            pb = (1 - e * (1 + x)) / x ** 2
            pa = (1 - e) / x - pb
        w = np.concatenate([[0.0], h * (pb * cp[:-1] + pa * cp[1:])])
        return vp * cp + ktrans * lfilter([1.0], [1.0, -e], w)

    return model


MID_ETM = (0.275, 0.35, 0.055)  # middle of the simulated ranges (curve_fit start)


def _mmm(values, fmt: str) -> str:
    v = np.asarray(values, dtype=float)
    return " / ".join(format(x, fmt) for x in (v.min(), np.median(v), v.max()))


def _timed(fn, repeats: int):
    """(last result, wall times, CPU times) of ``repeats`` calls."""
    walls, cpus, res = [], [], None
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        res = fn()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return res, walls, cpus


def _etm_cpu_per_voxel(t, cp, ct, repeats: int) -> float:
    dce.fit(t, ct[:100], "etofts", cp=cp)
    _, _, cpus = _timed(lambda: dce.fit(t, ct, "etofts", cp=cp), repeats)
    return 1e6 * float(np.median(cpus)) / ct.shape[0]


def _liver(args, t, etm_cpu_us: float) -> None:
    """Issue #14: speed and optimum of the liver models on curves with the hard corners."""
    rng = np.random.default_rng(args.seed + 14)
    ca = dce.aif.parker(t, delay=30.0, hct=0.42)
    cv = dce.aif.portal_venous(t, ca)
    n = args.liver_voxels
    print(f"liver models: {n} voxels each x {t.size} frames (5 s), noise SD 0.02 mM; ETM reference "
          f"{etm_cpu_us:.2f} CPU us/voxel (median of {args.repeats})")
    print("model | voxels/s min/median/max | CPU us/voxel min/median/max | x ETM CPU | minimum reached "
          "(<= best of 3-start curve_fit, rel 1e-6) | per third | curve_fit mid-start loop voxels/s | speed-up")
    for model in ("2cxm", "2cum", "dual_input_1c", "dual_input_etofts"):
        truth = R.sample_params(model, n, rng)
        y = dce.simulate(t, model, truth, cp=ca, cp_portal=cv) + rng.normal(0.0, 0.02, (n, t.size))
        dce.fit(t, y[:50], model, cp=ca, cp_portal=cv)  # kernels compiled / loaded outside the timing
        res, walls, cpus = _timed(lambda: dce.fit(t, y, model, cp=ca, cp_portal=cv), args.repeats)
        m = min(args.liver_check, n)
        fitted = {k: res[k][:m] for k in R.FREE[model]}
        ours = np.sum((y[:m] - dce.simulate(t, model, fitted, cp=ca, cp_portal=cv)) ** 2, axis=1)
        ref = np.empty(m)
        t0 = time.perf_counter()
        for i in range(m):  # single mid-range start: the loop's own speed
            R.best_of_starts(model, t, ca, cv, y[i], [R.mid_start(model)])
        cf_rate = m / (time.perf_counter() - t0)
        for i in range(m):
            ref[i], _ = R.best_of_starts(model, t, ca, cv, y[i], [R.mid_start(model), R.OSIPI_START[model],
                                                                  [truth[k][i] for k in R.FREE[model]]])
        ok = ours <= ref * (1 + 1e-6)
        thirds = ", ".join(f"{100 * ok[np.arange(m) % 3 == k].mean():.1f}" for k in range(3))
        rates = [n / w for w in walls]
        cpu_us = [1e6 * c / n for c in cpus]
        print(f"{model} | {_mmm(rates, ',.0f')} | {_mmm(cpu_us, '.1f')} | {np.median(cpu_us) / etm_cpu_us:.1f}x | "
              f"{100 * ok.mean():.1f} % of {m} (worst ratio {np.max(ours / ref):.4g}) | {thirds} | "
              f"{cf_rate:,.1f} | {np.median(rates) / cf_rate:,.0f}x; success {100 * np.mean(res['success']):.2f} %, "
              f"status counts {{code: n}} {dict(zip(*(x.tolist() for x in np.unique(res['status'], return_counts=True))))}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--voxels", type=int, default=200_000)
    ap.add_argument("--subsample", type=int, default=400)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=20261125)
    ap.add_argument("--delay-voxels", type=int, default=20_000,
                    help="voxels for the fitted-delay timing (true delays U(-4, 4) s); 0 skips it")
    ap.add_argument("--liver-voxels", type=int, default=20_000, help="voxels per liver model; 0 skips them")
    ap.add_argument("--liver-check", type=int, default=200,
                    help="voxels per liver model checked against a three-start curve_fit")
    ap.add_argument("--skip-etm", action="store_true", help="only the liver models")
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    n = args.voxels
    t = np.arange(60) * 5.0
    cp = parker_plasma(t)
    truth = {"Ktrans": rng.uniform(0.05, 0.5, n), "ve": rng.uniform(0.1, 0.6, n), "vp": rng.uniform(0.01, 0.1, n)}
    clean = dce.simulate(t, "etofts", truth, cp=cp)
    ct = clean + rng.normal(0.0, 0.02, clean.shape)

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; python {platform.python_version()}, "
          f"numpy {np.__version__}, scipy {scipy.__version__}; load average at start "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print("osipy: see bench/bench_dce_osipy.py (needs Python >= 3.12; this is " + platform.python_version() + ")")
    etm_cpu_us = _etm_cpu_per_voxel(t, cp, ct[: min(n, 50_000)], args.repeats)
    if args.liver_voxels:
        _liver(args, t, etm_cpu_us)
    if args.skip_etm:
        return
    dce.fit(t, ct[:1000], "etofts", cp=cp)  # compile / load the numba cache outside the timing
    times, cpu = [], []
    for _ in range(args.repeats):
        c0 = time.process_time()
        t0 = time.perf_counter()
        res = dce.fit(t, ct, "etofts", cp=cp)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    t_ours = min(times)
    cpu_ours = cpu[int(np.argmin(times))]
    print(f"theraquant etofts, {n} voxels: voxels/s min/median/max {_mmm([n / x for x in times], ',.0f')}; "
          f"CPU us/voxel min/median/max {_mmm([1e6 * c / n for c in cpu], '.2f')}")
    tracemalloc.start()
    dce.fit(t, ct, "etofts", cp=cp)
    _, peak_ours = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    sub = rng.choice(n, size=args.subsample, replace=False)
    model = make_etofts_numpy(t, cp)
    est = np.full((sub.size, 3), np.nan)
    t0 = time.perf_counter()
    for j, i in enumerate(sub):
        try:
            est[j], _ = curve_fit(model, t, ct[i], p0=MID_ETM, bounds=([0, 1e-4, 0], [5, 1, 1]))
        except RuntimeError:
            pass
    t_cf = time.perf_counter() - t0
    try:
        import dcmri
    except ImportError:
        dcmri = None
    if dcmri is not None:
        sub_d = sub[: max(1, sub.size // 2)]
        est_d = np.full((sub_d.size, 3), np.nan)

        def dcmri_model(_t, ktrans, ve, vp):
            return dcmri.conc_tissue(cp, t=t, kinetics="HF", H=0.0, vb=vp, vi=ve, PS=ktrans / 60.0)

        t0 = time.perf_counter()
        for j, i in enumerate(sub_d):
            try:
                est_d[j], _ = curve_fit(dcmri_model, t, ct[i], p0=MID_ETM, bounds=([0, 1e-4, 0], [5, 1, 1]))
            except RuntimeError:
                pass
        t_d = time.perf_counter() - t0
    rate_ours = n / t_ours
    rate_cf = sub.size / t_cf

    names = ("Ktrans", "ve", "vp")
    print(f"data: {n} voxels x {t.size} frames, noise SD 0.02 mM; curve_fit subsample {sub.size}")
    print(f"theraquant dce.fit etofts: {t_ours:.2f} s (best of {args.repeats}: "
          f"{', '.join(f'{x:.2f}' for x in times)}) -> {rate_ours:,.0f} voxels/s; "
          f"success {np.mean(res['success']):.4f}; tracemalloc peak {peak_ours / 2**20:.0f} MiB")
    print(f"  process CPU time of that run {cpu_ours:.2f} s (wall x cores used: {cpu_ours / t_ours:.2f} cores); "
          f"CPU-normalised rate on 2 free cores ~ {2 * n / cpu_ours:,.0f} voxels/s")
    print(f"curve_fit loop: {t_cf:.2f} s for {sub.size} -> {rate_cf:,.1f} voxels/s "
          f"(extrapolated {n / rate_cf:,.0f} s for {n}); failures {np.isnan(est[:, 0]).sum()}")
    print(f"speed-up: {rate_ours / rate_cf:,.0f}x")
    if dcmri is not None:
        rate_d = sub_d.size / t_d
        from importlib.metadata import version

        print(f"dcmri {version('dcmri')} conc_tissue(HF) + curve_fit loop: {t_d:.2f} s for "
              f"{sub_d.size} -> {rate_d:,.1f} voxels/s; theraquant speed-up {rate_ours / rate_d:,.0f}x")
        for k, name in enumerate(("Ktrans", "ve", "vp")):
            print(f"  dcmri median |error| {name}: {np.nanmedian(np.abs(est_d[:, k] - truth[name][sub_d])):.5f} "
                  f"(theraquant on the same voxels {np.nanmedian(np.abs(res[name][sub_d] - truth[name][sub_d])):.5f})")
    print("median |error| vs truth       theraquant (all)   theraquant (subsample)   curve_fit (subsample)   ratio")
    for k, name in enumerate(names):
        e_all = np.nanmedian(np.abs(res[name] - truth[name]))
        e_sub = np.nanmedian(np.abs(res[name][sub] - truth[name][sub]))
        e_cf = np.nanmedian(np.abs(est[:, k] - truth[name][sub]))
        print(f"  {name:7s}                      {e_all:10.5f}         {e_sub:10.5f}               "
              f"{e_cf:10.5f}          {e_sub / e_cf:6.3f}")
    agree = np.nanmedian(np.abs(np.stack([res[nm][sub] for nm in names], 1) - est), axis=0)
    print("median |theraquant - curve_fit| per voxel:", ", ".join(f"{nm} {a:.2e}" for nm, a in zip(names, agree)))
    if args.delay_voxels:
        m = args.delay_voxels
        true_d = rng.uniform(-4.0, 4.0, m)
        sub_truth = {k: v[:m] for k, v in truth.items()}
        ct_d = dce.simulate(t, "etofts", sub_truth, cp=cp, delay=true_d) + rng.normal(0.0, 0.02, (m, t.size))
        for refine in ("lm", "golden"):
            t0 = time.perf_counter()
            rd = dce.fit(t, ct_d, "etofts", cp=cp, delay="fit", delay_refine=refine)
            dt = time.perf_counter() - t0
            print(f"fitted delay ({refine}): {m} voxels in {dt:.2f} s -> {m / dt:,.0f} voxels/s; median |delay error| "
                  f"{np.median(np.abs(rd['delay'] - true_d)):.3f} s, Ktrans "
                  f"{np.median(np.abs(rd['Ktrans'] - sub_truth['Ktrans'])):.5f} 1/min")
    print(f"process max RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
