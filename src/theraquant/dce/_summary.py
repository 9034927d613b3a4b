"""Per-label summary statistics of parametric maps (histogram analysis)."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..errors import TheraquantError

__all__ = ["summarize_maps", "SUMMARY_COLUMNS"]

#: Columns of the table :func:`summarize_maps` returns, in order.
SUMMARY_COLUMNS = ("label", "name", "parameter", "n_voxels", "n_valid", "failed_fraction",
                   "mean", "sd", "median", "iqr", "p10", "p25", "p75", "p90", "skewness", "kurtosis")

# maps that are fit diagnostics, summarised only when asked for by name
_DIAGNOSTICS = ("success",)


def _moments(values: NDArray[np.float64]) -> tuple[float, float, float, float]:
    """Mean, SD (ddof=1), skewness g1 and excess kurtosis g2 (biased moment estimators)."""
    n = values.size
    if n == 0:
        return (np.nan,) * 4  # type: ignore[return-value]
    mean = float(values.mean())
    dev = values - mean
    m2 = float(np.mean(dev * dev))
    sd = float(np.sqrt(m2 * n / (n - 1))) if n > 1 else np.nan
    if n < 3 or m2 <= 0.0 or m2 <= (1e-14 * max(abs(mean), 1e-300)) ** 2:
        # a constant sample (to rounding) has no defined shape
        return mean, sd, np.nan, np.nan
    dev2 = dev * dev
    m3 = float(np.mean(dev2 * dev))
    m4 = float(np.mean(dev2 * dev2))
    return mean, sd, m3 / m2**1.5, m4 / m2**2 - 3.0


def summarize_maps(
    maps: Mapping[str, ArrayLike],
    labels: ArrayLike,
    *,
    parameters: Sequence[str] | None = None,
    label_names: Mapping[int, str] | None = None,
):
    """Histogram statistics of each parametric map within each label of a mask.

    Parameters
    ----------
    maps : mapping of str to ndarray
        Parametric maps on one grid (any shape, e.g. (z, y, x)), in their own
        units (Ktrans in 1/min, ve in mL/mL, ...), as
        :func:`theraquant.dce.fit_volume` returns them. A boolean ``"success"``
        map, when present, marks failed fits: their voxels count as failed and
        are left out of every statistic.
    labels : ndarray of int or bool
        Label image on the same grid as the maps: 0 (or False) is background
        and is not summarised; every other value is one region (True counts as
        label 1).
    parameters : sequence of str, optional
        Which maps to summarise (default: every map except ``"success"``).
    label_names : mapping of int to str, optional
        Names of the labels (e.g. ``{1: "liver", 2: "lesion 1"}``); default
        ``"label <n>"``.

    Returns
    -------
    pandas.DataFrame
        One row per (label, parameter), columns :data:`SUMMARY_COLUMNS`:
        ``n_voxels`` (voxels in the label), ``n_valid`` (voxels with a
        successful fit and a finite value), ``failed_fraction`` (1 -
        n_valid / n_voxels), ``mean``, ``sd`` (ddof=1), ``median``, ``iqr``
        (p75 - p25), the 10/25/75/90th percentiles (linear interpolation, as
        ``numpy.percentile``), ``skewness`` (Fisher-Pearson g1) and
        ``kurtosis`` (excess, g2; 0 for a normal distribution), both the biased
        moment estimators of ``scipy.stats.skew`` / ``scipy.stats.kurtosis``
        with their defaults, NaN when fewer than 3 values or no spread.
        Statistics are in the map's own units (dimensionless for the shape
        measures and fractions).

    Raises
    ------
    TheraquantError
        A map on a different grid from ``labels``, an unknown parameter name,
        or labels that are not integers.

    Notes
    -----
    Histogram analysis of DCE-MRI parameter maps (percentiles, skewness,
    kurtosis) as used for tumour heterogeneity: Just N. Br J Cancer
    2014;111:2205-13. doi:10.1038/bjc.2014.512

    Examples
    --------
    >>> import numpy as np
    >>> labels = np.array([[1, 1, 1, 1], [2, 2, 0, 0]])
    >>> maps = {"Ktrans": np.array([[0.1, 0.2, 0.3, 0.4], [1.0, 3.0, 9.0, 9.0]])}
    >>> tab = summarize_maps(maps, labels, label_names={1: "liver", 2: "lesion"})
    >>> tab["name"].tolist(), tab["n_voxels"].tolist()
    (['liver', 'lesion'], [4, 2])
    >>> [round(float(v), 3) for v in tab["median"]], [round(float(v), 3) for v in tab["p25"]]
    ([0.25, 2.0], [0.175, 1.5])
    """
    import pandas as pd

    lab = np.asarray(labels)
    if lab.dtype == bool:
        lab = lab.astype(np.int64)
    if not np.issubdtype(lab.dtype, np.integer):
        if np.issubdtype(lab.dtype, np.floating) and np.all(np.isfinite(lab)) and np.all(lab == np.round(lab)):
            lab = lab.astype(np.int64)
        else:
            raise TheraquantError(
                f"labels must be an integer (or boolean) label image, got dtype {lab.dtype}; "
                "round it or threshold it into a mask first")
    names = list(parameters) if parameters is not None else [k for k in maps if k not in _DIAGNOSTICS]
    for p in names:
        if p not in maps:
            raise TheraquantError(f"parameter {p!r} is not among the maps {sorted(maps)}; "
                                  "choose one of those")
    arrays = {}
    for p in [*names, *(["success"] if "success" in maps else [])]:
        arr = np.asarray(maps[p])
        if arr.shape != lab.shape:
            raise TheraquantError(
                f"map {p!r} has shape {arr.shape} but labels have shape {lab.shape}; "
                "the maps and the label image must be on the same grid")
        arrays[p] = arr
    ok = arrays["success"].astype(bool) if "success" in arrays else np.ones(lab.shape, bool)

    rows = []
    for value in np.unique(lab):
        if value == 0:
            continue
        inside = lab == value
        n_vox = int(np.count_nonzero(inside))
        ok_in = ok[inside]
        name = (label_names or {}).get(int(value), f"label {int(value)}")
        for p in names:
            v = np.asarray(arrays[p][inside], dtype=np.float64)
            v = v[ok_in & np.isfinite(v)]
            n = int(v.size)
            mean, sd, skew, kurt = _moments(v)
            if n:
                p10, p25, p50, p75, p90 = np.percentile(v, [10, 25, 50, 75, 90])
            else:
                p10 = p25 = p50 = p75 = p90 = np.nan
            rows.append({
                "label": int(value), "name": name, "parameter": p, "n_voxels": n_vox, "n_valid": n,
                "failed_fraction": 1.0 - n / n_vox, "mean": mean, "sd": sd, "median": float(p50),
                "iqr": float(p75 - p25), "p10": float(p10), "p25": float(p25), "p75": float(p75),
                "p90": float(p90), "skewness": skew, "kurtosis": kurt,
            })
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
