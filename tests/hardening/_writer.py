"""Child process for the kill-during-write tests: writes the same results over and over.

Usage: python _writer.py OUT_DIR N_ROUNDS. Every round ``i`` writes two maps whose first voxel is
``i``, each with a sidecar recording ``"Round": i``, a JSON record, a provenance record, and a CSV and a
Parquet table of ``i + 1`` rows. It prints "ready" once a first round is complete.
"""

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from theraquant import Image
from theraquant.io import write_json, write_nifti, write_table
from theraquant.provenance import write_json as write_record


def main() -> None:
    out = Path(sys.argv[1])
    n_rounds = int(sys.argv[2])
    shape = (24, 64, 64)  # ~400 kB as float32: long enough to be caught mid-write
    rng = np.random.default_rng(0)
    for i in range(n_rounds):
        arr = rng.random(shape, dtype=np.float32)  # incompressible: gzip takes a while
        arr[0, 0, 0] = i  # the round, to match the map with its sidecar
        img = Image.from_spacing(arr, 2.0)
        write_nifti(img, out / "map.nii.gz", sidecar={"Round": i})
        write_nifti(img, out / "raw.nii", sidecar={"Round": i})
        write_json({"Round": i, "values": list(range(2000))}, out / "record.json")
        write_record({"Round": i, "values": list(range(2000))}, out / "provenance.json")
        table = pd.DataFrame({"round": np.full(i + 1, i), "x": np.arange(i + 1) * 0.5})
        write_table(table, out / "table.csv")
        write_table(table, out / "table.parquet")
        if i == 0:
            print("ready", flush=True)
    print("done", flush=True)


if __name__ == "__main__":
    main()
