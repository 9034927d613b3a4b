"""Vectorised grading of a whole lesion table (one row per lesion) for the cohort pipeline."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..errors import TheraquantError
from ._criteria import EPS, NAMES, at_least, meta, thresholds as _thresholds
from ._pet import _eortc_codes, _percist_codes, eortc_rules, percist_rules
from ._recist import NON_TARGET, _target_codes, rules as _recist_rules

__all__ = ["grade_lesions", "grade_patients", "TABLE_COLUMNS"]

#: canonical input columns per criterion: (required, optional); grade_patients also needs
#: ``patient`` and takes ``lesion`` (all) and ``organ``, ``non_target`` (RECIST, mRECIST)
TABLE_COLUMNS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "PERCIST": (("baseline", "followup"),
                ("resolved", "new_lesions", "non_target_progression", "reference_mean", "reference_sd",
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
    out = np.zeros(len(df), dtype=bool)  # strict: only these spellings, never truthiness ("no" is not True)
    for i, v in enumerate(df[col].tolist()):
        key = v.strip().lower() if isinstance(v, str) else v
        if isinstance(v, (bool, np.bool_)) or (not isinstance(v, str) and v in (0, 1)):
            out[i] = bool(v)
        elif key in ("true", "yes", "y", "1", "t") or key in ("false", "no", "n", "0", "f"):
            out[i] = key in ("true", "yes", "y", "1", "t")
        else:
            raise TheraquantError(f"column {col!r}, row {i + 1}: {v!r} is not a yes/no value; write True/False, "
                                  "yes/no or 1/0 in every row (an empty cell is not False: fill it in)")
    return out


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
    out["non_target_progression"] = _flag(table, has.get("non_target_progression"))
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
          ``new_lesions``, ``non_target_progression`` (bool), ``reference_mean``, ``reference_sd``,
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

    References
    ----------
    .. [1] Eisenhauer EA, et al. Eur J Cancer 2009;45:228-247 (RECIST 1.1). doi:10.1016/j.ejca.2008.10.026
    .. [2] Lencioni R, Llovet JM. Semin Liver Dis 2010;30:52-60 (mRECIST). doi:10.1055/s-0030-1247132
    .. [3] Wahl RL, et al. J Nucl Med 2009;50 Suppl 1:122S-150S (PERCIST 1.0). doi:10.2967/jnumed.108.057307
    .. [4] O JH, Lodge MA, Wahl RL. Radiology 2016;280:576-584. doi:10.1148/radiol.2016142043
    .. [5] Young H, et al. Eur J Cancer 1999;35:1773-1782 (EORTC). doi:10.1016/S0959-8049(99)00229-4

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
                               cols["baseline_tlg"], cols["followup_tlg"], thr,
                               cols["non_target_progression"])
        extra = {"measurability_threshold": meas, "reference_unstable": _unstable(rm, fr, thr)}
        table_rules = percist_rules(thr)
    elif name == "EORTC":
        pmr = thr["PMR_after_1_cycle"] if after_one_cycle else thr["PMR_after_more_cycles"]
        codes = _eortc_codes(b, f, cols["resolved"], cols["background_suv"], new,
                             cols["baseline_extent_mm"], cols["followup_extent_mm"],
                             bool(after_one_cycle), thr)
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


# --------------------------------------------------------------------------- patient level
class _Groups:
    """Row -> patient bookkeeping for vectorised per-patient reductions (patients in order of appearance)."""

    def __init__(self, patient: np.ndarray, index: pd.Index) -> None:
        self.code, self.ids = pd.factorize(patient, sort=False)
        self.k = len(self.ids)
        self.index = index
        _, self.first = np.unique(self.code, return_index=True)

    def agg(self, values: np.ndarray, how: str) -> np.ndarray:
        return pd.Series(values).groupby(self.code, sort=True).agg(how).to_numpy()

    def constant(self, values: np.ndarray | None, what: str) -> np.ndarray | None:
        """The one value a patient-level column holds per patient (NaN counts as a value)."""
        if values is None:
            return None
        s = pd.Series(values, dtype=object).where(~pd.isna(pd.Series(values, dtype=object)), "\0nan")
        n_values = s.groupby(self.code, sort=True).nunique().to_numpy()
        bad = n_values > 1
        if bad.any():
            raise TheraquantError(
                f"column {what!r} must hold one value per patient, but patients "
                f"{list(self.ids[bad][:5])} have several; it describes the patient, not the lesion")
        return np.asarray(values)[self.first]

    def whole(self, values: np.ndarray, what: str) -> np.ndarray:
        """Per-patient sum that refuses a patient with some lesions missing the value."""
        nan = np.isnan(values)
        n_nan = self.agg(nan.astype(int), "sum")
        size = self.agg(np.ones(len(values), int), "sum")
        bad = (n_nan > 0) & (n_nan < size)
        if bad.any():
            raise TheraquantError(
                f"column {what!r} is given for some lesions of patients {list(self.ids[bad][:5])} "
                "but not all; give it for every lesion of a patient or for none")
        return np.where(n_nan == size, np.nan, self.agg(np.where(nan, 0.0, values), "sum"))

    def hottest(self, values: np.ndarray, skip: np.ndarray, lesion: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per patient: max of `values` over rows not in `skip`, its lesion id, and 'none left'."""
        v = np.where(skip, -np.inf, values)
        s = pd.Series(v).groupby(self.code, sort=True)
        top, at = s.max().to_numpy(), s.idxmax().to_numpy()  # idxmax: first of ties, as percist()
        none = np.isneginf(top)
        return np.where(none, np.nan, top), np.where(none, None, lesion[at]), none


def grade_patients(
    table: pd.DataFrame,
    criteria: str,
    *,
    columns: Mapping[str, str] | None = None,
    reference: str = "liver",
    after_one_cycle: bool = False,
    aggregate: str = "sum",
    thresholds: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Grade every patient of a lesion table at patient level, all patients at once.

    One row per lesion, with a ``patient`` column; the result has one row per
    patient and equals calling :func:`percist`, :func:`eortc`, :func:`recist` or
    :func:`mrecist` on each patient's lesions (a test checks this on a random cohort).

    Parameters
    ----------
    table : DataFrame
        The columns of :func:`grade_lesions` plus ``patient`` (id) and optionally
        ``lesion`` (id; default the row label). Per criterion:

        * PERCIST: the hottest ``baseline`` and the hottest ``followup`` SULpeak of
          each patient are compared (they may be different lesions); rows with a True
          ``resolved`` do not count at follow-up. ``reference_mean``,
          ``reference_sd`` and ``followup_reference_mean`` must be constant per
          patient; ``baseline_tlg``/``followup_tlg`` (g) are summed per patient;
          ``new_lesions`` is true when any row says so.
        * EORTC: SUVs combined by `aggregate` (``"sum"``: every lesion's follow-up
          SUV is needed unless all are resolved; ``"max"``: hottest lesion).
          ``background_suv`` constant per patient; extent PMD when any lesion's
          longest dimension grew by the threshold.
        * RECIST, mRECIST: each row is a target lesion; ``followup`` NaN means not
          assessed; ``nadir_mm`` (sum, mm) and ``non_target`` (one of "CR",
          "non-CR/non-PD", "PD", "NE", or empty) are constant per patient;
          ``organ`` enables the 2-per-organ check. Targets must already be chosen
          (at most 5, 2 per organ, measurable), else an error names the patients.
    criteria : {"PERCIST", "EORTC", "RECIST", "mRECIST"}
    columns : mapping of str to str, optional
        Canonical column name -> name in `table`.
    reference : {"liver", "blood_pool"}
        PERCIST measurability reference.
    after_one_cycle : bool
        EORTC 15 % PMR threshold.
    aggregate : {"sum", "max"}
        EORTC lesion combination (see :func:`eortc`).
    thresholds : mapping, optional
        Overrides of ``criteria(...)["thresholds"]``.

    Returns
    -------
    DataFrame
        Indexed by patient (order of first appearance): ``n_lesions``, ``baseline``
        and ``followup`` (the compared values: SULpeak, SUV or sums of diameters in
        mm), ``category``, ``rule_id``, ``rule``, ``change_fraction``, ``change_abs``,
        and per criterion ``baseline_lesion``/``followup_lesion``/``same_lesion``,
        ``measurability_threshold``, ``reference_unstable`` (PERCIST) or ``nadir_mm``,
        ``n_missing``, ``target_response``, ``target_rule``, ``non_target`` (RECIST).

    References
    ----------
    .. [1] Eisenhauer EA, et al. Eur J Cancer 2009;45:228-247 (RECIST 1.1). doi:10.1016/j.ejca.2008.10.026
    .. [2] Lencioni R, Llovet JM. Semin Liver Dis 2010;30:52-60 (mRECIST). doi:10.1055/s-0030-1247132
    .. [3] Wahl RL, et al. J Nucl Med 2009;50 Suppl 1:122S-150S (PERCIST 1.0). doi:10.2967/jnumed.108.057307
    .. [4] O JH, Lodge MA, Wahl RL. Radiology 2016;280:576-584. doi:10.1148/radiol.2016142043
    .. [5] Young H, et al. Eur J Cancer 1999;35:1773-1782 (EORTC). doi:10.1016/S0959-8049(99)00229-4

    Examples
    --------
    >>> import pandas as pd
    >>> from theraquant.response import grade_patients
    >>> t = pd.DataFrame({"patient": ["p1", "p1", "p2"], "lesion": ["A", "B", "C"],
    ...                   "baseline": [9.0, 6.0, 10.0], "followup": [5.0, 12.0, 6.5]})
    >>> out = grade_patients(t, "PERCIST")
    >>> out[["baseline_lesion", "followup_lesion", "category"]].values.tolist()
    [['A', 'B', 'PMD'], ['C', 'C', 'PMR']]
    """
    name, thr, cols = _read(table, criteria, columns, thresholds, level="patient")
    g = _Groups(cols["patient"], table.index)
    lesion = (np.asarray(table.index.astype(str), dtype=object) if cols.get("lesion") is None
              else np.asarray([str(x) for x in cols["lesion"]], dtype=object))
    dup = pd.Series(list(zip(g.code, lesion))).duplicated().to_numpy()
    if dup.any():
        raise TheraquantError(
            f"lesion ids repeat within a patient in rows {list(table.index[dup][:5])}; "
            "each lesion of a patient needs its own id")
    b, f, new_rows = cols["baseline"], cols["followup"], cols["new_lesions"]
    new = g.agg(new_rows, "any").astype(bool)
    out = pd.DataFrame(index=pd.Index(g.ids, name="patient"))
    out["n_lesions"] = g.agg(np.ones(len(b), int), "sum")
    if name in ("PERCIST", "EORTC"):
        skip = cols["resolved"] | np.isnan(f)
        if name == "EORTC" and aggregate not in ("sum", "max"):
            raise TheraquantError(f"aggregate must be 'sum' or 'max', got {aggregate!r}")
        if name == "PERCIST" or aggregate == "max":
            B, b_id, _ = g.hottest(b, np.zeros(len(b), bool), lesion)
            F, f_id, resolved = g.hottest(f, skip, lesion)
            out["baseline_lesion"], out["followup_lesion"] = b_id, f_id
            out["same_lesion"] = b_id == f_id
        else:
            n_skip = g.agg(skip.astype(int), "sum")
            mixed = (n_skip > 0) & (n_skip < out["n_lesions"].to_numpy())
            if mixed.any():
                raise TheraquantError(
                    f"aggregate='sum' needs every lesion's follow-up SUV, but patients "
                    f"{list(g.ids[mixed][:5])} have some lesions marked resolved; give their "
                    "background-level SUV, or use aggregate='max'")
            B = g.agg(b, "sum")
            resolved = n_skip > 0
            F = np.where(resolved, np.nan, g.agg(np.where(skip, 0.0, f), "sum"))
        if name == "PERCIST":
            per = {c: g.constant(cols[c], c) for c in ("reference_mean", "reference_sd",
                                                       "followup_reference_mean")}
            per = {c: np.asarray(v, dtype=np.float64) for c, v in per.items()}
            meas = _measurability(per, thr, reference)
            rm, fr = per["reference_mean"], per["followup_reference_mean"]
            codes = _percist_codes(B, F, resolved, meas, np.where(np.isnan(fr), rm, fr), new,
                                   g.whole(cols["baseline_tlg"], "baseline_tlg"),
                                   g.whole(cols["followup_tlg"], "followup_tlg"), thr,
                                   g.agg(cols["non_target_progression"], "any").astype(bool))
            out["measurability_threshold"] = meas
            out["reference_unstable"] = _unstable(rm, fr, thr)
            table_rules = percist_rules(thr)
        else:
            pmr = thr["PMR_after_1_cycle"] if after_one_cycle else thr["PMR_after_more_cycles"]
            bg = np.asarray(g.constant(cols["background_suv"], "background_suv"), dtype=np.float64)
            with np.errstate(invalid="ignore", divide="ignore"):
                ext = (cols["followup_extent_mm"] - cols["baseline_extent_mm"]) / cols["baseline_extent_mm"]
            ext_max = g.agg(ext, "max")  # NaN when no lesion has extents
            codes = _eortc_codes(B, F, resolved, bg, new, np.ones(g.k), 1.0 + ext_max, bool(after_one_cycle), thr)
            out["aggregate"] = aggregate
            table_rules = eortc_rules(thr)
    else:
        codes, B, F = _recist_patients(name, thr, cols, g, table, new, out)
        table_rules = _recist_rules(name, thr)
    out["baseline"], out["followup"] = B, F
    _label(out, np.asarray(codes), table_rules, B, F)
    name_, version, doi = meta(name)
    out.attrs.update(criteria=name_, version=version, doi=doi, thresholds=dict(thr), level="patient")
    return out


def _recist_patients(name: str, thr: Mapping[str, Any], cols: Mapping[str, Any], g: _Groups,
                     table: pd.DataFrame, new: np.ndarray, out: pd.DataFrame
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    prefix = "recist" if name == "RECIST" else "mrecist"
    b, f, node = cols["baseline"], cols["followup"], cols["is_node"]
    limit = np.where(node, thr["node_measurable_mm"], thr["lesion_measurable_mm"])
    small = b < limit - EPS
    if small.any():
        raise TheraquantError(
            f"rows {list(table.index[small][:5])} hold baseline targets below the {name} measurability "
            f"limit ({thr['lesion_measurable_mm']:g} mm; nodes {thr['node_measurable_mm']:g} mm short "
            "axis); remove them from the target table (follow them as non-target lesions)")
    n = out["n_lesions"].to_numpy()
    if (n > thr["max_targets"]).any():
        raise TheraquantError(
            f"patients {list(g.ids[n > thr['max_targets']][:5])} have more than {thr['max_targets']} "
            "target lesions; choose the targets before grading (recist(..., select_targets=True) "
            "shows the RECIST choice)")
    if cols.get("organ") is not None:
        per_organ = pd.Series(1, index=pd.MultiIndex.from_arrays([g.code, cols["organ"]])).groupby(
            level=[0, 1]).sum()
        crowded = per_organ[per_organ > thr["max_targets_per_organ"]]
        if len(crowded):
            raise TheraquantError(
                f"patients {sorted({g.ids[c] for c, _ in crowded.index})[:5]} have more than "
                f"{thr['max_targets_per_organ']} targets in one organ; choose the targets first")
    missing = np.isnan(f)
    base_sum = g.agg(b, "sum")
    fu_sum = g.agg(np.where(missing, 0.0, f), "sum")
    n_missing = g.agg(missing.astype(int), "sum")
    gone = np.where(node, f < thr["node_normal_mm"] - EPS, f <= EPS) & ~missing
    all_cr = g.agg(gone.astype(int), "sum") == n
    nadir = np.asarray(g.constant(cols["nadir_mm"], "nadir_mm"), dtype=np.float64)
    nadir = np.where(np.isnan(nadir), base_sum, nadir)
    _check_nadir(nadir, base_sum, "patients", g.ids)
    target = _target_codes(base_sum, nadir, fu_sum, all_cr, n_missing > 0, thr, prefix)
    nt = g.constant(cols.get("non_target"), "non_target")
    nt = np.full(g.k, None, dtype=object) if nt is None else np.where(pd.isna(nt), None, nt)
    bad = [v for v in nt if v is not None and v not in NON_TARGET]
    if bad:
        raise TheraquantError(
            f"column 'non_target' must hold one of {list(NON_TARGET)} or be empty, got {bad[:3]}")
    t_pd = np.char.endswith(target.astype(str), ".pd") | np.char.endswith(target.astype(str), ".pd_partial")
    t_cr = target == f"{prefix}.target.cr"
    open_nt = np.isin(nt.astype(str), ["non-CR/non-PD", "NE"])
    codes = np.select(
        [t_pd, nt.astype(str) == "PD", new, t_cr & open_nt],
        [target, f"{prefix}.non_target_pd", f"{prefix}.new_lesion", f"{prefix}.target_cr_non_target_open"],
        default=target)
    rules_ = _recist_rules(name, thr)
    out["nadir_mm"] = nadir
    out["n_missing"] = n_missing
    out["target_response"] = [rules_[c][0] for c in target.tolist()]
    out["target_rule"] = target
    out["non_target"] = nt
    out["new_lesions"] = new
    with np.errstate(invalid="ignore", divide="ignore"):
        out["change_from_nadir_mm"] = fu_sum - nadir
    return codes, base_sum, fu_sum
