"""The demo: the built-in synthetic liver DCE phantom through the same path as ``dce fit``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from ..errors import TheraquantError
from ._dce import run_dce_fit
from ._outputs import prepare_out_dir

__all__ = ["DemoRun", "run_demo", "DEMO_MODELS"]

DEMO_MODELS = ("dual_input_etofts", "etofts", "tofts", "patlak")


@dataclass(frozen=True)
class DemoRun:
    """What :func:`run_demo` wrote.

    Attributes
    ----------
    vs_truth : pandas.DataFrame
        Per label and parameter: truth median, fitted median, relative error, IQR, failed fraction.
    out_dir, input_dir, truth_dir, maps_dir : Path
        Folders written.
    maps : tuple of Path
        The parametric maps.
    vs_truth_csv, figure : Path
        ``summary_vs_truth.csv`` and ``demo.png``.
    """

    vs_truth: Any
    out_dir: Path
    input_dir: Path
    truth_dir: Path
    maps_dir: Path
    maps: tuple[Path, ...]
    vs_truth_csv: Path
    figure: Path


def run_demo(out_dir: str | Path, *, model: str = "dual_input_etofts", noise_sd: float = 0.02,
             seed: int = 2026, overwrite: bool = False,
             progress: Optional[Callable[[int, int], None]] = None) -> DemoRun:
    """Generate the liver phantom, fit it as ``theraquant dce fit`` would, compare with the truth.

    The phantom (:func:`theraquant.phantom.liver_dce_phantom`, noise SD ``noise_sd`` mM) is
    written as a 4-D NIfTI with its label image; the arterial and portal-venous inputs are
    measured on the aorta and portal-vein labels; ``model`` is fitted voxel by voxel; maps,
    ``dce_fit.json``, ``summary.csv``, ``summary_vs_truth.csv`` and a PNG figure are written.

    Parameters
    ----------
    out_dir : str or Path
        Output folder (refused when not empty unless ``overwrite``).
    model : {"dual_input_etofts", "etofts", "tofts", "patlak"}
        Model fitted (the phantom's truth is Ktrans, ve, vp and fa).
    noise_sd : float
        Gaussian noise added to the phantom's concentrations, mM.
    seed : int
        Seed of the noise.
    progress : callable, optional
        ``progress(done, total)`` in voxels.
    """
    from ..dce import summarize_maps
    from ..image import Image
    from ..io import write_nifti
    from ..phantom import LIVER_LABELS, liver_dce_phantom
    from ..report import dce_phantom_figure

    if model not in DEMO_MODELS:
        raise TheraquantError(f"--model must be one of {', '.join(DEMO_MODELS)} for the demo (the phantom's "
                              f"truth is Ktrans, ve, vp, fa), got {model!r}")
    out_dir = prepare_out_dir(out_dir, overwrite)
    ph = liver_dce_phantom(noise_sd=noise_sd, rng=seed)
    inp = out_dir / "input"
    dce_path = write_nifti(ph.image, inp / "dce.nii.gz",
                           sidecar={"Description": "synthetic liver DCE phantom (concentration)", **ph.settings})
    lab_path = write_nifti(ph.labels, inp / "labels.nii.gz", dtype=np.int16,
                           sidecar={"LabelNames": dict(LIVER_LABELS)})
    truth_dir = out_dir / "truth"
    for name, arr in ph.truth.items():
        write_nifti(Image(arr, ph.image.affine), truth_dir / f"{name}.nii.gz",
                    sidecar={"Parameter": name, "Description": "ground truth of the phantom"})
    # the same code path as `theraquant dce fit`: ROI input functions from the aorta and portal vein labels
    maps_dir = out_dir / "maps"
    run = run_dce_fit(dce_path, maps_dir, mask=lab_path, aif="roi", aif_roi="5", portal="6",
                      hct=ph.settings["hct"], model=model, overwrite=True, label_names=dict(LIVER_LABELS),
                      progress=progress)
    res = run.fit
    truth_tab = summarize_maps({p: ph.truth[p] for p in ph.truth if p in res},
                               np.where(np.isin(ph.labels.array, [5, 6]), 0, ph.labels.array),
                               label_names=dict(LIVER_LABELS))
    both = run.summary.merge(truth_tab[["label", "parameter", "median"]].rename(columns={"median": "truth_median"}),
                             on=["label", "parameter"], how="inner")
    both["median_rel_error"] = both["median"] / both["truth_median"] - 1.0
    cols = ["label", "name", "parameter", "units", "n_voxels", "truth_median", "median", "median_rel_error",
            "iqr", "p10", "p90", "failed_fraction"]
    both = both[cols]
    vs_truth = out_dir / "summary_vs_truth.csv"
    both.to_csv(vs_truth, index=False, float_format="%.6g")
    slice_z = int(np.argmax(np.isin(ph.labels.array, [2, 3, 4]).sum(axis=(1, 2))))
    png = dce_phantom_figure(out_dir / "demo.png", ph, res, model, slice_z)
    maps = tuple(p for p in run.written if p.name.endswith((".nii.gz", ".nii")))
    return DemoRun(both, out_dir, inp, truth_dir, maps_dir, maps, vs_truth, png)
