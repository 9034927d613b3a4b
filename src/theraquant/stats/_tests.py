"""Group comparisons: Mann-Whitney U, Kruskal-Wallis, chi-square, Fisher exact, Wilcoxon signed-rank.

Each test reproduces R's ``stats`` package (wilcox.test, kruskal.test, chisq.test, fisher.test)
with its defaults, and says which variant (exact or normal approximation) it used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats as sps
from scipy.special import gammaln

from ..errors import TheraquantError
from ..results import Result, records_call
from ._common import SummaryMixin, fmt_p, frozen_map, notes_text

__all__ = ["TestResult", "mann_whitney", "kruskal_wallis", "chi2_test", "fisher_test", "wilcoxon_signed_rank"]


@dataclass(frozen=True)
class TestResult(SummaryMixin, Result):
    """A hypothesis test.

    Attributes
    ----------
    test : str
        Name of the test.
    statistic : float
        Test statistic (named in ``statistic_name``: W, H, X-squared, V ...).
    p : float
        Two-sided p-value.
    method : str
        The variant used, e.g. "exact" or "normal approximation with continuity correction".
    df : float or None
        Degrees of freedom (chi-square based tests).
    n : int
        Observations used.
    details : mapping
        Test-specific numbers (expected counts, group sizes and medians, odds ratio ...).
    notes : tuple of str
        Warnings such as expected counts below 5.
    """

    __test__ = False  # not a pytest class

    test: str
    statistic: float
    p: float
    method: str
    statistic_name: str = "statistic"
    df: float | None = None
    n: int = 0
    details: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def summary(self) -> str:
        df = f"  df {self.df:g}" if self.df is not None else ""
        stat = f"{self.statistic:.6g}" if np.isfinite(self.statistic) else "n/a"
        return (f"{self.test:<28} {self.statistic_name} = {stat:>10}{df}   p = {fmt_p(self.p):>10}   "
                f"n {self.n}   ({self.method})" + notes_text(self.notes))

    def to_dict(self) -> dict:
        return {"test": self.test, "statistic_name": self.statistic_name, "statistic": self.statistic,
                "p": self.p, "method": self.method, "df": self.df, "n": self.n,
                "details": dict(self.details), "notes": list(self.notes)}


def _sample(x: ArrayLike, name: str, *, min_n: int = 1) -> NDArray[np.float64]:
    try:
        a = np.asarray(x, dtype=float).ravel()
    except (TypeError, ValueError):
        raise TheraquantError(f"{name} must be numeric, got {np.asarray(x)[:3].tolist()!r}") from None
    bad = ~np.isfinite(a)
    if bad.any():
        raise TheraquantError(f"{name} has {int(bad.sum())} missing value(s); drop them first (dropna)")
    if a.size < min_n:
        raise TheraquantError(f"{name} needs at least {min_n} value(s), got {a.size}")
    return a


def _tie_term(values: NDArray) -> float:
    _, counts = np.unique(values, return_counts=True)
    return float(np.sum(counts**3 - counts))


@records_call("theraquant.stats.mann_whitney")
def mann_whitney(x: ArrayLike, y: ArrayLike, *, exact: bool | None = None, correct: bool = True) -> TestResult:
    """Mann-Whitney U (Wilcoxon rank-sum) test, as R's ``wilcox.test(x, y)``.

    Parameters
    ----------
    x, y : array_like of float
        The two samples (e.g. a marker in responders and in non-responders), any unit.
    exact : bool or None, optional
        None (R's rule): exact when both samples have fewer than 50 values and there are no
        ties, else the normal approximation.
    correct : bool, optional
        Continuity correction of the normal approximation.

    Returns
    -------
    TestResult
        ``statistic`` is W = U of ``x`` (sum of ranks of ``x`` minus n_x (n_x + 1) / 2);
        ``details`` holds the medians and the AUC-equivalent W / (n_x n_y).

    References
    ----------
    .. [1] Mann HB, Whitney DR. Ann Math Stat 1947;18:50-60. doi:10.1214/aoms/1177730491

    Examples
    --------
    >>> from theraquant.stats import mann_whitney
    >>> r = mann_whitney([1.83, 0.50, 1.62, 2.48, 1.68], [0.878, 0.647, 0.598, 2.05, 1.06])
    >>> r.statistic, r.method
    (17.0, 'exact')
    """
    a, b = _sample(x, "x"), _sample(y, "y")
    nx, ny = a.size, b.size
    ranks = sps.rankdata(np.r_[a, b])
    w = float(ranks[:nx].sum() - nx * (nx + 1) / 2)
    ties = _tie_term(np.r_[a, b]) > 0
    use_exact = (nx < 50 and ny < 50 and not ties) if exact is None else exact
    if use_exact and ties:
        use_exact = False
    if use_exact:
        p = float(sps.mannwhitneyu(a, b, alternative="two-sided", method="exact").pvalue)
        method = "exact"
    else:
        z = w - nx * ny / 2
        sigma = np.sqrt(nx * ny / 12 * ((nx + ny + 1) - _tie_term(np.r_[a, b]) / ((nx + ny) * (nx + ny - 1))))
        corr = 0.5 * np.sign(z) if correct else 0.0
        p = float(2 * sps.norm.sf(abs((z - corr) / sigma))) if sigma > 0 else 1.0
        method = "normal approximation" + (" with continuity correction" if correct else "")
    return TestResult("Mann-Whitney U", w, min(p, 1.0), method, "W", None, nx + ny,
                      frozen_map({"n_x": nx, "n_y": ny, "median_x": float(np.median(a)),
                                  "median_y": float(np.median(b)), "auc": w / (nx * ny)}))


@records_call("theraquant.stats.kruskal_wallis")
def kruskal_wallis(values: ArrayLike, groups: ArrayLike) -> TestResult:
    """Kruskal-Wallis rank-sum test across groups (e.g. CR/PR/SD/PD), as R's ``kruskal.test``.

    Parameters
    ----------
    values : (n,) array_like of float
        Marker per lesion, any unit.
    groups : (n,) array_like
        Group label per lesion.

    Returns
    -------
    TestResult
        H with the tie correction, chi-square with k - 1 df; per-group n and median in ``details``.

    References
    ----------
    .. [1] Kruskal WH, Wallis WA. J Am Stat Assoc 1952;47:583-621. doi:10.1080/01621459.1952.10483441

    Examples
    --------
    >>> from theraquant.stats import kruskal_wallis
    >>> r = kruskal_wallis([1, 2, 3, 4, 5, 6, 7, 8, 9], list("AAABBBCCC"))
    >>> round(r.statistic, 4), r.df
    (7.2, 2.0)
    """
    v = _sample(values, "values")
    g = np.asarray(groups)
    if g.shape != v.shape:
        raise TheraquantError(f"groups must have one label per value ({v.size}), got shape {g.shape}")
    labels = np.unique(g.astype(str))
    if labels.size < 2:
        raise TheraquantError(f"Kruskal-Wallis needs at least 2 groups, got {labels.tolist()!r}")
    samples = [v[g.astype(str) == lab] for lab in labels]
    if _tie_term(v) == v.size**3 - v.size:
        raise TheraquantError("all values are tied: Kruskal-Wallis has no ranks to compare")
    res = sps.kruskal(*samples)
    return TestResult("Kruskal-Wallis", float(res.statistic), float(res.pvalue), "chi-square approximation",
                      "H", float(labels.size - 1), v.size,
                      frozen_map({str(lab): {"n": int(s.size), "median": float(np.median(s))}
                                  for lab, s in zip(labels, samples)}))


@records_call("theraquant.stats.wilcoxon_signed_rank")
def wilcoxon_signed_rank(before: ArrayLike, after: ArrayLike, *, exact: bool | None = None,
                         correct: bool = True) -> TestResult:
    """Wilcoxon signed-rank test of paired values (baseline vs follow-up), as R's paired wilcox.test.

    Parameters
    ----------
    before, after : (n,) array_like of float
        Paired values, same unit (e.g. SUVmax at baseline and follow-up).
    exact : bool or None, optional
        None (R's rule): exact when n < 50 and there are no ties or zero differences.
    correct : bool, optional
        Continuity correction of the normal approximation.

    Returns
    -------
    TestResult
        ``statistic`` is V, the sum of the ranks of the positive differences ``after - before``
        (zero differences dropped, as R does); the median change is in ``details``.

    References
    ----------
    .. [1] Wilcoxon F. Biometrics Bull 1945;1:80-3. doi:10.2307/3001968

    Examples
    --------
    >>> from theraquant.stats import wilcoxon_signed_rank
    >>> r = wilcoxon_signed_rank([10, 12, 9, 14, 11, 13], [8, 9, 9.5, 10.5, 7, 12])
    >>> r.statistic, r.method
    (1.0, 'exact')
    """
    b0, b1 = _sample(before, "before"), _sample(after, "after")
    if b0.size != b1.size:
        raise TheraquantError(f"before and after must be paired (same length), got {b0.size} and {b1.size}")
    d_all = b1 - b0
    d = d_all[d_all != 0]
    n = d.size
    if n == 0:
        raise TheraquantError("all paired differences are zero: there is no change to test")
    r = sps.rankdata(np.abs(d))
    v = float(r[d > 0].sum())
    ties = _tie_term(np.abs(d)) > 0
    zeros = n < d_all.size
    use_exact = (n < 50 and not ties and not zeros) if exact is None else exact
    if use_exact and (ties or zeros):
        use_exact = False
    if use_exact:
        p = float(sps.wilcoxon(d, method="exact").pvalue)
        method = "exact"
    else:
        z = v - n * (n + 1) / 4
        sigma = np.sqrt(n * (n + 1) * (2 * n + 1) / 24 - _tie_term(np.abs(d)) / 48)
        corr = 0.5 * np.sign(z) if correct else 0.0
        p = float(2 * sps.norm.sf(abs((z - corr) / sigma))) if sigma > 0 else 1.0
        method = "normal approximation" + (" with continuity correction" if correct else "")
    notes = (f"{d_all.size - n} zero difference(s) dropped",) if zeros else ()
    return TestResult("Wilcoxon signed-rank", v, min(p, 1.0), method, "V", None, n,
                      frozen_map({"median_change": float(np.median(d_all)), "n_pairs": int(d_all.size)}), notes)


def _table(table: ArrayLike) -> NDArray[np.int64]:
    try:
        t = np.asarray(table, dtype=float)
    except (TypeError, ValueError):
        raise TheraquantError("table must be a 2-D array of counts") from None
    if t.ndim != 2 or min(t.shape) < 2:
        raise TheraquantError(f"table must be 2-D with at least 2 rows and 2 columns of counts, got shape {t.shape}")
    if not np.all(np.isfinite(t)) or np.any(t < 0) or np.any(t != np.round(t)):
        raise TheraquantError(f"table must hold non-negative whole counts, got {t.tolist()!r}")
    t = t.astype(np.int64)
    if np.any(t.sum(axis=0) == 0) or np.any(t.sum(axis=1) == 0):
        raise TheraquantError(
            f"table has an empty row or column (margins {t.sum(axis=1).tolist()} x {t.sum(axis=0).tolist()}); "
            "drop it first - a category nobody fell into carries no information")
    return t


@records_call("theraquant.stats.chi2_test")
def chi2_test(table: ArrayLike, *, correction: bool = True) -> TestResult:
    """Pearson chi-square test of independence on an r x c table of counts (R's ``chisq.test``).

    Parameters
    ----------
    table : (r, c) array_like of int
        Counts, e.g. rows responder / non-responder, columns marker categories.
    correction : bool, optional
        Yates continuity correction; applied to 2x2 tables only (as in R and scipy).

    Returns
    -------
    TestResult
        X-squared, df = (r - 1)(c - 1); expected counts in ``details``; a note when any
        expected count is below 5 (R's "approximation may be incorrect").

    References
    ----------
    .. [1] Yates F. Suppl J R Stat Soc 1934;1:217-35. doi:10.2307/2983604

    Examples
    --------
    >>> from theraquant.stats import chi2_test
    >>> r = chi2_test([[12, 5], [4, 11]], correction=False)
    >>> round(r.statistic, 4), r.df
    (6.149, 1.0)
    """
    t = _table(table)
    stat, p, dof, expected = sps.chi2_contingency(t, correction=correction)
    yates = correction and t.shape == (2, 2)
    notes = ()
    if np.any(expected < 5):
        notes = (f"expected count below 5 in {int(np.sum(expected < 5))} cell(s): the chi-square "
                 "approximation may be poor; prefer fisher_test",)
    return TestResult("Pearson chi-square", float(stat), float(p),
                      "with Yates continuity correction" if yates else "no continuity correction",
                      "X-squared", float(dof), int(t.sum()),
                      frozen_map({"observed": t.tolist(), "expected": expected.tolist()}), notes)


def _compositions(total: int, parts: int) -> NDArray[np.int64]:
    """All vectors of ``parts`` non-negative ints summing to ``total`` (stars and bars)."""
    if parts == 1:
        return np.array([[total]], dtype=np.int64)
    out = []
    for first in range(total + 1):
        rest = _compositions(total - first, parts - 1)
        out.append(np.column_stack([np.full(len(rest), first), rest]))
    return np.vstack(out)


def _fisher_rxc(t: NDArray[np.int64], max_tables: int) -> tuple[float, int]:
    """Exact two-sided p of an r x c table by full enumeration of the tables with its margins.

    p = sum of P(T) over tables with P(T) <= P(observed) (1 + 1e-7), as R's fisher.test.
    """
    if t.shape[0] > t.shape[1]:
        t = t.T
    rows, cols = t.sum(axis=1), t.sum(axis=0)
    lf = lambda a: gammaln(np.asarray(a, dtype=float) + 1)  # noqa: E731
    const = lf(rows).sum() + lf(cols).sum() - lf(t.sum())
    log_obs = const - lf(t).sum()
    state = rows[None, :].copy()   # remaining row sums, (K, r)
    acc = np.zeros(1)              # sum of -log x! so far, (K,)
    for c in cols[:-1]:
        comp = _compositions(int(c), t.shape[0])
        lcomp = -lf(comp).sum(axis=1)
        new_state, new_acc = [], []
        step = max(1, 4_000_000 // max(1, len(comp)))
        for s in range(0, len(state), step):
            st = state[s:s + step]
            ok = np.all(comp[None, :, :] <= st[:, None, :], axis=2)   # (k, L)
            ki, li = np.nonzero(ok)
            new_state.append(st[ki] - comp[li])
            new_acc.append(acc[s:s + step][ki] + lcomp[li])
        state, acc = np.vstack(new_state), np.concatenate(new_acc)
        if len(state) > max_tables:
            raise TheraquantError(
                f"the exact Fisher test of this {t.shape[0]}x{t.shape[1]} table (n = {int(t.sum())}) needs more "
                f"than {max_tables} tables; use chi2_test, merge sparse categories, or raise max_tables")
    logp = const + acc - lf(state).sum(axis=1)  # last column = what remains of the rows
    keep = logp <= log_obs + np.log1p(1e-7)
    return float(min(1.0, np.exp(logp[keep]).sum())), int(len(logp))


@records_call("theraquant.stats.fisher_test")
def fisher_test(table: ArrayLike, *, max_tables: int = 5_000_000) -> TestResult:
    """Fisher's exact test on a 2x2 or r x c table of counts (R's ``fisher.test``).

    Parameters
    ----------
    table : (r, c) array_like of int
        Counts.
    max_tables : int, optional
        Largest number of tables the r x c enumeration may visit before giving up with a message.

    Returns
    -------
    TestResult
        Two-sided p: the probability of all tables with the observed margins that are no more
        likely than the observed one. For 2x2, ``statistic`` is the conditional maximum-likelihood
        odds ratio with its exact 95 % CI in ``details`` (as R reports); for r x c it is the
        probability of the observed table.

    Notes
    -----
    2x2: scipy's hypergeometric computation. r x c: every table with the observed margins is
    enumerated (vectorised, column by column), which is exact and fast for the small response
    tables of a cohort; the network algorithm of Mehta & Patel (1983, doi:10.1080/01621459.1983.10477989)
    that R uses reaches the same p-value by pruning. (scipy's ``fisher_exact`` on an r x c table
    estimates the p-value by Monte Carlo sampling: 0.9876 for the 3x4 table of the tests, where the
    exact value, here and in R, is 0.98814.)

    Examples
    --------
    >>> from theraquant.stats import fisher_test
    >>> r = fisher_test([[3, 1], [1, 3]])
    >>> round(r.p, 4)
    0.4857
    """
    t = _table(table)
    if t.shape == (2, 2):
        p = float(sps.fisher_exact(t).pvalue)
        orr = sps.contingency.odds_ratio(t, kind="conditional")
        ci = orr.confidence_interval(0.95)
        return TestResult("Fisher exact", float(orr.statistic), p, "exact (hypergeometric)", "odds ratio",
                          None, int(t.sum()), frozen_map({"odds_ratio_ci": [float(ci.low), float(ci.high)],
                                                          "observed": t.tolist()}))
    p, n_tables = _fisher_rxc(t, max_tables)
    lf = lambda a: gammaln(np.asarray(a, dtype=float) + 1)  # noqa: E731
    p_obs = float(np.exp(lf(t.sum(1)).sum() + lf(t.sum(0)).sum() - lf(t.sum()) - lf(t).sum()))
    return TestResult("Fisher exact", p_obs, p, f"exact (enumeration of {n_tables} tables)",
                      "P(table)", None, int(t.sum()), frozen_map({"observed": t.tolist(), "n_tables": n_tables}))
