"""Dose-response: logistic tumour-control curve of response against mean absorbed dose, with D50."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy import stats as sps

from ..errors import TheraquantError
from ..results import Result, records_call
from ._common import SummaryMixin, as_binary, as_score, fmt_ci, fmt_p, notes_text
from ._regression import logistic

__all__ = ["DoseResponse", "dose_response"]


@dataclass(frozen=True)
class DoseResponse(SummaryMixin, Result):
    """Logistic dose-response curve p(D) = 1 / (1 + exp(-(b0 + b1 D))).

    Attributes
    ----------
    d50_gy : float
        Dose with 50 % response probability, -b0 / b1, Gy. NaN when the slope is not positive
        (response does not increase with dose; see ``notes``).
    d50_ci_gy : (float, float)
        95 % CI of D50 by the delta method, Gy.
    d50_ci_fieller_gy : (float, float)
        95 % Fieller interval of D50, Gy (asymmetric; NaN when the slope is not significantly
        positive, where the Fieller set is unbounded).
    gamma50 : float
        Normalised slope at D50, b1 D50 / 4 (dimensionless): the % increase in response
        probability per % increase in dose.
    b0 : float
        Intercept (log odds at 0 Gy).
    b1 : float
        Slope, log odds per Gy, with ``b1_ci`` (95 %) and ``p_slope`` (Wald).
    method : str
        Fit used ("logistic regression (maximum likelihood)" or GEE clustered by patient).
    ci_method : str
        "delta method".
    dose_range_gy : (float, float)
        Observed dose range, Gy.
    curve_dose_gy, curve_p, curve_ci_low, curve_ci_high : ndarray
        The fitted curve on a grid over the observed range, with pointwise 95 % CIs (Wald on the
        logit scale).
    """

    d50_gy: float
    d50_ci_gy: tuple[float, float]
    d50_se_gy: float
    d50_ci_fieller_gy: tuple[float, float]
    gamma50: float
    b0: float
    b1: float
    b1_ci: tuple[float, float]
    p_slope: float
    cov: NDArray[np.float64] = field(repr=False)
    method: str = ""
    ci_method: str = "delta method"
    n: int = 0
    n_events: int = 0
    n_clusters: int | None = None
    dose_range_gy: tuple[float, float] = (float("nan"), float("nan"))
    curve_dose_gy: NDArray[np.float64] = field(default_factory=lambda: np.empty(0), repr=False)
    curve_p: NDArray[np.float64] = field(default_factory=lambda: np.empty(0), repr=False)
    curve_ci_low: NDArray[np.float64] = field(default_factory=lambda: np.empty(0), repr=False)
    curve_ci_high: NDArray[np.float64] = field(default_factory=lambda: np.empty(0), repr=False)
    name: str = "dose"
    notes: tuple[str, ...] = ()

    def probability(self, dose_gy: ArrayLike) -> NDArray[np.float64]:
        """Response probability at ``dose_gy`` (Gy), 0-1."""
        d = np.asarray(dose_gy, dtype=float)
        return 1.0 / (1.0 + np.exp(-(self.b0 + self.b1 * d)))

    def summary(self) -> str:
        who = f"{self.n} lesions ({self.n_events} responding)"
        if self.n_clusters is not None:
            who += f" in {self.n_clusters} patients"
        return "\n".join([
            f"Dose-response (logistic) response vs {self.name}   {who}",
            f"method: {self.method}",
            f"D50 {self.d50_gy:.4g} Gy   95 % CI {fmt_ci(self.d50_ci_gy)} Gy ({self.ci_method}), "
            f"Fieller {fmt_ci(self.d50_ci_fieller_gy)} Gy   gamma50 {self.gamma50:.3f}",
            f"slope {self.b1:.4g} per Gy (95 % CI {fmt_ci(self.b1_ci)}), p {fmt_p(self.p_slope)}   "
            f"dose range {self.dose_range_gy[0]:.4g}-{self.dose_range_gy[1]:.4g} Gy"]) + notes_text(self.notes)

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("d50_gy", "d50_ci_gy", "d50_se_gy", "d50_ci_fieller_gy", "gamma50", "b0", "b1", "b1_ci",
                                           "p_slope", "method", "ci_method", "n", "n_events", "n_clusters",
                                           "dose_range_gy", "name", "notes")}
        d["curve"] = {"dose_gy": self.curve_dose_gy, "p": self.curve_p, "ci_low": self.curve_ci_low,
                      "ci_high": self.curve_ci_high}
        return d


@records_call("theraquant.stats.dose_response")
def dose_response(dose_gy: ArrayLike, y: ArrayLike, *, cluster: ArrayLike | None = None,
                  name: str = "Dmean", n_curve: int = 50) -> DoseResponse:
    """Fit a logistic tumour-control curve of response against dose; D50 with a delta-method CI.

    Parameters
    ----------
    dose_gy : (n,) array_like of float
        Mean absorbed dose per lesion (or another dose metric), Gy.
    y : (n,) array_like of 0/1
        Response per lesion, 1 = responder.
    cluster : (n,) array_like, optional
        Patient id per lesion: the fit is then a GEE (exchangeable, robust errors), as
        :func:`logistic` with ``cluster``.
    name : str, optional
        Label of the dose metric.
    n_curve : int, optional
        Points of the returned curve.

    Returns
    -------
    DoseResponse

    Notes
    -----
    D50 = -b0 / b1. Delta method: with g = (-1/b1, b0/b1^2) = (-1/b1, -D50/b1),
    var(D50) = g C g^T = (var b0 + 2 D50 cov(b0, b1) + D50^2 var b1) / b1^2, and the CI is
    D50 -/+ z(0.975) sqrt(var). The delta-method interval is symmetric and can be too narrow
    when the slope is poorly determined (its CI near 0); a note then says so. The Fieller
    interval [3]_ is also given: the doses D where the Wald test of b0 + b1 D = 0 is not rejected,
    the roots of (b1^2 - z^2 v11) D^2 + 2 (b0 b1 - z^2 v01) D + b0^2 - z^2 v00 = 0. gamma50 follows
    Brahme (1984), doi:10.3109/02841868409136030.

    References
    ----------
    .. [1] Oehlert GW. Am Stat 1992;46:27-9 (delta method). doi:10.1080/00031305.1992.10475842
    .. [2] Strigari L, et al. J Nucl Med 2010;51:1377-85 (TCP for 90Y radioembolization). doi:10.2967/jnumed.110.075861
    .. [3] Fieller EC. J R Stat Soc Suppl 1940;7:1-64. doi:10.2307/2983630

    Examples
    --------
    >>> from theraquant.stats import dose_response
    >>> dose = [40, 55, 60, 70, 80, 85, 90, 100, 110, 120, 130, 150]
    >>> resp = [0, 0, 1, 0, 0, 1, 0, 1, 1, 0, 1, 1]
    >>> dr = dose_response(dose, resp)
    >>> round(dr.d50_gy, 1)
    90.2
    """
    yb = as_binary(y)
    d = as_score(dose_gy, yb.size, name="dose_gy")
    df = pd.DataFrame({"response": yb, "dose": d})
    if cluster is not None:
        cl = np.asarray(cluster)
        if cl.shape != (yb.size,):
            raise TheraquantError(f"cluster must have one patient id per lesion ({yb.size}), got shape {cl.shape}")
        df["patient"] = cl
    fit = logistic(df, "response", "dose", cluster="patient" if cluster is not None else None)
    b0, b1 = fit.coef["Intercept"], fit.coef["dose"]
    cov = np.array([[fit.cov["Intercept"]["Intercept"], fit.cov["Intercept"]["dose"]],
                    [fit.cov["dose"]["Intercept"], fit.cov["dose"]["dose"]]])
    notes = list(fit.notes)
    lo_d, hi_d = float(d.min()), float(d.max())
    if b1 <= 0:
        d50, se, ci, g50 = float("nan"), float("nan"), (float("nan"), float("nan")), float("nan")
        fieller = (float("nan"), float("nan"))
        notes.append(f"slope {b1:.3g} per Gy is not positive: response does not increase with dose, D50 undefined")
    else:
        d50 = -b0 / b1
        g = np.array([-1.0 / b1, -d50 / b1])
        se = float(np.sqrt(g @ cov @ g))
        z = sps.norm.ppf(0.975)
        ci = (float(d50 - z * se), float(d50 + z * se))
        g50 = float(b1 * d50 / 4)
        z2 = z * z
        qa, qb, qc = b1 * b1 - z2 * cov[1, 1], 2 * (b0 * b1 - z2 * cov[0, 1]), b0 * b0 - z2 * cov[0, 0]
        disc = qb * qb - 4 * qa * qc
        if qa > 0 and disc >= 0:
            r = np.sort((-qb + np.array([-1.0, 1.0]) * np.sqrt(disc)) / (2 * qa))
            fieller = (float(r[0]), float(r[1]))
        else:
            fieller = (float("nan"), float("nan"))
            notes.append("Fieller interval unbounded: the slope is not significantly positive")
        if not lo_d <= d50 <= hi_d:
            notes.append(f"D50 {d50:.4g} Gy lies outside the observed doses ({lo_d:.4g}-{hi_d:.4g} Gy): extrapolated")
        if fit.coef_ci["dose"][0] <= 0:
            notes.append("the slope's 95 % CI includes 0: the D50 interval (delta method) is unreliable")
    grid = np.linspace(lo_d, hi_d, n_curve)
    X = np.column_stack([np.ones_like(grid), grid])
    eta = X @ np.array([b0, b1])
    se_eta = np.sqrt(np.einsum("ij,jk,ik->i", X, cov, X))
    z = sps.norm.ppf(0.975)
    expit = lambda v: 1.0 / (1.0 + np.exp(-v))  # noqa: E731
    return DoseResponse(
        d50_gy=float(d50), d50_ci_gy=ci, d50_se_gy=se, d50_ci_fieller_gy=fieller, gamma50=g50, b0=float(b0), b1=float(b1),
        b1_ci=fit.coef_ci["dose"], p_slope=float(fit.p["dose"]), cov=cov, method=fit.method,
        n=fit.n_obs, n_events=fit.n_events, n_clusters=fit.n_clusters, dose_range_gy=(lo_d, hi_d),
        curve_dose_gy=grid, curve_p=expit(eta), curve_ci_low=expit(eta - z * se_eta),
        curve_ci_high=expit(eta + z * se_eta), name=name, notes=tuple(notes))
