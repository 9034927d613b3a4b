"""Stratified response tables: response rate per cell of dichotomised markers, and the test across cells."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import pandas as pd
from scipy import stats as sps

from ..errors import TheraquantError
from ..results import Result, records_call
from ._common import SummaryMixin, as_binary, fmt_p, notes_text, table_text, wilson
from ._regression import _check_columns, logistic
from ._tests import TestResult, chi2_test, fisher_test

__all__ = ["ResponseTable", "response_table"]


@dataclass(frozen=True)
class ResponseTable(SummaryMixin, Result):
    """Response rate in each cell of one or more dichotomised markers.

    Attributes
    ----------
    cells : pandas.DataFrame
        One row per cell: the marker labels, ``n`` lesions, ``responders``, ``rate`` (0-1),
        ``ci_low``, ``ci_high`` (95 % Wilson) and ``patients`` when clustered.
    cutoffs : mapping of str to float
        Marker -> cut-off, marker units; "high" means ``value >= cut-off`` unless ``operators``
        says ``">"`` for that marker.
    operators : mapping of str to str
        Marker -> ``">="`` or ``">"``: the comparison that makes a lesion "high".
    chi2 : TestResult
        Pearson chi-square across cells (2 x k table of responders / non-responders).
    fisher : TestResult or None
        Fisher exact test across cells (None when too many tables to enumerate; noted).
    test : TestResult
        The one to report: Fisher when any expected count is below 5, else chi-square.
    gee_wald : TestResult or None
        When clustered: joint robust Wald test of the cell effects in a GEE (exchangeable within
        patients), which does not treat lesions of one patient as independent.
    """

    cells: pd.DataFrame
    cutoffs: Mapping[str, float]
    chi2: TestResult
    fisher: TestResult | None
    test: TestResult
    gee_wald: TestResult | None
    outcome: str
    n: int
    notes: tuple[str, ...] = ()
    operators: Mapping[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        cuts = ", ".join(f"{k} {self.operators.get(k, '>=')} {v:g}" for k, v in self.cutoffs.items())
        lines = [f"Response by stratum ({cuts} is 'high')   {self.n} lesions   outcome {self.outcome}"]
        keys = list(self.cutoffs)
        rows = []
        for _, c in self.cells.iterrows():
            rows.append([" / ".join(str(c[k]) for k in keys), int(c["n"]), int(c["responders"]), c["rate"],
                         f"{c['ci_low']:.3f}-{c['ci_high']:.3f}" if c["n"] else "n/a"])
        lines.append(table_text(["cell", "n", "resp", "rate", "95 % CI"], rows, [36, 6, 6, 8, 13]))
        lines.append(f"across cells: {self.test.test} p = {fmt_p(self.test.p)} ({self.test.method})")
        if self.gee_wald is not None:
            lines.append(f"clustered:    {self.gee_wald.test} p = {fmt_p(self.gee_wald.p)} ({self.gee_wald.method})")
        return "\n".join(lines) + notes_text(self.notes)

    def to_dict(self) -> dict:
        return {"outcome": self.outcome, "n": self.n, "cutoffs": dict(self.cutoffs),
                "operators": {k: self.operators.get(k, ">=") for k in self.cutoffs},
                "cells": self.cells.to_dict(orient="records"), "test": self.test.to_dict(),
                "chi2": self.chi2.to_dict(), "fisher": None if self.fisher is None else self.fisher.to_dict(),
                "gee_wald": None if self.gee_wald is None else self.gee_wald.to_dict(), "notes": list(self.notes)}


@records_call("theraquant.stats.response_table")
def response_table(data: pd.DataFrame, outcome: str, cutoffs: Mapping[str, float], *,
                   labels: Mapping[str, tuple[str, str]] | None = None, cluster: str | None = None,
                   operators: Mapping[str, str] | None = None) -> ResponseTable:
    """Cross dichotomised markers and report the response rate with its CI per cell.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per lesion.
    outcome : str
        Column of 0/1 response (1 = responder).
    cutoffs : mapping of str to float
        Marker column -> cut-off in the marker's units; a lesion is "high" when its value is
        ``>=`` the cut-off (or ``>``, see ``operators``). E.g. ``{"tbp": 1.29, "dmean_gy": 89.0}``
        for hypoxic vs non-hypoxic by high vs low dose.
    labels : mapping of str to (str, str), optional
        Marker -> (label below, label at or above the cut-off), e.g.
        ``{"tbp": ("non-hypoxic", "hypoxic")}``. Default ("low", "high").
    cluster : str, optional
        Patient column: adds patient counts per cell and a clustered GEE Wald test.
    operators : mapping of str to {">=", ">"}, optional
        Per marker, the comparison with its cut-off that makes a lesion "high" (default ``">="``).
        State the source's own: ARTE-MISO's hypoxia is "T/BP > 1.29", so a lesion at exactly
        1.29 is not hypoxic (``{"tbp": ">"}``).

    Returns
    -------
    ResponseTable
        Cells in the order of the product of the markers' (low, high) levels; empty cells are
        kept with n = 0 and no rate (they are left out of the tests, noted).

    Notes
    -----
    The across-cell tests treat lesions as independent; with several lesions per patient the
    GEE Wald test (``cluster``) is the honest one.

    Examples
    --------
    >>> import pandas as pd
    >>> from theraquant.stats import response_table
    >>> df = pd.DataFrame({"resp": [1, 1, 0, 0, 1, 0, 1, 0], "tbp": [1.1, 1.2, 1.5, 1.6, 1.0, 1.4, 1.3, 1.8],
    ...                    "dose": [95, 120, 60, 100, 70, 50, 99, 130]})
    >>> t = response_table(df, "resp", {"tbp": 1.29, "dose": 89}, labels={"tbp": ("non-hypoxic", "hypoxic")})
    >>> t.cells[["tbp", "dose", "n", "responders"]].values.tolist()[:2]
    [['non-hypoxic', 'low', 1, 1], ['non-hypoxic', 'high', 2, 2]]
    """
    if not isinstance(cutoffs, Mapping) or not cutoffs:
        raise TheraquantError(f"cutoffs must map marker column -> cut-off, e.g. {{'tbp': 1.29}}, got {cutoffs!r}")
    keys = list(cutoffs)
    _check_columns(data, [outcome, *keys] + ([cluster] if cluster else []), "outcome/marker/cluster")
    labels = dict(labels or {})
    ops = {k: ">=" for k in keys}
    for k, op in dict(operators or {}).items():
        if k not in cutoffs or op not in (">=", ">"):
            raise TheraquantError(f"operators must map a marker of cutoffs ({', '.join(keys)}) to '>=' or '>', "
                                  f"got {k!r}: {op!r}", argument="operators")
        ops[k] = op
    for k in keys:
        if not np.isfinite(cutoffs[k]):
            raise TheraquantError(f"cut-off of {k!r} must be a finite number, got {cutoffs[k]!r}")
        lab = labels.setdefault(k, ("low", "high"))
        if len(lab) != 2:
            raise TheraquantError(f"labels[{k!r}] must be (label below, label at or above), got {lab!r}")
    sub = data[[outcome, *keys] + ([cluster] if cluster else [])].dropna()
    notes = [f"{len(data) - len(sub)} lesion(s) with a missing value dropped"] if len(sub) < len(data) else []
    y = as_binary(sub[outcome].to_numpy(), name=f"outcome column {outcome!r}")
    high = {k: (np.greater if ops[k] == ">" else np.greater_equal)(sub[k].to_numpy(dtype=float), cutoffs[k])
            for k in keys}
    rows, cell_of = [], np.full(len(sub), -1)
    for ci, combo in enumerate(itertools.product((False, True), repeat=len(keys))):
        sel = np.ones(len(sub), dtype=bool)
        for k, h in zip(keys, combo):
            sel &= high[k] == h
        cell_of[sel] = ci
        n, r = int(sel.sum()), int(y[sel].sum())
        lo, hi = wilson(r, n)
        row = {k: labels[k][int(h)] for k, h in zip(keys, combo)}
        row.update(n=n, responders=r, rate=r / n if n else float("nan"), ci_low=lo, ci_high=hi)
        if cluster:
            row["patients"] = int(sub.loc[sel, cluster].nunique())
        rows.append(row)
    cells = pd.DataFrame(rows)
    used = cells["n"].to_numpy() > 0
    if (~used).any():
        notes.append(f"{int((~used).sum())} empty cell(s): no lesion there, left out of the tests")
    if used.sum() < 2:
        raise TheraquantError(
            f"all {len(sub)} lesions fall into one cell of {keys!r} at cut-offs {dict(cutoffs)!r}; "
            "choose cut-offs inside the markers' ranges")
    if y.sum() in (0, y.size):
        raise TheraquantError(f"outcome {outcome!r} has one class only ({int(y.sum())} responders of {y.size})")
    tab = np.stack([cells["responders"].to_numpy()[used], (cells["n"] - cells["responders"]).to_numpy()[used]])
    chi2 = chi2_test(tab, correction=True)
    try:
        fisher = fisher_test(tab)
    except TheraquantError as exc:
        fisher = None
        notes.append(f"Fisher test skipped: {exc}")
    sparse = bool(np.any(np.asarray(chi2.details["expected"]) < 5))
    test = fisher if (sparse and fisher is not None) else chi2
    gee = None
    rates = cells["rate"].to_numpy()[used]
    if cluster and np.any((rates == 0) | (rates == 1)):
        notes.append("clustered GEE test not available: a cell with 0 % or 100 % response makes its odds "
                     "ratio infinite; report the exact test and the per-cell rates")
    elif cluster:
        gee = _gee_wald(sub.assign(_cell=cell_of), outcome, cluster, notes)
    return ResponseTable(cells=cells, cutoffs=dict(cutoffs), chi2=chi2, fisher=fisher, test=test, gee_wald=gee,
                         outcome=outcome, n=int(len(sub)), notes=tuple(notes), operators=ops)


def _gee_wald(df: pd.DataFrame, outcome: str, cluster: str, notes: list) -> TestResult | None:
    df = df.assign(_cell=df["_cell"].map(lambda c: f"c{c}"))
    try:
        fit = logistic(df, outcome, "_cell", cluster=cluster)
    except TheraquantError as exc:
        notes.append(f"clustered GEE test not available: {str(exc).split(';')[0]}")
        return None
    names = [k for k in fit.coef if k != "Intercept"]
    b = np.array([fit.coef[k] for k in names])
    v = np.array([[fit.cov[a][c] for c in names] for a in names])
    stat = float(b @ np.linalg.solve(v, b))
    return TestResult("GEE Wald (cells)", stat, float(sps.chi2.sf(stat, len(names))),
                      "robust Wald chi-square, exchangeable within patients", "W", float(len(names)), fit.n_obs)
