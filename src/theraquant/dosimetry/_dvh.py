"""Dose-volume metrics per lesion: Dx, Vx, DVH, BED (Dale) and EUD."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Sequence

import numpy as np
from numpy.typing import ArrayLike

from ..errors import TheraquantError
from ..image import as_mask
from ..quantities import check_quantity
from ..results import Result, records_call
from ._nuclides import get_nuclide

__all__ = ["DoseVolumeResult", "dose_volume", "bed_permanent_implant"]


class DoseVolumeResult(Result):
    """Read-only mapping of dose-volume metrics (doses in Gy, volumes in % of the region).

    Keys: ``Dmean``, ``Dmedian``, ``Dmin``, ``Dmax``, ``D<x>`` for each x asked, ``V<y>`` for each
    y Gy asked (%), ``BEDmean`` (Gy), ``EUD`` (Gy), ``EUBED`` (Gy), ``n_voxels``, ``dvh`` (a
    pandas DataFrame with ``dose_Gy`` ascending and ``volume_pct``, the % of the region receiving
    at least that dose) and ``parameters`` (the radiobiological constants used). ``units`` gives
    each key's unit.
    """

    __slots__ = ()
    _TITLE = "dose-volume metrics"

    def __init__(self, values: Mapping[str, Any], *, provenance: Mapping[str, Any] | None = None) -> None:
        units = {k: ("%" if k.startswith("V") else "Gy") for k in values
                 if k[:1] in ("D", "V") or k in ("BEDmean", "EUD", "EUBED")}
        super().__init__(values, units=units, provenance=provenance)

    def summary(self) -> str:
        """Fixed-width text table of the scalar metrics."""
        lines = [f"{'metric':<10}{'value':>12}  unit", "-" * 28]
        for k, v in self.items():
            if isinstance(v, (int, float)):
                unit = "%" if k.startswith("V") else ("" if k == "n_voxels" else "Gy")
                lines.append(f"{k:<10}{v:>12.4g}  {unit}")
        return "\n".join(lines)


def bed_permanent_implant(dose_gy: ArrayLike, *, alpha_beta_gy: float, repair_half_time_h: float,
                          effective_half_life_h: float) -> np.ndarray:
    """Biologically effective dose for an exponentially decaying dose rate (complete decay), Gy.

    BED = D [1 + D lambda / ((mu + lambda) alpha/beta)], lambda = ln 2 / T_eff, mu = ln 2 / T_rep.

    Parameters
    ----------
    dose_gy : array_like
        Absorbed dose, Gy.
    alpha_beta_gy : float
        alpha/beta ratio of the tissue, Gy.
    repair_half_time_h : float
        Sublethal-damage repair half-time, h.
    effective_half_life_h : float
        Half-life of the dose rate, h (physical for 90Y microspheres).

    Returns
    -------
    ndarray of float64
        BED, Gy.

    References
    ----------
    .. [1] Dale RG. The application of the linear-quadratic dose-effect equation to fractionated
       and protracted radiotherapy. Br J Radiol 1985;58:515-28. doi:10.1259/0007-1285-58-690-515

    Examples
    --------
    >>> round(float(bed_permanent_implant(100.0, alpha_beta_gy=10.0, repair_half_time_h=1.5,
    ...                                   effective_half_life_h=64.05)), 3)
    122.883
    """
    for name, v in (("alpha_beta_gy", alpha_beta_gy), ("repair_half_time_h", repair_half_time_h),
                    ("effective_half_life_h", effective_half_life_h)):
        if not (math.isfinite(v) and v > 0):
            raise TheraquantError(f"{name} must be positive, got {v!r}")
    d = np.asarray(dose_gy, dtype=np.float64)
    lam = math.log(2.0) / effective_half_life_h
    mu = math.log(2.0) / repair_half_time_h
    return d * (1.0 + d * lam / ((mu + lam) * alpha_beta_gy))


def _eud(values: np.ndarray, alpha: float) -> float:
    # -ln(mean(exp(-alpha D))) / alpha, computed stably (log-sum-exp)
    a = -alpha * values
    amax = a.max()
    return float(-(amax + math.log(np.mean(np.exp(a - amax)))) / alpha)


@records_call("theraquant.dosimetry.dose_volume")
def dose_volume(dose_gy: ArrayLike, mask: ArrayLike, *, d: Sequence[float] = (2, 50, 70, 98),
                v_gy: Sequence[float] = (100, 150, 200), alpha_beta_gy: float = 10.0,
                repair_half_time_h: float = 1.5, nuclide: str = "Y-90",
                effective_half_life_h: float | None = None, eud_alpha_per_gy: float = 0.005
                ) -> DoseVolumeResult:
    """Dose-volume metrics of one region (lesion or organ).

    Parameters
    ----------
    dose_gy : (nz, ny, nx) array_like of float
        Absorbed dose per voxel, Gy.
    mask : (nz, ny, nx) array_like of bool
        The region, same shape as `dose_gy`, at least one voxel.
    d : sequence of float
        Percentages x for Dx: the minimum dose received by the hottest x % of the volume, Gy.
    v_gy : sequence of float
        Doses y for Vy: the % of the volume receiving at least y Gy.
    alpha_beta_gy : float
        alpha/beta for BED, Gy (10 Gy tumour, 2.5 Gy normal liver).
    repair_half_time_h : float
        Repair half-time for BED, h.
    nuclide : str
        Sets the dose-rate half-life (physical, permanent implant) unless `effective_half_life_h`.
    effective_half_life_h : float, optional
        Half-life of the dose rate, h (e.g. from :func:`fit_tac` for 177Lu).
    eud_alpha_per_gy : float
        Radiosensitivity alpha for the EUD, 1/Gy.

    Returns
    -------
    DoseVolumeResult
        Mapping with ``Dmean``, ``Dmedian``, ``D2`` ..., ``V100`` ... (%), ``Dmin``, ``Dmax``,
        ``BEDmean``, ``EUD``, ``EUBED``, ``n_voxels``, ``dvh``.

    Notes
    -----
    With n voxels sorted by decreasing dose, Dx is the dose of voxel ceil(x n / 100) (at least
    the hottest one). BED voxel by voxel with the Dale formula for an exponentially decaying
    dose rate (see :func:`bed_permanent_implant`); BEDmean is their mean. EUD (Niemierko 1997,
    O'Donoghue 1999): the uniform dose with the same mean surviving fraction,
    EUD = -ln(mean exp(-alpha D)) / alpha; EUBED the same over the BED.

    References
    ----------
    .. [1] Dale RG. Br J Radiol 1985;58:515-28. doi:10.1259/0007-1285-58-690-515
    .. [2] Niemierko A. Reporting and analyzing dose distributions: a concept of equivalent
       uniform dose. Med Phys 1997;24:103-10. doi:10.1118/1.598063
    .. [3] O'Donoghue JA. Implications of nonuniform tumor doses for radioimmunotherapy.
       J Nucl Med 1999;40:1337-41.

    Examples
    --------
    >>> import numpy as np
    >>> dose = np.arange(1.0, 11.0).reshape(1, 2, 5)  # 1..10 Gy
    >>> r = dose_volume(dose, np.ones_like(dose, bool), d=(50, 70), v_gy=(8,))
    >>> r["D50"], r["D70"], r["V8"], r["Dmean"]
    (6.0, 4.0, 30.0, 5.5)
    """
    dose = np.asarray(dose_gy, dtype=np.float64)
    m = as_mask(mask, name="mask", shape=dose.shape)
    n = int(m.sum())
    if n == 0:
        raise TheraquantError("mask is empty (no voxel selected); check the lesion segmentation")
    vals = dose[m]
    if not np.all(np.isfinite(vals)):
        raise TheraquantError(f"dose_gy has {int(np.count_nonzero(~np.isfinite(vals)))} NaN or infinite "
                              "voxel(s) inside the mask; fix the dose map first")
    lo, hi = float(vals.min()), float(vals.max())  # negative doses are an error (FFT round-off < 1e-9 max is not)
    check_quantity("dose_gy", [lo if lo < -1e-9 * max(abs(hi), 1.0) else max(lo, 0.0), hi], argument="dose_gy")
    for x in d:
        if not (0 < float(x) <= 100):
            raise TheraquantError(f"each Dx percentage in d must be in (0, 100], got {x!r}")
    if not (math.isfinite(eud_alpha_per_gy) and eud_alpha_per_gy > 0):
        raise TheraquantError(f"eud_alpha_per_gy must be positive (1/Gy), got {eud_alpha_per_gy!r}")
    t_eff = get_nuclide(nuclide).half_life_h if effective_half_life_h is None else float(effective_half_life_h)
    desc = np.sort(vals)[::-1]
    out: dict[str, Any] = {"Dmean": float(vals.mean()), "Dmedian": float(np.median(vals)),
                           "Dmin": float(desc[-1]), "Dmax": float(desc[0])}
    for x in d:
        count = max(int(math.ceil(float(x) * n / 100.0 - 1e-9)), 1)
        out[f"D{x:g}"] = float(desc[count - 1])
    for y in v_gy:
        out[f"V{y:g}"] = float(100.0 * np.count_nonzero(vals >= float(y)) / n)
    bed = bed_permanent_implant(vals, alpha_beta_gy=alpha_beta_gy, repair_half_time_h=repair_half_time_h,
                                effective_half_life_h=t_eff)
    out["BEDmean"] = float(bed.mean())
    out["EUD"] = _eud(vals, eud_alpha_per_gy)
    out["EUBED"] = _eud(bed, eud_alpha_per_gy)
    out["n_voxels"] = n
    import pandas as pd

    asc, counts = np.unique(vals, return_counts=True)
    ge = 100.0 * (n - np.concatenate([[0], np.cumsum(counts)[:-1]])) / n  # % receiving >= each dose
    if asc[0] > 0:
        asc, ge = np.concatenate([[0.0], asc]), np.concatenate([[100.0], ge])
    out["dvh"] = pd.DataFrame({"dose_Gy": asc, "volume_pct": ge})
    out["parameters"] = {"alpha_beta_Gy": alpha_beta_gy, "repair_half_time_h": repair_half_time_h,
                         "dose_rate_half_life_h": t_eff, "eud_alpha_per_Gy": eud_alpha_per_gy}
    return DoseVolumeResult(out)
