"""Benchmark: theraquant's DCE fits side by side with osipy (issue #14, "fair baselines").

What it measures
----------------
For each model that both tools implement - extended Tofts (theraquant ``etofts``, osipy
``extended_tofts``), 2CXM (``2cxm``) and 2CUM (``2cum``) - both tools fit the SAME noisy synthetic
curves with the SAME arterial input, in one run:

* speed: wall-clock voxels/s and process CPU microseconds per voxel (``time.process_time``, all
  threads of the process: independent of how many cores other jobs leave free), each as
  min / median / max of ``--repeats`` calls;
* accuracy: median |fitted - true| of every free parameter;
* optimum reached: both tools' fitted parameters are put through the SAME forward model
  (theraquant's ``dce.simulate``) and the SSE against the data is recomputed; reported is the
  share of voxels where each fit's SSE is within 1e-6 (relative) of the lowest of all the fits
  of that curve (theraquant and osipy's one or two bound settings). For 2CXM / 2CUM the share is
  also given per third of ``sample_params`` (hard corners), with the worst curves where
  theraquant is not the lowest.

osipy 0.1.4 has no dual-input (liver) model: ``dual_input_1c`` and ``dual_input_etofts`` are
theraquant-only and are listed, not timed. osipy needs Python >= 3.12; under an older Python
(the project's own 3.11 venv) or when ``import osipy`` fails, the script prints one line saying
osipy is not measured and why, and still times theraquant (exit status 0).

Run
---
In the project venv (3.11; theraquant only)::

    .venv/bin/python bench/bench_dce_osipy.py [--voxels 20000] [--repeats 3]

Side by side with osipy, in a Python 3.12 venv that sees the working tree (editable install)::

    /root/.pyenv/versions/3.12.1/bin/python3.12 -m venv /tmp/osipy-venv
    /tmp/osipy-venv/bin/pip install --upgrade pip
    /tmp/osipy-venv/bin/pip install osipy==0.1.4
    /tmp/osipy-venv/bin/pip install -e /work/main        # theraquant (+ numba, scipy)
    /tmp/osipy-venv/bin/python bench/bench_dce_osipy.py [--voxels 20000] [--repeats 3]

Options: ``--osipy-voxels M`` fits only the first M curves with osipy (its rate is then
extrapolated and its accuracy / SSE compared on those M curves only); ``--osipy-bounds own``
or ``--osipy-bounds theraquant`` runs osipy with only one of the two bound settings (default:
both, see below); ``--models etofts,2cxm,2cum``; ``--seed``.

Data (identical for both tools)
-------------------------------
60 frames every 5 s (``t = np.arange(60) * 5.0`` s), Parker AIF ``dce.aif.parker(t, delay=30,
hct=0.42)`` (plasma, mM), Gaussian noise SD 0.02 mM, seeded. Extended Tofts: Ktrans ~ U(0.05,
0.5) 1/min, ve ~ U(0.1, 0.6), vp ~ U(0.01, 0.1). 2CXM / 2CUM: ``tests/dce/reference_models.py``
``sample_params`` (OSIPI ranges with the hard corners over-represented: 2CXM a third general, a
third flow-limited with PS 100-500 mL/100 mL/min, a third PS -> 0; 2CUM a general and a PS -> 0
half). Curves are theraquant's ``dce.simulate`` (exact convolution of the piecewise-linear input).

Units: osipy takes t in s and the AIF as a plain array (``fit_model(name, conc, aif, t)``);
its parameters are Ktrans 1/min, ve / vp fractions, Fp / PS mL/min/100 mL - the same as
theraquant's public units, so no conversion is needed (checked: both forward models agree to
~1e-10 relative at the true 2CXM / 2CUM parameters; printed at the start of each model).

Fairness notes (read osipy 0.1.4's source: osipy/dce/fitting.py, dce/models/*.py,
common/fitting/{base,least_squares}.py, common/convolution/{fft,expconv}.py)
-------------------------------------------------------------------------------------------
* Both fit all voxels vectorised. osipy: a numpy Levenberg-Marquardt over all voxels of a chunk
  at once (chunks of 10,000 voxels, run on a ThreadPoolExecutor with ``os.cpu_count()`` threads;
  forward-difference Jacobian, step 1e-7; at most 100 iterations; stop when the relative SSE
  change < 1e-6; bounds by clipping). theraquant: batched numba LM with analytic Jacobians on
  one row block per thread (tol 1e-8 with a Gauss-Newton stopping check, 100 iterations),
  bounds by an active set and projection, two refined starts from different basins for 2CXM.
* Bounds: by default osipy is run twice, once with its own default bounds (as shipped) and once
  with theraquant's default bounds given through ``bounds_override`` (Ktrans [0, 5], ve [1e-4, 1],
  vp [0, 1] (ETM) / [1e-4, 1] (2CXM, 2CUM), Fp [0, 200], PS [0, 500] mL/100 mL/min);
  ``--osipy-bounds own|theraquant`` runs one. osipy's own bounds are narrower (2CXM / 2CUM:
  Fp [0.1, 200], PS [0, 50], vp [0.001, 0.3]; ETM ve [0.001, 1]): PS <= 50 cannot reach the
  2CXM flow-limited third's true PS (100-500) nor the top of the 2CUM range (1-60). With the
  ve floor lowered to 1e-4, osipy's ETM fit collapses onto ve = 1e-4 for most curves (kep ->
  Ktrans/1e-4, the impulse response a spike at t = 0), even on curves made with its own forward
  model: its clipped LM step lands on the floor and the sampled impulse response makes that a
  flat corner. Both runs are shown; neither is hidden.
* Starts could not be aligned: osipy's ``fit_model`` takes no starting values; each tool uses its
  own. osipy: ETM Ktrans = 0.1 * max(ct) / max(aif), ve = 0.2, vp = ct/aif at the AIF peak
  clipped to [0.001, 0.1]; 2CXM Fp 20, PS 8, ve 0.2, vp = ct/aif at the AIF peak in [0.01, 0.2];
  2CUM Fp 15, PS 2, vp likewise in [0.01, 0.1]; one start. theraquant: linear (Murase) start for
  ETM; variable-projection grid starts for 2CXM (two, refined, from different basins; the second
  fit only where the first falls short) and 2CUM (OSIPI's values as a second start where the
  first fit ends on a bound).
* Forward models differ for extended Tofts: osipy convolves the AIF with the SAMPLED impulse
  response Ktrans exp(-kep t) by FFT times dt (a rectangle rule), theraquant (and the data) use
  the exact convolution of the piecewise-linear AIF. At 5 s frames the two differ by up to tens
  of per cent of the curve (printed), so osipy's ETM estimates carry a discretisation bias that
  is its forward model's, not its optimiser's; the SSE column (recomputed with theraquant's model)
  therefore favours theraquant for ETM. As a check, osipy's own-model SSE is printed, and osipy
  is also run on curves simulated with its own ETM forward model. osipy's 2CXM / 2CUM use the
  exact recursive exponential convolution (Flouri 2016), like theraquant: same forward model.
* osipy 0.1.4 rejects (n_voxels, T) input (``DataValidationError: Values must be 3D, got 1D``
  when it builds the parameter maps), so curves are passed as (n, 1, 1, T).
* osipy's 2CXM emits divide-by-zero RuntimeWarnings (``-1/lambda2`` when lambda2 = 0); they are
  silenced here. GPU: osipy would use CuPy if present; ``OSIPY_FORCE_CPU=1`` is set.
* theraquant's numba kernels are compiled / loaded by a small fit before any timing.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import sys
import warnings
from pathlib import Path

os.environ.setdefault("OSIPY_FORCE_CPU", "1")

import numpy as np  # noqa: E402

from theraquant import dce  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "dce"))
import reference_models as R  # noqa: E402  (sample_params: OSIPI ranges with the hard corners)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_dce_fit import _mmm, _timed  # noqa: E402  (min / median / max; timed repeats)

# theraquant model name -> osipy model name (None: osipy has no such model)
OSIPY_NAME = {"etofts": "extended_tofts", "2cxm": "2cxm", "2cum": "2cum",
              "dual_input_1c": None, "dual_input_etofts": None}
FREE = {"etofts": ("Ktrans", "ve", "vp"), "2cxm": ("Fp", "PS", "ve", "vp"), "2cum": ("Fp", "PS", "vp")}
REL = 1e-6


def _osipy_status() -> tuple[object | None, str]:
    """(osipy module or None, a line saying what is measured)."""
    if sys.version_info < (3, 12):
        return None, f"osipy: not measured (needs Python >= 3.12; this is {platform.python_version()})"
    try:
        import osipy  # noqa: PLC0415
        from osipy.dce.fitting import fit_model  # noqa: F401, PLC0415
    except Exception as exc:  # noqa: BLE001
        return None, f"osipy: not measured (import failed: {type(exc).__name__}: {exc})"
    return osipy, f"osipy {osipy.__version__}: measured (CPU, numpy backend)"


def _version(mod: str) -> str:
    try:
        from importlib.metadata import version  # noqa: PLC0415
        return version(mod)
    except Exception:  # noqa: BLE001
        return "-"


def _source_state(src: Path) -> str:
    """Git commit of the theraquant source tree and whether its src/ has uncommitted edits."""
    import subprocess  # noqa: PLC0415
    try:
        head = subprocess.run(["git", "-C", str(src), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(src), "status", "--porcelain", "--", "src"], capture_output=True,
                               text=True, timeout=10, check=True).stdout.strip()
    except Exception:  # noqa: BLE001
        return "not a git checkout"
    return f"git {head}" + (" + uncommitted edits under src/" if dirty else ", src/ clean")


def _truth(model: str, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    if model == "etofts":
        return {"Ktrans": rng.uniform(0.05, 0.5, n), "ve": rng.uniform(0.1, 0.6, n), "vp": rng.uniform(0.01, 0.1, n)}
    return R.sample_params(model, n, rng)


def _sse(t, model, params, y, ca) -> np.ndarray:
    return np.sum((y - dce.simulate(t, model, params, cp=ca)) ** 2, axis=1)


def _tq_bounds(model: str) -> dict[str, tuple[float, float]]:
    lo, hi = dce.MODELS[model].bounds()
    return {k: (a, b) for k, a, b in zip(dce.MODELS[model].free, lo, hi)}


def _osipy_fit(om: str, y: np.ndarray, ca, t, bounds):
    from osipy.dce.fitting import fit_model  # noqa: PLC0415
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        r = fit_model(om, y.reshape(y.shape[0], 1, 1, y.shape[1]), ca, t, bounds_override=bounds)
    return {k: np.asarray(v.values, dtype=float).ravel() for k, v in r.parameter_maps.items()}


def _osipy_predict(om: str, t, ca, params: dict[str, np.ndarray]) -> np.ndarray:
    from osipy.dce.models.registry import get_model  # noqa: PLC0415
    m = get_model(om)
    P = np.stack([np.asarray(params[k], dtype=float) for k in m.parameters])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.asarray(m.predict_batch(t, ca, P, np)).T


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--voxels", type=int, default=20_000, help="curves per model (both tools)")
    ap.add_argument("--osipy-voxels", type=int, default=0, help="fit only the first M curves with osipy (0: all)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=20261203)
    ap.add_argument("--osipy-bounds", choices=("both", "own", "theraquant"), default="both",
                    help="bounds given to osipy: its own defaults, theraquant's (bounds_override), or both runs")
    ap.add_argument("--models", default="etofts,2cxm,2cum")
    args = ap.parse_args()

    osipy, osipy_line = _osipy_status()
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load0 = os.getloadavg()
    print(f"{now}; {platform.machine()}, {os.cpu_count()} cores ({len(os.sched_getaffinity(0))} usable); "
          f"load average at start {', '.join(f'{x:.2f}' for x in load0)}")
    print(f"python {platform.python_version()}, numpy {np.__version__}, numba {_version('numba')}, "
          f"theraquant {_version('theraquant')} ({Path(dce.__file__).resolve().parents[2]}: "
          f"{_source_state(Path(dce.__file__).resolve().parents[3])}), "
          f"osipy {_version('osipy') if osipy is not None else '-'}")
    print(osipy_line)

    n = args.voxels
    m_os = n if args.osipy_voxels <= 0 else min(args.osipy_voxels, n)
    t = np.arange(60) * 5.0
    ca = dce.aif.parker(t, delay=30.0, hct=0.42)
    print(f"data: {n} curves per model x {t.size} frames (5 s), Parker AIF (plasma, Hct 0.42, delay 30 s), "
          f"noise SD 0.02 mM, seed {args.seed}; osipy fits {'all' if m_os == n else f'the first {m_os}'} "
          f"curves; osipy bounds: {args.osipy_bounds}")
    rows = []
    models = [s.strip() for s in args.models.split(",") if s.strip()]
    for k, model in enumerate(models):
        rng = np.random.default_rng([args.seed, k])
        truth = _truth(model, n, rng)
        y = dce.simulate(t, model, truth, cp=ca) + rng.normal(0.0, 0.02, (n, t.size))
        free = FREE[model]
        print(f"\n== {model} ==")
        # theraquant
        dce.fit(t, y[:64], model, cp=ca)  # compile / load the numba kernels outside the timing
        res, walls, cpus = _timed(lambda: dce.fit(t, y, model, cp=ca), args.repeats)
        tq = {p: np.asarray(res[p], dtype=float) for p in free}
        tq_rates, tq_cpu = [n / w for w in walls], [1e6 * c / n for c in cpus]
        nan_tq = ~np.all([np.isfinite(tq[p]) for p in free], axis=0)
        print(f"theraquant dce.fit: voxels/s {_mmm(tq_rates, ',.0f')}; CPU us/voxel {_mmm(tq_cpu, '.1f')}; "
              f"success {100 * np.mean(res['success']):.2f} %; non-finite results {np.sum(nan_tq)}"
              + (f" (success flag True on {np.sum(np.asarray(res['success'])[nan_tq])} of them)" if nan_tq.any() else ""))
        row_tq = {"model": model, "tool": f"theraquant `dce.fit(..., \"{model}\")`", "n": n,
                  "rates": tq_rates, "cpu": tq_cpu,
                  "err": {p: float(np.nanmedian(np.abs(tq[p] - truth[p]))) for p in free}, "nan": int(np.sum(nan_tq))}
        rows.append(row_tq)
        om = OSIPY_NAME[model]
        if osipy is None:
            rows.append({"model": model, "tool": "osipy", "note": osipy_line.split(": ", 1)[1]})
            continue
        sub = slice(0, m_os)
        ys = y[sub]
        # forward-model agreement at the truth
        ref = dce.simulate(t, model, {p: truth[p][:2000] for p in free}, cp=ca)
        theirs = _osipy_predict(om, t, ca, {p: truth[p][:2000] for p in free})
        d = np.max(np.abs(theirs - ref), axis=1) / np.max(np.abs(ref), axis=1)
        print(f"forward models at the true parameters (2000 curves): max |osipy - theraquant| / max|ct| "
              f"median {np.median(d):.3g}, max {np.max(d):.3g}")
        settings = ("own", "theraquant") if args.osipy_bounds == "both" else (args.osipy_bounds,)
        s_tq = _sse(t, model, {p: tq[p][sub] for p in free}, ys, ca)
        s_tq = np.where(np.isfinite(s_tq), s_tq, np.inf)
        sses, orows = [s_tq], []
        for setting in settings:
            bounds = _tq_bounds(model) if setting == "theraquant" else None
            label = f"osipy `fit_model(\"{om}\")`, {'its own bounds' if setting == 'own' else 'theraquant bounds'}"
            try:
                _osipy_fit(om, y[:64], ca, t, bounds)  # first-call overheads outside the timing
                ores, owalls, ocpus = _timed(lambda: _osipy_fit(om, ys, ca, t, bounds), args.repeats)
            except Exception as exc:  # noqa: BLE001
                print(f"osipy fit_model({om!r}, {setting} bounds) failed: {type(exc).__name__}: {exc}")
                rows.append({"model": model, "tool": label, "note": f"failed: {exc}"})
                continue
            os_rates, os_cpu = [m_os / w for w in owalls], [1e6 * c / m_os for c in ocpus]
            osp = {p: ores[p] for p in free}
            finite = np.all([np.isfinite(osp[p]) for p in free], axis=0)
            s_os = _sse(t, model, osp, ys, ca)
            s_os = np.where(np.isfinite(s_os), s_os, np.inf)
            own = np.sum((ys - _osipy_predict(om, t, ca, osp)) ** 2, axis=1)
            sses.append(s_os)
            print(f"osipy, {setting} bounds{'' if bounds is None else ' ' + str(bounds)}: voxels/s "
                  f"{_mmm(os_rates, ',.0f')}; CPU us/voxel {_mmm(os_cpu, '.1f')}"
                  f"{'' if m_os == n else f' (on {m_os} curves, extrapolated)'}; non-finite results "
                  f"{np.sum(~finite)}; median SSE {np.median(s_os):.5f} (theraquant's forward model), "
                  f"{np.median(own):.5f} (osipy's own)")
            print("  median |error| " + ", ".join(
                f"{p} {np.nanmedian(np.abs(osp[p] - truth[p][sub])):.5g}" for p in free))
            if model == "etofts":
                # osipy on curves made with ITS OWN forward model (its optimiser without its discretisation bias)
                m2 = min(m_os, 5000)
                y2 = _osipy_predict(om, t, ca, {p: truth[p][:m2] for p in free}) + rng.normal(0.0, 0.02, (m2, t.size))
                o2 = _osipy_fit(om, y2, ca, t, bounds)
                print(f"  same settings on {m2} curves simulated with osipy's own ETM forward model: median |error| "
                      + ", ".join(f"{p} {np.median(np.abs(o2[p] - truth[p][:m2])):.5g}" for p in free))
            orows.append({"model": model, "tool": label, "n": m_os, "rates": os_rates, "cpu": os_cpu,
                          "err": {p: float(np.nanmedian(np.abs(osp[p] - truth[p][sub]))) for p in free}})
        # same-forward-model SSE (theraquant's simulate) on the curves all fitted: share at the lowest
        best = np.min(np.stack(sses), axis=0)
        oks = [s <= best * (1 + REL) for s in sses]
        third = np.arange(n)[sub] % 3
        lab = {"2cxm": "general / flow-limited / PS->0", "2cum": "general / general / PS->0"}.get(model)
        print(f"at the lowest SSE of the {len(sses)} fits (theraquant's forward model, rel {REL:g}): "
              + "; ".join(f"{nm} {100 * ok.mean():.1f} %" for nm, ok in zip(["theraquant", *settings], oks)))
        if lab:
            print(f"  per third of sample_params ({lab}): "
                  + "; ".join(f"{nm} " + " / ".join(f"{100 * ok[third == j].mean():.1f}" for j in range(3))
                              for nm, ok in zip(["theraquant", *settings], oks)))
        ratio = s_tq / best
        fin = np.isfinite(ratio)
        print(f"  theraquant above the lowest: {np.sum(ratio > 1 + REL)} curves (> 1 %: {np.sum(ratio > 1.01)}; "
              f"non-finite {np.sum(~fin)}), worst finite SSE ratio {ratio[fin].max():.4g}")
        names = ["theraquant", *settings]
        for i in np.argsort(-np.where(fin, ratio, 0.0))[: min(3, int(np.sum(fin & (ratio > 1 + REL))))]:
            j = 1 + int(np.argmin([s_[i] for s_ in sses[1:]]))
            print(f"    curve {i} (third {i % 3}): SSE theraquant {s_tq[i]:.5f} vs osipy ({names[j]} bounds) "
                  f"{sses[j][i]:.5f}; truth " + ", ".join(f"{p} {truth[p][i]:.4g}" for p in free)
                  + "; theraquant " + ", ".join(f"{p} {tq[p][i]:.4g}" for p in free))
        row_tq["ok"] = 100 * oks[0].mean()
        if m_os != n:
            row_tq["ok_note"] = f" (first {m_os})"
        for r, ok in zip(orows, oks[1:]):
            r["ok"] = 100 * ok.mean()
        rows.extend(orows)
    for model, om in OSIPY_NAME.items():
        if om is None:
            print(f"{model}: theraquant only (osipy{' ' + _version('osipy') if osipy is not None else ' 0.1.4'} "
                  "has no dual-input model)")

    load1 = os.getloadavg()
    print(f"\nload average at end {', '.join(f'{x:.2f}' for x in load1)}")
    print(f"\n{now}, {os.cpu_count()} cores, load average {load0[0]:.2f} at start / {load1[0]:.2f} at end; "
          f"python {platform.python_version()}, numpy {np.__version__}, numba {_version('numba')}, "
          f"osipy {_version('osipy') if osipy is not None else 'not measured'}; {n} curves x 60 frames per model, "
          f"repeats {args.repeats}; osipy bounds: {args.osipy_bounds}\n")
    print("| model | tool | curves | voxels/s min / median / max | CPU us/voxel min / median / max | "
          "median abs error | at the lowest SSE of all fits (theraquant's forward model, rel 1e-6) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        if "note" in r:
            print(f"| {r['model']} | {r['tool']} | - | {r['note']} | | | |")
            continue
        err = ", ".join(f"{p} {v:.4g}" for p, v in r["err"].items())
        if r.get("nan"):
            err += f" ({r['nan']} non-finite results left out)"
        ok = f"{r['ok']:.1f} %{r.get('ok_note', '')}" if "ok" in r else "-"
        print(f"| {r['model']} | {r['tool']} | {r['n']:,} | {_mmm(r['rates'], ',.0f')} | {_mmm(r['cpu'], '.1f')} | "
              f"{err} | {ok} |")
    for model, om in OSIPY_NAME.items():
        if om is None:
            print(f"| {model} | osipy | - | no such model in osipy | | | |")


if __name__ == "__main__":
    main()
