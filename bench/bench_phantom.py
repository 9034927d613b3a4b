"""Writing the phantom studies: the default TARE (12 patients) and PRRT (10 patients) studies.

Run: python bench/bench_phantom.py [--workers N]
Reports the wall time of each writer (1 and 2 processes), the number of files, and the
DICOM writer's per-file time against pydicom's own ``Dataset.save_as`` on the same 4-D series
(the template-patching fast path vs encoding every file).
Target (team brief): both studies written in under 20 s on the 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np


def count(root: Path) -> int:
    return sum(1 for p in root.rglob("*") if p.is_file())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, nargs="*", default=[1, 2])
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    t0 = time.perf_counter()
    import highdicom  # noqa: F401
    import pydicom

    from theraquant.image import Image
    from theraquant.io import write_dicom_series
    from theraquant.phantom import write_prrt_study, write_tare_study

    print(f"imports {time.perf_counter() - t0:.1f} s; {platform.machine()}, {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.1f}")
    # per-file writer vs pydicom encoding every file
    img = Image.from_spacing(np.random.default_rng(0).uniform(0, 1000, (10, 64, 64, 34)), (8.0, 4.5, 4.5),
                             frame_times_s=np.arange(34) * 8.0)
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        files = write_dicom_series(img, Path(d) / "a", modality="MR", headers={"PatientID": "B"})
        fast = (time.perf_counter() - t) / len(files)
        t = time.perf_counter()
        for i, f in enumerate(files):
            ds = pydicom.dcmread(f)
            ds.SOPInstanceUID = pydicom.uid.generate_uid()
            ds.save_as(Path(d) / f"b{i}", enforce_file_format=True)
        slow = (time.perf_counter() - t) / len(files)
    print(f"per file: write_dicom_series {fast * 1e3:.2f} ms; pydicom read+save_as {slow * 1e3:.2f} ms")
    for w in args.workers:
        with tempfile.TemporaryDirectory() as d:
            t = time.perf_counter()
            write_tare_study(Path(d) / "tare", workers=w)
            t_tare = time.perf_counter() - t
            t = time.perf_counter()
            write_prrt_study(Path(d) / "prrt", workers=w)
            t_prrt = time.perf_counter() - t
            print(f"workers={w}: TARE {t_tare:.1f} s ({count(Path(d) / 'tare')} files), PRRT {t_prrt:.1f} s "
                  f"({count(Path(d) / 'prrt')} files), both {t_tare + t_prrt:.1f} s; load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
