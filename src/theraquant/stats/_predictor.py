"""A response predictor: fit on a cohort, serialise (versioned JSON), apply to a new patient.

Honest performance: the AUC is cross-validated with patient-grouped folds (no patient's lesions
in both the training and the test fold), the cut-off is chosen inside each training fold, and a
calibration table compares predicted with observed response.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from ..errors import TheraquantError
from ..results import Result, records_call
from ._common import (
    SummaryMixin, as_binary, as_score, fmt_ci, fmt_p, frozen_map, notes_text, table_text, wilson, with_cluster)
from ._regression import _check_columns, logistic
from ._roc import RocResult, roc

__all__ = ["ResponsePredictor", "CrossValidation", "CalibrationTable", "fit_predictor", "cross_validated_auc",
           "calibration_table", "FORMAT", "FORMAT_VERSION"]

FORMAT = "theraquant.stats.ResponsePredictor"
FORMAT_VERSION = 1


def _expit(v):
    return 1.0 / (1.0 + np.exp(-v))


# ------------------------------------------------------------------------------------ calibration
@dataclass(frozen=True)
class CalibrationTable(SummaryMixin, Result):
    """Observed versus predicted response by bins of predicted probability.

    Attributes
    ----------
    bins : pandas.DataFrame
        Per bin: ``p_low``, ``p_high`` (bin edges), ``n``, ``mean_predicted``, ``observed``
        (responders / n) with a 95 % Wilson CI ``ci_low``, ``ci_high``.
    hosmer_lemeshow : float
        Hosmer-Lemeshow statistic over the bins (chi-square, ``n_bins - 2`` df).
    p : float
        Its p-value (a small p means poor calibration).
    brier : float
        Brier score, mean (p - y)^2, 0-1 (lower is better).
    """

    bins: pd.DataFrame
    hosmer_lemeshow: float
    df: int
    p: float
    brier: float
    n: int

    def summary(self) -> str:
        rows = [[f"{b.p_low:.3f}-{b.p_high:.3f}", int(b.n), b.mean_predicted, b.observed,
                 f"{b.ci_low:.3f}-{b.ci_high:.3f}"] for b in self.bins.itertuples()]
        return (f"Calibration   {self.n} lesions   Brier {self.brier:.4f}   Hosmer-Lemeshow "
                f"{self.hosmer_lemeshow:.3f} (df {self.df}) p {fmt_p(self.p)}\n"
                + table_text(["predicted bin", "n", "mean pred", "observed", "95 % CI"], rows, [16, 5, 10, 9, 13]))

    def to_dict(self) -> dict:
        return {"bins": self.bins.to_dict(orient="records"), "hosmer_lemeshow": self.hosmer_lemeshow,
                "df": self.df, "p": self.p, "brier": self.brier, "n": self.n}


@records_call("theraquant.stats.calibration_table")
def calibration_table(y: ArrayLike, prob: ArrayLike, *, n_bins: int = 5) -> CalibrationTable:
    """Calibration of predicted probabilities: quantile bins, Hosmer-Lemeshow test, Brier score.

    Parameters
    ----------
    y : (n,) array_like of 0/1
        Observed response, 1 = responder.
    prob : (n,) array_like of float
        Predicted probability of response, 0-1 (ideally out-of-fold).
    n_bins : int, optional
        Number of quantile bins (at least 3); fewer when predictions are tied.

    Returns
    -------
    CalibrationTable

    References
    ----------
    .. [1] Hosmer DW, Lemeshow S. Commun Stat Theory Methods 1980;9:1043-69. doi:10.1080/03610928008827941

    Examples
    --------
    >>> from theraquant.stats import calibration_table
    >>> ct = calibration_table([0, 0, 1, 0, 1, 1, 0, 1, 1, 1], [.1, .2, .3, .3, .5, .6, .4, .8, .9, .7], n_bins=3)
    >>> print(ct.bins["n"].tolist(), round(ct.brier, 3))
    [2, 4, 4] 0.134
    """
    yb = as_binary(y)
    p = as_score(prob, yb.size, name="prob")
    if np.any((p < 0) | (p > 1)):
        raise TheraquantError(f"prob must be probabilities in [0, 1], got range {p.min():g} to {p.max():g}")
    if not isinstance(n_bins, (int, np.integer)) or n_bins < 3:
        raise TheraquantError(f"n_bins must be an integer >= 3, got {n_bins!r}")
    if yb.size < n_bins:
        raise TheraquantError(f"calibration needs at least n_bins = {n_bins} lesions, got {yb.size}")
    edges = np.unique(np.quantile(p, np.linspace(0, 1, n_bins + 1)))
    idx = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, len(edges) - 2)
    rows, hl = [], 0.0
    for b in range(len(edges) - 1):
        sel = idx == b
        n = int(sel.sum())
        if n == 0:
            continue
        r, e = int(yb[sel].sum()), float(p[sel].sum())
        lo, hi = wilson(r, n)
        rows.append({"p_low": float(edges[b]), "p_high": float(edges[b + 1]), "n": n,
                     "mean_predicted": e / n, "observed": r / n, "ci_low": lo, "ci_high": hi})
        pbar = e / n
        if 0 < pbar < 1:
            hl += (r - e) ** 2 / (n * pbar * (1 - pbar))
    from scipy import stats as sps

    dfree = max(len(rows) - 2, 1)
    return CalibrationTable(bins=pd.DataFrame(rows), hosmer_lemeshow=float(hl), df=dfree,
                            p=float(sps.chi2.sf(hl, dfree)), brier=float(np.mean((p - yb) ** 2)), n=int(yb.size))


# ------------------------------------------------------------------------------------ cross-validation
@dataclass(frozen=True)
class CrossValidation(SummaryMixin, Result):
    """Patient-grouped cross-validated performance of a logistic response model.

    Attributes
    ----------
    auc : float
        AUC of the pooled out-of-fold predicted probabilities, dimensionless.
    auc_ci : (float, float)
        95 % CI (Obuchowski when clustered, else DeLong) of that AUC.
    fold_auc : tuple of float
        AUC within each test fold (NaN where a fold has one class only).
    sensitivity, specificity : float
        Out-of-fold, at the Youden cut-off chosen in each *training* fold.
    oof_probability : ndarray
        Out-of-fold probability per lesion (input order; NaN for dropped rows).
    n_splits : int
        Folds used (GroupKFold); no patient is in two folds.
    calibration : CalibrationTable
        Of the out-of-fold probabilities.
    """

    auc: float
    auc_ci: tuple[float, float]
    fold_auc: tuple[float, ...]
    sensitivity: float
    specificity: float
    oof_probability: np.ndarray = field(repr=False)
    n_splits: int = 5
    grouped_by: str | None = None
    roc: RocResult | None = field(default=None, repr=False)
    calibration: CalibrationTable | None = field(default=None, repr=False)
    notes: tuple[str, ...] = ()

    def summary(self) -> str:
        grp = f"grouped by {self.grouped_by!r}" if self.grouped_by else "lesion-level folds"
        folds = ", ".join(f"{a:.3f}" if np.isfinite(a) else "n/a" for a in self.fold_auc)
        return (f"Cross-validated AUC ({self.n_splits} folds, {grp}): {self.auc:.4f}  95 % CI {fmt_ci(self.auc_ci)}\n"
                f"per fold: {folds}\n"
                f"out-of-fold at training-fold Youden cut-offs: sensitivity {self.sensitivity:.4f}  "
                f"specificity {self.specificity:.4f}" + notes_text(self.notes))

    def to_dict(self) -> dict:
        return {"auc": self.auc, "auc_ci": self.auc_ci, "fold_auc": self.fold_auc,
                "sensitivity": self.sensitivity, "specificity": self.specificity, "n_splits": self.n_splits,
                "grouped_by": self.grouped_by, "variance_method": self.roc.variance_method if self.roc else None,
                "calibration": self.calibration.to_dict() if self.calibration else None, "notes": list(self.notes)}


def _prep_table(data, outcome, markers, cluster):
    data, cluster = with_cluster(data, cluster)
    markers = (markers,) if isinstance(markers, str) else tuple(markers)
    if not markers:
        raise TheraquantError("markers is empty: give at least one column name")
    _check_columns(data, [outcome, *markers] + ([cluster] if cluster else []), "outcome/marker/cluster")
    for m in markers:
        if not pd.api.types.is_numeric_dtype(data[m]) and data[m].dtype != bool:
            raise TheraquantError(f"marker {m!r} must be numeric for the predictor, got dtype {data[m].dtype}")
    sub = data[[outcome, *markers] + ([cluster] if cluster else [])].dropna()
    return markers, sub, cluster


def _youden_prob(y, p):
    r = roc(y, p, direction="<")
    return r.youden_threshold


@records_call("theraquant.stats.cross_validated_auc")
def cross_validated_auc(data: pd.DataFrame, outcome: str, markers: str | Sequence[str], *,
                        cluster: Any = None, n_splits: int = 5) -> CrossValidation:
    """Cross-validated AUC of a logistic model with folds grouped by patient (sklearn GroupKFold).

    Parameters
    ----------
    data : pandas.DataFrame
        One row per lesion.
    outcome : str
        0/1 response column.
    markers : str or sequence of str
        Numeric predictor columns.
    cluster : str or array_like, optional
        Patient column (or the patient ids, one per row): folds never split a patient, the model in each fold is a GEE and the
        pooled AUC's CI is Obuchowski's. Without it folds are lesion-level (GroupKFold over rows).
    n_splits : int, optional
        Folds (reduced to the number of patients when fewer, noted). GroupKFold is
        deterministic: it balances fold sizes, largest patients first.

    Returns
    -------
    CrossValidation

    References
    ----------
    .. [1] Steyerberg EW. Clinical Prediction Models, 2nd ed. Springer 2019. doi:10.1007/978-3-030-16399-0

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from theraquant.stats import cross_validated_auc
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=60); df = pd.DataFrame({"x": x, "pid": np.repeat(np.arange(20), 3),
    ...     "y": (x + rng.normal(size=60) > 0).astype(int)})
    >>> cv = cross_validated_auc(df, "y", "x", cluster="pid")
    >>> cv.n_splits, 0.6 < cv.auc < 0.95
    (5, True)
    """
    from sklearn.model_selection import GroupKFold

    data, cluster = with_cluster(data, cluster)
    markers, sub, cluster = _prep_table(data, outcome, markers, cluster)
    y = as_binary(sub[outcome].to_numpy(), name=f"outcome column {outcome!r}")
    groups = sub[cluster].astype(str).to_numpy() if cluster else np.arange(len(sub))
    n_groups = len(np.unique(groups))
    notes = [f"{len(data) - len(sub)} lesion(s) with a missing value dropped"] if len(sub) < len(data) else []
    if not isinstance(n_splits, (int, np.integer)) or n_splits < 2:
        raise TheraquantError(f"n_splits must be an integer >= 2, got {n_splits!r}")
    if n_groups < 2:
        raise TheraquantError(f"cross-validation needs at least 2 patients, got {n_groups}")
    if n_splits > n_groups:
        notes.append(f"n_splits reduced from {n_splits} to {n_groups} (number of patients)")
        n_splits = n_groups
    oof = np.full(len(sub), np.nan)
    called = np.zeros(len(sub), dtype=bool)
    fold_auc = []
    for k, (tr, te) in enumerate(GroupKFold(n_splits=n_splits).split(sub, y, groups)):
        train = sub.iloc[tr]
        try:
            fit = logistic(train, outcome, markers, cluster=cluster)
        except TheraquantError as exc:
            raise TheraquantError(f"cross-validation fold {k + 1}: {exc}") from None
        coef = np.array([fit.coef["Intercept"], *[fit.coef[m] for m in markers]])
        Xtr = np.column_stack([np.ones(len(tr)), sub.iloc[tr][list(markers)].to_numpy(float)])
        Xte = np.column_stack([np.ones(len(te)), sub.iloc[te][list(markers)].to_numpy(float)])
        ptr = _expit(Xtr @ coef)
        oof[te] = _expit(Xte @ coef)
        ytr = y[tr]
        cut = _youden_prob(ytr, ptr) if 2 <= ytr.sum() <= ytr.size - 2 else 0.5
        called[te] = oof[te] >= cut
        yte = y[te]
        fold_auc.append(roc(yte, oof[te], direction="<").auc if 2 <= yte.sum() <= yte.size - 2 else float("nan"))
    res = roc(y, oof, direction="<", cluster=groups if cluster else None, name="out-of-fold p")
    sens = float(np.mean(called[y == 1]))
    spec = float(np.mean(~called[y == 0]))
    full = np.full(len(data), np.nan)
    full[data[[outcome, *markers] + ([cluster] if cluster else [])].notna().all(axis=1).to_numpy()] = oof
    n_bins = int(min(5, max(3, len(sub) // 10)))
    calib = calibration_table(y, oof, n_bins=n_bins) if len(sub) >= n_bins else None
    return CrossValidation(auc=res.auc, auc_ci=res.ci, fold_auc=tuple(fold_auc), sensitivity=sens,
                           specificity=spec, oof_probability=full, n_splits=int(n_splits), grouped_by=cluster,
                           roc=res, calibration=calib, notes=tuple(notes))


# ------------------------------------------------------------------------------------ the predictor
@dataclass(frozen=True)
class ResponsePredictor(SummaryMixin, Result):
    """A fitted logistic response model with its cut-off and training summary.

    Attributes
    ----------
    outcome : str
        Outcome column it was trained on (1 = responder).
    markers : tuple of str
        Predictor columns, in model order; a new table must have them (same units).
    coef : mapping of str to float
        Log-odds coefficients, "Intercept" first.
    cutoff : float
        Probability cut-off (Youden on the training data): predicted responder when p >= cutoff.
    cutoff_method : str
        How the cut-off was chosen.
    method : str
        The fit used (ML logistic or GEE clustered by patient).
    training : mapping
        n lesions, patients, responders, apparent AUC, cross-validated AUC with CI, out-of-fold
        sensitivity and specificity, calibration, created time.
    software_version : str
        theraquant version that fitted it.
    format_version : int
        Version of the JSON layout.
    """

    outcome: str
    markers: tuple[str, ...]
    coef: Mapping[str, float]
    cutoff: float
    cutoff_method: str
    method: str
    training: Mapping[str, Any]
    software_version: str
    format_version: int = FORMAT_VERSION

    def predict(self, table: pd.DataFrame) -> pd.DataFrame:
        """Probability of response per lesion of ``table`` (same marker columns and units).

        Returns a copy of ``table`` with ``probability`` (0-1), ``predicted_response`` (bool,
        ``probability >= cutoff``), ``cutoff`` and ``status`` ("ok", or which markers are missing:
        such rows get no probability).
        """
        if not isinstance(table, pd.DataFrame):
            raise TheraquantError(f"table must be a pandas DataFrame, got {type(table).__name__}")
        missing = [m for m in self.markers if m not in table.columns]
        if missing:
            raise TheraquantError(
                f"the new table lacks marker column(s) {missing!r} the model needs ({list(self.markers)!r}); "
                f"its columns are {list(table.columns)!r}")
        X = table[list(self.markers)].apply(pd.to_numeric, errors="coerce").to_numpy(float)
        ok = np.all(np.isfinite(X), axis=1)
        b = np.array([self.coef["Intercept"], *[self.coef[m] for m in self.markers]])
        p = np.full(len(table), np.nan)
        p[ok] = _expit(b[0] + X[ok] @ b[1:])
        out = table.copy()
        out["probability"] = p
        out["predicted_response"] = pd.array(np.where(ok, p >= self.cutoff, pd.NA), dtype="boolean")
        out["cutoff"] = self.cutoff
        out["status"] = ["ok" if good else "missing marker(s): " + ", ".join(
            m for m, v in zip(self.markers, row) if not np.isfinite(v)) for good, row in zip(ok, X)]
        return out

    def to_dict(self) -> dict:
        from ..provenance import to_jsonable

        return to_jsonable({
            "format": FORMAT, "format_version": self.format_version, "software": "theraquant",
            "software_version": self.software_version, "outcome": self.outcome, "markers": list(self.markers),
            "model": {"type": "logistic", "method": self.method, "coef": dict(self.coef)},
            "cutoff": {"probability": self.cutoff, "method": self.cutoff_method}, "training": dict(self.training)})

    def to_json(self) -> str:
        """The versioned JSON text (write it with any file API; :meth:`from_json` reads it back)."""
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    @classmethod
    def from_json(cls, text: str | Mapping[str, Any]) -> "ResponsePredictor":
        """Rebuild a predictor from :meth:`to_json` output (a str or the parsed mapping)."""
        d = json.loads(text) if isinstance(text, (str, bytes)) else dict(text)
        if d.get("format") != FORMAT:
            raise TheraquantError(f"not a theraquant response predictor: format is {d.get('format')!r}, "
                                  f"expected {FORMAT!r}")
        if int(d.get("format_version", 0)) > FORMAT_VERSION:
            raise TheraquantError(
                f"predictor format_version {d['format_version']} is newer than this theraquant reads "
                f"({FORMAT_VERSION}); upgrade theraquant (it was written by {d.get('software_version')})")
        return cls(outcome=d["outcome"], markers=tuple(d["markers"]), coef=frozen_map(d["model"]["coef"]),
                   cutoff=float(d["cutoff"]["probability"]), cutoff_method=d["cutoff"]["method"],
                   method=d["model"]["method"], training=frozen_map(d["training"]),
                   software_version=d["software_version"], format_version=int(d["format_version"]))

    def summary(self) -> str:
        t = self.training
        lines = [f"Response predictor: {self.outcome} ~ {' + '.join(self.markers)}   (theraquant {self.software_version})",
                 f"method: {self.method}",
                 f"trained on {t.get('n_lesions')} lesions ({t.get('n_responders')} responding)"
                 + (f" in {t['n_patients']} patients" if t.get("n_patients") else ""),
                 f"cut-off: p >= {self.cutoff:.4f} ({self.cutoff_method})",
                 f"apparent AUC {t.get('apparent_auc', float('nan')):.4f}   cross-validated AUC "
                 f"{t.get('cv_auc', float('nan')):.4f}  95 % CI {fmt_ci(t.get('cv_auc_ci', (np.nan, np.nan)))}",
                 "coefficients: " + ", ".join(f"{k} {v:.5g}" for k, v in self.coef.items())]
        return "\n".join(lines)


@records_call("theraquant.stats.fit_predictor")
def fit_predictor(data: pd.DataFrame, outcome: str, markers: str | Sequence[str], *,
                  cluster: Any = None, n_splits: int = 5) -> ResponsePredictor:
    """Fit a logistic response predictor on a cohort table, with honest cross-validated performance.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per lesion.
    outcome : str
        0/1 response column.
    markers : str or sequence of str
        Numeric marker columns (their units are the units the new tables must use).
    cluster : str or array_like, optional
        Patient column (or the patient ids, one per row): GEE fit and patient-grouped folds.
    n_splits : int, optional
        Cross-validation folds.

    Returns
    -------
    ResponsePredictor
        Serialise with ``to_json()``; rebuild with ``ResponsePredictor.from_json``.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from theraquant.stats import fit_predictor, ResponsePredictor
    >>> rng = np.random.default_rng(1)
    >>> x = rng.normal(1.4, 0.3, 60); df = pd.DataFrame({"tbp": x, "pid": np.repeat(np.arange(20), 3),
    ...     "resp": (x + rng.normal(0, 0.3, 60) > 1.4).astype(int)})
    >>> model = fit_predictor(df, "resp", ["tbp"], cluster="pid")
    >>> again = ResponsePredictor.from_json(model.to_json())
    >>> new = again.predict(pd.DataFrame({"tbp": [1.0, 1.9]}))
    >>> new["predicted_response"].tolist()
    [False, True]
    """
    from .. import __version__

    data, cluster = with_cluster(data, cluster)
    markers, sub, cluster = _prep_table(data, outcome, markers, cluster)
    fit = logistic(sub, outcome, markers, cluster=cluster)
    y = as_binary(sub[outcome].to_numpy())
    X = np.column_stack([np.ones(len(sub)), sub[list(markers)].to_numpy(float)])
    b = np.array([fit.coef["Intercept"], *[fit.coef[m] for m in markers]])
    p = _expit(X @ b)
    app = roc(y, p, direction="<", cluster=sub[cluster].to_numpy() if cluster else None)
    cv = cross_validated_auc(sub, outcome, markers, cluster=cluster, n_splits=n_splits)
    training = {
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "n_lesions": int(len(sub)), "n_dropped_missing": int(len(data) - len(sub)),
        "n_patients": int(sub[cluster].nunique()) if cluster else None, "n_responders": int(y.sum()),
        "apparent_auc": app.auc, "apparent_auc_ci": list(app.ci), "cv_auc": cv.auc, "cv_auc_ci": list(cv.auc_ci),
        "cv_folds": cv.n_splits, "cv_grouped_by": cluster, "cv_sensitivity": cv.sensitivity,
        "cv_specificity": cv.specificity, "cutoff_sensitivity": app.sensitivity,
        "cutoff_specificity": app.specificity, "se": dict(fit.se), "p": dict(fit.p),
        "odds_ratio": dict(fit.odds_ratio), "odds_ratio_ci": {k: list(v) for k, v in fit.ci.items()},
        "marker_ranges": {m: [float(sub[m].min()), float(sub[m].max())] for m in markers},
        "calibration": cv.calibration.to_dict() if cv.calibration else None,
    }
    return ResponsePredictor(outcome=outcome, markers=markers, coef=frozen_map(dict(fit.coef)),
                             cutoff=float(app.youden_threshold), cutoff_method="Youden on training data",
                             method=fit.method, training=frozen_map(training), software_version=__version__)
