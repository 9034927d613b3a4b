"""ROC analysis: AUC with DeLong or Obuchowski (clustered) variance, cut-offs, paired comparison.

Conventions
-----------
``y`` is 1 for a responder (the positive class, pROC's "case") and 0 otherwise. ``direction="<"``
means responders have *higher* marker values (a lesion is called positive when
``score >= threshold``); ``">"`` means lower values predict response (positive when
``score <= threshold``). Thresholds are observed marker values, in the marker's own units. pROC
reports the midpoint between this value and the next lower observed value; both give the same
classification of the observed lesions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Mapping

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats as sps

from ..errors import TheraquantError
from ..results import Result, records_call
from ._common import (
    SummaryMixin, Z975, as_binary, as_cluster, as_score, fmt, fmt_ci, fmt_p, frozen_map,
    notes_text, wilson)

__all__ = ["RocResult", "RocComparison", "ThresholdMetrics", "roc", "compare_roc", "threshold_metrics"]

Direction = Literal["auto", "<", ">"]


# ------------------------------------------------------------------------------------ internals
def _placements(pos: NDArray, neg: NDArray) -> tuple[NDArray, NDArray, float]:
    """DeLong placement values by midranks (Sun & Xu 2014, doi:10.1109/LSP.2014.2337313).

    V10[i] = mean over negatives of psi(pos_i, neg) and V01[j] = mean over positives of
    psi(pos, neg_j), psi(a, b) = 1 if a > b, 1/2 if a == b, 0 otherwise. Returns (V10, V01, AUC).
    """
    m, n = pos.size, neg.size
    r_all = sps.rankdata(np.concatenate([pos, neg]))
    v10 = (r_all[:m] - sps.rankdata(pos)) / n
    v01 = 1.0 - (r_all[m:] - sps.rankdata(neg)) / m
    return v10, v01, float(v10.mean())


def _orient(score: NDArray, direction: str) -> NDArray:
    return score if direction == "<" else -score


def _detect_direction(y: NDArray, score: NDArray) -> str:
    _, _, auc = _placements(score[y == 1], score[y == 0])
    return "<" if auc >= 0.5 else ">"


def _check_classes(y: NDArray, what: str = "ROC analysis") -> tuple[int, int]:
    m, n = int(y.sum()), int(y.size - y.sum())
    if m < 2 or n < 2:
        raise TheraquantError(
            f"{what} needs at least 2 responders and 2 non-responders, got {m} responder(s) and "
            f"{n} non-responder(s); with one class only there is no ROC curve - pool more lesions")
    return m, n


def _covariance(y: NDArray, scores: NDArray, codes: NDArray | None, n_clusters: int
                ) -> tuple[NDArray, NDArray, dict]:
    """AUCs of the rows of ``scores`` (already oriented) and their covariance matrix.

    DeLong, DeLong & Clarke-Pearson (1988) doi:10.2307/2531595 when ``codes`` is None; else
    Obuchowski (1997) doi:10.2307/2533958 for lesions clustered in patients.
    """
    pos, neg = y == 1, y == 0
    m, n = int(pos.sum()), int(neg.sum())
    k = scores.shape[0]
    v10 = np.empty((k, m))
    v01 = np.empty((k, n))
    auc = np.empty(k)
    for r in range(k):
        v10[r], v01[r], auc[r] = _placements(scores[r, pos], scores[r, neg])
    info: dict = {}
    if codes is None:
        s10 = np.atleast_2d(np.cov(v10))
        s01 = np.atleast_2d(np.cov(v01))
        cov = s10 / m + s01 / n
        info.update(S10=s10, S01=s01)
    else:
        cp, cn = codes[pos], codes[neg]
        mi = np.bincount(cp, minlength=n_clusters).astype(float)
        ni = np.bincount(cn, minlength=n_clusters).astype(float)
        i10, i01, i_all = int((mi > 0).sum()), int((ni > 0).sum()), n_clusters
        if i10 < 2 or i01 < 2:
            raise TheraquantError(
                f"the clustered (Obuchowski) variance needs at least 2 patients with a responding "
                f"lesion and 2 with a non-responding lesion, got {i10} and {i01} ({i_all} patients); "
                "use cluster=None for a lesion-level analysis or add patients")
        # per-patient sums of placement values minus their expectation, (k, I)
        d10 = np.stack([np.bincount(cp, weights=v10[r], minlength=n_clusters) - mi * auc[r] for r in range(k)])
        d01 = np.stack([np.bincount(cn, weights=v01[r], minlength=n_clusters) - ni * auc[r] for r in range(k)])
        s10 = i10 / ((i10 - 1) * m) * (d10 @ d10.T)
        s01 = i01 / ((i01 - 1) * n) * (d01 @ d01.T)
        s11 = i_all / (i_all - 1) * (d10 @ d01.T)
        cov = s10 / m + s01 / n + (s11 + s11.T) / (m * n)
        info.update(S10=s10, S01=s01, S11=s11, I10=i10, I01=i01, I=i_all)
    return auc, cov, info


def _curve(y: NDArray, s: NDArray) -> tuple[NDArray, NDArray, NDArray]:
    """Thresholds (descending, oriented scale, first +inf), sensitivity and 1 - specificity."""
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    distinct = np.r_[np.flatnonzero(np.diff(s_sorted)), y.size - 1]  # last index of each value
    tps = np.cumsum(y_sorted)[distinct]
    fps = (distinct + 1) - tps
    m, n = y.sum(), y.size - y.sum()
    thr = np.r_[np.inf, s_sorted[distinct]]
    return thr, np.r_[0.0, tps / m], np.r_[0.0, fps / n]


# ------------------------------------------------------------------------------------ results
@dataclass(frozen=True)
class RocResult(SummaryMixin, Result):
    """ROC analysis of one marker against a binary response.

    Attributes
    ----------
    auc : float
        Area under the ROC curve, dimensionless, 0-1 (the pooled lesion-level Mann-Whitney AUC).
    auc_var : float
        Variance of the AUC: DeLong (1988), or Obuchowski (1997) when clustered.
    ci : (float, float)
        95 % confidence interval, ``auc -/+ z(0.975) * sqrt(auc_var)``, clipped to [0, 1].
    ci_clipped : bool
        True when the interval was cut at 0 or 1.
    youden_threshold : float
        Cut-off maximising sensitivity + specificity - 1, an observed marker value, in the
        marker's units (positive when ``score >= threshold`` for direction "<", ``<=`` for ">").
        Ties are broken toward the higher specificity.
    sensitivity, specificity : float
        At ``youden_threshold``, 0-1.
    topleft_threshold, topleft_sensitivity, topleft_specificity : float
        The cut-off closest to the (0, 1) corner: minimises (1 - sens)^2 + (1 - spec)^2.
    thresholds, tpr, fpr : ndarray of float
        The curve's points: each observed cut-off (the first is +inf / -inf, nothing positive),
        its sensitivity and 1 - specificity.
    direction : str
        "<" (higher values in responders) or ">" (lower values in responders).
    direction_detected : bool
        True when ``direction="auto"`` chose it (the direction giving AUC >= 0.5).
    variance_method : str
        "DeLong" or "Obuchowski (clustered)".
    n_pos, n_neg : int
        Responding and non-responding lesions.
    n_clusters : int or None
        Patients (only when clustered).
    name : str
        The marker's label for the summary.
    notes : tuple of str
        Documented special cases (e.g. all marker values tied).
    """

    auc: float
    auc_var: float
    ci: tuple[float, float]
    ci_clipped: bool
    youden_threshold: float
    sensitivity: float
    specificity: float
    topleft_threshold: float
    topleft_sensitivity: float
    topleft_specificity: float
    thresholds: NDArray[np.float64] = field(repr=False)
    tpr: NDArray[np.float64] = field(repr=False)
    fpr: NDArray[np.float64] = field(repr=False)
    direction: str = "<"
    direction_detected: bool = False
    variance_method: str = "DeLong"
    n_pos: int = 0
    n_neg: int = 0
    n_clusters: int | None = None
    name: str = "score"
    notes: tuple[str, ...] = ()

    @property
    def auc_se(self) -> float:
        """Standard error of the AUC, sqrt(auc_var)."""
        return float(np.sqrt(self.auc_var))

    def summary(self) -> str:
        """Fixed-width text summary."""
        who = f"{self.n_pos + self.n_neg} lesions ({self.n_pos} responding)"
        if self.n_clusters is not None:
            who += f" in {self.n_clusters} patients"
        op = ">=" if self.direction == "<" else "<="
        det = "detected" if self.direction_detected else "given"
        lines = [
            f"ROC  {self.name} vs response   {who}   variance: {self.variance_method}",
            f"AUC {self.auc:.4f}  SE {self.auc_se:.4f}  95 % CI {fmt_ci(self.ci)}"
            + ("  (clipped to [0, 1])" if self.ci_clipped else ""),
            f"direction: responders {'higher' if self.direction == '<' else 'lower'} ({self.direction}, {det})",
            f"Youden cut-off:        {self.name} {op} {self.youden_threshold:.6g}   "
            f"sensitivity {self.sensitivity:.4f}  specificity {self.specificity:.4f}",
            f"closest to (0,1):      {self.name} {op} {self.topleft_threshold:.6g}   "
            f"sensitivity {self.topleft_sensitivity:.4f}  specificity {self.topleft_specificity:.4f}",
        ]
        return "\n".join(lines) + notes_text(self.notes)

    def to_dict(self) -> dict:
        """Plain-JSON fields (the curve as lists)."""
        return {"name": self.name, "auc": self.auc, "auc_var": self.auc_var, "auc_se": self.auc_se,
                "ci": list(self.ci), "ci_clipped": self.ci_clipped, "variance_method": self.variance_method,
                "direction": self.direction, "direction_detected": self.direction_detected,
                "youden_threshold": self.youden_threshold, "sensitivity": self.sensitivity,
                "specificity": self.specificity, "topleft_threshold": self.topleft_threshold,
                "topleft_sensitivity": self.topleft_sensitivity,
                "topleft_specificity": self.topleft_specificity, "n_pos": self.n_pos,
                "n_neg": self.n_neg, "n_clusters": self.n_clusters, "notes": list(self.notes),
                "curve": {"thresholds": self.thresholds.tolist(), "tpr": self.tpr.tolist(),
                          "fpr": self.fpr.tolist()}}


def _prepare(y, score, direction, cluster, name="score"):
    yb = as_binary(y)
    s = as_score(score, yb.size, name=name)
    cl = as_cluster(cluster, yb.size)
    if direction not in ("auto", "<", ">"):
        raise TheraquantError(
            f'direction must be "auto", "<" (responders higher) or ">" (responders lower), got {direction!r}')
    return yb, s, cl


@records_call("theraquant.stats.roc")
def roc(y: ArrayLike, score: ArrayLike, *, direction: Direction = "auto",
        cluster: ArrayLike | None = None, name: str = "score") -> RocResult:
    """ROC curve, AUC with its DeLong (or clustered Obuchowski) variance, and optimal cut-offs.

    Parameters
    ----------
    y : (n,) array_like of 0/1 or bool
        Response per lesion, 1 = responder (positive class).
    score : (n,) array_like of float
        Marker value per lesion, in its own units (e.g. T/BP ratio, Dmean in Gy).
    direction : {"auto", "<", ">"}, optional
        "<": responders have higher values; ">": lower. "auto" picks the direction whose AUC is
        at least 0.5 (pROC picks by comparing medians; the two agree unless the medians and the
        ranks disagree) and reports it.
    cluster : (n,) array_like of int or str, optional
        Patient id per lesion. When given, the variance is Obuchowski's (1997) for clustered
        data; the AUC is still the pooled lesion-level one.
    name : str, optional
        Label used in the summary.

    Returns
    -------
    RocResult

    Raises
    ------
    TheraquantError (a ValueError)
        Fewer than 2 responders or non-responders (or, clustered, fewer than 2 patients with
        each), lengths that differ, missing values.

    Notes
    -----
    With placement values V10(X_i) and V01(Y_j) [1]_, DeLong's variance is
    var(V10)/M + var(V01)/N. Clustered [2]_: with per-patient sums V10_i, V01_i, m_i
    responding and n_i non-responding lesions, I10 (I01) patients with a responding
    (non-responding) lesion and I patients,

    S10 = I10/((I10-1) M) sum (V10_i - m_i A)^2, S01 = I01/((I01-1) N) sum (V01_i - n_i A)^2,
    S11 = I/(I-1) sum (V10_i - m_i A)(V01_i - n_i A), var = S10/M + S01/N + 2 S11/(M N).

    With one lesion per patient this equals DeLong's variance. All marker values tied gives
    AUC 0.5 with zero variance (noted in ``notes``), as does any perfectly separating marker
    (AUC 1, zero variance): the interval is then degenerate, not wrong.

    References
    ----------
    .. [1] DeLong ER, DeLong DM, Clarke-Pearson DL. Biometrics 1988;44:837-45. doi:10.2307/2531595
    .. [2] Obuchowski NA. Biometrics 1997;53:567-78. doi:10.2307/2533958
    .. [3] Youden WJ. Cancer 1950;3:32-5. doi:10.1002/1097-0142(1950)3:1<32::AID-CNCR2820030106>3.0.CO;2-3

    Examples
    --------
    >>> from theraquant.stats import roc
    >>> res = roc([0, 0, 1, 0, 1, 1], [0.9, 1.1, 1.4, 1.2, 1.3, 1.8])
    >>> round(res.auc, 4), res.direction, res.youden_threshold
    (1.0, '<', 1.3)
    """
    yb, s, cl = _prepare(y, score, direction, cluster, name)
    m, n = _check_classes(yb)
    detected = direction == "auto"
    d = _detect_direction(yb, s) if detected else direction
    so = _orient(s, d)
    codes, n_cl = cl if cl is not None else (None, 0)
    auc_arr, cov, _ = _covariance(yb, so[None, :], codes, n_cl)
    auc, var = float(auc_arr[0]), float(max(cov[0, 0], 0.0))
    half = Z975 * np.sqrt(var)
    lo, hi = auc - half, auc + half
    clipped = bool(lo < 0 or hi > 1)
    ci = (float(max(0.0, lo)), float(min(1.0, hi)))

    thr, tpr, fpr = _curve(yb, so)
    spec = 1 - fpr
    j = tpr + spec - 1
    # ties: highest specificity = the first (largest oriented threshold) maximiser
    # candidates exclude the +inf point (nothing called positive is not a cut-off)
    iy = 1 + int(np.flatnonzero(np.isclose(j[1:], j[1:].max(), rtol=0, atol=1e-12))[0])
    dist = (1 - tpr) ** 2 + fpr**2
    it = 1 + int(np.flatnonzero(np.isclose(dist[1:], dist[1:].min(), rtol=0, atol=1e-12))[0])
    sign = 1.0 if d == "<" else -1.0
    notes = []
    if np.all(s == s[0]):
        notes.append("all marker values are tied: AUC 0.5 with zero variance, no informative cut-off")
    elif var == 0.0:
        notes.append(f"AUC {auc:g} with zero estimated variance (complete separation): the CI is degenerate")
    if codes is not None and n_cl == yb.size:
        notes.append("one lesion per patient: the Obuchowski variance equals DeLong's")
    return RocResult(
        auc=auc, auc_var=var, ci=ci, ci_clipped=clipped,
        youden_threshold=float(sign * thr[iy]), sensitivity=float(tpr[iy]), specificity=float(spec[iy]),
        topleft_threshold=float(sign * thr[it]), topleft_sensitivity=float(tpr[it]),
        topleft_specificity=float(spec[it]),
        thresholds=sign * thr, tpr=tpr, fpr=fpr, direction=d, direction_detected=detected,
        variance_method="DeLong" if codes is None else "Obuchowski (clustered)",
        n_pos=m, n_neg=n, n_clusters=None if codes is None else n_cl, name=name, notes=tuple(notes))


# ------------------------------------------------------------------------------------ paired test
@dataclass(frozen=True)
class RocComparison(SummaryMixin, Result):
    """Paired comparison of two markers' AUCs on the same lesions (DeLong 1988).

    Attributes
    ----------
    auc_a, auc_b : float
        AUCs, dimensionless.
    diff : float
        auc_a - auc_b.
    se : float
        Standard error of the difference.
    ci : (float, float)
        95 % CI of the difference.
    z, p : float
        z statistic and two-sided p-value.
    direction_a, direction_b : str
        Direction used for each marker.
    correlation : float
        Correlation of the two AUC estimates.
    variance_method : str
        "DeLong" or "Obuchowski (clustered)".
    """

    auc_a: float
    auc_b: float
    diff: float
    se: float
    ci: tuple[float, float]
    z: float
    p: float
    direction_a: str
    direction_b: str
    correlation: float
    variance_method: str
    names: tuple[str, str] = ("a", "b")
    n: int = 0

    def summary(self) -> str:
        a, b = self.names
        return "\n".join([
            f"Paired ROC comparison ({self.variance_method})   {self.n} lesions",
            f"AUC {a} {self.auc_a:.4f} ({self.direction_a})   AUC {b} {self.auc_b:.4f} ({self.direction_b})"
            f"   correlation {self.correlation:.4f}",
            f"difference {self.diff:+.4f}  SE {self.se:.4f}  95 % CI {fmt_ci(self.ci)}   "
            f"z {self.z:.4f}  p {fmt_p(self.p)}"])

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("auc_a", "auc_b", "diff", "se", "ci", "z", "p", "direction_a",
                                             "direction_b", "correlation", "variance_method", "names", "n")}


@records_call("theraquant.stats.compare_roc")
def compare_roc(y: ArrayLike, score_a: ArrayLike, score_b: ArrayLike, *, direction: Direction = "auto",
                cluster: ArrayLike | None = None, names: tuple[str, str] = ("a", "b")) -> RocComparison:
    """Paired DeLong test of two markers measured on the same lesions.

    Parameters
    ----------
    y : (n,) array_like of 0/1
        Response per lesion, 1 = responder.
    score_a, score_b : (n,) array_like of float
        The two markers, each in its own units.
    direction : {"auto", "<", ">"}, optional
        Applied to each marker; "auto" detects each marker's direction separately (as pROC's
        roc.test does with two auto-directed curves).
    cluster : (n,) array_like, optional
        Patient ids: the covariance is then Obuchowski's clustered one (1997).
    names : (str, str), optional
        Labels for the summary.

    Returns
    -------
    RocComparison
        ``z = (A_a - A_b) / sqrt(var_a + var_b - 2 cov_ab)`` and its two-sided normal p-value.

    References
    ----------
    .. [1] DeLong ER, DeLong DM, Clarke-Pearson DL. Biometrics 1988;44:837-45. doi:10.2307/2531595
    .. [2] Obuchowski NA. Biometrics 1997;53:567-78. doi:10.2307/2533958

    Examples
    --------
    >>> from theraquant.stats import compare_roc
    >>> y = [0, 0, 0, 1, 1, 1, 0, 1]
    >>> cmp = compare_roc(y, [1, 2, 3, 4, 5, 6, 3.5, 2.5], [1, 2, 4, 3, 5, 6, 2, 1])
    >>> round(cmp.auc_a, 4), round(cmp.auc_b, 4)
    (0.875, 0.7188)
    """
    yb, sa, cl = _prepare(y, score_a, direction, cluster, "score_a")
    sb = as_score(score_b, yb.size, name="score_b")
    _check_classes(yb, "comparing ROC curves")
    da = _detect_direction(yb, sa) if direction == "auto" else direction
    db = _detect_direction(yb, sb) if direction == "auto" else direction
    scores = np.stack([_orient(sa, da), _orient(sb, db)])
    codes, n_cl = cl if cl is not None else (None, 0)
    auc, cov, _ = _covariance(yb, scores, codes, n_cl)
    var = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    diff = float(auc[0] - auc[1])
    if var <= 0:
        raise TheraquantError(
            "the two markers give AUCs whose difference has zero variance (identical rankings or "
            f"perfect separation by both; AUCs {auc[0]:.4g} and {auc[1]:.4g}); there is nothing to test")
    se = float(np.sqrt(var))
    z = diff / se
    den = np.sqrt(cov[0, 0] * cov[1, 1])
    return RocComparison(
        auc_a=float(auc[0]), auc_b=float(auc[1]), diff=diff, se=se,
        ci=(diff - Z975 * se, diff + Z975 * se), z=float(z), p=float(2 * sps.norm.sf(abs(z))),
        direction_a=da, direction_b=db, correlation=float(cov[0, 1] / den) if den > 0 else float("nan"),
        variance_method="DeLong" if codes is None else "Obuchowski (clustered)", names=tuple(names),
        n=int(yb.size))


# ------------------------------------------------------------------------------------ cut-off metrics
_METRICS = ("sensitivity", "specificity", "ppv", "npv", "lr_pos", "lr_neg", "accuracy")


@dataclass(frozen=True)
class ThresholdMetrics(SummaryMixin, Result):
    """Diagnostic accuracy of a marker at one cut-off.

    Attributes
    ----------
    threshold : float
        The cut-off, marker units; positive when ``score >= threshold`` (direction "<") or
        ``score <= threshold`` (">").
    tp, fp, tn, fn : int
        Counts of lesions.
    sensitivity, specificity, ppv, npv, accuracy : float
        Proportions, 0-1, each with a 95 % Wilson interval in ``ci``.
    lr_pos, lr_neg : float
        Likelihood ratios, with 95 % CIs by the log method (Simel et al. 1991) in ``ci``.
    ci : mapping of str to (float, float)
        95 % interval per metric name.
    notes : tuple of str
        Undefined metrics (NaN) and infinite ratios are explained here.
    """

    threshold: float
    direction: str
    tp: int
    fp: int
    tn: int
    fn: int
    sensitivity: float
    specificity: float
    ppv: float
    npv: float
    lr_pos: float
    lr_neg: float
    accuracy: float
    ci: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    name: str = "score"
    notes: tuple[str, ...] = ()

    def summary(self) -> str:
        op = ">=" if self.direction == "<" else "<="
        lines = [f"Cut-off {self.name} {op} {self.threshold:.6g}   TP {self.tp}  FP {self.fp}  "
                 f"TN {self.tn}  FN {self.fn}",
                 f"{'metric':<12} {'value':>9} {'95 % CI':>22}"]
        for k in _METRICS:
            lines.append(f"{k:<12} {fmt(getattr(self, k))} {fmt_ci(self.ci[k]):>22}")
        return "\n".join(lines) + notes_text(self.notes)

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("threshold", "direction", "tp", "fp", "tn", "fn", *_METRICS)}
        d["ci"] = {k: list(v) for k, v in self.ci.items()}
        d["notes"] = list(self.notes)
        return d


def _ratio(a: float, b: float) -> float:
    if b == 0:
        return float("inf") if a > 0 else float("nan")
    return a / b


@records_call("theraquant.stats.threshold_metrics")
def threshold_metrics(y: ArrayLike, score: ArrayLike, threshold: float, *, direction: Direction = "auto",
                      name: str = "score") -> ThresholdMetrics:
    """Sensitivity, specificity, PPV, NPV, likelihood ratios and accuracy at a cut-off.

    Parameters
    ----------
    y : (n,) array_like of 0/1
        Response per lesion, 1 = responder.
    score : (n,) array_like of float
        Marker per lesion, its own units.
    threshold : float
        Cut-off in the marker's units.
    direction : {"auto", "<", ">"}, optional
        "<": positive when ``score >= threshold``; ">": when ``score <= threshold``; "auto"
        detects it as :func:`roc` does.
    name : str, optional
        Label for the summary.

    Returns
    -------
    ThresholdMetrics
        Proportions with Wilson intervals [1]_; LR+ = sens / (1 - spec) and
        LR- = (1 - sens) / spec with log-method intervals [2]_ (0.5 added to each cell when a
        count is 0, noted). A ratio with a zero denominator is NaN or inf, explained in ``notes``.

    References
    ----------
    .. [1] Wilson EB. J Am Stat Assoc 1927;22:209-12. doi:10.1080/01621459.1927.10502953
    .. [2] Simel DL, Samsa GP, Matchar DB. J Clin Epidemiol 1991;44:763-70. doi:10.1016/0895-4356(91)90128-V

    Examples
    --------
    >>> from theraquant.stats import threshold_metrics
    >>> tm = threshold_metrics([1, 1, 1, 0, 0, 0, 1, 0], [5, 6, 2, 1, 3, 2, 7, 6], 4, direction="<")
    >>> tm.tp, tm.fp, tm.sensitivity, tm.specificity
    (3, 1, 0.75, 0.75)
    """
    yb, s, _ = _prepare(y, score, direction, None, name)
    if not np.isfinite(threshold):
        raise TheraquantError(f"threshold must be a finite number in the marker's units, got {threshold!r}")
    d = direction
    if d == "auto":
        if yb.sum() in (0, yb.size):
            raise TheraquantError("direction='auto' needs both responders and non-responders; give '<' or '>'")
        d = _detect_direction(yb, s)
    pred = s >= threshold if d == "<" else s <= threshold
    tp = int(np.sum(pred & (yb == 1)))
    fp = int(np.sum(pred & (yb == 0)))
    tn = int(np.sum(~pred & (yb == 0)))
    fn = int(np.sum(~pred & (yb == 1)))
    notes = []
    props = {"sensitivity": (tp, tp + fn), "specificity": (tn, tn + fp), "ppv": (tp, tp + fp),
             "npv": (tn, tn + fn), "accuracy": (tp + tn, yb.size)}
    vals, ci = {}, {}
    for k, (a, b) in props.items():
        vals[k] = a / b if b else float("nan")
        ci[k] = wilson(a, b)
        if not b:
            notes.append(f"{k} undefined: its denominator is 0 at this cut-off")
    sens, spec = vals["sensitivity"], vals["specificity"]
    vals["lr_pos"] = _ratio(sens, 1 - spec)
    vals["lr_neg"] = _ratio(1 - sens, spec)
    a, b, c, e = float(tp), float(fn), float(fp), float(tn)
    if min(a, b, c, e) == 0:
        a, b, c, e = a + 0.5, b + 0.5, c + 0.5, e + 0.5
        notes.append("a zero count: likelihood-ratio CIs use 0.5 added to each cell")
    for k, (num, den, se2) in {
            "lr_pos": (a / (a + b), c / (c + e), 1 / a - 1 / (a + b) + 1 / c - 1 / (c + e)),
            "lr_neg": (b / (a + b), e / (c + e), 1 / b - 1 / (a + b) + 1 / e - 1 / (c + e))}.items():
        lr = num / den
        ci[k] = (float(lr * np.exp(-Z975 * np.sqrt(se2))), float(lr * np.exp(Z975 * np.sqrt(se2))))
        if not np.isfinite(vals[k]):
            notes.append(f"{k} is {vals[k]}: specificity or sensitivity is 1 at this cut-off")
    return ThresholdMetrics(threshold=float(threshold), direction=d, tp=tp, fp=fp, tn=tn, fn=fn,
                            ci=frozen_map(ci), name=name, notes=tuple(notes), **{k: float(v) for k, v in vals.items()})
