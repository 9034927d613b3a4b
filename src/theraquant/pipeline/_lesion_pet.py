"""PET per lesion: FMISO hypoxia ratios and FDG SULpeak with the PERCIST liver reference.

Composition only: :func:`theraquant.pet.hypoxia`, :func:`~theraquant.pet.suv_peak` and
:func:`~theraquant.pet.liver_reference` on the series' own grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ._lesion_dce import Regions

__all__ = ["FmisoLesions", "fmiso_lesions", "fdg_sulpeak"]


@dataclass
class FmisoLesions:
    rows: dict[str, dict[str, Any]]
    maps: dict[str, NDArray]
    settings: dict[str, Any]
    notes: list[str]


def fmiso_lesions(suv: NDArray, regions: Regions, *, spacing_mm: tuple[float, float, float],
                  threshold: float) -> FmisoLesions:
    """FMISO hypoxia per lesion.

    Parameters
    ----------
    suv : (Z, Y, X) ndarray
        FMISO SUV, g/mL.
    regions : Regions
        Lesions, ``blood_pool`` (else ``aorta``) and ``muscle`` on the FMISO grid.
    spacing_mm : (3,) tuple
        Voxel size (z, y, x), mm.
    threshold : float
        Hypoxia cut-off on T/BP (``fmiso.threshold``; 1.29 in the radioembolization study,
        Soydal 2025).

    Returns
    -------
    FmisoLesions
        Per lesion ``t_bp`` (lesion SUVmax / blood-pool SUVmean), ``t_m`` (/ muscle SUVmean),
        ``hypoxic_fraction`` (0-1, voxels at or above ``threshold`` x the blood-pool mean),
        ``hypoxic`` (``t_bp > threshold``), ``suvmax_fmiso`` (g/mL); maps ``suv_fmiso``,
        ``fmiso_tbp`` and ``hypoxic`` (uint8) when a blood-pool reference exists.
    """
    from .. import pet

    notes: list[str] = []
    blood = regions.blood_pool if regions.blood_pool is not None and regions.blood_pool.any() else (
        regions.aorta if regions.aorta is not None and regions.aorta.any() else None)
    muscle = regions.muscle if regions.muscle is not None and regions.muscle.any() else None
    maps: dict[str, NDArray] = {"suv_fmiso": np.asarray(suv, np.float32)}
    rows: dict[str, dict[str, Any]] = {}
    if blood is None and muscle is None:
        notes.append("FMISO: no 'blood pool'/'aorta' or 'muscle' segment on the FMISO series; T/BP and T/M "
                     "cannot be computed")
    blood_value = float("nan")
    for lid, m in regions.lesions.items():
        row: dict[str, Any] = {k: float("nan") for k in ("t_bp", "t_m", "hypoxic_fraction", "suvmax_fmiso")}
        row["hypoxic"] = None
        why: list[str] = []
        if not m.any():
            why.append("lesion mask empty on the FMISO grid")
        elif blood is None and muscle is None:
            why.append("no FMISO reference region (blood pool or muscle)")
            row["suvmax_fmiso"] = float(np.max(suv[m]))
        else:
            res = pet.hypoxia(np.asarray(suv, float), m, muscle_mask=muscle, blood_mask=blood,
                              spacing_mm=spacing_mm, tumour_stat="max", reference_stat="mean",
                              threshold=float(threshold), operator=">")
            row["t_bp"] = float(res["T/BP"])
            row["t_m"] = float(res["T/M"])
            row["suvmax_fmiso"] = float(res["tumour_value"])
            if blood is not None:
                row["hypoxic_fraction"] = float(res["hypoxic_fraction"])
                # the engine's decision: T/BP > threshold (its ratio is T/BP whenever a blood pool is given)
                row["hypoxic"] = bool(res["hypoxic"]) if res["threshold_ratio"] == "T/BP" else None
                blood_value = float(res["blood_value"])
            else:
                why.append("no FMISO blood-pool segment: T/BP, hypoxic fraction and hypoxic are NaN")
        rows[lid] = {**row, "_notes": why}
    if blood is not None:
        if not np.isfinite(blood_value):
            blood_value = float(np.mean(suv[blood]))
        tbp = np.asarray(suv, np.float64) / blood_value
        maps["fmiso_tbp"] = tbp.astype(np.float32)
        maps["hypoxic"] = (tbp > threshold).astype(np.uint8)
    settings = {"threshold": float(threshold), "reference_blood": "blood pool" if regions.blood_pool is not None
                and blood is regions.blood_pool else ("aorta" if blood is not None else None),
                "reference_muscle": muscle is not None, "blood_pool_suvmean": blood_value}
    return FmisoLesions(rows=rows, maps=maps, settings=settings, notes=notes)


def fdg_sulpeak(sul: NDArray, regions: Regions, *, spacing_mm: tuple[float, float, float],
                fallback_masks: dict[str, NDArray] | None = None) -> tuple[dict[str, float], dict[str, Any], list[str]]:
    """SULpeak (1 mL sphere, g/mL) of each lesion and the PERCIST liver reference of one FDG scan.

    ``fallback_masks`` holds lesion masks on this grid (e.g. the baseline masks resampled) for
    lesions without a segment of their own on this scan. Returns (SULpeak per lesion, reference
    {"mean", "sd"} or NaN, notes).
    """
    from .. import pet
    from ..errors import TheraquantError

    notes: list[str] = []
    values = np.asarray(sul, float)
    peaks: dict[str, float] = {}
    masks = dict(fallback_masks or {})
    masks.update({k: v for k, v in regions.lesions.items()})
    for lid, m in masks.items():
        peaks[lid] = float(pet.suv_peak(values, m, spacing_mm)) if m.any() else float("nan")
    ref: dict[str, Any] = {"mean": float("nan"), "sd": float("nan")}
    liver = regions.normal_liver()
    if liver is None or not liver.any():
        notes.append("no liver segment on the FDG scan: no PERCIST liver reference")
    else:
        try:
            r = pet.liver_reference(values, spacing_mm, liver_mask=liver)
            ref = {"mean": float(r["mean"]), "sd": float(r["sd"])}
        except TheraquantError as exc:
            notes.append(f"PERCIST liver reference not measurable: {exc}")
    return peaks, ref, notes
