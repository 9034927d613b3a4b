"""Study pipeline benchmark: the default demo end to end, and patients per minute on a phantom cohort.

Usage::

    python bench/bench_pipeline.py demo               # `theraquant demo` in a fresh process, wall time
    python bench/bench_pipeline.py cohort --patients 50 --workers 1 2 [--study DIR]

``demo`` runs ``theraquant demo --out TMP`` as a subprocess (imports, phantom DICOM writing, both
study runs, DICOM export, reports, vs_truth) and reports its wall time and the child's peak RSS.
``cohort`` writes one TARE phantom study of ``--patients`` patients (``phantom.write_tare_study``),
then runs :func:`theraquant.pipeline.run_study` on it once per worker count (a fresh local Dask
cluster each time; no DICOM export, report or cohort statistics, so the figure is the per-patient
throughput), and reports patients per minute = patients / wall time of the run (discovery and
cluster start included).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _header() -> str:
    import numpy as np

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.machine()}, {os.cpu_count()} cores, "
            f"load {load:.1f}, python {platform.python_version()}, numpy {np.__version__}")


def bench_demo(keep: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="tq-bench-demo-") as tmp:
        out = Path(tmp) / "demo"
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "theraquant.cli", "demo", "--out", str(out), "--quiet"],
                              capture_output=True, text=True)
        wall = time.perf_counter() - t0
        rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        if proc.returncode != 0:
            print(proc.stderr[-3000:])
            raise SystemExit(f"demo failed (exit {proc.returncode})")
        n = {d: sum(1 for _ in (out / d / "results" / "patients").iterdir()) for d in ("tare", "prrt")}
        print(f"# {_header()}")
        print("| run | patients | wall s | peak RSS MB (largest child) |")
        print("|---|---|---|---|")
        print(f"| `theraquant demo` (TARE + PRRT, DICOM export, reports) | {n['tare']} + {n['prrt']} | {wall:.1f} | "
              f"{rss_mb:.0f} |")
        if keep:
            import shutil

            shutil.copytree(out, Path("bench-demo-output"), dirs_exist_ok=True)


def bench_cohort(n_patients: int, workers: list[int], seed: int, study_dir: Path | None) -> None:
    from theraquant import phantom
    from theraquant.pipeline import RunSettings, run_study

    with tempfile.TemporaryDirectory(prefix="tq-bench-cohort-") as tmp:
        t0 = time.perf_counter()
        if study_dir is None or not study_dir.exists():
            study_dir = phantom.write_tare_study(study_dir or Path(tmp) / "study", n_patients=n_patients,
                                                 seed=seed).study_dir
            written = f"study written in {time.perf_counter() - t0:.1f} s"
        else:
            written = f"study {study_dir} written beforehand"
        rows = []
        for w in workers:
            out = Path(tmp) / f"results-{w}"
            t0 = time.perf_counter()
            run = run_study(study_dir, RunSettings(out=out, workers=w, dicom=False, report=False, cohort=False,
                                                   quiet=True))
            wall = time.perf_counter() - t0
            n = len(run.patients)
            ok = int((run.patients["status"] != "failed").sum())
            rows.append((w, n, wall, n / wall * 60.0, ok, len(run.lesions)))
            print(f"  {w} worker(s): {wall:.1f} s", flush=True)
        print(f"# {_header()}; {written}")
        print("| workers | patients | wall s | patients / min | patients not failed | lesions |")
        print("|---|---|---|---|---|---|")
        for w, n, wall, ppm, ok, nl in rows:
            print(f"| {w} | {n} | {wall:.1f} | {ppm:.1f} | {ok} | {nl} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    d = sub.add_parser("demo")
    d.add_argument("--keep", action="store_true", help="copy the demo output to ./bench-demo-output")
    c = sub.add_parser("cohort")
    c.add_argument("--patients", type=int, default=50)
    c.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    c.add_argument("--seed", type=int, default=2026)
    c.add_argument("--study", type=Path, default=None, help="reuse (or write once to) this study folder")
    args = ap.parse_args()
    if args.what == "demo":
        bench_demo(args.keep)
    else:
        bench_cohort(args.patients, args.workers, args.seed, args.study)


if __name__ == "__main__":
    main()
