"""FMISO hypoxia: tumour-to-muscle and tumour-to-blood-pool ratios, hypoxic volume and fraction.

References
----------
.. [1] Rasey JS, et al. Quantifying regional hypoxia in human tumors with positron emission tomography
   of [18F]fluoromisonidazole: a pretherapy study of 37 patients. Int J Radiat Oncol Biol Phys
   1996;36:417-28. doi:10.1016/S0360-3016(96)00325-2 (hypoxic volume: tumour/blood >= 1.2)
.. [2] Muzi M, et al. 18F-fluoromisonidazole quantification of hypoxia in human cancer patients using
   image-derived blood surrogate tissue reference regions. J Nucl Med 2015;56:1223-8.
   doi:10.2967/jnumed.115.158717
.. [3] Soydal C, et al. Clin Nucl Med 2025;50(7):e391-e400. PMID 40296277 (ARTE-MISO: FMISO before
   90Y radioembolization; T/BP > 1.29 hypoxic)
.. [4] Yeh SH, et al. Eur J Nucl Med 1996;23:1378-83. doi:10.1007/BF01367595 (T/M retention ratio >= 1.24)
"""

from __future__ import annotations

import math
from types import MappingProxyType
from typing import Literal, Mapping

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..errors import TheraquantError
from ._lesion import _check_inputs, suv_peak
from ._results import Result

__all__ = ["hypoxia", "HYPOXIA_THRESHOLDS"]

#: Named hypoxia cut-offs (ratio of voxel value to the reference), with their source
#: (tests/data/nm/analytic/fmiso_hypoxia_thresholds.csv).
HYPOXIA_THRESHOLDS: Mapping[str, float] = MappingProxyType({
    "rasey1996": 1.2,          # tumour/blood >= 1.2 (Rasey 1996; Muzi 2015 image-derived blood)
    "muzi2015": 1.2,
    "radioembolization": 1.29,  # T/BP > 1.29, ARTE-MISO (Soydal 2025), liver tumours before 90Y TARE
    "soydal2025": 1.29,
    "arte-miso": 1.29,
    "yeh1996": 1.24,           # T/M retention ratio >= 1.24, suboccipital muscle (Yeh 1996)
})

Stat = Literal["max", "mean", "median", "peak"]
_STATS = ("max", "mean", "median", "peak")


def _stat(v: NDArray, m: NDArray, sp: tuple[float, float, float], stat: str) -> float:
    if stat == "max":
        return float(v[m].max())
    if stat == "mean":
        return float(v[m].mean())
    if stat == "median":
        return float(np.median(v[m]))
    return suv_peak(v, m, sp)


def hypoxia(values: NDArray[np.floating], tumour_mask: NDArray[np.bool_], *,
            muscle_mask: NDArray[np.bool_] | None = None, blood_mask: NDArray[np.bool_] | None = None,
            spacing_mm: ArrayLike, tumour_stat: Stat = "max", reference_stat: Stat = "mean",
            threshold: float | str = 1.2) -> Result:
    """FMISO tumour-to-muscle and tumour-to-blood-pool ratios, hypoxic volume and fraction.

    Parameters
    ----------
    values : (Z, Y, X) ndarray of float
        FMISO PET (Bq/mL or SUV; ratios are unitless), finite.
    tumour_mask : (Z, Y, X) ndarray of bool
        Tumour.
    muscle_mask, blood_mask : (Z, Y, X) ndarray of bool, optional
        Reference regions: skeletal muscle; blood pool (aorta, left ventricle). At least one.
    spacing_mm : float or (3,) array_like
        Voxel size (z, y, x), mm.
    tumour_stat, reference_stat : {"max", "mean", "median", "peak"}
        Statistic of the tumour (numerator) and of the references (denominators); "peak" is the
        1 mL SUVpeak (:func:`suv_peak`).
    threshold : float or str
        Hypoxia cut-off on voxel / reference; a name from :data:`HYPOXIA_THRESHOLDS`
        (``"radioembolization"``: 1.29, Soydal 2025; ``"rasey1996"``: 1.2).

    Returns
    -------
    Result
        ``T/M`` and ``T/BP`` (NaN without that reference), ``hypoxic_volume_mL``,
        ``hypoxic_fraction`` (0-1 of the tumour volume), ``tumour_value``, ``muscle_value``,
        ``blood_value`` (unit of ``values``), ``reference`` ("blood pool" or "muscle"),
        ``threshold``, ``tumour_volume_mL``.

    Notes
    -----
    Hypoxic voxels are the tumour voxels whose value divided by the blood-pool reference (the
    muscle reference when no blood mask is given) is at least ``threshold``: the tumour-to-blood
    definition of Rasey 1996 [1]_ applied voxel-wise.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.ones((10, 10, 10)); img[2:4, 2:6, 2:6] = 1.5; img[4:6, 2:6, 2:6] = 1.1
    >>> tumour = np.zeros(img.shape, bool); tumour[2:6, 2:6, 2:6] = True
    >>> blood = np.zeros(img.shape, bool); blood[7:9, 7:9, 7:9] = True
    >>> res = hypoxia(img, tumour, blood_mask=blood, spacing_mm=2.0)
    >>> res["T/BP"], res["hypoxic_fraction"], res["hypoxic_volume_mL"]
    (1.5, 0.5, 0.256)
    """
    if muscle_mask is None and blood_mask is None:
        raise TheraquantError("hypoxia needs a reference region: pass muscle_mask= and/or blood_mask=")
    for name, st in (("tumour_stat", tumour_stat), ("reference_stat", reference_stat)):
        if st not in _STATS:
            raise TheraquantError(f"{name} must be one of {_STATS}, got {st!r}")
    if isinstance(threshold, str):
        key = threshold.strip().lower()
        if key not in HYPOXIA_THRESHOLDS:
            raise TheraquantError(f"threshold {threshold!r} is not a known name; use a number or one of "
                                  f"{sorted(HYPOXIA_THRESHOLDS)}")
        thr = HYPOXIA_THRESHOLDS[key]
        thr_name = key
    else:
        thr = float(threshold)
        thr_name = ""
    if not (math.isfinite(thr) and thr > 0):
        raise TheraquantError(f"threshold must be a positive ratio, got {threshold!r}")
    v, tm, sp = _check_inputs(values, tumour_mask, spacing_mm, mask_name="tumour_mask")
    t_val = _stat(v, tm, sp, tumour_stat)
    refs: dict[str, float] = {}
    for name, mk in (("muscle", muscle_mask), ("blood", blood_mask)):
        if mk is None:
            continue
        _, rm, _ = _check_inputs(v, mk, sp, mask_name=f"{name}_mask")
        r = _stat(v, rm, sp, reference_stat)
        if not r > 0:
            raise TheraquantError(f"the {name} reference ({reference_stat}) is {r:g}; a positive uptake is "
                                  f"needed for a ratio: check {name}_mask lies on this image")
        refs[name] = r
    ref_name = "blood" if "blood" in refs else "muscle"
    tvals = v[tm]
    hyp = int(np.count_nonzero(tvals / refs[ref_name] >= thr))
    vox_ml = float(np.prod(sp)) / 1000.0
    nan = float("nan")
    data = {
        "T/M": t_val / refs["muscle"] if "muscle" in refs else nan,
        "T/BP": t_val / refs["blood"] if "blood" in refs else nan,
        "hypoxic_volume_mL": round(hyp * vox_ml, 12),
        "hypoxic_fraction": hyp / tvals.size,
        "tumour_value": t_val,
        "muscle_value": refs.get("muscle", nan),
        "blood_value": refs.get("blood", nan),
        "reference": "blood pool" if ref_name == "blood" else "muscle",
        "threshold": thr,
        "threshold_name": thr_name,
        "tumour_stat": tumour_stat,
        "reference_stat": reference_stat,
        "tumour_volume_mL": round(tvals.size * vox_ml, 12),
    }
    units = {"hypoxic_volume_mL": "mL", "tumour_volume_mL": "mL", "T/M": "ratio", "T/BP": "ratio",
             "hypoxic_fraction": "fraction 0-1", "threshold": "ratio"}
    return Result(data, units=units, title="FMISO hypoxia")
