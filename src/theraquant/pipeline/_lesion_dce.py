"""DCE-MRI per lesion: signal -> concentration -> measured inputs -> voxelwise fit -> lesion medians.

Composition only: every number comes from :mod:`theraquant.dce` (``t1_vfa``,
``signal_to_concentration``, ``aif.measured``, ``bolus_arrival``, ``fit``, ``simulate``,
``iaugc``). The arrays in and out are on the DCE series' own grid.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..errors import TheraquantError

__all__ = ["DceLesions", "Regions", "dce_lesions", "vfa_t1"]

#: lesion-table column -> dce.fit key (CAPLEX units: Ktrans, kep 1/min; ve, vp mL/mL; fa 1)
DCE_COLUMNS = {"ktrans": "Ktrans", "kep": "kep", "ve": "ve", "vp": "vp", "fa": "fa"}
DCE_UNITS = {"ktrans": "1/min", "kep": "1/min", "ve": "mL/mL", "vp": "mL/mL", "fa": "1", "iaugc60": "mM s",
             "t10": "s", "anatomy_mr": "a.u."}
#: the tissue default named when no VFA series exists (T10 of normal liver at 1.5 T, s)
TISSUE_DEFAULT_NAME = "liver"


@dataclass
class Regions:
    """Masks of one image grid, boolean arrays of its spatial shape.

    ``lesions`` maps the lesion id (the ``<id>`` text of "lesion <id>") to its mask; the
    reference regions are None when the study has no such segment on this grid.
    """

    lesions: dict[str, NDArray[np.bool_]] = field(default_factory=dict)
    liver: NDArray[np.bool_] | None = None
    muscle: NDArray[np.bool_] | None = None
    blood_pool: NDArray[np.bool_] | None = None
    aorta: NDArray[np.bool_] | None = None
    portal_vein: NDArray[np.bool_] | None = None
    sources: dict[str, str] = field(default_factory=dict)  # region -> segment label as written

    def any_lesion(self, shape: tuple[int, ...]) -> NDArray[np.bool_]:
        out = np.zeros(shape, bool)
        for m in self.lesions.values():
            out |= m
        return out

    def normal_liver(self) -> NDArray[np.bool_] | None:
        """The liver segment minus every lesion (issue #10's ``liver`` reference)."""
        if self.liver is None:
            return None
        return self.liver & ~self.any_lesion(self.liver.shape)


@dataclass
class DceLesions:
    """What :func:`dce_lesions` computed on one DCE series."""

    rows: dict[str, dict[str, Any]]            # lesion id -> columns (without suffix)
    maps: dict[str, NDArray]                   # map name (without suffix) -> float32 array (z, y, x)
    curves: list[dict[str, Any]]               # rows of curves.parquet (without patient/session)
    model: str
    settings: dict[str, Any]
    notes: list[str]


def vfa_t1(signals: NDArray, flip_angles_deg: NDArray, tr_s: float, mask: NDArray[np.bool_]) -> NDArray:
    """T1 map (s) from VFA signals ``(z, y, x, K)`` on the voxels of ``mask`` (NaN elsewhere).

    :func:`theraquant.dce.t1_vfa` (nonlinear SPGR fit, Deoni 2003 start) on the masked voxels only.
    """
    from .. import dce

    t1 = np.full(signals.shape[:3], np.nan)
    if mask.any():
        res = dce.t1_vfa(np.asarray(signals[mask], float), np.asarray(flip_angles_deg, float), float(tr_s))
        t1[mask] = np.where(res["valid"], res["T1"], np.nan)
    return t1


def _nanmedian(v: NDArray) -> float:
    v = np.asarray(v, float)
    v = v[np.isfinite(v)]
    return float(np.median(v)) if v.size else float("nan")


def dce_lesions(signal: NDArray, t_s: NDArray, regions: Regions, *, tr_s: float, flip_angle_deg: float,
                r1: float, hematocrit: float, t10_tissue: NDArray | float, t10_blood: float,
                n_baseline: int | None = None, model: str | None = None,
                fit_region: str = "lesions+liver") -> DceLesions:
    """Per-lesion DCE biomarkers from one 4-D SPGR series.

    Parameters
    ----------
    signal : (Z, Y, X, T) ndarray
        DCE signal, arbitrary units.
    t_s : (T,) ndarray
        Frame times, s.
    regions : Regions
        Lesion masks and the input regions (``aorta``, else ``blood_pool``; ``portal_vein``)
        on the DCE grid.
    tr_s, flip_angle_deg : float
        Repetition time (s) and flip angle (degrees) of the series.
    r1 : float
        Relaxivity, 1/(s mM).
    hematocrit : float
        Blood -> plasma for the measured inputs (plasma = blood / (1 - Hct)).
    t10_tissue : float or (Z, Y, X) ndarray
        Pre-contrast T1 of tissue voxels, s (a VFA map on this grid, or one default value).
        Voxels with a non-finite or non-positive T10 become NaN curves (not fitted, counted in
        ``notes``).
    t10_blood : float
        Pre-contrast T1 of blood, s, for the aorta / portal-vein voxels.
    n_baseline : int, optional
        Pre-contrast frames; default: the frames before the bolus arrival in the arterial
        signal (:func:`theraquant.dce.bolus_arrival`), at least 1.
    model : str, optional
        Tracer-kinetic model; default ``dual_input_etofts`` with a portal-vein region, else
        ``etofts``.

    Returns
    -------
    DceLesions
        Per lesion: ``ktrans``, ``kep`` (1/min), ``ve``, ``vp`` (mL/mL), ``fa`` (dual input,
        else NaN), ``iaugc60`` (mM s): medians over the lesion's successfully fitted voxels;
        ``fit_success_frac``, ``fit_r2_median``, ``dce_model``. Maps on the grid, curves
        (mean lesion concentration, the model fitted to it, the inputs).
    """
    from .. import dce

    notes: list[str] = []
    signal = np.asarray(signal)
    t = np.asarray(t_s, float)
    shape = signal.shape[:3]
    if signal.ndim != 4 or signal.shape[3] != t.size:
        raise TheraquantError(f"DCE signal must be 4-D (z, y, x, t) with one time per frame; got shape "
                              f"{signal.shape} and {t.size} frame times")
    art_name = "aorta" if regions.aorta is not None and regions.aorta.any() else (
        "blood pool" if regions.blood_pool is not None and regions.blood_pool.any() else None)
    if art_name is None:
        raise TheraquantError("DCE: no 'aorta' or 'blood pool' segment on the DCE series, so no arterial input "
                              "can be measured; add an aorta segment to the SEG of the DCE series")
    art = regions.aorta if art_name == "aorta" else regions.blood_pool
    pv = regions.portal_vein if regions.portal_vein is not None and regions.portal_vein.any() else None
    if model is None:
        model = "dual_input_etofts" if pv is not None else "etofts"
    if dce.MODELS[model].n_inputs == 2 and pv is None:
        raise TheraquantError(f"dce.model {model!r} needs a portal-venous input but the DCE series has no "
                              "'portal vein' segment; add one or choose a single-input model")
    lesion_any = regions.any_lesion(shape)
    tissue = lesion_any.copy()
    if fit_region == "lesions+liver" and regions.liver is not None:
        tissue |= regions.liver
    tissue &= ~art
    if pv is not None:
        tissue &= ~pv

    # baseline frames from the arterial signal's arrival
    art_signal = signal[art].astype(float).mean(axis=0)
    if n_baseline is None:
        arrival = float(dce.bolus_arrival(t, art_signal))
        n_baseline = int(max(1, np.count_nonzero(t < arrival))) if np.isfinite(arrival) else 1
        if not np.isfinite(arrival):
            notes.append("no bolus arrival found in the arterial signal; 1 baseline frame used")
    n_baseline = int(n_baseline)

    # signal -> concentration (blood T10 in the vessels, tissue T10 elsewhere)
    t10_map = np.broadcast_to(np.asarray(t10_tissue, float), shape)
    blood_sel = art | (pv if pv is not None else np.zeros(shape, bool))
    sel = tissue | blood_sel
    t10_sel = np.where(blood_sel[sel], float(t10_blood), t10_map[sel])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dce.InvalidSignalWarning)
        conc_res = dce.signal_to_concentration(signal[sel].astype(float), t10=t10_sel, r1=float(r1), tr=float(tr_s),
                                               flip_angle=float(flip_angle_deg), n_baseline=n_baseline,
                                               return_info=True)
    conc_sel = np.asarray(conc_res.conc)
    # concentration only for the selected voxels (never a whole-volume float64 copy of the series)
    pos = np.full(shape, -1, dtype=np.int64)
    pos[sel] = np.arange(int(sel.sum()))

    def conc(mask: NDArray[np.bool_]) -> NDArray:
        return conc_sel[pos[mask & sel]]

    cp = dce.aif.measured(t, conc(art), hct=float(hematocrit))
    cpv = dce.aif.measured(t, conc(pv), hct=float(hematocrit)) if pv is not None else None
    arrival_s = float(dce.bolus_arrival(t, cp, n_baseline=n_baseline))

    # voxelwise fit of the tissue voxels
    ct = conc(tissue)
    fit_kw: dict[str, Any] = {"cp": cp}
    if dce.MODELS[model].n_inputs == 2:
        fit_kw["cp_portal"] = cpv
    res = dce.fit(t, ct, model, **fit_kw)
    maps: dict[str, NDArray] = {}
    ok = np.asarray(res["success"], bool)
    for col, key in DCE_COLUMNS.items():
        if key in res:
            m = np.full(shape, np.nan, np.float32)
            m[tissue] = np.where(ok, res[key], np.nan)
            maps[col] = m
    r2 = np.full(shape, np.nan, np.float32)
    r2[tissue] = res["r2"]
    iau = np.full(shape, np.nan, np.float32)
    iau[tissue] = dce.iaugc(t, ct, window=60.0, arrival=arrival_s if np.isfinite(arrival_s) else None)
    maps["iaugc60"] = iau
    t10_out = np.full(shape, np.nan, np.float32)
    t10_out[sel] = t10_sel
    maps["t10"] = t10_out
    maps["anatomy_mr"] = signal[..., :n_baseline].astype(np.float32).mean(axis=-1)
    success = np.zeros(shape, bool)
    success[tissue] = ok

    rows: dict[str, dict[str, Any]] = {}
    curves: list[dict[str, Any]] = [{"lesion": "", "kind": "aif", "t_s": t.copy(), "value_mM": cp}]
    if cpv is not None:
        curves.append({"lesion": "", "kind": "portal", "t_s": t.copy(), "value_mM": cpv})
    for lid, m in regions.lesions.items():
        row: dict[str, Any] = {"dce_model": model}
        n = int(m.sum())
        for col in (*DCE_COLUMNS, "iaugc60"):
            row[col] = _nanmedian(maps[col][m]) if col in maps and n else float("nan")
        row["fit_success_frac"] = float(success[m].mean()) if n else float("nan")
        row["fit_r2_median"] = _nanmedian(r2[m & success])
        why = []
        if not n:
            why.append("lesion mask empty on the DCE grid")
        elif not success[m].any():
            why.append("no voxel of the lesion fitted")
        if model not in ("dual_input_etofts", "dual_input_1c"):
            row["fa"] = float("nan")
        rows[lid] = {**row, "_notes": why}
        if n:
            mean_curve = np.nanmean(conc(m), axis=0)
            curves.append({"lesion": lid, "kind": "data", "t_s": t.copy(), "value_mM": mean_curve})
            if np.all(np.isfinite(mean_curve)):
                f1 = dce.fit(t, mean_curve, model, **fit_kw)
                if bool(f1["success"]):
                    sim = dce.simulate(t, model, f1, delay=float(f1["delay"]), **fit_kw)
                    curves.append({"lesion": lid, "kind": "fit", "t_s": t.copy(), "value_mM": sim})
    n_bad = int(np.count_nonzero(~np.all(np.isfinite(conc_sel), axis=-1)))
    if n_bad:
        notes.append(f"{n_bad} voxel curves with invalid signal (NaN concentration) not fitted")
    settings = {"model": model, "n_baseline": n_baseline, "arterial_region": art_name,
                "portal_region": "portal vein" if pv is not None else None, "tr_s": float(tr_s),
                "flip_angle_deg": float(flip_angle_deg), "r1_per_mM_s": float(r1), "hematocrit": float(hematocrit),
                "t10_blood_s": float(t10_blood), "arrival_s": arrival_s, "n_fitted_voxels": int(tissue.sum()),
                "fit": {k: v for k, v in dict(res.settings).items() if isinstance(v, (int, float, str, bool))}}
    return DceLesions(rows=rows, maps=maps, curves=curves, model=model, settings=settings, notes=notes)
