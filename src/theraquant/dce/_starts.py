"""Starting values for the liver perfusion models by a variable-projection grid (numba).

Each of the four models is linear in two of its parameters once the others are fixed:

* 2CXM: ``C = A+ (ca conv e^{-K+ t}) + A- (ca conv e^{-K- t})`` (Sourbron & Buckley 2012),
  linear in the amplitudes (A+, A-) >= 0 for fixed rates K+ > K- >= 0; the bi-exponential
  maps one to one onto (Fp, PS, ve, vp): ``Fp = A+ + A-``, ``Kb = Fp/vp = E K+ + (1-E) K-``
  (E = A+/Fp), ``Ke = PS/ve = K+ K- / Kb``, ``PS = (K+ + K- - Ke - Kb) vp``.
* 2CUM: ``C = a1 (ca conv e^{-Kp t}) + a0 int ca``, linear in (a1, a0) >= 0 for a fixed
  Kp = (Fp + PS)/vp; ``Fp = a1 + a0``, ``PS = Fp a0/a1``.
* dual-input one compartment: ``C = Fa (ca conv e^{-k t}) + Fv (cv conv e^{-k t})``, linear in
  the arterial and portal flows (Fa, Fv) >= 0 for a fixed k = Fp/ve (Materne et al. 2000).
* dual-input extended Tofts: ``C = vp cin + Ktrans (cin conv e^{-kep t})`` with
  ``cin = fa ca + (1 - fa) cv``, linear in (vp, Ktrans) >= 0 for fixed (kep, fa).

A grid over the nonlinear parameters (rates log-spaced over the range the bounds allow,
fa in steps of 0.05), with the two linear ones solved exactly (non-negative least squares
in two variables) at every grid point, gives each voxel the global minimum of the grid: a
start in the right basin wherever the grid resolves it, and never NaN. The basis curves are
shared by all voxels, so a voxel costs its dot products with the basis plus a few flops per
grid point (Golub GH, Pereyra V. SIAM J Numer Anal 1973;10:413-32, doi:10.1137/0710036).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._convolve import _BLOCK, _FM, _blocks, conv_exp

__all__ = ["GRID_MODELS", "grid_start"]

#: model codes with a variable-projection grid start
GRID_MODELS = (3, 4, 5, 6)
# rate grid (1/min): 0 and 30 log-spaced rates from 0.002 to 20,000/min (ratio ~1.74 between
# neighbours), which covers the rates the default bounds allow with a measurable effect at
# frame intervals of 1-10 s; faster rates behave like the plasma term.
_RATES = np.concatenate([[0.0], np.geomspace(2e-3, 2e4, 30)])
_FA = np.linspace(0.0, 1.0, 21)


@njit(cache=True, error_model="numpy", fastmath=_FM)
def _nnls2(g11, g12, g22, d1, d2, yy):  # pragma: no cover - numba
    """min ||y - x1 b1 - x2 b2||^2 over x1, x2 >= 0 from the Gram entries and b.y; (x1, x2, sse)."""
    det = g11 * g22 - g12 * g12
    if g11 > 0.0 and g22 > 0.0 and det > 1e-10 * g11 * g22:
        x1 = (g22 * d1 - g12 * d2) / det
        x2 = (g11 * d2 - g12 * d1) / det
        if x1 >= 0.0 and x2 >= 0.0:
            return x1, x2, yy - x1 * d1 - x2 * d2
    b1 = 0.0
    b2 = 0.0
    best = yy
    if g11 > 0.0 and d1 > 0.0:
        x = d1 / g11
        s = yy - x * d1
        if s < best:
            best, b1, b2 = s, x, 0.0
    if g22 > 0.0 and d2 > 0.0:
        x = d2 / g22
        s = yy - x * d2
        if s < best:
            best, b1, b2 = s, 0.0, x
    return b1, b2, best


@njit(cache=True, nogil=True, error_model="numpy", fastmath=_FM)
def _grid_impl(code, Y, ua, uv, ks, Fa, Fv, G, fas, P0, SSE0, P1, SSE1, second):  # pragma: no cover - numba
    """Best grid point of every voxel (rows of Y), converted to the model's parameters."""
    n, T = Y.shape
    K = ks.shape[0]
    nb = (n + _BLOCK - 1) // _BLOCK
    for blk in range(nb):
        da = np.empty(K)
        dv = np.empty(K)
        for i in range(blk * _BLOCK, min(n, (blk + 1) * _BLOCK)):
            yy = 0.0
            ya = 0.0
            yv = 0.0
            for t in range(T):
                yy += Y[i, t] * Y[i, t]
                ya += Y[i, t] * ua[t]
                yv += Y[i, t] * uv[t]
            for j in range(K):
                s = 0.0
                for t in range(T):
                    s += Y[i, t] * Fa[j, t]
                da[j] = s
                if code == 5 or code == 6:
                    s = 0.0
                    for t in range(T):
                        s += Y[i, t] * Fv[j, t]
                    dv[j] = s
            best = np.inf
            q0 = np.nan
            q1 = np.nan
            q2 = np.nan
            q3 = np.nan
            if code == 3:  # 2CXM: pairs of rates K+ = ks[j] > K- = ks[m]
                for j in range(1, K):
                    for m in range(j):
                        x1, x2, s = _nnls2(G[j, j, 0, 0], G[j, m, 0, 0], G[m, m, 0, 0], da[j], da[m], yy)
                        if s < best:
                            best, q0, q1, q2, q3 = s, x1, x2, ks[j], ks[m]
            elif code == 4:  # 2CUM: rate Kp = ks[j] and the integral (rate 0)
                for j in range(1, K):
                    x1, x2, s = _nnls2(G[j, j, 0, 0], G[j, 0, 0, 0], G[0, 0, 0, 0], da[j], da[0], yy)
                    if s < best:
                        best, q0, q1, q2 = s, x1, x2, ks[j]
            elif code == 5:  # dual-input 1C: arterial and portal flows at rate k = ks[j]
                for j in range(1, K):
                    x1, x2, s = _nnls2(G[j, 0, 2, 2], G[j, 0, 2, 3], G[j, 0, 3, 3], da[j], dv[j], yy)
                    if s < best:
                        best, q0, q1, q2 = s, x1, x2, ks[j]
            else:  # dual-input ETM: (kep, fa) grid, (vp, Ktrans) linear
                mb = -100
                best2 = np.inf
                r0 = np.nan
                r1 = np.nan
                r2 = np.nan
                r3 = np.nan
                for sweep in range(2 if second else 1):
                    for j in range(K):
                        for m in range(fas.shape[0]):
                            if sweep == 1 and abs(m - mb) < 4:
                                continue  # second start: fa at least 0.2 from the best one's
                            a = fas[m]
                            b = 1.0 - a
                            g11 = a * a * G[j, 0, 0, 0] + 2.0 * a * b * G[j, 0, 0, 1] + b * b * G[j, 0, 1, 1]
                            g22 = a * a * G[j, 0, 2, 2] + 2.0 * a * b * G[j, 0, 2, 3] + b * b * G[j, 0, 3, 3]
                            g12 = (a * a * G[j, 0, 0, 2] + a * b * (G[j, 0, 0, 3] + G[j, 0, 1, 2])
                                   + b * b * G[j, 0, 1, 3])
                            x1, x2, s = _nnls2(g11, g12, g22, a * ya + b * yv, a * da[j] + b * dv[j], yy)
                            if sweep == 0 and s < best:
                                best, q0, q1, q2, q3 = s, x1, x2, ks[j], a
                                mb = m
                            elif sweep == 1 and s < best2:
                                best2, r0, r1, r2, r3 = s, x1, x2, ks[j], a
                if second:  # the other basin's start, for a second fit where it may win
                    SSE1[i] = best2
                    P1[i, 0], P1[i, 1], P1[i, 2], P1[i, 3] = r1, (r1 / r2 if r2 > 0.0 else np.inf), r0, r3
            SSE0[i] = best
            if code == 3:
                ap, am, kpl, kmi = q0, q1, q2, q3
                fp = ap + am
                if not fp > 0.0:
                    P0[i, 0], P0[i, 1], P0[i, 2], P0[i, 3] = 0.0, np.nan, np.nan, np.nan
                    continue
                e = ap / fp
                kb = e * kpl + (1.0 - e) * kmi
                vp = fp / kb if kb > 0.0 else np.inf
                ke = kpl * kmi / kb if kb > 0.0 else 0.0
                ps = (kpl + kmi - ke - kb) * vp if kb > 0.0 else 0.0
                if ps < 0.0:
                    ps = 0.0
                ve = ps / ke if ke > 0.0 else np.inf
                P0[i, 0], P0[i, 1], P0[i, 2], P0[i, 3] = fp, ps, ve, vp
            elif code == 4:
                a1, a0, kp = q0, q1, q2
                fp = a1 + a0
                ps = fp * a0 / a1 if a1 > 0.0 else np.inf
                P0[i, 0], P0[i, 1], P0[i, 2] = fp, ps, (fp + ps) / kp
            elif code == 5:
                fa_, fv_, k = q0, q1, q2
                fp = fa_ + fv_
                P0[i, 0], P0[i, 1], P0[i, 2] = fp, (fa_ / fp if fp > 0.0 else 0.5), fp / k
            else:
                vp, kt, kep, a = q0, q1, q2, q3
                P0[i, 0], P0[i, 1], P0[i, 2], P0[i, 3] = kt, (kt / kep if kep > 0.0 else np.inf), vp, a


def grid_start(code: int, h: np.ndarray, uniform: bool, ua: np.ndarray, uv: np.ndarray, Y: np.ndarray,
               lo: np.ndarray, hi: np.ndarray, *, second: bool = False) -> tuple[np.ndarray, ...]:
    """Grid start (kernel units, clipped to [lo, hi]) and the grid's SSE for every row of Y.

    ``ua``, ``uv``: (T,) inputs shared by all rows (mM); ``h`` frame intervals (min).
    Unbounded conversions (ve of a K- = 0 pair, ...) are clipped to the bound. ``second``
    (dual-input ETM): also the best grid point with fa at least 0.2 from the best one's (a
    start in another basin) and its grid SSE: returns (P0, SSE0, P1, SSE1).
    """
    T = ua.shape[0]
    ks = _RATES
    K = ks.size
    Fa = np.empty((K, T))
    Fv = np.empty((K, T))
    d = np.empty(T)
    for j, k in enumerate(ks):
        conv_exp(ua, h, uniform, float(k), Fa[j], d, False)
        conv_exp(uv, h, uniform, float(k), Fv[j], d, False)
    if code in (3, 4):
        G = (Fa @ Fa.T)[:, :, None, None].copy()
    else:
        G = np.empty((K, 1, 4, 4))
        for j in range(K):
            B = np.stack([ua, uv, Fa[j], Fv[j]])
            G[j, 0] = B @ B.T
    n = Y.shape[0]
    p = lo.size
    second = bool(second and code == 6)
    P0 = np.empty((n, p))
    SSE0 = np.empty(n)
    P1 = np.empty((n, p) if second else (1, p))
    SSE1 = np.empty(n if second else 1)
    ua = np.ascontiguousarray(ua)
    uv = np.ascontiguousarray(uv)
    _blocks(n, lambda a, b: _grid_impl(code, Y[a:b], ua, uv, ks, Fa, Fv, G, _FA, P0[a:b], SSE0[a:b],
                                       P1[a:b] if second else P1, SSE1[a:b] if second else SSE1, second))
    with np.errstate(invalid="ignore"):
        P0 = np.ascontiguousarray(np.clip(P0, lo, hi))
        if not second:
            return P0, SSE0
        return P0, SSE0, np.ascontiguousarray(np.clip(P1, lo, hi)), SSE1
