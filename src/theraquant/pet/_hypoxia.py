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
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal, Mapping

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..errors import TheraquantError
from ._lesion import _check_inputs, suv_peak
from ..results import Result, records_call

__all__ = ["hypoxia", "HYPOXIA_THRESHOLDS", "HypoxiaThreshold"]

#: Relative tolerance of the cut-off comparisons: a ratio within 1e-9 of the cut-off counts as
#: equal to it (float round-off of a ratio such as 1.29 * 1.25 / 1.25 is ~1e-16, far below).
RATIO_TOLERANCE = 1e-9


@dataclass(frozen=True, slots=True)
class HypoxiaThreshold:
    """A published FMISO hypoxia cut-off as data: value, ratio, statistic, comparison and source.

    Attributes
    ----------
    value : float
        The cut-off (ratio, dimensionless).
    ratio : {"T/BP", "T/M"}
        The ratio it applies to: tumour to blood pool, or tumour to skeletal muscle.
    statistic : str
        What the ratio is taken of: ``"voxel"`` (each tumour voxel over the reference mean; the
        hypoxic volume counts those voxels) or ``"max"`` (tumour maximum over the reference mean).
    operator : {">", ">="}
        The comparison that makes a lesion (voxel) hypoxic, as the source words it.
    source : str
        The paper.
    quote : str
        The source's wording of the rule.
    """

    value: float
    ratio: Literal["T/BP", "T/M"]
    statistic: str
    operator: Literal[">", ">="]
    source: str
    quote: str

    def __float__(self) -> float:
        return float(self.value)

    def rule(self) -> str:
        """The rule as text, e.g. ``"T/BP > 1.29"``."""
        return f"{self.ratio} {self.operator} {self.value:g}"


_RASEY = HypoxiaThreshold(
    1.2, "T/BP", "voxel", ">=",
    "Rasey JS et al. Int J Radiat Oncol Biol Phys 1996;36:417-28; Muzi M et al. J Nucl Med 2015;56:1223-8",
    "hypoxic volume HV = voxels with TB >= 1.2 (tumour-to-blood ratio; image-derived blood surrogate, Muzi 2015)")
_ARTEMISO = HypoxiaThreshold(
    1.29, "T/BP", "max", ">",
    "Soydal C et al. Clin Nucl Med 2025;50(7):e391-e400 (ARTE-MISO), PMID 40296277",
    "T/BP > 1.29 = hypoxic (ROC-derived cut-off; the abstract does not name the statistic: "
    "tumour maximum over blood-pool mean, the TBmax of Muzi 2015, is used)")
_YEH = HypoxiaThreshold(
    1.24, "T/M", "max", ">=",
    "Yeh SH et al. Eur J Nucl Med 1996;23:1378-83. doi:10.1007/BF01367595",
    "tumour-to-muscle retention ratio TMRR >= 1.24 (suboccipital muscle; statistic not given in the "
    "abstract: tumour maximum over muscle mean is used)")

#: Named hypoxia cut-offs, each with the ratio it applies to (T/BP or T/M), its statistic, its
#: comparison and its source (tests/data/nm/analytic/fmiso_hypoxia_thresholds.csv).
HYPOXIA_THRESHOLDS: Mapping[str, HypoxiaThreshold] = MappingProxyType({
    "rasey1996": _RASEY,           # tumour/blood >= 1.2 (Rasey 1996; Muzi 2015 image-derived blood)
    "muzi2015": _RASEY,
    "radioembolization": _ARTEMISO,  # T/BP > 1.29, ARTE-MISO (Soydal 2025), liver tumours before 90Y TARE
    "soydal2025": _ARTEMISO,
    "arte-miso": _ARTEMISO,
    "artemiso": _ARTEMISO,
    "yeh1996": _YEH,               # T/M retention ratio >= 1.24, suboccipital muscle (Yeh 1996)
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


def _compare(x: NDArray | float, thr: float, operator: str) -> NDArray | bool:
    tol = RATIO_TOLERANCE * thr
    return (x > thr + tol) if operator == ">" else (x >= thr - tol)


@records_call("theraquant.pet.hypoxia")
def hypoxia(values: NDArray[np.floating], tumour_mask: NDArray[np.bool_], *,
            muscle_mask: NDArray[np.bool_] | None = None, blood_mask: NDArray[np.bool_] | None = None,
            spacing_mm: ArrayLike, tumour_stat: Stat = "max", reference_stat: Stat = "mean",
            threshold: float | str = 1.2, operator: Literal[">", ">="] | None = None) -> Result:
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
        1 mL SUVpeak (:func:`suv_peak`). A named threshold whose statistic is ``"max"`` needs
        the defaults (tumour max over reference mean).
    threshold : float or str
        Hypoxia cut-off, or a name from :data:`HYPOXIA_THRESHOLDS` (``"arte-miso"``:
        T/BP > 1.29, Soydal 2025; ``"rasey1996"``: T/B >= 1.2 voxel-wise; ``"yeh1996"``:
        T/M >= 1.24). A named cut-off applies to its own ratio: a T/BP cut-off needs
        ``blood_mask``, a T/M cut-off ``muscle_mask``.
    operator : {">", ">="}, optional
        Comparison for a numeric ``threshold`` (default ``">="``, "at least", as Rasey 1996).
        Named thresholds carry their own.

    Returns
    -------
    Result
        ``T/M`` and ``T/BP`` (NaN without that reference), ``hypoxic`` (the lesion decision:
        ``ratio operator threshold``), ``decided_by`` (e.g. ``"T/BP = 1.6 > 1.29 (arte-miso)"``),
        ``threshold_ratio`` ("T/BP" or "T/M"), ``threshold_operator``, ``hypoxic_volume_mL``
        (tumour voxels whose value over the same reference passes the same comparison),
        ``hypoxic_fraction`` (0-1 of the tumour volume), ``tumour_value``, ``muscle_value``,
        ``blood_value`` (unit of ``values``), ``reference`` ("blood pool" or "muscle"),
        ``threshold``, ``threshold_name``, ``tumour_volume_mL``.

    Raises
    ------
    TheraquantError
        No reference mask; a named threshold whose ratio's reference mask is missing (the message
        names the threshold's ratio and the mask given); a named ``"max"`` threshold with other
        statistics; a bad name or value.

    Notes
    -----
    Comparisons use a relative tolerance of 1e-9 (:data:`RATIO_TOLERANCE`): a ratio equal to the
    cut-off up to float round-off is equal to it, so under ARTE-MISO's ``T/BP > 1.29`` a lesion
    at exactly 1.29 is not hypoxic, and under Rasey's ``T/B >= 1.2`` a voxel at 1.2 is.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.ones((10, 10, 10)); img[2:4, 2:6, 2:6] = 1.5; img[4:6, 2:6, 2:6] = 1.1
    >>> tumour = np.zeros(img.shape, bool); tumour[2:6, 2:6, 2:6] = True
    >>> blood = np.zeros(img.shape, bool); blood[7:9, 7:9, 7:9] = True
    >>> res = hypoxia(img, tumour, blood_mask=blood, spacing_mm=2.0)
    >>> res["T/BP"], res["hypoxic_fraction"], res["hypoxic_volume_mL"]
    (1.5, 0.5, 0.256)
    >>> hypoxia(img, tumour, blood_mask=blood, spacing_mm=2.0, threshold="arte-miso").decided_by
    'T/BP = 1.5 > 1.29 (arte-miso)'
    """
    if muscle_mask is None and blood_mask is None:
        raise TheraquantError("hypoxia needs a reference region: pass muscle_mask= and/or blood_mask=",
                              argument="blood_mask")
    for name, st in (("tumour_stat", tumour_stat), ("reference_stat", reference_stat)):
        if st not in _STATS:
            raise TheraquantError(f"{name} must be one of {_STATS}, got {st!r}", argument=name)
    spec: HypoxiaThreshold | None = None
    if isinstance(threshold, str):
        key = threshold.strip().lower()
        if key not in HYPOXIA_THRESHOLDS:
            raise TheraquantError(f"threshold {threshold!r} is not a known name; use a number or one of "
                                  f"{sorted(HYPOXIA_THRESHOLDS)}", argument="threshold")
        spec = HYPOXIA_THRESHOLDS[key]
        thr, thr_name = spec.value, key
        if operator is not None and operator != spec.operator:
            raise TheraquantError(
                f"threshold {key!r} is defined as {spec.rule()} ({spec.source}); operator={operator!r} "
                "contradicts it: leave operator unset or pass a numeric threshold", argument="operator")
        op = spec.operator
        ratio = spec.ratio
        need, given = ("blood_mask", blood_mask) if ratio == "T/BP" else ("muscle_mask", muscle_mask)
        if given is None:
            other = "muscle_mask (T/M)" if ratio == "T/BP" else "blood_mask (T/BP)"
            raise TheraquantError(
                f"threshold {key!r} is a {ratio} cut-off ({spec.rule()}, {spec.source}) but only {other} was "
                f"given: pass {need}=, or a threshold defined on the other ratio", argument=need)
        if spec.statistic == "max" and (tumour_stat, reference_stat) != ("max", "mean"):
            raise TheraquantError(
                f"threshold {key!r} ({spec.rule()}) is defined on the tumour max over the reference mean; "
                f"got tumour_stat={tumour_stat!r}, reference_stat={reference_stat!r}: keep the defaults or "
                "pass a numeric threshold", argument="tumour_stat")
    else:
        try:
            thr = float(threshold)
        except (TypeError, ValueError):
            raise TheraquantError(f"threshold must be a positive ratio or a name, got {threshold!r}",
                                  argument="threshold") from None
        thr_name = ""
        op = ">=" if operator is None else operator
        if op not in (">", ">="):
            raise TheraquantError(f"operator must be '>' or '>=', got {operator!r}", argument="operator")
        ratio = "T/BP" if blood_mask is not None else "T/M"
    if not (math.isfinite(thr) and thr > 0):
        raise TheraquantError(f"threshold must be a positive ratio, got {threshold!r}", argument="threshold")
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
                                  f"needed for a ratio: check {name}_mask lies on this image",
                                  argument=f"{name}_mask")
        refs[name] = r
    ref_name = "blood" if ratio == "T/BP" else "muscle"
    tvals = v[tm]
    hyp = int(np.count_nonzero(_compare(tvals / refs[ref_name], thr, op)))
    vox_ml = float(np.prod(sp)) / 1000.0
    nan = float("nan")
    lesion_ratio = t_val / refs[ref_name]
    hypoxic = bool(_compare(lesion_ratio, thr, op))
    sign = op if hypoxic else {">": "<=", ">=": "<"}[op]
    decided = f"{ratio} = {lesion_ratio:.6g} {sign} {thr:g}" + (f" ({thr_name})" if thr_name else "")
    data = {
        "T/M": t_val / refs["muscle"] if "muscle" in refs else nan,
        "T/BP": t_val / refs["blood"] if "blood" in refs else nan,
        "hypoxic": hypoxic,
        "decided_by": decided,
        "threshold_ratio": ratio,
        "threshold_operator": op,
        "hypoxic_volume_mL": round(hyp * vox_ml, 12),
        "hypoxic_fraction": hyp / tvals.size,
        "tumour_value": t_val,
        "muscle_value": refs.get("muscle", nan),
        "blood_value": refs.get("blood", nan),
        "reference": "blood pool" if ref_name == "blood" else "muscle",
        "threshold": thr,
        "threshold_name": thr_name,
        "threshold_source": spec.source if spec is not None else "user-given",
        "tumour_stat": tumour_stat,
        "reference_stat": reference_stat,
        "tumour_volume_mL": round(tvals.size * vox_ml, 12),
    }
    units = {"hypoxic_volume_mL": "mL", "tumour_volume_mL": "mL", "T/M": "ratio", "T/BP": "ratio",
             "hypoxic_fraction": "fraction 0-1", "threshold": "ratio"}
    return Result(data, units=units, title="FMISO hypoxia")
