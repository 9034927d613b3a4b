"""Whole-liver DCE fit end to end: a 4-D NIfTI on disk -> parametric maps on disk.

Issue #4 target: 256 x 256 x 40 voxels x 60 frames (2.6 M curves), extended Tofts, in under 60 s
and under 4 GB peak memory, chunked (never the whole float64 working set at once).

What is timed: ``theraquant dce fit VOLUME.nii --out DIR --model etofts --aif parker`` in a fresh
Python process (imports, numba loading its cached kernels, reading the memory-mapped NIfTI slab by
slab, the batched fit, writing every map as .nii.gz, the JSON sidecar with the input's SHA-256 and
the summary table). Peak memory is that process's maximum resident set size (``os.wait4``
rusage, the same figure as ``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss``).

Alternative, same data, same run (``--compare-unchunked``): the naive path in a fresh process:
load the whole volume as float64, one ``dce.fit`` call on all curves, write the maps.

The synthetic volume: every voxel an extended-Tofts curve (Ktrans 0.05-0.5 1/min, ve 0.1-0.5,
vp 0-0.1; 4096 distinct parameter sets spread at random over the voxels), Parker AIF (plasma,
hct 0.42) arriving at 15 s, frames every 5 s, Gaussian noise 0.01 mM, float32 uncompressed
NIfTI. The file has just been written, so it is read from the page cache (a cold disk read of
630 MB adds the disk's time).

Usage::

    python bench/bench_dce_volume.py                       # the issue's size
    python bench/bench_dce_volume.py --shape 10 256 256    # a quarter
    python bench/bench_dce_volume.py --compare-unchunked
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_volume(path: Path, shape: tuple[int, int, int], n_frames: int, *, seed: int = 0,
                noise_sd: float = 0.01, n_distinct: int = 4096, model: str = "etofts"):
    """Write the synthetic (z, y, x, t) volume as an uncompressed NIfTI; return t, cp and the truth.

    ``model="dual_input_etofts"``: the portal input is modelled from the AIF
    (``aif.portal_venous``, as ``dce fit --portal model`` does) and fa ~ U(0.05, 0.9).
    """
    import nibabel as nib

    from theraquant import dce

    rng = np.random.default_rng(seed)
    t = np.arange(n_frames) * 5.0
    cp = dce.aif.parker(t, delay=15.0, hct=0.42)
    pars = {"Ktrans": rng.uniform(0.05, 0.5, n_distinct), "ve": rng.uniform(0.1, 0.5, n_distinct),
            "vp": rng.uniform(0.0, 0.1, n_distinct)}
    if model == "dual_input_etofts":
        pars["fa"] = rng.uniform(0.05, 0.9, n_distinct)
        curves = dce.simulate(t, model, pars, cp=cp, cp_portal=dce.aif.portal_venous(t, cp)).astype(np.float32)
    else:
        curves = dce.simulate(t, "etofts", pars, cp=cp).astype(np.float32)  # (n_distinct, T)
    nz, ny, nx = shape
    idx = rng.integers(0, n_distinct, size=shape, dtype=np.int32)
    hdr = nib.Nifti1Header()
    hdr.set_data_dtype(np.float32)
    hdr.set_data_shape((nx, ny, nz, n_frames))
    hdr.set_zooms((2.0, 2.0, 5.0, 5.0))
    hdr.set_xyzt_units("mm", "sec")
    aff = np.diag([-2.0, -2.0, 5.0, 1.0])
    hdr.set_qform(aff, code=1)
    hdr.set_sform(aff, code=1)
    hdr["vox_offset"] = 352
    with open(path, "wb") as fh:
        hdr.write_to(fh)
        fh.write(b"\0" * (352 - fh.tell()))
    data = np.memmap(path, dtype=np.float32, mode="r+", offset=352, shape=(nx, ny, nz, n_frames), order="F")
    for z in range(nz):  # (y, x, t) -> (x, y, t), one slice at a time
        sl = curves[idx[z]] + rng.normal(0.0, noise_sd, (ny, nx, n_frames)).astype(np.float32)
        data[:, :, z, :] = sl.transpose(1, 0, 2)
    data.flush()
    del data
    Path(str(path)[: -len(".nii")] + ".json").write_text(json.dumps({"FrameTimes_s": t.tolist(), "Units": "mM"}))
    truth = {k: v[idx] for k, v in pars.items()}
    return t, cp, truth


def to_signal(src: Path, dst: Path) -> None:
    """The concentration volume as SPGR signal (T10 1.2 s, TR 4 ms, 15 deg, r1 4.5/mM/s), slice by slice."""
    import shutil

    from theraquant import dce

    shutil.copyfile(src, dst)
    shutil.copyfile(str(src)[: -len(".nii")] + ".json", str(dst)[: -len(".nii")] + ".json")
    import nibabel as nib

    shape = nib.load(str(src)).shape
    data = np.memmap(dst, dtype=np.float32, mode="r+", offset=352, shape=shape, order="F")
    for z in range(shape[2]):
        data[:, :, z, :] = dce.concentration_to_signal(np.asarray(data[:, :, z, :], dtype=np.float64), t10=1.2,
                                                       r1=4.5, tr=0.004, flip_angle=15.0, m0=1000.0)
    data.flush()


def make_mask(path: Path, shape: tuple[int, int, int], fraction: float) -> Path:
    """A liver-like mask NIfTI (label 1): the same ellipse in every slice, ``fraction`` of the voxels."""
    import nibabel as nib

    nz, ny, nx = shape
    yy, xx = np.mgrid[:ny, :nx]
    r2 = ((yy - ny / 2) / ny) ** 2 + ((xx - nx / 2) / nx) ** 2
    cut = np.quantile(r2, fraction)
    plane = (r2 <= cut).astype(np.uint8)  # (y, x)
    lab = np.repeat(plane.T[:, :, None], nz, axis=2)  # (x, y, z) as the volume's NIfTI
    nib.save(nib.Nifti1Image(lab, np.diag([-2.0, -2.0, 5.0, 1.0])), str(path))
    return path


def run_child(args: list[str]) -> dict:
    """Run a child process; its wall time and its own peak RSS (os.wait4)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.stderr.write(out.decode(errors="replace"))
        raise SystemExit(f"child failed with exit code {proc.returncode}: {args[:4]}")
    return {"wall_s": wall, "peak_rss_mb": usage.ru_maxrss / 1024.0, "cpu_s": usage.ru_utime + usage.ru_stime,
            "output": out.decode(errors="replace")}


CLI = "import sys; from theraquant.cli import main; sys.argv[0] = 'theraquant'; main()"

UNCHUNKED = r"""
import sys, numpy as np
from pathlib import Path
from theraquant import dce, Image
from theraquant.io import read_nifti, write_nifti
src, out = Path(sys.argv[1]), Path(sys.argv[2])
img = read_nifti(src, mmap=False)
ct = np.asarray(img.array, dtype=np.float64)            # the whole volume in float64
t = img.frame_times_s
res = dce.fit(t, ct, "etofts", cp=dce.aif.parker(t, delay=15.0, hct=0.42))
out.mkdir(exist_ok=True)
for k in res:
    write_nifti(Image(res[k], img.affine), out / f"{k}.nii.gz", dtype=np.uint8 if k == "success" else np.float32)
"""


def accuracy(out_dir: Path, truth: dict, ext: str = ".nii.gz") -> dict:
    from theraquant.io import read_nifti

    acc = {}
    for k in ("Ktrans", "ve", "vp", "fa"):
        if k not in truth:
            continue
        est = np.asarray(read_nifti(out_dir / f"{k}{ext}").array, dtype=np.float64)
        acc[k] = float(np.nanmedian(np.abs(est - truth[k])))
    ok = np.asarray(read_nifti(out_dir / f"success{ext}").array) > 0
    fitted = np.isfinite(np.asarray(read_nifti(out_dir / f"Ktrans{ext}").array)) | ok
    acc["success_fraction"] = float(ok.sum() / max(int(fitted.sum()), 1))  # of the fitted (masked) voxels
    return acc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", type=int, nargs=3, default=(40, 256, 256), metavar=("Z", "Y", "X"))
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--chunk-voxels", type=int, default=65536)
    ap.add_argument("--compare-unchunked", action="store_true")
    ap.add_argument("--repeat", type=int, default=1, help="runs per path (best and median wall time reported)")
    ap.add_argument("--also-signal", action="store_true",
                    help="also time `dce fit --input signal` on the same volume as SPGR signal (T10 1.2 s)")
    ap.add_argument("--also-uncompressed", action="store_true",
                    help="also time `dce fit --no-compress` (maps as .nii)")
    ap.add_argument("--keep", type=Path, default=None, help="work folder to keep (default: a temp dir)")
    ap.add_argument("--dual-input", action="store_true",
                    help="issue #14: dual_input_etofts (modelled portal input) inside a liver mask")
    ap.add_argument("--mask-fraction", type=float, default=0.4, help="mask share of the voxels with --dual-input")
    a = ap.parse_args()
    model = "dual_input_etofts" if a.dual_input else "etofts"

    import numba

    import theraquant

    work = a.keep or Path(tempfile.mkdtemp(prefix="tq_bench_dce_"))
    work.mkdir(parents=True, exist_ok=True)
    nii = work / "dce.nii"
    n_vox = int(np.prod(a.shape))
    print(f"generating {a.shape} x {a.frames} frames ({n_vox:,} curves, "
          f"{n_vox * a.frames * 4 / 1e9:.2f} GB float32) in {work} ...", flush=True)
    t0 = time.perf_counter()
    _, _, truth = make_volume(nii, tuple(a.shape), a.frames, model=model)
    extra = ["--portal", "model"] if a.dual_input else []
    if a.dual_input:
        extra += ["--mask", str(make_mask(work / "liver.nii", tuple(a.shape), a.mask_fraction))]
    print(f"  written in {time.perf_counter() - t0:.1f} s", flush=True)

    # warm the numba on-disk cache once (a fresh install compiles the kernels on first use)
    warm = work / "warm.nii"
    make_volume(warm, (1, 8, 8), a.frames, model=model)
    run_child([sys.executable, "-c", CLI, "dce", "fit", str(warm), "--out", str(work / "warm_out"),
               "--model", model, "--aif", "parker", "--aif-delay", "15", "--overwrite",
               *(["--portal", "model"] if a.dual_input else [])])

    paths = []  # (name, command, output folder, map extension)
    for compress in (True, False) if a.also_uncompressed else (True,):
        maps = work / ("maps" if compress else "maps_nii")
        ext = ".nii.gz" if compress else ".nii"
        paths.append((f"theraquant dce fit (chunked, {a.chunk_voxels} curves/chunk, maps {ext})",
                      [sys.executable, "-c", CLI, "dce", "fit", str(nii), "--out", str(maps), "--model", model,
                       "--aif", "parker", "--aif-delay", "15", "--chunk-voxels", str(a.chunk_voxels), "--overwrite",
                       "--compress" if compress else "--no-compress", *extra], maps, ext))
    if a.also_signal:
        sig_nii = work / "dce_signal.nii"
        to_signal(nii, sig_nii)
        maps = work / "maps_signal"
        paths.append(("theraquant dce fit --input signal (SPGR -> mM per chunk), maps .nii.gz",
                      [sys.executable, "-c", CLI, "dce", "fit", str(sig_nii), "--out", str(maps), "--model",
                       "etofts", "--aif", "parker", "--aif-delay", "15", "--input", "signal", "--t10", "1.2",
                       "--tr", "0.004", "--flip-angle", "15", "--r1", "4.5", "--n-baseline", "3", "--overwrite"],
                      maps, ".nii.gz"))
    if a.compare_unchunked:
        maps = work / "maps_unchunked"
        paths.append(("unchunked: whole volume float64, one dce.fit call",
                      [sys.executable, "-c", UNCHUNKED, str(nii), str(maps)], maps, ".nii.gz"))
    runs: dict[str, list[dict]] = {name: [] for name, *_ in paths}
    for rep in range(a.repeat):  # interleaved, so that load from other jobs falls on every path alike
        for name, cmd, maps, ext in paths:
            r = run_child(cmd)
            side = maps / "dce_fit.json"
            r["fit_s"] = json.loads(side.read_text())["FitSeconds"] if side.exists() else float("nan")
            runs[name].append(r)
            print(f"  run {rep + 1}: {name}: {r['wall_s']:.1f} s, {r['peak_rss_mb']:.0f} MB", flush=True)
    rows = []
    for name, cmd, maps, ext in paths:
        best = min(runs[name], key=lambda r: r["wall_s"])
        walls = sorted(r["wall_s"] for r in runs[name])
        rows.append({**best, "name": name, "median_wall_s": float(np.median(walls)),
                     "peak_rss_mb": max(r["peak_rss_mb"] for r in runs[name]), **accuracy(maps, truth, ext)})

    print()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; "
          f"python {platform.python_version()}, numpy {np.__version__}, numba {numba.__version__}, "
          f"theraquant {theraquant.__version__}, NUMBA_NUM_THREADS={numba.config.NUMBA_NUM_THREADS}")
    print(f"volume {a.shape[0]} x {a.shape[1]} x {a.shape[2]} x {a.frames} frames = {n_vox:,} curves; model {model}"
          + (f", mask {100 * a.mask_fraction:.0f} % of the voxels" if a.dual_input else ""))
    print(f"{a.repeat} run(s) per path, interleaved; best wall time (its read+fit time, CPU time), median wall "
          "time, and the largest peak RSS of the runs")
    print("| path | best wall s (end to end) | median wall s | read + fit s | curves/s end to end (best) | "
          "peak RSS MB | CPU s | median abs error Ktrans / ve / vp | success |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['name']} | {r['wall_s']:.1f} | {r['median_wall_s']:.1f} | {r['fit_s']:.1f} | "
              f"{n_vox / r['wall_s']:,.0f} | "
              f"{r['peak_rss_mb']:,.0f} | {r['cpu_s']:.1f} | {r['Ktrans']:.2e} / {r['ve']:.2e} / {r['vp']:.2e}"
              f"{' / fa %.2e' % r['fa'] if 'fa' in r else ''} | "
              f"{100 * r['success_fraction']:.2f} % |")
    if a.keep is None:
        import shutil

        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
