"""Bootstrap confidence intervals for the AUC and the optimal cut-off.

* :func:`roc_bootstrap`: stratified bootstrap (responders and non-responders resampled
  separately, as pROC does), percentile and BCa intervals (Efron 1987).
* :func:`cluster_bootstrap`: patients resampled with all their lesions (Field & Welsh 2007), for
  the AUC and the Youden cut-off when lesions are clustered within patients.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats as sps

from ..errors import TheraquantError
from ..results import Result, records_call
from ._common import SummaryMixin, fmt_ci, notes_text
from ._roc import Direction, _check_classes, _curve, _detect_direction, _orient, _placements, _prepare

__all__ = ["BootstrapResult", "roc_bootstrap", "cluster_bootstrap"]


@dataclass(frozen=True)
class BootstrapResult(SummaryMixin, Result):
    """Bootstrap intervals of the AUC and of the Youden cut-off.

    Attributes
    ----------
    auc : float
        AUC of the original sample, dimensionless.
    auc_ci_percentile : (float, float)
        Percentile interval of the AUC at ``level``.
    auc_ci_bca : (float, float)
        Bias-corrected and accelerated interval (stratified bootstrap only; NaN for the cluster
        bootstrap, whose jackknife over patients is not implemented).
    threshold : float
        Youden cut-off of the original sample, marker units.
    threshold_ci_percentile : (float, float)
        Percentile interval of the Youden cut-off, marker units.
    auc_boot, threshold_boot : ndarray
        The bootstrap replicates (valid ones only).
    n_boot : int
        Replicates requested.
    n_valid : int
        Replicates that had both classes (the others are dropped and counted here).
    seed : int or None
        Seed of ``numpy.random.default_rng``.
    method : str
        "stratified" or "cluster (patients resampled)".
    level : float
        Confidence level, e.g. 0.95.
    direction : str
        Direction used for every replicate (fixed from the original sample).
    """

    auc: float
    auc_ci_percentile: tuple[float, float]
    auc_ci_bca: tuple[float, float]
    threshold: float
    threshold_ci_percentile: tuple[float, float]
    auc_boot: NDArray[np.float64]
    threshold_boot: NDArray[np.float64]
    n_boot: int
    n_valid: int
    seed: int | None
    method: str
    level: float
    direction: str
    name: str = "score"
    notes: tuple[str, ...] = ()

    def summary(self) -> str:
        pct = f"{100 * self.level:g} %"
        lines = [f"Bootstrap ({self.method})  {self.name}   {self.n_valid}/{self.n_boot} replicates  seed {self.seed}",
                 f"AUC {self.auc:.4f}   {pct} CI percentile {fmt_ci(self.auc_ci_percentile)}"
                 + (f"   BCa {fmt_ci(self.auc_ci_bca)}" if np.isfinite(self.auc_ci_bca[0]) else ""),
                 f"Youden cut-off {self.threshold:.6g}   {pct} CI percentile {fmt_ci(self.threshold_ci_percentile)}"]
        return "\n".join(lines) + notes_text(self.notes)

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in (
            "auc", "auc_ci_percentile", "auc_ci_bca", "threshold", "threshold_ci_percentile", "n_boot",
            "n_valid", "seed", "method", "level", "direction", "name", "notes")}


def _youden(y: NDArray, so: NDArray) -> float:
    thr, tpr, fpr = _curve(y, so)
    j = (tpr - fpr)[1:]  # the +inf point (nothing positive) is not a candidate, as in roc()
    return float(thr[1 + int(np.flatnonzero(np.isclose(j, j.max(), rtol=0, atol=1e-12))[0])])


def _check_boot(n_boot: int, level: float) -> None:
    if not isinstance(n_boot, (int, np.integer)) or n_boot < 100:
        raise TheraquantError(f"n_boot must be an integer >= 100 (2000 is usual), got {n_boot!r}")
    if not 0 < level < 1:
        raise TheraquantError(f"level must be between 0 and 1 (e.g. 0.95), got {level!r}")


def _auc_rows(pos: NDArray, neg: NDArray) -> NDArray:
    """AUC of each row: pos (B, M) and neg (B, N) resampled values, by rank sums."""
    m, n = pos.shape[1], neg.shape[1]
    ranks = sps.rankdata(np.concatenate([pos, neg], axis=1), axis=1)
    return (ranks[:, :m].sum(axis=1) - m * (m + 1) / 2) / (m * n)


@records_call("theraquant.stats.roc_bootstrap")
def roc_bootstrap(y: ArrayLike, score: ArrayLike, *, n_boot: int = 2000, seed: int | None = 0,
                  level: float = 0.95, direction: Direction = "auto", name: str = "score") -> BootstrapResult:
    """Stratified bootstrap percentile and BCa intervals of the AUC and the Youden cut-off.

    Parameters
    ----------
    y : (n,) array_like of 0/1
        Response per lesion, 1 = responder.
    score : (n,) array_like of float
        Marker per lesion, its own units.
    n_boot : int, optional
        Bootstrap replicates (>= 100).
    seed : int or None, optional
        Seed for ``numpy.random.default_rng``; the same seed gives the same intervals.
    level : float, optional
        Confidence level.
    direction : {"auto", "<", ">"}, optional
        Fixed from the original sample for every replicate.
    name : str, optional
        Label for the summary.

    Returns
    -------
    BootstrapResult

    Notes
    -----
    Responders and non-responders are resampled separately so every replicate has the original
    class sizes (pROC's ``stratified=TRUE``). BCa [1]_ uses the bias correction
    z0 = Phi^-1(#{A* < A} / B + #{A* = A} / (2B)) and the jackknife acceleration over single
    lesions, computed exactly from the placement values.

    References
    ----------
    .. [1] Efron B. J Am Stat Assoc 1987;82:171-85. doi:10.1080/01621459.1987.10478410
    .. [2] Carpenter J, Bithell J. Stat Med 2000;19:1141-64. doi:10.1002/(SICI)1097-0258(20000515)19:9<1141::AID-SIM479>3.0.CO;2-F

    Examples
    --------
    >>> from theraquant.stats import roc_bootstrap
    >>> y = [0, 0, 0, 0, 1, 1, 1, 1, 0, 1]
    >>> b = roc_bootstrap(y, [1, 2, 3, 5, 4, 6, 7, 8, 2.5, 3.5], n_boot=500, seed=1)
    >>> round(b.auc, 3), b.auc_ci_percentile[0] < b.auc < b.auc_ci_percentile[1]
    (0.92, True)
    """
    yb, s, _ = _prepare(y, score, direction, None, name)
    _check_classes(yb, "the bootstrap")
    _check_boot(n_boot, level)
    d = _detect_direction(yb, s) if direction == "auto" else direction
    so = _orient(s, d)
    pos, neg = so[yb == 1], so[yb == 0]
    m, n = pos.size, neg.size
    v10, v01, auc = _placements(pos, neg)
    thr0 = _youden(yb, so)
    rng = np.random.default_rng(seed)
    aucs, thrs = np.empty(n_boot), np.empty(n_boot)
    y_b = np.r_[np.ones(m, dtype=np.int64), np.zeros(n, dtype=np.int64)]
    chunk = max(1, 2_000_000 // (m + n))
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        ip = rng.integers(0, m, size=(b, m))
        ineg = rng.integers(0, n, size=(b, n))
        aucs[start:start + b] = _auc_rows(pos[ip], neg[ineg])
        for k in range(b):
            thrs[start + k] = _youden(y_b, np.r_[pos[ip[k]], neg[ineg[k]]])
    alpha = (1 - level) / 2
    pct = tuple(float(v) for v in np.quantile(aucs, [alpha, 1 - alpha]))
    # BCa
    notes = []
    prop = (np.sum(aucs < auc) + 0.5 * np.sum(aucs == auc)) / n_boot
    if prop in (0.0, 1.0) or np.all(aucs == aucs[0]):
        bca = (float("nan"), float("nan"))
        notes.append("BCa undefined: all replicates on one side of the estimate (e.g. AUC 1)")
    else:
        z0 = sps.norm.ppf(prop)
        jack = np.r_[(m * n * auc - n * v10) / ((m - 1) * n), (m * n * auc - m * v01) / (m * (n - 1))]
        dj = jack.mean() - jack
        den = 6 * np.sum(dj**2) ** 1.5
        acc = float(np.sum(dj**3) / den) if den > 0 else 0.0
        za = sps.norm.ppf([alpha, 1 - alpha])
        q = sps.norm.cdf(z0 + (z0 + za) / (1 - acc * (z0 + za)))
        bca = tuple(float(v) for v in np.quantile(aucs, q))
    sign = 1.0 if d == "<" else -1.0
    t = np.sort(sign * thrs)
    return BootstrapResult(
        auc=auc, auc_ci_percentile=pct, auc_ci_bca=bca, threshold=sign * thr0,
        threshold_ci_percentile=tuple(float(v) for v in np.quantile(t, [alpha, 1 - alpha])),
        auc_boot=aucs, threshold_boot=sign * thrs, n_boot=int(n_boot), n_valid=int(n_boot), seed=seed,
        method="stratified", level=level, direction=d, name=name, notes=tuple(notes))


@records_call("theraquant.stats.cluster_bootstrap")
def cluster_bootstrap(y: ArrayLike, score: ArrayLike, cluster: ArrayLike, *, n_boot: int = 2000,
                      seed: int | None = 0, level: float = 0.95, direction: Direction = "auto",
                      name: str = "score") -> BootstrapResult:
    """Patient-level cluster bootstrap: percentile CIs of the AUC and of the Youden cut-off.

    Parameters
    ----------
    y : (n,) array_like of 0/1
        Response per lesion, 1 = responder.
    score : (n,) array_like of float
        Marker per lesion, its own units.
    cluster : (n,) array_like of int or str
        Patient id per lesion; patients are drawn with replacement, each with all its lesions.
    n_boot : int, optional
        Replicates (>= 100).
    seed : int or None, optional
        Seed for ``numpy.random.default_rng``.
    level : float, optional
        Confidence level.
    direction : {"auto", "<", ">"}, optional
        Fixed from the original sample for every replicate.
    name : str, optional
        Label for the summary.

    Returns
    -------
    BootstrapResult
        Replicates lacking a class are dropped (``n_valid`` says how many remain; fewer than
        90 % valid is noted). ``auc_ci_bca`` is NaN here.

    References
    ----------
    .. [1] Field CA, Welsh AH. J R Stat Soc B 2007;69:369-90. doi:10.1111/j.1467-9868.2007.00593.x
    .. [2] Obuchowski NA. Biometrics 1997;53:567-78. doi:10.2307/2533958

    Examples
    --------
    >>> from theraquant.stats import cluster_bootstrap
    >>> y = [1, 0, 1, 1, 0, 0, 1, 0, 1, 0, 0, 1]
    >>> s = [3.1, 1.2, 2.8, 2.2, 1.9, 1.1, 2.5, 2.4, 3.3, 1.0, 1.6, 1.8]
    >>> pid = [1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6]
    >>> b = cluster_bootstrap(y, s, pid, n_boot=200, seed=3)
    >>> b.method, round(b.auc, 4)
    ('cluster (patients resampled)', 0.9167)
    """
    yb, s, cl = _prepare(y, score, direction, cluster, name)
    if cl is None:
        raise TheraquantError("cluster must give the patient id of each lesion, got None; use roc_bootstrap "
                              "for lesions that are independent")
    _check_classes(yb, "the cluster bootstrap")
    _check_boot(n_boot, level)
    codes, n_cl = cl
    if n_cl < 2:
        raise TheraquantError(f"the cluster bootstrap needs at least 2 patients, got {n_cl}")
    d = _detect_direction(yb, s) if direction == "auto" else direction
    so = _orient(s, d)
    _, _, auc = _placements(so[yb == 1], so[yb == 0])
    thr0 = _youden(yb, so)
    order = np.argsort(codes, kind="mergesort")
    starts = np.r_[0, np.cumsum(np.bincount(codes, minlength=n_cl))]
    rng = np.random.default_rng(seed)
    aucs, thrs = np.full(n_boot, np.nan), np.full(n_boot, np.nan)
    for k in range(n_boot):
        pick = rng.integers(0, n_cl, size=n_cl)
        idx = np.concatenate([order[starts[p]:starts[p + 1]] for p in pick])
        yk, sk = yb[idx], so[idx]
        npos = int(yk.sum())
        if npos == 0 or npos == yk.size:
            continue
        aucs[k] = _placements(sk[yk == 1], sk[yk == 0])[2]
        thrs[k] = _youden(yk, sk)
    ok = np.isfinite(aucs)
    n_valid = int(ok.sum())
    notes = []
    if n_valid < 0.9 * n_boot:
        notes.append(f"only {n_valid} of {n_boot} replicates had both classes; the intervals may be too narrow")
    if n_valid < 20:
        raise TheraquantError(
            f"only {n_valid} of {n_boot} cluster-bootstrap replicates had both responders and "
            "non-responders; too few patients of one class for a bootstrap")
    alpha = (1 - level) / 2
    sign = 1.0 if d == "<" else -1.0
    return BootstrapResult(
        auc=auc, auc_ci_percentile=tuple(float(v) for v in np.quantile(aucs[ok], [alpha, 1 - alpha])),
        auc_ci_bca=(float("nan"), float("nan")), threshold=sign * thr0,
        threshold_ci_percentile=tuple(float(v) for v in np.sort(np.quantile(sign * thrs[ok], [alpha, 1 - alpha]))),
        auc_boot=aucs[ok], threshold_boot=sign * thrs[ok], n_boot=int(n_boot), n_valid=n_valid, seed=seed,
        method="cluster (patients resampled)", level=level, direction=d, name=name, notes=tuple(notes))
