"""Vectorised grading of a whole lesion table (one row per lesion) for the cohort pipeline."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..errors import TheraquantError
from ._criteria import EPS, NAMES, at_least, meta, thresholds as _thresholds
from ._pet import _eortc_codes, _percist_codes, eortc_rules, percist_rules
from ._recist import _target_codes, rules as _recist_rules

__all__ = ["grade_lesions", "TABLE_COLUMNS"]

#: canonical input columns per criterion: (required, optional); grade_patients also needs
#: ``patient`` and takes ``lesion`` (all) and ``organ``, ``non_target`` (RECIST, mRECIST)
TABLE_COLUMNS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "PERCIST": (("baseline", "followup"),
                ("resolved", "new_lesions", "reference_mean", "reference_sd",
                 "followup_reference_mean", "baseline_tlg", "followup_tlg")),
    "EORTC": (("baseline", "followup"),
              ("resolved", "new_lesions", "background_suv", "baseline_extent_mm",
               "followup_extent_mm")),
    "RECIST": (("baseline", "followup"), ("nadir_mm", "is_node", "new_lesions")),
    "mRECIST": (("baseline", "followup"), ("nadir_mm", "is_node", "new_lesions")),
}
_PATIENT_COLUMNS = {"PERCIST": ("lesion",), "EORTC": ("lesion",),
                    "RECIST": ("lesion", "organ", "non_target"),
                    "mRECIST": ("lesion", "organ", "non_target")}
_UNITS = {"PERCIST": "SUL", "EORTC": "g/mL", "RECIST": "mm", "mRECIST": "mm"}
_POSITIVE = {"reference_mean", "followup_reference_mean", "baseline_tlg", "baseline_extent_mm"}
_OPT_UNITS = {"reference_mean": "SUL", "reference_sd": "SUL", "followup_reference_mean": "SUL",
              "baseline_tlg": "g", "followup_tlg": "g", "background_suv": "g/mL",
              "baseline_extent_mm": "mm", "followup_extent_mm": "mm", "nadir_mm": "mm"}


def _num(df: pd.DataFrame, col: str, name: str, unit: str, *, positive: bool = False,
         allow_nan: bool = False) -> np.ndarray:
    try:
        x = pd.to_numeric(df[col], errors="raise").to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TheraquantError(f"column {col!r} ({name}) must be numeric, {unit}: {exc}") from None
    bad = ~np.isfinite(x) if not allow_nan else np.isinf(x)
    bad |= (x <= 0) if positive else (x < 0)
    if bad.any():
        rows = list(df.index[bad][:5])
        raise TheraquantError(
            f"column {col!r} ({name}) must hold finite values {'>' if positive else '>='} 0 {unit}; "
            f"rows {rows} hold {x[bad][:5].tolist()}; fix or drop those rows")
    return x


def _flag(df: pd.DataFrame, col: str | None) -> np.ndarray:
    if col is None:
        return np.zeros(len(df), dtype=bool)
    s = df[col]
    if s.isna().any() or not all(isinstance(v, (bool, np.bool_)) or v in (0, 1) for v in s):
        raise TheraquantError(f"column {col!r} must hold True/False (or 0/1), got {s.tolist()[:5]}")
    return s.to_numpy(dtype=bool)


def _read(table: Any, criteria: str, columns: Mapping[str, str] | None,
          thresholds: Mapping[str, Any] | None, *, level: str
          ) -> tuple[str, Mapping[str, Any], dict[str, Any]]:
    """Check the table and return (criteria name, thresholds, canonical column -> array)."""
    try:
        name = NAMES[str(criteria).lower()]
    except KeyError:
        raise TheraquantError(
            f"criteria must be one of {sorted(NAMES.values())}, got {criteria!r}") from None
    if not isinstance(table, pd.DataFrame):
        raise TheraquantError(f"table must be a pandas DataFrame, got {type(table).__name__}")
    thr = _thresholds(name, thresholds)
    required, optional = TABLE_COLUMNS[name]
    if level == "patient":
        required, optional = ("patient",) + required, optional + _PATIENT_COLUMNS[name]
    cmap = dict(columns or {})
    unknown = sorted(set(cmap) - set(required) - set(optional))
    if unknown:
        raise TheraquantError(
            f"columns has unknown canonical name(s) {unknown} for {name}; allowed: "
            f"{list(required) + list(optional)}")
    col = {c: cmap.get(c, c) for c in required + optional}
    missing = [col[c] for c in required if col[c] not in table.columns]
    if missing:
        raise TheraquantError(
            f"table lacks column(s) {missing} needed for {name}; it has {list(table.columns)}; "
            "rename with columns={'baseline': ..., 'followup': ...}")
    has = {c: (col[c] if col[c] in table.columns else None) for c in optional}
    n = len(table)
    unit = _UNITS[name]
    pet = name in ("PERCIST", "EORTC")
    out: dict[str, Any] = {}
    out["resolved"] = _flag(table, has.get("resolved"))
    out["new_lesions"] = _flag(table, has["new_lesions"])
    out["is_node"] = _flag(table, has.get("is_node"))
    out["baseline"] = _num(table, col["baseline"], "baseline", unit, positive=pet)
    f = _num(table, col["followup"], "follow-up", unit, allow_nan=True)
    # a NaN follow-up is a resolved lesion (PET) or, at patient level, a target not assessed (RECIST)
    allowed = out["resolved"] if pet or level == "lesion" else np.ones(n, bool)
    bad = np.isnan(f) & ~allowed
    if bad.any():
        raise TheraquantError(
            f"column {col['followup']!r} is NaN in rows {list(table.index[bad][:5])}; "
            "give the follow-up value, mark complete resolution with a True 'resolved' column "
            "(PERCIST/EORTC), or drop lesions that were not assessed")
    out["followup"] = f
    for c in optional:
        if c in _OPT_UNITS:
            out[c] = (np.full(n, np.nan) if has[c] is None else
                      _num(table, has[c], c.replace("_", " "), _OPT_UNITS[c], positive=c in _POSITIVE,
                           allow_nan=True))
    for c in ("patient", "lesion", "organ", "non_target"):
        if c == "patient":
            out[c] = table[col[c]].to_numpy(dtype=object) if level == "patient" else None
        elif c in optional:
            out[c] = None if has[c] is None else table[has[c]].to_numpy(dtype=object)
    if level == "patient" and pd.isna(out["patient"]).any():
        rows = list(table.index[pd.isna(out["patient"])][:5])
        raise TheraquantError(f"column {col['patient']!r} (patient) is empty in rows {rows}")
    return name, thr, out


def _measurability(cols: Mapping[str, Any], thr: Mapping[str, Any], reference: str) -> np.ndarray:
    if reference not in ("liver", "blood_pool"):
        raise TheraquantError(f"reference must be 'liver' or 'blood_pool', got {reference!r}")
    fk, sk = ("liver_factor", "liver_sd_factor") if reference == "liver" else (
        "blood_pool_factor", "blood_pool_sd_factor")
    return thr[fk] * cols["reference_mean"] + thr[sk] * cols["reference_sd"]


def _unstable(rm: np.ndarray, fr: np.ndarray, thr: Mapping[str, Any]) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        d = fr - rm
        return (at_least(np.abs(d / rm), thr["reference_change_max_fraction"], True)
                | at_least(np.abs(d), thr["reference_change_max_abs_SUL"], True))


def _check_nadir(nadir: np.ndarray, base: np.ndarray, what: str, labels: Any) -> None:
    above = nadir > base + EPS
    if above.any():
        raise TheraquantError(
            f"nadir_mm exceeds the baseline diameter (sum) in {what} {list(np.asarray(labels)[above][:5])}; "
            "the nadir is the smallest value since treatment started, baseline included")


def _label(out: pd.DataFrame, codes: np.ndarray, table_rules: Mapping[str, tuple[str, str]],
           b: np.ndarray, f: np.ndarray) -> None:
    ids = pd.Series(codes, index=out.index, dtype=object)
    out["category"] = ids.map({k: v[0] for k, v in table_rules.items()})
    out["rule_id"] = ids
    out["rule"] = ids.map({k: v[1] for k, v in table_rules.items()})
    with np.errstate(invalid="ignore", divide="ignore"):
        out["change_fraction"] = (f - b) / b
        out["change_abs"] = f - b


def grade_lesions(
    table: pd.DataFrame,
    criteria: str,
    *,
    columns: Mapping[str, str] | None = None,
    reference: str = "liver",
    after_one_cycle: bool = False,
    thresholds: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Grade every lesion of a table at lesion level (baseline vs follow-up of one lesion).

    The same decision code as :func:`percist`, :func:`eortc`, :func:`recist` and
    :func:`mrecist` runs once over all rows (numpy, no per-row Python loop).

    Parameters
    ----------
    table : DataFrame
        One row per lesion. Columns (rename yours with `columns`):

        * PERCIST: ``baseline``, ``followup`` (SULpeak, SUL units); optional
          ``resolved`` (bool: no residual uptake; ``followup`` may then be NaN),
          ``new_lesions`` (bool), ``reference_mean``, ``reference_sd``,
          ``followup_reference_mean`` (SUL units), ``baseline_tlg``, ``followup_tlg`` (g).
        * EORTC: ``baseline``, ``followup`` (SUV, g/mL); optional ``resolved``,
          ``new_lesions``, ``background_suv`` (g/mL), ``baseline_extent_mm``,
          ``followup_extent_mm`` (mm).
        * RECIST, mRECIST: ``baseline``, ``followup`` (diameter, mm: longest, short
          axis for nodes, viable for mRECIST); optional ``nadir_mm`` (mm), ``is_node``
          (bool), ``new_lesions`` (bool).
    criteria : {"PERCIST", "EORTC", "RECIST", "mRECIST"}
        Criterion (case-insensitive).
    columns : mapping of str to str, optional
        Canonical column name -> name in `table`, e.g. ``{"baseline": "SULpeak_bl"}``.
    reference : {"liver", "blood_pool"}
        PERCIST reference region for the measurability threshold.
    after_one_cycle : bool
        EORTC: follow-up after one treatment cycle (15 % PMR threshold).
    thresholds : mapping, optional
        Overrides of ``criteria(...)["thresholds"]``.

    Returns
    -------
    DataFrame
        A copy of `table` with columns ``category``, ``rule_id``, ``rule`` (sentence),
        ``change_fraction`` (follow-up vs baseline, dimensionless) and ``change_abs``
        (follow-up minus baseline, in the input unit); for PERCIST also
        ``measurability_threshold`` (SUL) and ``reference_unstable`` (bool). For
        RECIST/mRECIST a lesion below the measurability limit at baseline is ``"NE"``.
        ``attrs`` holds the criteria name, version, DOI and thresholds.

    Notes
    -----
    Lesion-level grading applies the criteria's thresholds to one lesion, as
    lesion-based studies of radioembolization do; the criteria themselves define
    patient-level response. NaN or negative measurements raise
    :class:`~theraquant.TheraquantError` naming the rows.

    Examples
    --------
    >>> import pandas as pd
    >>> from theraquant.response import grade_lesions
    >>> t = pd.DataFrame({"lesion": ["a", "b", "c"], "SULpeak_bl": [10.0, 2.0, 5.0],
    ...                   "SULpeak_fu": [6.5, 1.3, 6.6]})
    >>> out = grade_lesions(t, "PERCIST", columns={"baseline": "SULpeak_bl", "followup": "SULpeak_fu"})
    >>> out["category"].tolist(), out["rule_id"].tolist()[0]
    (['PMR', 'SMD', 'PMD'], 'percist.pmr')
    """
    name, thr, cols = _read(table, criteria, columns, thresholds, level="lesion")
    b, f, new = cols["baseline"], cols["followup"], cols["new_lesions"]
    n = len(table)
    out = table.copy()
    extra: dict[str, np.ndarray] = {}
    if name == "PERCIST":
        meas = _measurability(cols, thr, reference)
        rm, fr = cols["reference_mean"], cols["followup_reference_mean"]
        codes = _percist_codes(b, f, cols["resolved"], meas, np.where(np.isnan(fr), rm, fr), new,
                               cols["baseline_tlg"], cols["followup_tlg"], thr)
        extra = {"measurability_threshold": meas, "reference_unstable": _unstable(rm, fr, thr)}
        table_rules = percist_rules(thr)
    elif name == "EORTC":
        pmr = thr["PMR_after_1_cycle"] if after_one_cycle else thr["PMR_after_more_cycles"]
        codes = _eortc_codes(b, f, cols["resolved"], cols["background_suv"], new,
                             cols["baseline_extent_mm"], cols["followup_extent_mm"], pmr, thr)
        table_rules = eortc_rules(thr)
    else:
        prefix = "recist" if name == "RECIST" else "mrecist"
        node = cols["is_node"]
        nadir = np.where(np.isnan(cols["nadir_mm"]), b, cols["nadir_mm"])
        _check_nadir(nadir, b, "rows", table.index)
        limit = np.where(node, thr["node_measurable_mm"], thr["lesion_measurable_mm"])
        all_cr = np.where(node, f < thr["node_normal_mm"] - EPS, f <= EPS)
        codes = _target_codes(b, nadir, f, all_cr, np.zeros(n, bool), thr, prefix)
        measurable = b >= limit - EPS
        codes = np.select(  # same order as recist(): target PD, then new lesions
            [measurable & (codes == f"{prefix}.target.pd"), new, ~measurable],
            [codes, f"{prefix}.new_lesion", f"{prefix}.lesion.not_measurable"], default=codes)
        table_rules = _recist_rules(name, thr)
    _label(out, codes, table_rules, b, f)
    for k, v in extra.items():
        out[k] = v
    name_, version, doi = meta(name)
    out.attrs.update(criteria=name_, version=version, doi=doi, thresholds=dict(thr), level="lesion")
    return out
