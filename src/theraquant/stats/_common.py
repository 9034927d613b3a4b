"""Shared input checks, the Wilson interval and summary formatting for theraquant.stats."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats as sps

from ..errors import TheraquantError

Z975 = float(sps.norm.ppf(0.975))  # 1.959963984540054, z(0.975) of every 95 % interval here


def as_binary(y: ArrayLike, *, name: str = "y") -> NDArray[np.int64]:
    """Return ``y`` as a 1-D int array of 0/1 (1 = responder / positive class).

    Accepts bool or numbers that are all 0 or 1. Missing values raise.
    """
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise TheraquantError(f"{name} must be 1-D (one outcome per lesion), got shape {arr.shape}")
    if arr.dtype == bool:
        return arr.astype(np.int64)
    try:
        f = arr.astype(float)
    except (TypeError, ValueError):
        raise TheraquantError(
            f"{name} must be 0/1 or bool (1 = responder), got values like {arr[:3].tolist()!r}; "
            "code the outcome as 0/1 first, e.g. (df.response == 'PR').astype(int)") from None
    bad = np.isnan(f)
    if bad.any():
        raise TheraquantError(
            f"{name} has {int(bad.sum())} missing value(s) (first at index {int(np.flatnonzero(bad)[0])}); "
            "drop those lesions first, e.g. df.dropna(subset=[...])")
    if not np.all((f == 0) | (f == 1)):
        raise TheraquantError(
            f"{name} must hold only 0 and 1 (1 = responder), got values {np.unique(f)[:6].tolist()!r}; "
            "dichotomise the outcome first")
    return f.astype(np.int64)


def as_score(x: ArrayLike, n: int, *, name: str = "score") -> NDArray[np.float64]:
    """Return a finite 1-D float64 array of length ``n``; missing values raise."""
    try:
        arr = np.asarray(x, dtype=float)
    except (TypeError, ValueError):
        raise TheraquantError(f"{name} must be numeric, got values like {np.asarray(x)[:3].tolist()!r}") from None
    if arr.ndim != 1 or arr.shape[0] != n:
        raise TheraquantError(
            f"{name} must be 1-D with one value per lesion ({n}), got shape {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        raise TheraquantError(
            f"{name} has {int(bad.sum())} missing or infinite value(s) (first at index "
            f"{int(np.flatnonzero(bad)[0])}); drop those lesions first, e.g. df.dropna(subset=[...])")
    return arr


def with_cluster(data: Any, cluster: Any) -> tuple[Any, str | None]:
    """``cluster`` of a table as a column name: a name is returned as is; an array of patient ids
    (one per row) is added to a copy of ``data`` as column ``"cluster"`` (``"__cluster__"`` when
    ``"cluster"`` is taken). So ``cluster`` means the same in ``roc`` (arrays), ``logistic``,
    ``analyze`` and the predictor (tables): the patient of each lesion.
    """
    if cluster is None or isinstance(cluster, str):
        return data, cluster
    arr = np.asarray(cluster)
    if arr.ndim != 1 or arr.shape[0] != len(data):
        raise TheraquantError(
            f"cluster must be a column name or one patient id per row ({len(data)} rows), got shape {arr.shape}; "
            "pass e.g. cluster='patient' or cluster=df['patient']", argument="cluster")
    name = "cluster" if "cluster" not in data.columns else "__cluster__"
    out = data.copy()
    out[name] = arr
    return out, name


def as_cluster(cluster: ArrayLike | None, n: int) -> tuple[NDArray[np.int64], int] | None:
    """Encode patient ids (int or str) as codes 0..I-1; ``None`` passes through."""
    if cluster is None:
        return None
    if isinstance(cluster, str):
        raise TheraquantError(
            f"cluster={cluster!r} is a column name, but this function takes arrays: pass the patient ids "
            f"themselves, e.g. cluster=df[{cluster!r}]", argument="cluster")
    arr = np.asarray(cluster)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise TheraquantError(
            f"cluster must be 1-D with one patient id per lesion ({n} lesions), got shape {arr.shape}; "
            "pass the patient column of the same lesion table")
    if arr.dtype.kind == "f" and np.isnan(arr).any():
        raise TheraquantError(
            f"cluster has {int(np.isnan(arr).sum())} missing patient id(s); every lesion needs its patient")
    if arr.dtype == object and any(v is None or (isinstance(v, float) and np.isnan(v)) for v in arr):
        raise TheraquantError("cluster has missing patient id(s); every lesion needs its patient")
    _, codes = np.unique(arr.astype(str) if arr.dtype == object else arr, return_inverse=True)
    codes = codes.astype(np.int64).ravel()
    return codes, int(codes.max()) + 1 if n else 0


def wilson(k: float, n: float, *, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion k/n (Wilson 1927, doi:10.1080/01621459.1927.10502953).

    Returns (nan, nan) when ``n == 0`` (no denominator).

    Examples
    --------
    >>> lo, hi = wilson(8, 10)
    >>> round(lo, 4), round(hi, 4)
    (0.4902, 0.9433)
    """
    if n <= 0:
        return (float("nan"), float("nan"))
    z = float(sps.norm.ppf(0.5 + level / 2))
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (float(max(0.0, centre - half)), float(min(1.0, centre + half)))


def frozen_map(d: Mapping[str, Any]) -> Mapping[str, Any]:
    """A read-only mapping (for fields of frozen result dataclasses)."""
    return MappingProxyType(dict(d))


def fmt(x: Any, width: int = 9, digits: int = 4) -> str:
    """A number right-aligned in ``width`` characters (general format); text as is."""
    if x is None:
        return "-".rjust(width)
    if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
        return str(int(x)).rjust(width)
    if isinstance(x, (float, np.floating)):
        x = float(x)
        if np.isnan(x):
            return "n/a".rjust(width)
        if np.isinf(x):
            return ("inf" if x > 0 else "-inf").rjust(width)
        if x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e5):
            return f"{x:.{digits - 1}e}".rjust(width)
        return f"{x:.{digits}g}".rjust(width) if abs(x) >= 1 else f"{x:.{digits}f}".rjust(width)
    return str(x).rjust(width)


def fmt_p(p: float) -> str:
    """A p-value as text: '<1e-16' below double precision, else 4 significant digits."""
    if p is None or not np.isfinite(p):
        return "n/a"
    if p < 1e-16:
        return "<1e-16"
    return f"{p:.3e}" if p < 1e-3 else f"{p:.4f}"


def fmt_ci(ci: Sequence[float], digits: int = 4) -> str:
    """'lo-hi' with ``digits`` significant digits, 'n/a' when undefined."""
    lo, hi = ci
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "n/a"
    return f"{lo:.{digits}g} to {hi:.{digits}g}"


def table_text(header: Sequence[str], rows: Iterable[Sequence[Any]], widths: Sequence[int]) -> str:
    """A fixed-width text table: first column left-aligned, the others right-aligned."""
    lines = []
    for i, row in enumerate([list(header), *[list(r) for r in rows]]):
        cells = []
        for j, (v, w) in enumerate(zip(row, widths)):
            s = v if isinstance(v, str) else fmt(v, w).strip()
            cells.append(s.ljust(w) if j == 0 else s.rjust(w))
        lines.append(" ".join(cells).rstrip())
        if i == 0:
            lines.append("-" * (sum(widths) + len(widths) - 1))
    return "\n".join(lines)


class SummaryMixin:
    """Adds ``_repr_html_`` (the fixed-width summary in a <pre> block) for notebooks and reports."""

    def _repr_html_(self) -> str:
        import html

        return f"<pre>{html.escape(self.summary())}</pre>"  # type: ignore[attr-defined]


def notes_text(notes: Sequence[str]) -> str:
    return "".join(f"\nnote: {n}" for n in notes)
