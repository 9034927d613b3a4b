"""Absorbed dose per lesion: 90Y permanent implant from post-therapy PET, 177Lu from a TAC fit.

Composition only: the decay reference of a PET/SPECT series comes from
:func:`theraquant.pet.suv_factor` (START / ADMIN / NONE rules, vendor conventions), the dose
from :mod:`theraquant.dosimetry` (``activity_from_concentration``, ``permanent_implant_tia``,
``calibrate_activity``, ``fit_tac``, ``absorbed_dose``, ``dose_volume``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Sequence

import numpy as np
from numpy.typing import NDArray

from ..errors import TheraquantError
from ._lesion_dce import Regions

__all__ = ["activity_at_administration", "y90_dose", "lu177_dose", "dose_rows", "DoseResult"]

#: at most this many points per DVH curve (evenly spaced in rank, the first and last kept)
DVH_POINTS = 200


def _flat(seq: Any) -> list:
    out: list = []
    for h in seq:
        out.extend(h if isinstance(h, list) else [h])
    return out


def _first_datetime(v: Any) -> datetime | None:
    if v is None:
        return None
    if isinstance(v, (list, tuple)):
        vals = [_first_datetime(x) for x in v]
        vals = [x for x in vals if x is not None]
        return min(vals) if vals else None
    try:
        return datetime.fromisoformat(str(v))
    except ValueError:
        return None


def activity_at_administration(stored: NDArray, headers: Sequence[Any], *, names: Sequence[str] | None = None,
                               decay_correction: str | None = None) -> tuple[NDArray, dict[str, Any]]:
    """Activity concentration at the administration time, Bq/mL, from a quantitative PET/SPECT series.

    The series' own decay reference (DecayCorrection START: scan start; ADMIN: administration;
    NONE: each frame's acquisition) is resolved by :func:`theraquant.pet.suv_factor`: its body-weight
    SUV factor is ``body_size_g / (D0 x decay to the reference)``, so ``C x factor x D0 / body_size_g``
    is ``C`` taken back to the administration time (RadiopharmaceuticalStartDateTime). Weight and
    dose cancel: when the header lacks them, plausible placeholder values (70 kg, 1 GBq: inside the
    plausibility table, so no spurious unit warning) are passed and recorded. They cannot cancel for
    a series stored as SUV (Units GML/CM2ML): that is an error asking for the missing tag.

    Parameters
    ----------
    stored : (Z, Y, X) ndarray
        Rescaled voxel values, Bq/mL, slices in the order of ``headers``.
    headers : sequence of pydicom Dataset
        One per slice (z order; lists per slice of frames are flattened).
    decay_correction : str, optional
        Override of DecayCorrection (e.g. "NONE" for an NM series without the tag).

    Returns
    -------
    (ndarray, dict)
        Bq/mL at administration; constants (injection and reference datetimes, uptake time s,
        injected dose Bq when in the header, decay correction, placeholders used).
    """
    from .. import pet

    flat = _flat(headers)
    overrides: dict[str, Any] = {}
    placeholders: list[str] = []
    h0 = flat[0]
    if not getattr(h0, "PatientWeight", None):
        overrides["weight_kg"] = 70.0  # cancels (see above); a plausible value raises no unit warning
        placeholders.append("weight_kg")
    seq = getattr(h0, "RadiopharmaceuticalInformationSequence", None)
    dose_tag = getattr(seq[0], "RadionuclideTotalDose", None) if seq else None
    if not dose_tag:
        overrides["injected_dose_bq"] = 1.0e9  # cancels (see above)
        placeholders.append("injected_dose_bq")
    if decay_correction is not None:
        overrides["decay_correction"] = decay_correction
    conv = pet.suv_factor(flat, normalization="bw", names=names, **overrides)
    factors = np.asarray(conv.factors, float).reshape(stored.shape[0], -1)[:, 0]
    c = conv.constants
    if placeholders and "stored_suv_type" in c:
        raise TheraquantError(
            f"{names[0] if names else 'the series'}: its values are SUV ({c['stored_suv_type']}), and "
            f"{' and '.join(placeholders)} missing from the header cannot cancel in SUV -> Bq/mL; "
            "export the series in Bq/mL (Units BQML) or with PatientWeight and RadionuclideTotalDose")
    scale = factors * float(c["injected_dose_Bq"]) / float(c["body_size_g"])
    out = np.asarray(stored, float) * scale[:, None, None]
    info = {"injection_datetime": c.get("injection_datetime"),
            "reference_datetime": c.get("reference_datetime", c.get("acquisition_datetime")),
            "uptake_time_s": c.get("uptake_time_s"), "decay_correction": c.get("decay_correction"),
            "injected_dose_Bq": None if "injected_dose_bq" in placeholders else float(c["injected_dose_Bq"]),
            "half_life_s": c.get("half_life_s"), "placeholders": placeholders,
            "decisions": list(conv.decisions)}
    return out, info


@dataclass
class DoseResult:
    dose_gy: NDArray
    activity_bq_ml: NDArray | None
    settings: dict[str, Any]
    notes: list[str]
    nuclide: str
    effective_half_life_h: float | None = None


def y90_dose(activity_bq_ml: NDArray, spacing_mm: tuple[float, float, float], *, method: str = "ldm",
             density_g_ml: float = 1.04, normalize_to_injected: bool = False, injected_bq: float | None = None,
             liver: NDArray[np.bool_] | None = None) -> DoseResult:
    """90Y permanent-implant dose, Gy, from activity concentration at administration (Bq/mL).

    ``dosimetry.activity_from_concentration`` -> (optionally ``calibrate_activity`` to the injected
    activity inside ``liver``) -> ``permanent_implant_tia`` -> ``absorbed_dose`` (LDM: D = k A / m,
    k = 49.67 Gy kg/GBq; or VSV, Lanconelli 2012 kernels).
    """
    from .. import dosimetry

    notes: list[str] = []
    a = dosimetry.activity_from_concentration(np.clip(np.nan_to_num(activity_bq_ml), 0, None), spacing_mm)
    if normalize_to_injected:
        if injected_bq is None:
            raise TheraquantError("dosimetry.normalize_to_injected is true but the 90Y series has no "
                                  "RadionuclideTotalDose (0018,1074); set it to false or fix the header")
        a = dosimetry.calibrate_activity(a, administered_bq=float(injected_bq), mask=liver)
        notes.append("activity renormalised to the injected activity inside the liver")
    tia = dosimetry.permanent_implant_tia(a, "Y-90")
    dose = dosimetry.absorbed_dose(tia, spacing_mm, nuclide="Y-90", method=method, density=float(density_g_ml))
    return DoseResult(dose_gy=np.asarray(dose), activity_bq_ml=np.asarray(activity_bq_ml, float),
                      settings={"nuclide": "Y-90", "method": method, "density_g_ml": float(density_g_ml),
                                "normalize_to_injected": bool(normalize_to_injected),
                                "engine": dict(getattr(dose, "provenance", {}))},
                      notes=notes, nuclide="Y-90")


def lu177_dose(activity_bq_ml: Sequence[NDArray], times_h: Sequence[float], spacing_mm: tuple[float, float, float],
               *, region: NDArray[np.bool_], method: str = "ldm", density_g_ml: float = 1.04) -> DoseResult:
    """177Lu dose, Gy, from activity concentrations (Bq/mL, one grid) at several times after administration.

    Voxelwise :func:`theraquant.dosimetry.fit_tac` (model chosen by AICc) over the voxels of
    ``region`` (activity elsewhere is taken as zero), TIA MBq h -> Bq s, then
    :func:`~theraquant.dosimetry.absorbed_dose`.
    """
    from .. import dosimetry

    times = np.asarray(times_h, float)
    order = np.argsort(times)
    stack = np.stack([np.asarray(activity_bq_ml[i], float) for i in order], axis=-1)
    times = times[order]
    a_mbq = np.stack([dosimetry.activity_from_concentration(np.clip(np.nan_to_num(stack[..., i]), 0, None),
                                                             spacing_mm) for i in range(times.size)], -1) / 1e6
    tia = np.zeros(stack.shape[:3])
    notes: list[str] = []
    eff = None
    if region.any():
        fit = dosimetry.fit_tac(times, a_mbq[region], nuclide="Lu-177")
        tia[region] = np.asarray(fit.tia_mbq_h, float) * 1e6 * 3600.0
        n_trap = int(np.count_nonzero(~np.asarray(fit.success)))
        if n_trap:
            notes.append(f"177Lu: {n_trap} of {int(region.sum())} voxel TACs integrated by the trapezoid fallback")
        eff = float(np.nanmedian(np.asarray(fit.effective_half_life_h, float)))
    dose = dosimetry.absorbed_dose(tia, spacing_mm, nuclide="Lu-177", method=method, density=float(density_g_ml))
    return DoseResult(dose_gy=np.asarray(dose), activity_bq_ml=None,
                      settings={"nuclide": "Lu-177", "method": method, "density_g_ml": float(density_g_ml),
                                "times_h": times.tolist(), "tac_fit": "voxelwise dosimetry.fit_tac (auto, AICc)",
                                "engine": dict(getattr(dose, "provenance", {}))},
                      notes=notes, nuclide="Lu-177", effective_half_life_h=eff)


def _thin(dvh: Any) -> tuple[NDArray, NDArray]:
    d = np.asarray(dvh["dose_Gy"], float)
    v = np.asarray(dvh["volume_pct"], float)
    if d.size > DVH_POINTS:
        idx = np.unique(np.linspace(0, d.size - 1, DVH_POINTS).round().astype(int))
        d, v = d[idx], v[idx]
    return d, v


def dose_rows(dose: DoseResult, regions: Regions) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]],
                                                          dict[str, Any]]:
    """Per lesion ``dmean_gy``, ``d70_gy``, ``v100_pct`` (dosimetry.dose_volume), DVH rows (lesions and
    ``liver`` = normal liver), and the patient's ``dose_normal_liver_gy`` and ``tumour_to_normal_ratio``
    (mean dose over all lesions together / normal-liver mean dose)."""
    from .. import dosimetry

    rows: dict[str, dict[str, Any]] = {}
    dvh: list[dict[str, Any]] = []
    kw = {"d": (70,), "v_gy": (100,), "nuclide": dose.nuclide}
    if dose.effective_half_life_h is not None and np.isfinite(dose.effective_half_life_h):
        kw["effective_half_life_h"] = dose.effective_half_life_h
    for lid, m in regions.lesions.items():
        if not m.any():
            rows[lid] = {"dmean_gy": np.nan, "d70_gy": np.nan, "v100_pct": np.nan,
                         "_notes": ["lesion mask empty on the dose grid"]}
            continue
        r = dosimetry.dose_volume(dose.dose_gy, m, **kw)
        rows[lid] = {"dmean_gy": float(r["Dmean"]), "d70_gy": float(r["D70"]), "v100_pct": float(r["V100"]),
                     "_notes": []}
        d, v = _thin(r["dvh"])
        dvh.append({"lesion": lid, "dose_gy": d, "volume_pct": v})
    patient: dict[str, Any] = {"dose_normal_liver_gy": np.nan, "tumour_to_normal_ratio": np.nan}
    normal = regions.normal_liver()
    if normal is not None and normal.any():
        r = dosimetry.dose_volume(dose.dose_gy, normal, **kw)
        patient["dose_normal_liver_gy"] = float(r["Dmean"])
        d, v = _thin(r["dvh"])
        dvh.append({"lesion": "liver", "dose_gy": d, "volume_pct": v})
        tum = regions.any_lesion(normal.shape)
        if tum.any() and r["Dmean"] > 0:
            patient["tumour_to_normal_ratio"] = float(dosimetry.dose_volume(dose.dose_gy, tum, **kw)["Dmean"]
                                                      / r["Dmean"])
    return rows, dvh, patient
