"""T1 mapping by variable flip angle (VFA) spoiled gradient echo: DESPOT1 and bounded NLLS."""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit
from numpy.typing import ArrayLike, NDArray

from ..errors import TheraquantError
from ..results import Result
from ._signal import _broadcast_voxelwise, _check_flip_degrees, _check_tr

__all__ = ["t1_vfa", "T1Result"]

#: bounds of the non-linear fit: T1 in s
_T1_BOUNDS_S = (1e-4, 100.0)
_METHODS = ("linear", "nonlinear")


class T1Result(Result):
    """Result of :func:`t1_vfa`: a :class:`theraquant.results.Result` ``{"T1", "M0", "valid"}``.

    Attributes
    ----------
    T1 : (...) ndarray of float64
        Longitudinal relaxation time, s; NaN where the fit is invalid.
    M0 : (...) ndarray of float64
        Equilibrium magnetisation, signal units; NaN where invalid.
    valid : (...) ndarray of bool
        False where a voxel has non-finite or non-positive signals, where DESPOT1's slope
        E1 is outside (0, 1), or where the non-linear fit ran onto its T1 bounds
        (1e-4 s, 100 s) or did not converge.
    n_invalid : int
        Number of invalid voxels.
    method : str
        "linear" (DESPOT1) or "nonlinear".
    settings : dict
        TR (s), flip angles (degrees), whether a B1 map was applied.
    """

    __slots__ = ("n_invalid", "method", "settings")
    _UNITS = {"T1": "s", "M0": "a.u.", "valid": ""}

    def __init__(self, *, T1: NDArray[np.float64], M0: NDArray[np.float64], valid: NDArray[np.bool_],
                 n_invalid: int, method: str, settings: dict[str, Any] | None = None):
        super().__init__({"T1": T1, "M0": M0, "valid": valid}, title=f"VFA T1 ({method})")
        object.__setattr__(self, "n_invalid", int(n_invalid))
        object.__setattr__(self, "method", method)
        object.__setattr__(self, "settings", dict(settings or {}))

    def __getitem__(self, key: str) -> NDArray:
        try:
            return object.__getattribute__(self, "_data")[key]
        except KeyError:
            raise KeyError(f"{key!r}: a T1Result holds ('T1', 'M0', 'valid')") from None

    def __reduce__(self) -> Any:
        return (_rebuild_t1, (dict(self.items()), self.n_invalid, self.method, self.settings))


def _rebuild_t1(maps, n_invalid, method, settings) -> T1Result:
    return T1Result(**maps, n_invalid=n_invalid, method=method, settings=settings)


def _despot1(s: NDArray, a: NDArray, tr: float) -> tuple[NDArray, NDArray, NDArray]:
    """Vectorised DESPOT1: regress S/sin(a) on S/tan(a); slope E1, intercept M0 (1 - E1)."""
    y = s / np.sin(a)
    x = s / np.tan(a)
    xm = x.mean(axis=-1, keepdims=True)
    ym = y.mean(axis=-1, keepdims=True)
    sxx = np.sum((x - xm) ** 2, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        e1 = np.sum((x - xm) * (y - ym), axis=-1) / sxx
        ok = np.isfinite(e1) & (e1 > 0) & (e1 < 1)
        e1c = np.where(ok, e1, 0.5)
        m0 = (ym[..., 0] - e1c * xm[..., 0]) / (1.0 - e1c)
        t1 = -tr / np.log(e1c)
    ok &= np.isfinite(m0) & (m0 > 0)
    return t1, m0, ok


def _model_jac(m0: NDArray, t1: NDArray, a: NDArray, tr: float) -> tuple[NDArray, NDArray, NDArray]:
    """SPGR signal (n, K) and its derivatives with respect to M0 and T1."""
    e1 = np.exp(-tr / t1)[:, None]
    sa, ca = np.sin(a), np.cos(a)
    den = 1.0 - ca * e1
    f = sa * (1.0 - e1) / den
    df_de1 = sa * (ca - 1.0) / den**2
    de1_dt1 = e1 * tr / (t1[:, None] ** 2)
    return m0[:, None] * f, f, m0[:, None] * df_de1 * de1_dt1


def _nlls(s: NDArray, a: NDArray, tr: float, t1: NDArray, m0: NDArray,
          *, max_iter: int = 200, tol: float = 1e-12) -> tuple[NDArray, NDArray, NDArray]:
    """Batched Levenberg-Marquardt over voxels (rows) for (M0, T1); T1 kept inside its bounds.

    ``s`` and ``a`` are (n, K). Each voxel has its own damping; only unconverged voxels are
    updated in an iteration (vectorised, no per-voxel loop). The numpy twin of
    :func:`_lm_t1_kernel`, kept as its test oracle.
    """
    n = s.shape[0]
    lam = np.full(n, 1e-3)
    lo, hi = _T1_BOUNDS_S
    t1 = np.clip(t1, lo, hi).astype(float)
    m0 = m0.astype(float).copy()
    pred, j0, j1 = _model_jac(m0, t1, a, tr)
    cost = np.sum((s - pred) ** 2, axis=-1)
    active = np.ones(n, dtype=bool)
    converged = np.zeros(n, dtype=bool)
    for _ in range(max_iter):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        r = s[idx] - pred[idx]
        J0, J1 = j0[idx], j1[idx]
        # column scaling makes the damping invariant to the very different M0 and T1 scales
        d0 = np.sqrt(np.sum(J0 * J0, axis=-1)) + 1e-300
        d1 = np.sqrt(np.sum(J1 * J1, axis=-1)) + 1e-300
        J0s, J1s = J0 / d0[:, None], J1 / d1[:, None]
        a00 = np.sum(J0s * J0s, axis=-1) * (1.0 + lam[idx])
        a11 = np.sum(J1s * J1s, axis=-1) * (1.0 + lam[idx])
        a01 = np.sum(J0s * J1s, axis=-1)
        g0 = np.sum(J0s * r, axis=-1)
        g1 = np.sum(J1s * r, axis=-1)
        det = a00 * a11 - a01 * a01
        with np.errstate(divide="ignore", invalid="ignore"):
            dp0 = (a11 * g0 - a01 * g1) / det / d0
            dp1 = (a00 * g1 - a01 * g0) / det / d1
        m0_new = m0[idx] + dp0
        t1_new = np.clip(t1[idx] + dp1, lo, hi)
        p_new, j0_new, j1_new = _model_jac(m0_new, t1_new, a[idx], tr)
        cost_new = np.sum((s[idx] - p_new) ** 2, axis=-1)
        better = np.isfinite(cost_new) & (cost_new <= cost[idx])
        b = idx[better]
        rel_change = np.abs(dp1[better]) / t1[b] + np.abs(dp0[better]) / np.maximum(np.abs(m0[b]), 1e-300)
        m0[b], t1[b] = m0_new[better], t1_new[better]
        pred[b], j0[b], j1[b] = p_new[better], j0_new[better], j1_new[better]
        small = (cost[b] - cost_new[better]) <= tol * cost[b] + 1e-300
        cost[b] = cost_new[better]
        lam[b] = np.maximum(lam[b] / 10.0, 1e-12)
        done = small & (rel_change < 1e-10)
        done |= cost[b] == 0.0
        converged[b[done]] = True
        active[b[done]] = False
        w = idx[~better]
        lam[w] *= 10.0
        stuck = lam[w] > 1e12  # no step reduces the cost any more: at the minimum
        converged[w[stuck]] = True
        active[w[stuck]] = False
    ok = converged & (t1 > lo * (1 + 1e-9)) & (t1 < hi * (1 - 1e-9)) & (m0 > 0)
    return t1, m0, ok


@njit(cache=True)
def _spgr_cost_grad(s, sin_a, cos_a, tr, m0, t1):  # pragma: no cover - compiled
    """Cost, J^T J (j00, j01, j11) and J^T r (g0, g1) of one voxel at (M0, T1)."""
    e1 = np.exp(-tr / t1)
    de1 = e1 * tr / (t1 * t1)
    cost = 0.0
    j00 = 0.0
    j01 = 0.0
    j11 = 0.0
    g0 = 0.0
    g1 = 0.0
    for k in range(s.size):
        sa = sin_a[k]
        ca = cos_a[k]
        den = 1.0 - ca * e1
        f = sa * (1.0 - e1) / den
        d1 = m0 * sa * (ca - 1.0) / (den * den) * de1
        r = s[k] - m0 * f
        cost += r * r
        j00 += f * f
        j01 += f * d1
        j11 += d1 * d1
        g0 += f * r
        g1 += d1 * r
    return cost, j00, j01, j11, g0, g1


@njit(cache=True)
def _lm_t1_kernel(s, sin_a, cos_a, tr, t1_0, m0_0, lo, hi, max_iter, tol, t1_out, m0_out, ok_out):  # pragma: no cover
    """Levenberg-Marquardt for (M0, T1) voxel by voxel: the compiled twin of :func:`_nlls`.

    Same steps, damping, bounds and stopping rules as the numpy version (the test oracle).
    """
    n = s.shape[0]
    for v in range(n):
        sv = s[v]
        sav = sin_a[v]
        cav = cos_a[v]
        t1 = min(max(t1_0[v], lo), hi)
        m0 = m0_0[v]
        lam = 1e-3
        cost, j00, j01, j11, g0, g1 = _spgr_cost_grad(sv, sav, cav, tr, m0, t1)
        converged = False
        for _ in range(max_iter):
            d0 = np.sqrt(j00) + 1e-300
            d1 = np.sqrt(j11) + 1e-300
            a00 = j00 / (d0 * d0) * (1.0 + lam)
            a11 = j11 / (d1 * d1) * (1.0 + lam)
            a01 = j01 / (d0 * d1)
            gs0 = g0 / d0
            gs1 = g1 / d1
            det = a00 * a11 - a01 * a01
            dp0 = (a11 * gs0 - a01 * gs1) / det / d0
            dp1 = (a00 * gs1 - a01 * gs0) / det / d1
            m0n = m0 + dp0
            t1n = min(max(t1 + dp1, lo), hi)
            cn, n00, n01, n11, n0, n1 = _spgr_cost_grad(sv, sav, cav, tr, m0n, t1n)
            if np.isfinite(cn) and cn <= cost:
                rel = abs(dp1) / t1 + abs(dp0) / max(abs(m0), 1e-300)
                small = (cost - cn) <= tol * cost + 1e-300
                m0 = m0n
                t1 = t1n
                cost, j00, j01, j11, g0, g1 = cn, n00, n01, n11, n0, n1
                lam = max(lam / 10.0, 1e-12)
                if (small and rel < 1e-10) or cost == 0.0:
                    converged = True
                    break
            else:
                lam *= 10.0
                if lam > 1e12:
                    converged = True
                    break
        t1_out[v] = t1
        m0_out[v] = m0
        ok_out[v] = converged and t1 > lo * (1 + 1e-9) and t1 < hi * (1 - 1e-9) and m0 > 0


def _nlls_compiled(s: NDArray, a: NDArray, tr: float, t1: NDArray, m0: NDArray,
                   *, max_iter: int = 200, tol: float = 1e-12) -> tuple[NDArray, NDArray, NDArray]:
    """:func:`_nlls` through the numba kernel (same results, ~10-20x faster)."""
    n = s.shape[0]
    t1_out, m0_out, ok = np.empty(n), np.empty(n), np.empty(n, dtype=np.bool_)
    lo, hi = _T1_BOUNDS_S
    a = np.asarray(a, dtype=np.float64)
    _lm_t1_kernel(np.ascontiguousarray(s, dtype=np.float64), np.ascontiguousarray(np.sin(a)),
                  np.ascontiguousarray(np.cos(a)), float(tr), np.ascontiguousarray(t1, dtype=np.float64), np.ascontiguousarray(m0, dtype=np.float64),
                  lo, hi, max_iter, tol, t1_out, m0_out, ok)
    return t1_out, m0_out, ok


def t1_vfa(
    signal: ArrayLike,
    flip_angles: ArrayLike,
    tr: float,
    *,
    method: str = "nonlinear",
    b1: ArrayLike | None = None,
) -> T1Result:
    """T1 and M0 from variable-flip-angle spoiled gradient-echo signals.

    Parameters
    ----------
    signal : (..., K) array_like
        Signal at each of the K flip angles, flip angle on the last axis, any leading shape.
    flip_angles : (K,) or (..., K) array_like
        Nominal flip angles, degrees (K >= 2; >= 3 recommended).
    tr : float
        Repetition time, s (the same for every flip angle).
    method : {"nonlinear", "linear"}, optional
        "linear": DESPOT1, a straight-line fit of S/sin(a) against S/tan(a) [1]_.
        "nonlinear" (default): bounded non-linear least squares of the SPGR equation on the
        signals (Levenberg-Marquardt with the analytic Jacobian in a compiled loop over voxels,
        started from the DESPOT1 solution; T1 bounded to [1e-4, 100] s).
    b1 : float or (...) array_like, optional
        B1 correction factor (actual / nominal flip angle, 1 = no error), scalar or one per
        voxel; the flip angles used are ``b1 * flip_angles``. A B1 map in percent must be
        divided by 100 first.

    Returns
    -------
    T1Result
        Read-only mapping: ``"T1"`` (s), ``"M0"`` (signal units), ``"valid"`` (bool); invalid
        voxels are NaN and counted in ``.n_invalid``.

    Notes
    -----
    ``S(a) = M0 sin(a) (1 - E1) / (1 - cos(a) E1)``, ``E1 = exp(-TR/T1)``. DESPOT1 uses
    ``S/sin a = E1 S/tan a + M0 (1 - E1)``.

    References
    ----------
    .. [1] Deoni SCL, Rutt BK, Peters TM. Rapid combined T1 and T2 mapping using gradient
       recalled acquisition in the steady state. Magn Reson Med 2003;49:515-26.
       doi:10.1002/mrm.10407
    .. [2] Fram EK, et al. Rapid calculation of T1 using variable flip angle gradient refocused
       imaging. Magn Reson Imaging 1987;5:201-8. doi:10.1016/0730-725X(87)90021-X

    Examples
    --------
    Madym's VFA calibration point (T1 1500 ms, M0 1000, TR 3.5 ms):

    >>> res = t1_vfa([27.68110434929892, 23.142692111604916, 14.077378652726502],
    ...              [2.0, 10.0, 18.0], 0.0035)
    >>> round(float(res["T1"]), 6), round(float(res["M0"]), 4)
    (1.5, 1000.0)
    """
    if method not in _METHODS:
        raise TheraquantError(f"method must be one of {_METHODS}, got {method!r}")
    s = np.asarray(signal, dtype=float)
    if s.ndim < 1:
        raise TheraquantError(f"signal must have the flip angle on its last axis, got a scalar {signal!r}")
    k = s.shape[-1]
    fa = _check_flip_degrees(flip_angles, "flip_angles")
    if fa.ndim == 0 or fa.shape[-1] != k:
        raise TheraquantError(
            f"flip_angles must hold one angle per signal sample: the signal has {k} on its last "
            f"axis but flip_angles has shape {fa.shape}; put the flip angle on the LAST axis")
    if k < 2:
        raise TheraquantError(f"VFA T1 mapping needs at least 2 flip angles, got {k}")
    if np.all(np.ptp(fa, axis=-1) == 0):
        raise TheraquantError(f"flip_angles must differ, got {fa.tolist()}; acquire at >= 2 flip angles")
    tr_arr = np.asarray(tr, dtype=float)
    if tr_arr.ndim > 0:
        if tr_arr.size and np.all(tr_arr == tr_arr.flat[0]):
            tr_arr = tr_arr.flat[0]
        else:
            raise TheraquantError(f"tr must be one repetition time in s for all flip angles, got {tr!r}")
    tr_s = _check_tr(tr_arr)
    if tr_s > 1.0:
        raise TheraquantError(f"tr must be in seconds, got {tr_s:g}, which looks like milliseconds; divide by 1000")
    lead = s.shape[:-1]
    try:
        a_full = np.broadcast_to(np.deg2rad(fa), s.shape)
    except ValueError:
        raise TheraquantError(f"flip_angles of shape {fa.shape} does not match the signal's shape {s.shape}") from None
    if b1 is not None:
        b1_a = _broadcast_voxelwise(b1, lead, "b1")
        if np.any(np.isfinite(b1_a) & (b1_a > 10)):
            raise TheraquantError(f"b1 must be a factor near 1 (actual / nominal flip angle), got values up to "
                                  f"{np.nanmax(b1_a):g}; a B1 map in percent must be divided by 100")
        a_full = a_full * b1_a[..., None]
        b1_ok = np.isfinite(b1_a) & (b1_a > 0)
    else:
        b1_ok = np.ones(lead, dtype=bool)

    n = int(np.prod(lead, dtype=int))
    s2 = s.reshape(n, k)
    a2 = np.broadcast_to(a_full, s.shape).reshape(n, k)
    good = (np.all(np.isfinite(s2), axis=-1) & np.all(s2 > 0, axis=-1) & b1_ok.reshape(n)
            & np.all(np.isfinite(a2) & (a2 > 0) & (a2 < np.pi), axis=-1))
    t1 = np.full(n, np.nan)
    m0 = np.full(n, np.nan)
    valid = np.zeros(n, dtype=bool)
    gi = np.flatnonzero(good)
    if gi.size:
        sg, ag = s2[gi], a2[gi]
        t1_l, m0_l, ok_l = _despot1(sg, ag, tr_s)
        if method == "linear":
            t1_g, m0_g, ok_g = t1_l, m0_l, ok_l
        else:
            # start from DESPOT1 where it is usable, else from T1 = 1 s and the matching M0
            t1_0 = np.where(ok_l, np.clip(t1_l, *_T1_BOUNDS_S), 1.0)
            f0 = np.sin(ag) * (1 - np.exp(-tr_s / t1_0))[:, None] / (1 - np.cos(ag) * np.exp(-tr_s / t1_0)[:, None])
            m0_0 = np.where(ok_l, m0_l, np.sum(f0 * sg, axis=-1) / np.sum(f0 * f0, axis=-1))
            t1_g, m0_g, ok_g = _nlls_compiled(sg, ag, tr_s, t1_0, m0_0)
        t1[gi] = np.where(ok_g, t1_g, np.nan)
        m0[gi] = np.where(ok_g, m0_g, np.nan)
        valid[gi] = ok_g
    return T1Result(T1=t1.reshape(lead), M0=m0.reshape(lead), valid=valid.reshape(lead),
                    n_invalid=int(n - valid.sum()), method=method,
                    settings={"tr_s": tr_s, "flip_angles_deg": fa.tolist(), "b1_applied": b1 is not None,
                              "t1_bounds_s": list(_T1_BOUNDS_S) if method == "nonlinear" else None})
