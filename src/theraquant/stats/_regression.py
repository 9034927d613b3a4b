"""Logistic regression of response on markers: maximum likelihood, or GEE clustered by patient."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike
import pandas as pd
import statsmodels.api as sm
from scipy import stats as sps

from ..errors import TheraquantError
from ..results import Result, records_call
from ._common import SummaryMixin, as_binary, fmt_p, frozen_map, notes_text, table_text, with_cluster

__all__ = ["LogisticResult", "logistic", "find_patient_column", "design_matrix"]

PATIENT_COLUMNS = ("patient", "patient_id", "patientid", "subject", "subject_id", "pid")


def find_patient_column(data: pd.DataFrame) -> str | None:
    """The first column named like a patient id (case-insensitive), or None.

    Looks for: patient, patient_id, patientid, subject, subject_id, pid.

    Examples
    --------
    >>> import pandas as pd
    >>> find_patient_column(pd.DataFrame({"Patient_ID": [1], "tbp": [1.2]}))
    'Patient_ID'
    """
    lower = {str(c).lower(): c for c in data.columns}
    for name in PATIENT_COLUMNS:
        if name in lower:
            return lower[name]
    return None


def _check_columns(data: Any, columns: Sequence[str], what: str) -> None:
    if not isinstance(data, pd.DataFrame):
        raise TheraquantError(f"data must be a pandas DataFrame (one row per lesion), got {type(data).__name__}")
    missing = [c for c in columns if c not in data.columns]
    if missing:
        raise TheraquantError(f"{what} column(s) {missing!r} not in the table; its columns are {list(data.columns)!r}")


def design_matrix(data: pd.DataFrame, predictors: Sequence[str]) -> pd.DataFrame:
    """Intercept plus predictors; text or categorical columns become 0/1 dummies ``col[T.level]``.

    The first level (sorted) is the reference, as in R's treatment contrasts.

    Examples
    --------
    >>> import pandas as pd
    >>> X = design_matrix(pd.DataFrame({"dose": [50.0, 90.0, 120.0], "site": ["a", "b", "a"]}), ["dose", "site"])
    >>> list(X.columns)
    ['Intercept', 'dose', 'site[T.b]']
    """
    cols = {"Intercept": np.ones(len(data))}
    for p in predictors:
        s = data[p]
        if s.dtype == bool:
            cols[p] = s.astype(float).to_numpy()
        elif pd.api.types.is_numeric_dtype(s):
            cols[p] = s.astype(float).to_numpy()
        else:
            levels = sorted(pd.unique(s.astype(str)))
            if len(levels) < 2:
                raise TheraquantError(f"predictor {p!r} has a single level {levels!r}: nothing to estimate")
            for lev in levels[1:]:
                cols[f"{p}[T.{lev}]"] = (s.astype(str) == lev).astype(float).to_numpy()
    return pd.DataFrame(cols, index=data.index)


@dataclass(frozen=True)
class LogisticResult(SummaryMixin, Result):
    """Logistic regression of response on one or more predictors.

    All mappings are keyed by predictor name, the intercept as ``"Intercept"``; dummy-coded
    categorical predictors as ``"col[T.level]"``.

    Attributes
    ----------
    coef : mapping of str to float
        Log odds ratios (per unit of the predictor).
    se : mapping of str to float
        Standard errors: model-based (ML) or robust sandwich (GEE).
    z, p : mapping of str to float
        Wald z statistic and two-sided p-value.
    odds_ratio : mapping of str to float
        exp(coef), per unit of the predictor.
    ci : mapping of str to (float, float)
        95 % Wald interval of the odds ratio, exp(coef -/+ z(0.975) se).
    coef_ci : mapping of str to (float, float)
        95 % Wald interval of the coefficient.
    method : str
        "logistic regression (maximum likelihood)" or "GEE, exchangeable correlation within
        <cluster>, robust (sandwich) errors".
    outcome : str
        The outcome column.
    predictors : tuple of str
        Predictor columns as given.
    n_obs : int
        Lesions used (rows with a missing value are dropped and counted in ``n_dropped``).
    n_clusters : int or None
        Patients (GEE only).
    alpha : float or None
        Estimated exchangeable working correlation (GEE).
    scale : float
        Dispersion: 1 for ML; the GEE moment estimate (mean squared Pearson residual).
    converged : bool
        Whether the fit converged.
    aic : float or None
        Akaike information criterion (ML only).
    """

    coef: Mapping[str, float]
    se: Mapping[str, float]
    z: Mapping[str, float]
    p: Mapping[str, float]
    odds_ratio: Mapping[str, float]
    ci: Mapping[str, tuple[float, float]]
    coef_ci: Mapping[str, tuple[float, float]]
    method: str
    outcome: str
    predictors: tuple[str, ...]
    n_obs: int
    n_events: int
    n_dropped: int = 0
    n_clusters: int | None = None
    alpha: float | None = None
    scale: float = 1.0
    converged: bool = True
    aic: float | None = None
    cov: Mapping[str, Mapping[str, float]] = field(default_factory=dict, repr=False)
    notes: tuple[str, ...] = ()

    @property
    def is_gee(self) -> bool:
        """True when the fit is GEE (clustered)."""
        return self.n_clusters is not None

    def summary(self) -> str:
        who = f"{self.n_obs} lesions ({self.n_events} responding)"
        if self.n_clusters is not None:
            who += f" in {self.n_clusters} patients"
        head = [f"Logistic model: {self.outcome} ~ {' + '.join(self.predictors)}   {who}",
                f"method: {self.method}"]
        if self.alpha is not None:
            head.append(f"working correlation alpha {self.alpha:.4f}   scale {self.scale:.4f}")
        rows = [[k, self.coef[k], self.se[k], self.odds_ratio[k], self.ci[k][0], self.ci[k][1], fmt_p(self.p[k])]
                for k in self.coef]
        tab = table_text(["term", "coef", "SE", "OR", "OR 2.5 %", "OR 97.5 %", "p"], rows,
                         [24, 10, 10, 10, 10, 10, 10])
        return "\n".join(head) + "\n" + tab + notes_text(self.notes)

    def to_dict(self) -> dict:
        keys = ("coef", "se", "z", "p", "odds_ratio", "ci", "coef_ci")
        d = {k: {n: (list(v) if isinstance(v, tuple) else v) for n, v in getattr(self, k).items()} for k in keys}
        d.update({k: getattr(self, k) for k in ("method", "outcome", "predictors", "n_obs", "n_events",
                                                 "n_dropped", "n_clusters", "alpha", "scale", "converged",
                                                 "aic", "notes")})
        return d


@records_call("theraquant.stats.logistic")
def logistic(data: pd.DataFrame, outcome: str, predictors: str | Sequence[str], *,
             cluster: str | ArrayLike | None = None, level: float = 0.95) -> LogisticResult:
    """Univariable or multivariable logistic regression with odds ratios; GEE when clustered.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per lesion.
    outcome : str
        Column of 0/1 or bool response (1 = responder).
    predictors : str or sequence of str
        Predictor columns; numeric ones enter per unit of their own scale (so a Dmean in Gy gives
        an odds ratio per Gy), text or categorical ones as treatment-coded dummies.
    cluster : str or array_like, optional
        Patient-id column, or the patient ids themselves (one per row, as in
        :func:`~theraquant.stats.roc`). When given, the model is a GEE with exchangeable working correlation
        within patients and robust sandwich errors [2]_, as R's ``geepack::geeglm(...,
        corstr = "exchangeable")`` computes: the scale is the mean squared Pearson residual and
        the correlation the mean within-patient product over the scale, with no
        degrees-of-freedom correction (statsmodels ``GEE.fit(ddof_scale=0)``), iterated to a
        tight tolerance. With one lesion per patient there is no correlation to estimate: the
        independence working model is used (logistic coefficients with robust errors), noted.
    level : float, optional
        Confidence level of the intervals.

    Returns
    -------
    LogisticResult
        ``method`` says which model was fitted. Rows with a missing value in the outcome,
        a predictor or the cluster column are dropped (as R's na.omit) and counted.

    Raises
    ------
    TheraquantError
        Unknown columns, a non-binary outcome, one outcome class only, a constant predictor,
        too few lesions (fewer than 5, or fewer events than parameters), or perfect separation.

    References
    ----------
    .. [1] Hosmer DW, Lemeshow S, Sturdivant RX. Applied Logistic Regression, 3rd ed. Wiley 2013. doi:10.1002/9781118548387
    .. [2] Liang KY, Zeger SL. Biometrika 1986;73:13-22. doi:10.1093/biomet/73.1.13
    .. [3] Halekoh U, Hojsgaard S, Yan J. J Stat Softw 2006;15(2):1-11. doi:10.18637/jss.v015.i02

    Examples
    --------
    >>> import pandas as pd
    >>> from theraquant.stats import logistic
    >>> df = pd.DataFrame({"resp": [0, 0, 1, 0, 1, 1, 0, 1, 1, 0],
    ...                    "tbp": [1.0, 1.2, 1.9, 1.4, 1.3, 2.2, 1.1, 1.7, 1.2, 1.6]})
    >>> res = logistic(df, "resp", "tbp")
    >>> res.method
    'logistic regression (maximum likelihood)'
    >>> round(res.odds_ratio["tbp"], 2)
    63.41
    """
    preds = (predictors,) if isinstance(predictors, str) else tuple(predictors)
    if not preds:
        raise TheraquantError("predictors is empty: give at least one column name")
    if not 0 < level < 1:
        raise TheraquantError(f"level must be between 0 and 1, got {level!r}")
    data, cluster = with_cluster(data, cluster)
    cols = [outcome, *preds] + ([cluster] if cluster is not None else [])
    _check_columns(data, cols, "outcome/predictor/cluster")
    sub = data[cols].dropna()
    n_dropped = len(data) - len(sub)
    notes = [f"{n_dropped} lesion(s) with a missing value dropped"] if n_dropped else []
    y = as_binary(sub[outcome].to_numpy(), name=f"outcome column {outcome!r}")
    X = design_matrix(sub, preds)
    n, k = X.shape
    n_ev = int(y.sum())
    if n < 5:
        raise TheraquantError(f"logistic regression needs at least 5 lesions, got {n} (after dropping missing values)")
    if n_ev == 0 or n_ev == n:
        raise TheraquantError(
            f"outcome {outcome!r} has one class only ({n_ev} responders of {n}): odds ratios cannot be estimated")
    for c in X.columns[1:]:
        if np.ptp(X[c].to_numpy()) == 0:
            raise TheraquantError(f"predictor {c!r} is constant ({X[c].iloc[0]!r}) in the lesions used; drop it")
    if np.linalg.matrix_rank(X.to_numpy()) < k:
        raise TheraquantError(f"predictors {list(X.columns[1:])!r} are collinear; drop a redundant one")
    if min(n_ev, n - n_ev) < k:
        raise TheraquantError(
            f"{min(n_ev, n - n_ev)} lesions in the smaller outcome class for {k} parameters: too few to fit; "
            "use fewer predictors")
    zq = float(sps.norm.ppf(0.5 + level / 2))
    names = list(X.columns)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if cluster is None:
            fit = sm.GLM(y, X, family=sm.families.Binomial()).fit(tol=1e-12, maxiter=200)
            method = "logistic regression (maximum likelihood)"
            n_cl, alpha, scale, aic, converged = None, None, 1.0, float(fit.aic), bool(fit.converged)
        else:
            codes = pd.factorize(sub[cluster].astype(str))[0]
            n_cl = int(codes.max()) + 1
            one_each = n_cl == n
            cs = sm.cov_struct.Independence() if one_each else sm.cov_struct.Exchangeable()
            model = sm.GEE(y, X, groups=codes, family=sm.families.Binomial(), cov_struct=cs)
            fit = model.fit(ddof_scale=0, maxiter=200, ctol=1e-10)
            method = (f"GEE, {'independence' if one_each else 'exchangeable'} correlation within {cluster!r}, "
                      "robust (sandwich) errors")
            if one_each:
                notes.append("one lesion per patient: no within-patient correlation to estimate; "
                             "independence GEE = logistic coefficients with robust errors")
                alpha = 0.0
            else:
                alpha = float(np.atleast_1d(cs.dep_params)[0])
            resid = (y - fit.fittedvalues) / np.sqrt(fit.fittedvalues * (1 - fit.fittedvalues))
            scale, aic = float(np.mean(resid**2)), None
            converged = bool(getattr(fit, "converged", True))
            if len(fit.fit_history["params"]) >= 200:
                converged = False
    sep = [w for w in caught if "separation" in str(w.message).lower()]
    for msg in dict.fromkeys(str(w.message).splitlines()[0] for w in caught if w not in sep):
        notes.append(f"statsmodels warned: {msg}")
    params = np.asarray(fit.params, dtype=float)
    lp = X.to_numpy() @ params
    separated = lp[y == 1].min() >= lp[y == 0].max() and np.max(np.abs(y - 1 / (1 + np.exp(-lp)))) < 1e-3
    if sep or separated or not np.all(np.isfinite(np.asarray(fit.bse, dtype=float))):
        raise TheraquantError(
            f"the predictors {list(preds)!r} separate responders from non-responders (nearly) perfectly: "
            "the odds ratio is infinite and its maximum-likelihood estimate does not exist; report the ROC "
            "analysis or use a penalised (Firth) fit")
    if not converged:
        notes.append("the fit did not converge in 200 iterations: treat the estimates with caution")
    bse = np.asarray(fit.bse, dtype=float)
    zs = params / bse
    pv = 2 * sps.norm.sf(np.abs(zs))
    cov = np.asarray(fit.cov_params(), dtype=float)
    coef_ci = {nm: (float(b - zq * s), float(b + zq * s)) for nm, b, s in zip(names, params, bse)}
    return LogisticResult(
        coef=frozen_map(dict(zip(names, params.tolist()))), se=frozen_map(dict(zip(names, bse.tolist()))),
        z=frozen_map(dict(zip(names, zs.tolist()))), p=frozen_map(dict(zip(names, pv.tolist()))),
        odds_ratio=frozen_map({nm: float(np.exp(b)) for nm, b in zip(names, params)}),
        ci=frozen_map({nm: (float(np.exp(lo)), float(np.exp(hi))) for nm, (lo, hi) in coef_ci.items()}),
        coef_ci=frozen_map(coef_ci), method=method, outcome=outcome, predictors=preds, n_obs=n, n_events=n_ev,
        n_dropped=n_dropped, n_clusters=n_cl, alpha=alpha, scale=scale, converged=converged, aic=aic,
        cov=frozen_map({a: frozen_map(dict(zip(names, row.tolist()))) for a, row in zip(names, cov)}),
        notes=tuple(notes))
