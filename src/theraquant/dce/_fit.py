"""Forward tracer-kinetic models and batched voxel-wise fitting (linear and bounded NLLS).

``simulate`` evaluates a model by exact convolution of the piecewise-linear input(s) with
the model's exponentials (:mod:`._convolve`). ``fit`` estimates the parameters of every
curve at once: a linear least-squares solution of the model's integral form (Murase 2004;
Flouri et al. 2016 for the two-compartment models) initialises a bounded
Levenberg-Marquardt fit with analytic Jacobians, compiled with numba and run in parallel
over voxels. A fitted bolus-arrival delay shifts the input(s) with a cubic spline and is
found by a grid search refined by a golden-section search, each point a full fit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.interpolate import CubicSpline
from scipy.stats import chi2

from ..errors import TheraquantError
from ..provenance import provenance as _provenance
from ..results import Result, describe_call
from ..quantities import check_frame_times
from ._convolve import ModelInputs, forward_kernel, linear_kernel, lm_kernel, row_stats
from ._kernels import ensure_ready
from .aif import shift as _aif_shift
from ._models import UNITS, ModelName, ModelSpec, get_model
from ._starts import GRID_MODELS, grid_start

__all__ = ["FIT_STATUS", "FitResult", "ModelName", "fit", "simulate"]

_GOLDEN = 0.5 * (math.sqrt(5.0) - 1.0)
_NO_SPLINE = np.zeros((4, 1))
_GRID_ITER = 0  # LM iterations per grid delay before the LM with the delay free (0: linear fit only)
_N_GOLDEN = 14


class FitResult(Result):
    """Parameter maps of :func:`fit`: a :class:`theraquant.results.Result` (read-only mapping).

    ``result[name]`` (or ``result.name``) is a read-only array of the curves' leading shape
    (``()`` for a single curve). Keys: the model's free parameters (e.g. ``"Ktrans"``, ``"ve"``,
    ``"vp"``), derived ones (``"kep"``; ``"Fa"``, ``"Fv"``, ``"MTT"`` for ``dual_input_1c``),
    ``"delay"`` (s, the fixed or fitted value; ``"delay_se"`` when fitted), ``"<name>_se"``
    standard errors of the free parameters from the Jacobian (s^2 (J^T J)^-1, s^2 = SSE /
    (T - p)), ``"success"`` (bool), ``"status"`` (int8, :data:`FIT_STATUS`), ``"r2"``
    (coefficient of determination) and ``"aic"`` (T ln(SSE/T) + 2k, k free parameters
    including a fitted delay).

    Attributes
    ----------
    model : str
        Model name, e.g. ``"etofts"``.
    method : str
        ``"nlls"`` or ``"linear"``.
    free : tuple of str
        The fitted parameters, in order.
    units : mapping of str to str
        Unit of every key (CAPLEX: Ktrans, kep 1/min; Fp, PS mL/100mL/min; MTT, delay s).
    settings : mapping of str to Any
        Every option used, defaults included (bounds, delay, tolerances, interpolant).
    maps : mapping of str to ndarray
        The maps (the mapping itself, read-only).
    provenance : dict
        Software, version, the Python call (``Command``), settings, units, model reference.
    """

    __slots__ = ("model", "method", "free", "settings")

    def __init__(self, *, model: str, method: str, free: tuple[str, ...], maps: Mapping[str, NDArray[Any]],
                 units: Mapping[str, str], settings: Mapping[str, Any] | None = None,
                 provenance: Mapping[str, Any] | None = None):
        super().__init__(maps, units=units, title=f"{model} fit ({method})", provenance=provenance)
        object.__setattr__(self, "model", model)
        object.__setattr__(self, "method", method)
        object.__setattr__(self, "free", tuple(free))
        object.__setattr__(self, "settings", MappingProxyType(dict(settings or {})))

    @property
    def maps(self) -> Mapping[str, NDArray[Any]]:
        """The maps, read-only (the same arrays as ``result[name]``)."""
        return MappingProxyType(object.__getattribute__(self, "_data"))

    @property
    def shape(self) -> tuple[int, ...]:
        """Leading shape of the fitted curves (the shape of every map)."""
        return np.shape(self["success"])

    def __getitem__(self, key: str) -> NDArray[Any]:
        try:
            return object.__getattribute__(self, "_data")[key]
        except KeyError:
            raise KeyError(f"{key!r} is not in this {self.model} fit; keys: {', '.join(self)}") from None

    def __reduce__(self) -> Any:  # pickling (Dask workers)
        return (_rebuild_fit, (self.model, self.method, self.free, {k: v for k, v in self.items()},
                               dict(self.units), dict(self.settings), self.provenance))

    def __repr__(self) -> str:
        n = int(np.size(self["success"]))
        ok = int(np.count_nonzero(self["success"]))
        return (f"FitResult(model={self.model!r}, method={self.method!r}, shape={self.shape}, "
                f"success={ok}/{n}, keys={list(self)})")


def _rebuild_fit(model, method, free, maps, units, settings, prov) -> FitResult:
    return FitResult(model=model, method=method, free=free, maps=maps, units=units, settings=settings,
                     provenance=prov)


# ---------------------------------------------------------------------------------------------
# argument checks
def _check_time(t: ArrayLike) -> NDArray[np.float64]:
    try:
        t = np.asarray(t, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TheraquantError(f"t must be a 1-D array of frame times in s, got {type(t).__name__}: {exc}") from None
    if t.ndim != 1 or t.size < 3:
        raise TheraquantError(
            f"t must be a 1-D array of at least 3 frame times in s, got shape {t.shape}; "
            "pass the acquisition time of each frame")
    if not np.all(np.isfinite(t)):
        bad = np.flatnonzero(~np.isfinite(t))[:5].tolist()
        raise TheraquantError(f"t holds NaN or infinite frame times at index {bad}; every frame needs a time in s")
    dt = np.diff(t)
    if np.any(dt <= 0):
        i = int(np.flatnonzero(dt <= 0)[0])
        raise TheraquantError(
            f"t must be strictly increasing (frame times in s), but t[{i}] = {t[i]:g} and "
            f"t[{i + 1}] = {t[i + 1]:g}; sort the frames by acquisition time and drop duplicates")
    return t


def _check_input(u: ArrayLike, n_t: int, name: str) -> NDArray[np.float64]:
    try:
        u = np.asarray(u, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TheraquantError(f"{name} must be a 1-D array of plasma concentrations in mM: {exc}") from None
    if u.ndim != 1 or u.shape[0] != n_t:
        raise TheraquantError(
            f"{name} must be a 1-D plasma concentration curve (mM) with one value per frame "
            f"({n_t} frames, like t), got shape {u.shape}; sample the input function at t")
    if not np.all(np.isfinite(u)):
        bad = np.flatnonzero(~np.isfinite(u))[:5].tolist()
        raise TheraquantError(
            f"{name} holds NaN or infinite values at frame(s) {bad}; the input function must be finite")
    if np.ptp(u) == 0:
        raise TheraquantError(
            f"{name} is constant ({u[0]:g} mM at every frame); an input function needs a bolus - "
            "check the AIF/PIF selection")
    return u


def _check_inputs(spec: ModelSpec, cp, cp_portal, n_t: int):
    ua = _check_input(cp, n_t, "cp")
    if spec.n_inputs == 2:
        if cp_portal is None:
            raise TheraquantError(
                f"model {spec.name!r} is dual-input: it needs cp_portal, the portal-venous plasma "
                "concentration (mM) at t; pass a measured or modelled portal-venous input")
        uv = _check_input(cp_portal, n_t, "cp_portal")
    else:
        uv = ua
    return ua, uv


def _check_delay(delay, lead: tuple[int, ...], *, allow_fit: bool) -> float | str | NDArray[np.float64]:
    if isinstance(delay, str):
        if allow_fit and delay == "fit":
            return "fit"
        what = ", an array of the leading shape or 'fit'" if allow_fit else ""
        raise TheraquantError(f"delay must be a number of seconds{what}, got {delay!r}")
    d = np.asarray(delay, dtype=np.float64)
    if not np.all(np.isfinite(d)):
        raise TheraquantError(f"delay must be finite (s), got {delay!r}")
    if d.ndim == 0:
        return float(d)
    try:
        return np.broadcast_to(d, lead).reshape(-1).copy()
    except ValueError:
        raise TheraquantError(
            f"delay array of shape {d.shape} does not match the curves' leading shape {lead}; "
            "pass one delay (s) or one per curve") from None


# ---------------------------------------------------------------------------------------------
# numerics helpers
def _grid(t: NDArray[np.float64]) -> tuple[NDArray[np.float64], bool]:
    h = np.diff(t) / 60.0  # min
    uniform = bool(np.allclose(h, h[0], rtol=1e-9, atol=0.0))
    return np.ascontiguousarray(h), uniform


def _shift(t: NDArray[np.float64], u: NDArray[np.float64], delay) -> NDArray[np.float64]:
    """u(t - delay) as (m, T) rows (m = 1 for one delay) by :func:`theraquant.dce.aif.shift`."""
    if np.ndim(delay) == 0 and float(delay) == 0.0:
        return u[None, :]
    d = np.atleast_1d(np.asarray(delay, dtype=np.float64))
    if d.size > 1 and np.all(d == d[0]):
        d = d[:1]
    return np.ascontiguousarray(_aif_shift(t, u, d))


def _cumtrapz(y: NDArray[np.float64], h: NDArray[np.float64]) -> NDArray[np.float64]:
    out = np.zeros_like(y)
    np.cumsum(0.5 * (y[..., 1:] + y[..., :-1]) * h, axis=-1, out=out[..., 1:])
    return out


def _linear(spec: ModelSpec, h, ua, uv, Y) -> NDArray[np.float64]:
    """Linear least-squares (integral form) estimate of the free parameters, kernel units.

    Murase K. Magn Reson Med 2004;51:858-62 (doi:10.1002/mrm.20022) for Tofts/ETM/Patlak;
    Flouri D, et al. Magn Reson Med 2016;76:998-1006 (doi:10.1002/mrm.25991) for 2CXM/2CUM.
    """
    n = Y.shape[0]
    code = spec.code
    q = (2, 3, 2, 4, 3, 3, 5)[code]
    x = np.empty((n, q))
    linear_kernel(code, h, ua, uv, Y, x)
    with np.errstate(all="ignore"):
        P = np.empty((n, len(spec.free)))
        if code == 0:
            K, kep = x[:, 0], x[:, 1]
            P[:, 0], P[:, 1] = K, K / kep
        elif code == 1:
            vp, kp, kep = x[:, 0], x[:, 1], x[:, 2]
            K = kp - kep * vp
            P[:, 0], P[:, 1], P[:, 2] = K, K / kep, vp
        elif code == 2:
            P[:, 0], P[:, 1] = x[:, 1], x[:, 0]
        elif code == 3:
            aa, bb, fp, cc = x.T
            V = cc / bb
            vp = fp / (aa - bb * V / fp)
            ve = V - vp
            P[:, 0], P[:, 1], P[:, 2], P[:, 3] = fp, bb * vp * ve / fp, ve, vp
        elif code == 4:
            kp, fp, gg = x.T
            vp = fp / (kp - gg / fp)
            P[:, 0], P[:, 1], P[:, 2] = fp, gg * vp / fp, vp
        elif code == 5:
            k, fa_, fv_ = x.T
            fp = fa_ + fv_
            P[:, 0], P[:, 1], P[:, 2] = fp, fa_ / fp, fp / k
        else:
            kep, x2, x3, x4, x5 = x.T
            vp = x2 + x3
            kp = x4 + x5
            fa = np.where(np.abs(kp) > 1e-12, x4 / kp, x2 / vp)
            K = kp - kep * vp
            P[:, 0], P[:, 1], P[:, 2], P[:, 3] = K, K / kep, vp, fa
    return P


def _keep_better(a, b):
    """Per voxel, the (P, SE, SSE, ST) run with the lower SSE among successful ones."""
    sa = np.where(a[3] > 0, a[2], np.inf)
    sb = np.where(b[3] > 0, b[2], np.inf)
    use_b = sb < sa
    return tuple(np.where(use_b[:, None], y, x) if x.ndim == 2 else np.where(use_b, y, x)
                 for x, y in zip(a, b))


#: Codes of the ``status`` map of :func:`fit` (>= 0: a fit; < 0: ``success`` False, NaN parameters).
FIT_STATUS: Mapping[int, str] = MappingProxyType({
    0: "converged",
    1: "iteration limit reached (max_iter); parameters are the best found",
    -1: "the curve holds NaN or infinite samples",
    -2: "the fit produced non-finite values",
    -3: "the curve is constant in time: nothing to fit",
    -4: "ended on a parameter bound with a residual variance above 4x the noise variance of the data "
        "(a wrong basin or the wrong model)",
    -5: "linear solution singular or outside the bounds (method='linear')",
})
# residual variance SSE/(T - k) above this multiple of the data's noise variance on a bound is a
# failed fit (-4): with 60 frames (56 degrees of freedom) a correct fit exceeds 2x the noise
# variance with probability ~1e-6 (chi-square), so 4x leaves room for the noise estimate's own
# spread (a trimmed mean of 58 squared second differences)
_POOR_FIT = 4.0
# a fit whose SSE is above the refined starts' lower SSE by more than this (relative) was held
# back by a bound or went to another minimum: it gets the other basin's start (2CXM,
# dual-input ETM)
_SHORT = 1e-6
# iteration-limited fits of the liver models continue for this many times max_iter more
_CONTINUE = 5
# share of the squared second differences kept by the noise estimate, and the mean of a
# chi-square(1) variable below its 80 % quantile: P(chi2_3 <= chi2_1.ppf(0.8)) / 0.8
_NOISE_KEEP = 0.8
_TRUNC_CHI2_1_MEAN = float(chi2.cdf(chi2.ppf(_NOISE_KEEP, 1), 3) / _NOISE_KEEP)


def _noise_var(Y):
    """Noise variance of every row (mM^2) from second differences, robust to the bolus.

    For white noise of variance s^2, y[i+1] - 2 y[i] + y[i-1] has variance 6 s^2; the mean of
    the lowest 80 % of its squares over the frames (divided by that truncated chi-square(1)
    mean, E[z^2 | z^2 <= q_0.8] = P(chi2_3 <= q_0.8) / 0.8) ignores the few frames where the
    curve itself bends (bolus arrival, peak), which would otherwise inflate the estimate, and
    varies less than their median (over 20,000 noisy curves of 60 frames the lowest estimate was
    0.33 x the true variance, the median's 0.21 x, which flagged a good fit as -4)
    (Rice J. Ann Stat 1984;12:1215-30, doi:10.1214/aos/1176346788, for difference-based
    variance estimators).
    """
    d2 = Y[:, 2:] - 2.0 * Y[:, 1:-1] + Y[:, :-2]
    np.square(d2, out=d2)
    k = max(1, int(round(_NOISE_KEEP * d2.shape[1])))
    low = np.partition(d2, k - 1, axis=1)[:, :k]
    return low.mean(axis=1) / (6.0 * _TRUNC_CHI2_1_MEAN)


def _empty_run(n, p):
    return np.empty((n, p)), np.empty((n, p)), np.empty(n), np.empty(n, dtype=np.int64)


def _lm_run(inp, Y, P0, lo, hi, iters, tol):
    out = _empty_run(*P0.shape)
    lm_kernel(inp, Y, P0, lo, hi, iters, float(tol), *out)
    return out


def _at_bound(P, lo, hi):
    """Rows of P (kernel units) with a parameter on (within 1e-9 of the range of) a bound."""
    eps = 1e-9 * (hi - lo)
    with np.errstate(invalid="ignore"):
        return np.any((P <= lo + eps) | (P >= hi - eps), axis=1)


def _fixed_delay_fit(spec, t, h, uniform, ca, cv, Y, delay, lo, hi, method, p0, max_iter, tol, multistart=False):
    """Fit every row of Y with the inputs shifted by ``delay`` (scalar or (n,)); kernel units.

    Starts: ``p0`` if given; else, for the liver models with inputs shared by all rows, the
    variable-projection grid (:mod:`._starts`): 2CXM and dual-input ETM get two refined starts
    from different basins, the fit starts from the better one and again from the other where it
    ends above the refined starts' lower SSE (relative _SHORT: held back by a bound, or gone to
    another minimum), then from OSIPI's values where it hit the iteration limit; 2CUM and
    dual-input 1C start from the grid's best point and again from OSIPI's values where the fit
    ends on a bound or at the iteration limit. Fits still at the iteration limit continue for
    _CONTINUE x max_iter more iterations. Other models: the linear (integral-form) fit, OSIPI's
    values where it is NaN. multistart True: the OSIPI start for every voxel too; the lower SSE
    per voxel is kept.
    """
    ua = _shift(t, ca, delay)
    uv = _shift(t, cv, delay) if spec.n_inputs == 2 else ua
    n = Y.shape[0]
    p = len(spec.free)
    iters = 0 if method == "linear" else int(max_iter)
    start = np.array([s * c for s, c in zip(spec.start(), spec.scale())])
    inp = ModelInputs(spec.code, h, uniform, ua, uv, False, t, _NO_SPLINE, _NO_SPLINE, False)
    use_grid = (p0 is None and method == "nlls" and spec.code in GRID_MODELS and ua.shape[0] == 1
                and uv.shape[0] == 1)
    if use_grid:
        # (no refinement for a start that is only evaluated: the delay search's grid)
        P0, S0, P1, S1 = grid_start(spec.code, h, uniform, ua[0], uv[0], Y, lo, hi, refine=iters > 0)
        raw = P0
    else:
        raw = _linear(spec, h, ua, uv, Y) if p0 is None else p0
        P0 = np.ascontiguousarray(np.clip(np.where(np.isfinite(raw), raw, start), lo, hi))
    P, SE, SSE, ST = _empty_run(n, p)
    lm_kernel(inp, Y, P0, lo, hi, iters, float(tol), P, SE, SSE, ST)
    if method == "nlls" and iters > 0:
        if multistart:
            again = np.arange(n)
        elif use_grid and spec.code in (3, 6):
            # the lower refined start's SSE is what the model reaches without the bounds (in
            # the basins the grid found): a fit above it was held back by a bound, or left for
            # another minimum; start those again from the other basin's refined start
            lower = np.minimum(S0, S1)
            alt = np.flatnonzero((SSE > lower * (1.0 + _SHORT)) & np.isfinite(S1))
            if alt.size:
                sub = _lm_run(inp, np.ascontiguousarray(Y[alt]), np.ascontiguousarray(P1[alt]), lo, hi, iters, tol)
                P[alt], SE[alt], SSE[alt], ST[alt] = _keep_better((P[alt], SE[alt], SSE[alt], ST[alt]), sub)
            # and from OSIPI's values where the fit stopped at the iteration limit
            again = np.flatnonzero(ST == 2)
        elif use_grid:
            # a cheap second start only where the first fit may be in the wrong basin
            again = np.flatnonzero(_at_bound(P, lo, hi) | (ST == 2))
        else:
            again = np.arange(0)
        if again.size:
            Q0 = np.ascontiguousarray(np.broadcast_to(np.clip(start, lo, hi), (again.size, p)))
            alt = _empty_run(again.size, p)
            Ya = np.ascontiguousarray(Y[again])
            ia = inp if ua.shape[0] == 1 else inp._replace(ua=np.ascontiguousarray(ua[again]))
            ia = ia if uv.shape[0] == 1 else ia._replace(uv=np.ascontiguousarray(uv[again]))
            lm_kernel(ia, Ya, Q0, lo, hi, iters, float(tol), *alt)
            sub = _keep_better((P[again], SE[again], SSE[again], ST[again]), alt)
            P[again], SE[again], SSE[again], ST[again] = sub
        if use_grid:
            # fits stopped by the iteration limit are crawling along a flat valley (2CXM towards
            # Fp or PS on a bound): continue those alone, with _CONTINUE x the iterations
            slow = np.flatnonzero(ST == 2)
            if slow.size and ua.shape[0] == 1 and uv.shape[0] == 1:
                sub = _lm_run(inp, np.ascontiguousarray(Y[slow]), np.ascontiguousarray(P[slow]), lo, hi,
                              _CONTINUE * iters, tol)
                P[slow], SE[slow], SSE[slow], ST[slow] = _keep_better((P[slow], SE[slow], SSE[slow], ST[slow]), sub)
    if method == "linear":
        with np.errstate(invalid="ignore"):
            inside = np.all(np.isfinite(raw) & (raw >= lo) & (raw <= hi), axis=1)
        P = np.where(np.isfinite(raw), raw, np.nan)
        ST = np.where((ST > 0) & inside, 1, np.minimum(ST, 0))
    return P, SE, SSE, ST


def _delay_fit(spec, t, h, uniform, ca, cv, Y, lo, hi, method, p0, max_iter, tol, dbounds, dstep):
    """Grid search of the delay refined by a per-voxel golden-section search (each point a fit)."""
    n = Y.shape[0]
    d_lo, d_hi = dbounds
    grid = np.arange(d_lo, d_hi + 0.5 * dstep, dstep)
    grid = grid[grid <= d_hi + 1e-9]
    best = None
    for d in grid:
        P, SE, SSE, ST = _fixed_delay_fit(spec, t, h, uniform, ca, cv, Y, float(d), lo, hi, method, p0,
                                          max_iter, tol)
        SSEc = np.where(ST > 0, SSE, np.inf)
        if best is None:
            best = [P, SE, SSEc, ST, np.full(n, float(d))]
            continue
        better = SSEc < best[2]
        for k, v in enumerate((P, SE, SSEc, ST, np.full(n, float(d)))):
            best[k] = np.where(better[:, None], v, best[k]) if best[k].ndim == 2 else np.where(better, v, best[k])

    def evaluate(d):
        P, SE, SSE, ST = _fixed_delay_fit(spec, t, h, uniform, ca, cv, Y, d, lo, hi, method,
                                          best[0] if method == "nlls" else p0, max_iter, tol)
        return [P, SE, np.where(ST > 0, SSE, np.inf), ST, d]

    a = np.clip(best[4] - dstep, d_lo, d_hi)
    b = np.clip(best[4] + dstep, d_lo, d_hi)
    c = evaluate(b - _GOLDEN * (b - a))
    e = evaluate(a + _GOLDEN * (b - a))
    for _ in range(_N_GOLDEN):
        left = c[2] < e[2]  # minimum in [a, e.d]
        b = np.where(left, e[4], b)
        a = np.where(left, a, c[4])
        xnew = np.where(left, b - _GOLDEN * (b - a), a + _GOLDEN * (b - a))
        new = evaluate(xnew)
        # left: e <- c, c <- new ; right: c <- e, e <- new
        c_next = [np.where(_col(left, v), nv, ov) for v, nv, ov in zip(c, new, e)]
        e_next = [np.where(_col(left, v), ov, nv) for v, ov, nv in zip(c, c, new)]
        c, e = c_next, e_next
    for cand in (c, e):
        better = cand[2] < best[2]
        best = [np.where(_col(better, v), nv, ov) for v, nv, ov in zip(best, cand, best)]
    return best[0], best[1], best[2], best[3], best[4]


def _delay_fit_lm(spec, t, h, uniform, ca, cv, Y, lo, hi, p0, max_iter, tol, dbounds, dstep, multistart=False):
    """Delay by a coarse grid (a short fit at each grid delay) and then the Levenberg-Marquardt
    fit with the delay as an extra parameter (inputs shifted by cubic splines, analytic
    derivative), started from the best grid point of each voxel."""
    n, T = Y.shape
    p = len(spec.free)
    d_lo, d_hi = dbounds
    grid = np.arange(d_lo, d_hi + 0.5 * dstep, dstep)
    grid = grid[grid <= d_hi + 1e-9]
    best_sse = np.full(n, np.inf)
    best_p = np.full((n, p), np.nan)
    best_d = np.full(n, float(grid[0]))
    for d in grid:
        P, _, SSE, ST = _fixed_delay_fit(spec, t, h, uniform, ca, cv, Y, float(d), lo, hi, "nlls", p0,
                                         min(_GRID_ITER, max_iter), tol)
        better = (ST > 0) & (SSE < best_sse)
        best_sse[better] = SSE[better]
        best_p[better] = P[better]
        best_d[better] = d
    start = np.array([s_ * c for s_, c in zip(spec.start(), spec.scale())])
    P0 = np.ascontiguousarray(np.column_stack([np.where(np.isfinite(best_p), best_p, start), best_d]))
    lo2 = np.append(lo, d_lo)
    hi2 = np.append(hi, d_hi)
    ca_c = np.ascontiguousarray(CubicSpline(t, ca, bc_type="not-a-knot").c)
    two = spec.n_inputs == 2
    cv_c = np.ascontiguousarray(CubicSpline(t, cv, bc_type="not-a-knot").c) if two else ca_c
    P = np.empty((n, p + 1))
    SE = np.empty((n, p + 1))
    SSE = np.empty(n)
    ST = np.empty(n, dtype=np.int64)
    inp = ModelInputs(spec.code, h, uniform, ca[None], cv[None], True, t, ca_c, cv_c, two)
    lm_kernel(inp, Y, P0, lo2, hi2, int(max_iter), float(tol), P, SE, SSE, ST)
    if multistart:
        S0 = np.ascontiguousarray(np.column_stack([np.broadcast_to(np.clip(start, lo, hi), (n, p)), best_d]))
        alt = (np.empty((n, p + 1)), np.empty((n, p + 1)), np.empty(n), np.empty(n, dtype=np.int64))
        lm_kernel(inp, Y, S0, lo2, hi2, int(max_iter), float(tol), *alt)
        P, SE, SSE, ST = _keep_better((P, SE, SSE, ST), alt)
    return P[:, :p], SE[:, :p], SSE, ST, P[:, p], SE[:, p]


def _col(mask, v):
    return mask[:, None] if np.ndim(v) == 2 else mask


# ---------------------------------------------------------------------------------------------
def simulate(t: ArrayLike, model: ModelName, params: Mapping[str, ArrayLike], *, cp: ArrayLike,
             cp_portal: ArrayLike | None = None, delay: float | ArrayLike = 0) -> NDArray[np.float64]:
    """Tissue concentration predicted by a tracer-kinetic model.

    Parameters
    ----------
    t : (T,) array_like of float
        Frame times, s, strictly increasing (any spacing).
    model : str
        ``"tofts"``, ``"etofts"``, ``"patlak"``, ``"2cxm"``, ``"2cum"``, ``"dual_input_1c"`` or
        ``"dual_input_etofts"``.
    params : mapping of str to array_like
        The model's free parameters, named as :func:`fit` returns them (OSIPI CAPLEX): Ktrans in
        1/min; ve, vp, fa as fractions; Fp, PS in mL/100 mL/min. tofts: Ktrans, ve; etofts:
        Ktrans, ve, vp; patlak: Ktrans, vp; 2cxm: Fp, PS, ve, vp; 2cum: Fp, PS, vp;
        dual_input_1c: Fp, fa, ve (or Fa and Fv, mL/100 mL/min, instead of Fp and fa);
        dual_input_etofts: Ktrans, ve, vp, fa. Arrays broadcast together to a shape ``S``.
        Derived and result keys (kep, MTT, ``*_se``, success, r2, aic, delay) are ignored, so a
        :class:`FitResult` can be passed back.
    cp : (T,) array_like of float
        Arterial plasma concentration at ``t``, mM.
    cp_portal : (T,) array_like of float, optional
        Portal-venous plasma concentration at ``t``, mM (dual-input models only).
    delay : float or array_like, optional
        Delay of the tissue relative to the inputs, s (broadcasts with the parameters); both
        inputs are shifted together with a cubic spline, ``c(t - delay)``.

    Returns
    -------
    ct : (*S, T) ndarray of float64
        Tissue concentration, mM.

    Notes
    -----
    Every model is a sum of ``A (c conv e^{-k t})`` terms plus a plasma term ``v c``; the
    convolution is exact for an input linear between frames (recursive exponential), so the
    result is correct for non-uniform frame times. Tofts: ``C = Ktrans c conv e^{-kep t}``,
    ``kep = Ktrans/ve``; extended Tofts adds ``vp c``; Patlak ``C = vp c + Ktrans int c``;
    2CXM/2CUM: bi-exponential impulse responses of Sourbron & Buckley (2012); dual-input one
    compartment: ``C = Fp (fa ca + (1-fa) cv) conv e^{-t/MTT}`` with ``MTT = ve/Fp``;
    dual-input extended Tofts: extended Tofts with ``cin = fa ca + (1 - fa) cv``.

    References
    ----------
    .. [1] Tofts PS, et al. JMRI 1999;10:223-32. doi:10.1002/(SICI)1522-2586(199909)10:3<223::AID-JMRI2>3.0.CO;2-S
    .. [2] Sourbron SP, Buckley DL. Phys Med Biol 2012;57:R1-33. doi:10.1088/0031-9155/57/2/R1
    .. [3] Materne R, et al. Clin Sci 2000;99:517-25. doi:10.1042/cs0990517

    Examples
    --------
    >>> import numpy as np
    >>> from theraquant.dce import simulate
    >>> t = np.arange(0.0, 300.0, 5.0)
    >>> cp = 5.0 * (t / 30.0) * np.exp(1.0 - t / 30.0)  # a gamma-variate-like bolus, mM
    >>> ct = simulate(t, "etofts", {"Ktrans": 0.0, "ve": 0.2, "vp": 0.05}, cp=cp)
    >>> bool(np.allclose(ct, 0.05 * cp))  # Ktrans = 0 leaves only the plasma term
    True
    >>> simulate(t, "tofts", {"Ktrans": [0.1, 0.2], "ve": 0.3}, cp=cp).shape
    (2, 60)
    """
    spec = get_model(model)
    t = _check_time(t)
    ca, cv = _check_inputs(spec, cp, cp_portal, t.size)
    if not isinstance(params, Mapping):
        raise TheraquantError(f"params must be a mapping of parameter name to value, got {type(params).__name__}")
    names = dict(params)
    if spec.code == 5 and ("Fp" not in names or "fa" not in names) and "Fa" in names and "Fv" in names:
        fa_, fv_ = np.asarray(names["Fa"], float), np.asarray(names["Fv"], float)
        names["Fp"] = fa_ + fv_
        with np.errstate(invalid="ignore", divide="ignore"):
            names["fa"] = fa_ / (fa_ + fv_)
    missing = [p for p in spec.free if p not in names]
    if missing:
        raise TheraquantError(
            f"params for model {spec.name!r} lack {missing}; it needs {list(spec.free)} "
            f"(units: {', '.join(f'{p} {UNITS[p]}' for p in spec.free)})")
    unknown = [k for k in names if k not in UNITS and not (k.endswith("_se") and k[:-3] in UNITS)]
    if unknown:
        raise TheraquantError(
            f"params holds unknown name(s) {unknown} for model {spec.name!r}; it needs {list(spec.free)}")
    try:
        arrs = np.broadcast_arrays(*[np.asarray(names[p], dtype=np.float64) for p in spec.free],
                                   np.asarray(delay, dtype=np.float64))
    except ValueError:
        raise TheraquantError(
            "params (and delay) must broadcast to one shape, got shapes "
            f"{[np.shape(names[p]) for p in spec.free]} and delay {np.shape(delay)}") from None
    shape = arrs[0].shape
    scale = np.array(spec.scale())
    P = np.ascontiguousarray(np.stack([a.reshape(-1) for a in arrs[:-1]], axis=-1) * scale)
    d = arrs[-1].reshape(-1)
    if not np.all(np.isfinite(d)):
        raise TheraquantError(f"delay must be finite (s), got {delay!r}")
    dd: float | NDArray[np.float64] = float(d[0]) if d.size and np.all(d == d[0]) else d
    if d.size == 0:
        dd = 0.0
    h, uniform = _grid(t)
    ua = _shift(t, ca, dd)
    uv = _shift(t, cv, dd) if spec.n_inputs == 2 else ua
    out = np.empty((P.shape[0], t.size))
    if P.shape[0]:
        forward_kernel(spec.code, h, uniform, ua, uv, P, out)
    return out.reshape(shape + (t.size,))


def fit(t: ArrayLike, ct: ArrayLike, model: ModelName, *, cp: ArrayLike, cp_portal: ArrayLike | None = None,
        method: Literal["nlls", "linear"] = "nlls", delay: float | ArrayLike | Literal["fit"] = 0.0,
        delay_bounds: tuple[float, float] = (-10.0, 10.0), delay_step: float = 1.0,
        delay_refine: Literal["lm", "golden"] = "lm", bounds: Mapping[str, tuple[float, float]] | None = None,
        p0: Mapping[str, ArrayLike] | None = None, multistart: bool | Literal["auto"] = "auto",
        max_iter: int = 100, tol: float = 1e-8, chunk_size: int = 65536) -> FitResult:
    """Fit a tracer-kinetic model to every tissue curve at once.

    The first fit on an empty numba cache compiles the fitting kernels (about
    :data:`~theraquant.dce.COMPILE_ESTIMATE_S` s on two cores, the start kernel in a child
    process meanwhile; :func:`~theraquant.dce.warm_up`); later fits and processes load them.

    Parameters
    ----------
    t : (T,) array_like of float
        Frame times, s, strictly increasing (non-uniform spacing allowed).
    ct : (..., T) array_like of float
        Tissue concentration, mM, time on the last axis; any leading shape (one curve, ROIs,
        a volume). Curves holding NaN fail alone (``success`` False, NaN parameters).
    model : str
        ``"tofts"``, ``"etofts"``, ``"patlak"``, ``"2cxm"``, ``"2cum"``, ``"dual_input_1c"`` or
        ``"dual_input_etofts"`` (see :func:`simulate` for the equations and free parameters).
    cp : (T,) array_like of float
        Arterial plasma concentration at ``t``, mM.
    cp_portal : (T,) array_like of float, optional
        Portal-venous plasma concentration at ``t``, mM (dual-input models).
    method : {"nlls", "linear"}
        ``"linear"``: linear least squares of the model's integral form (Murase 2004; Flouri
        2016), no iteration. ``"nlls"`` (default): bounded Levenberg-Marquardt with analytic
        Jacobians. Starts: for 2cxm, 2cum, dual_input_1c and dual_input_etofts a
        variable-projection grid (the two parameters the model is linear in solved exactly at
        every point of a grid over the others; ``._starts``). For 2cxm and dual_input_etofts
        the grid gives two starts from different basins (2cxm: its best point, and that
        point's main exponential paired with a second one on the other side; dual-input ETM:
        fa at least 0.2 apart), each refined by a few variable-projection Levenberg-Marquardt
        steps on the two nonlinear parameters (Golub & Pereyra 1973); the full fit starts from
        the better one, and again from the other wherever it ends above the refined starts'
        residual (held back by a bound). For tofts, etofts and patlak the linear solution
        (clipped to the bounds).
    delay : float, array_like or "fit", default 0
        Delay of the tissue relative to both inputs, s (a number, an array of the leading
        shape, or ``"fit"``); inputs are shifted with :func:`theraquant.dce.aif.shift` (cubic
        spline, first sample held before the first frame). A fitted delay is searched within
        ``delay_bounds``: a start at every delay of a grid (``delay_step``) picks each voxel's
        start, then the Levenberg-Marquardt fit treats the delay as one more parameter
        (cubic-spline inputs, shifted per voxel, with the analytic derivative) and reports
        ``delay_se``.
    delay_bounds : (float, float), default (-10, 10)
        Search range of a fitted delay, s (OSIPI).
    delay_step : float, default 1
        Grid step of the delay search, s.
    delay_refine : {"lm", "golden"}, default "lm"
        ``"golden"`` refines a grid of full fits by 14 golden-section steps instead (slower;
        the only choice with ``method="linear"``).
    bounds : mapping of str to (float, float), optional
        ``{name: (lo, hi)}`` in public units (defaults: Ktrans [0, 5] 1/min, ve [1e-4, 1], vp
        [0, 1] ([1e-4, 1] in 2cxm/2cum), Fp [0, 200] ([0, 500] in dual_input_1c, whole liver)
        and PS [0, 500] mL/100 mL/min, fa [0, 1], after OSIPI's recommended settings).
    p0 : mapping of str to array_like, optional
        Starting values ``{name: value or array of the leading shape}`` (public units) instead
        of the model's starts.
    multistart : bool or "auto", default "auto"
        True: also start every voxel from OSIPI's recommended values and keep, per voxel, the
        fit with the lower SSE. "auto": False for every model (the liver models already get a
        second start, from another basin, wherever the first fit falls short of the refined
        starts' residual; see ``method``).
    max_iter : int, default 100
        Levenberg-Marquardt iterations per voxel and start.
    tol : float, default 1e-8
        Relative tolerance: a fit ends when a step lowers the SSE by at most ``tol`` x SSE (or
        moves every parameter by at most ``tol``, relative) and the undamped Gauss-Newton step
        predicts at most ``tol`` x SSE left to gain.
    chunk_size : int, default 65536
        Curves fitted together (bounds the working memory).

    Returns
    -------
    FitResult
        Read-only mapping of arrays of the leading shape: the free parameters, derived ones
        (kep 1/min; Fa, Fv mL/100 mL/min and MTT s for dual_input_1c), ``delay`` (s),
        ``<name>_se`` (and ``delay_se`` for a fitted delay), ``success``, ``status`` (int8
        code, :data:`FIT_STATUS`: 0 converged, 1 iteration limit, < 0 failed, e.g. -4 on a
        bound with a residual above 4x the data's noise variance), ``r2``, ``aic``; with
        ``model``, ``method``, ``units`` and ``settings`` attributes.

    Raises
    ------
    TheraquantError
        Unknown model; t not 1-D strictly increasing and finite; ct, cp or
        cp_portal of the wrong length; NaN in an input function; NaN or infinite values in a
        whole frame of ct or in every curve; every curve constant. (A single constant or
        non-finite curve among others is reported as ``success`` False with NaN parameters.)

    References
    ----------
    .. [1] Murase K. Efficient method for calculating kinetic parameters using T1-weighted
       dynamic contrast-enhanced MRI. Magn Reson Med 2004;51:858-62. doi:10.1002/mrm.20022
    .. [2] Flouri D, Lesnic D, Sourbron SP. Magn Reson Med 2016;76:998-1006. doi:10.1002/mrm.25991
    .. [3] Marquardt DW. J Soc Ind Appl Math 1963;11:431-41. doi:10.1137/0111030
    .. [4] Golub GH, Pereyra V. The differentiation of pseudo-inverses and nonlinear least
       squares problems whose variables separate. SIAM J Numer Anal 1973;10:413-32.
       doi:10.1137/0710036

    Examples
    --------
    >>> import numpy as np
    >>> from theraquant.dce import fit, simulate
    >>> t = np.arange(0.0, 300.0, 2.0)
    >>> cp = 6.0 * (t / 20.0) ** 2 * np.exp(2.0 * (1.0 - t / 20.0)) + 1.0 * (t > 20)  # mM
    >>> ct = simulate(t, "etofts", {"Ktrans": 0.2, "ve": 0.3, "vp": 0.05}, cp=cp)
    >>> res = fit(t, ct, "etofts", cp=cp)
    >>> round(float(res["Ktrans"]), 4), round(float(res["ve"]), 4), bool(res["success"])
    (0.2, 0.3, True)
    """
    spec = get_model(model)
    if method not in ("nlls", "linear"):
        raise TheraquantError(f"method must be 'nlls' or 'linear', got {method!r}")
    t = _check_time(t)
    check_frame_times(t, argument="t")  # frame times in ms or minutes: a PlausibilityWarning
    T = t.size
    try:
        ct = np.asarray(ct, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TheraquantError(f"ct must be an array of tissue concentrations (mM): {exc}") from None
    if ct.ndim == 0 or ct.shape[-1] != T:
        raise TheraquantError(
            f"ct must have time on its last axis with {T} frames (like t), got shape {ct.shape}; "
            "move the time axis last (np.moveaxis) or pass the matching frame times")
    ca, cv = _check_inputs(spec, cp, cp_portal, T)
    lead = ct.shape[:-1]
    Y = ct.reshape(-1, T)
    n = Y.shape[0]
    if n == 0:
        raise TheraquantError(f"ct holds no curves (shape {ct.shape})")
    if not Y.flags.c_contiguous or Y.dtype != np.float64:
        Y = np.ascontiguousarray(Y, dtype=np.float64)
    sst = np.empty(n)
    row_stats(Y, sst)
    nan_rows = np.isnan(sst)  # a NaN or infinite sample makes the row's sum of squares NaN
    if nan_rows.all():
        nan_frames = np.flatnonzero(np.all(~np.isfinite(Y), axis=0))
        if nan_frames.size:
            raise TheraquantError(
                f"ct is NaN or infinite in every curve at frame(s) {nan_frames[:10].tolist()} (t = "
                f"{t[nan_frames[:10]].tolist()} s); drop those frames from t and ct before fitting")
        raise TheraquantError(
            f"every curve of ct ({n}) holds NaN or infinite samples; nothing can be fitted - check the "
            "signal-to-concentration step (saturated or zero baseline signal)")
    if np.all(sst[~nan_rows] == 0):
        raise TheraquantError(
            f"ct is constant in time in every curve ({n} curve(s)); there is no enhancement to "
            "fit - check the mask and the signal-to-concentration step")
    delay = _check_delay(delay, lead, allow_fit=True)
    try:
        dbounds = tuple(float(v) for v in delay_bounds)
    except (TypeError, ValueError):
        dbounds = ()
    if len(dbounds) != 2 or not dbounds[0] < dbounds[1]:
        raise TheraquantError(f"delay_bounds must be (low, high) in s with low < high, got {delay_bounds!r}")
    h, uniform = _grid(t)
    dstep = float(delay_step)
    if not dstep > 0:
        raise TheraquantError(f"delay_step must be > 0 s, got {delay_step!r}")
    if bounds is not None:
        bad = [k for k in bounds if k not in spec.free]
        if bad:
            raise TheraquantError(f"bounds name(s) {bad} are not free parameters of {spec.name!r}: {list(spec.free)}")
    lo_pub, hi_pub = spec.bounds(bounds)
    if not all(a < b for a, b in zip(lo_pub, hi_pub)):
        got = dict(zip(spec.free, zip(lo_pub, hi_pub)))
        raise TheraquantError(f"bounds must have low < high for every parameter, got {got}")
    scale = np.array(spec.scale())
    lo = np.array(lo_pub) * scale
    hi = np.array(hi_pub) * scale
    p0_all = None
    if p0 is not None:
        p0m = p0
        missing = [p for p in spec.free if p not in p0m]
        if missing:
            raise TheraquantError(f"p0 lacks {missing}; give a start for each of {list(spec.free)}")
        p0_all = np.stack([np.broadcast_to(np.asarray(p0m[p], float), lead).reshape(-1) for p in spec.free],
                          axis=-1) * scale
    max_iter = int(max_iter)
    tol = float(tol)
    chunk = max(1, int(chunk_size))
    p = len(spec.free)
    P = np.empty((n, p))
    SE = np.empty((n, p))
    SSE = np.empty(n)
    ST = np.empty(n, dtype=np.int64)
    D = np.empty(n)
    DSE = np.full(n, np.nan)
    NV = np.full(n, np.nan)
    multistart_arg = multistart
    if multistart == "auto":
        multistart = False  # the liver models' second starts go only where needed (_fixed_delay_fit)
    if not isinstance(multistart, (bool, np.bool_)):
        raise TheraquantError(f"multistart must be True, False or 'auto', got {multistart_arg!r}")
    refine = delay_refine
    if refine not in ("lm", "golden"):
        raise TheraquantError(f"delay_refine must be 'lm' or 'golden', got {refine!r}")
    if method == "linear":
        refine = "golden"
    ensure_ready(spec.name)  # an empty numba cache: compile (in part in a child process) first
    for s0 in range(0, n, chunk):
        sl = slice(s0, min(n, s0 + chunk))
        Yc = Y[sl]
        p0c = None if p0_all is None else np.ascontiguousarray(p0_all[sl])
        if isinstance(delay, str) and refine == "lm":
            Pc, SEc, SSEc, STc, Dc, DSE[sl] = _delay_fit_lm(spec, t, h, uniform, ca, cv, Yc, lo, hi, p0c,
                                                            max_iter, tol, dbounds, dstep, multistart)
        elif isinstance(delay, str):
            Pc, SEc, SSEc, STc, Dc = _delay_fit(spec, t, h, uniform, ca, cv, Yc, lo, hi, method, p0c,
                                                max_iter, tol, dbounds, dstep)
        else:
            dc = delay if np.ndim(delay) == 0 else delay[sl]
            Pc, SEc, SSEc, STc = _fixed_delay_fit(spec, t, h, uniform, ca, cv, Yc, dc, lo, hi, method, p0c,
                                                  max_iter, tol, multistart)
            Dc = np.broadcast_to(dc, (Yc.shape[0],))
        P[sl], SE[sl], SSE[sl], ST[sl], D[sl] = Pc, SEc, SSEc, STc, Dc
        if method == "nlls":
            NV[sl] = _noise_var(Yc)
    status = np.where(ST == 1, 0, np.where(ST == 2, 1, np.where(ST == 0, -5, ST))).astype(np.int8)
    # a constant curve (e.g. all zero: no enhancement) leaves ve or fa unidentifiable: not a fit
    status[(sst == 0) & (status >= 0)] = -3
    if method == "nlls":
        # on a bound with a residual well above the noise: a wrong basin, not a fit
        dof = max(T - p - (1 if isinstance(delay, str) else 0), 1)
        # bounds the caller set are deliberate constraints, not a sign of a wrong basin
        mine = np.array([bounds is None or name not in bounds for name in spec.free])
        with np.errstate(invalid="ignore"):
            floor = 1e-6 * np.einsum("ij,ij->i", Y, Y) / T  # noise-free data: (1e-3 of the RMS)^2
            poor = ((status >= 0) & _at_bound(P[:, mine], lo[mine], hi[mine])
                    & (SSE / dof > _POOR_FIT * np.maximum(NV, floor)))
        status[poor] = -4
    success = status >= 0
    P[~success] = np.nan
    SE[~success] = np.nan
    SSE[~success] = np.nan
    P /= scale
    SE /= scale
    values: dict[str, NDArray[Any]] = {}
    for j, name in enumerate(spec.free):
        values[name] = P[:, j]
    with np.errstate(divide="ignore", invalid="ignore"):
        if "kep" in spec.derived:
            values["kep"] = values["Ktrans"] / values["ve"]
        if spec.code == 5:
            values["Fa"] = values["fa"] * values["Fp"]
            values["Fv"] = (1.0 - values["fa"]) * values["Fp"]
            values["MTT"] = 60.0 * values["ve"] / (values["Fp"] / 100.0)
        values["delay"] = np.where(success, D, np.nan) if isinstance(delay, str) else D.astype(np.float64)
        for j, name in enumerate(spec.free):
            values[name + "_se"] = SE[:, j]
        if isinstance(delay, str) and refine == "lm":
            values["delay_se"] = np.where(success, DSE, np.nan)
        values["success"] = success
        values["status"] = status
        values["r2"] = np.where(sst > 0, 1.0 - SSE / sst, np.nan)
        k = p + (1 if isinstance(delay, str) else 0)
        values["aic"] = T * np.log(np.maximum(SSE / T, 1e-300)) + 2 * k
    frozen = {}
    for key, v in values.items():
        a = np.ascontiguousarray(v).reshape(lead)
        a.setflags(write=False)
        frozen[key] = a
    units = {key: UNITS[key[:-3]] if key.endswith("_se") else UNITS[key] for key in frozen}
    settings = {
        "delay": "fit" if isinstance(delay, str) else (delay if np.ndim(delay) == 0 else "per-voxel array"),
        "delay_bounds_s": list(dbounds) if isinstance(delay, str) else None,
        "delay_step_s": dstep if isinstance(delay, str) else None,
        "delay_search": (None if not isinstance(delay, str) else
                         f"grid of linear fits ({_GRID_ITER} LM iterations) per delay, then LM with the delay free"
                         if refine == "lm" else f"grid of full fits + {_N_GOLDEN} golden-section steps"),
        "input_shift": "theraquant.dce.aif.shift: cubic spline (not-a-knot), first / last sample held "
                       "outside the sampled range",
        "bounds": {name: [a, b] for name, a, b in zip(spec.free, lo_pub, hi_pub)},
        "p0": ("user" if p0_all is not None else
               "variable-projection grid (._starts), refined; clipped to bounds" if spec.code in GRID_MODELS
               and method == "nlls" else "linear least squares (integral form), clipped to bounds"),
        "multistart": bool(multistart),
        "max_iter": max_iter,
        "tol": tol,
        "convolution": "exact, piecewise-linear input (recursive exponential)",
        "n_frames": T,
    }
    record = _provenance(
        settings={"model": spec.name, "method": method, **settings}, units=units,
        command=describe_call("theraquant.dce.fit", {"t": t, "ct": ct, "model": spec.name, "method": method}),
        ModelCAPLEX=spec.caplex, ModelReference=spec.reference)
    return FitResult(model=spec.name, method=method, free=spec.free, maps=frozen, units=units, settings=settings,
                     provenance=record)
