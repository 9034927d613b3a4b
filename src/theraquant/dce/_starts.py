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

2CXM and dual-input ETM have near-equal minima in different basins, so they get two starts, each
refined by a few Levenberg-Marquardt steps on the two nonlinear parameters of the same
variable-projection problem (exact Golub-Pereyra Jacobian of the projected model): the grid's best
point and one in another basin. Dual-input ETM: the best grid point with fa at least 0.2 away.
2CXM: two neighbouring grid rates mix into any single exponential between them, so the coarse grid
prefers a near-single exponential (PS -> 0, or its flow-limited twin) to the main exponential
plus a small one at an off-grid main rate; the second start is the refined start's main
exponential (its rate free to first order: its derivative is a third column) paired with the
best grid rate on the other side of it, which finds that bi-exponential.
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
# 2CXM: rates at least this many grid steps apart (x1.74 each) make a true bi-exponential start
_FAR = 3
_STEP = float(np.log(_RATES[2] / _RATES[1]))  # log of the grid's rate ratio
# variable-projection Levenberg-Marquardt steps refining each grid start (codes 3, 6)
_REFINE = {3: 4, 6: 8}


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


@njit(cache=True, error_model="numpy", fastmath=_FM)
def _gram2(u, v, y):  # pragma: no cover - numba
    """Gram entries of two curves and their products with y: (u.u, u.v, v.v, u.y, v.y)."""
    uu = 0.0
    uv = 0.0
    vv = 0.0
    uy = 0.0
    vy = 0.0
    for i in range(y.shape[0]):
        uu += u[i] * u[i]
        uv += u[i] * v[i]
        vv += v[i] * v[i]
        uy += u[i] * y[i]
        vy += v[i] * y[i]
    return uu, uv, vv, uy, vy


@njit(cache=True, error_model="numpy", fastmath=_FM)
def _ls3(g11, g12, g13, g22, g23, g33, b1, b2, b3, yy):  # pragma: no cover - numba
    """Unconstrained least squares in three columns from the Gram entries and b = B y:
    (sse, x1, x2, x3); sse = inf where the system is singular."""
    c11 = g22 * g33 - g23 * g23
    c12 = g13 * g23 - g12 * g33
    c13 = g12 * g23 - g13 * g22
    det = g11 * c11 + g12 * c12 + g13 * c13
    if not det > 1e-12 * g11 * g22 * g33:
        return np.inf, 0.0, 0.0, 0.0
    c22 = g11 * g33 - g13 * g13
    c23 = g12 * g13 - g11 * g23
    c33 = g11 * g22 - g12 * g12
    x1 = (c11 * b1 + c12 * b2 + c13 * b3) / det
    x2 = (c12 * b1 + c22 * b2 + c23 * b3) / det
    x3 = (c13 * b1 + c23 * b2 + c33 * b3) / det
    return yy - x1 * b1 - x2 * b2 - x3 * b3, x1, x2, x3


@njit(cache=True, error_model="numpy", fastmath=_FM)
def _vp_point(code, th0, th1, y, ua, uv, h, uniform, B, W, r, J):  # pragma: no cover - numba
    """Variable projection at the nonlinear parameters (th0, th1) of model 3 or 6.

    The two basis curves B (2, T) and their rate derivatives (W) are built, the two linear
    coefficients solved (non-negative), the residual r = y - B^T c formed and the Jacobian J
    (2, T) of the projected model with respect to (th0, th1) (Golub & Pereyra 1973, with the
    coefficients at zero left out of the projection). 2CXM: th = (K1, K2), the two rates
    (1/min); dual-input ETM: th = (kep, fa). Returns (sse, c1, c2, |B1|^2, |B2|^2).
    """
    T = y.shape[0]
    if code == 3:
        conv_exp(ua, h, uniform, th0, B[0], W[0], True)
        conv_exp(ua, h, uniform, th1, B[1], W[1], True)
    else:
        conv_exp(ua, h, uniform, th0, W[0], W[1], True)
        conv_exp(uv, h, uniform, th0, W[2], W[3], True)
        a = th1
        b = 1.0 - a
        for i in range(T):
            B[0, i] = a * ua[i] + b * uv[i]
            B[1, i] = a * W[0, i] + b * W[2, i]
    g11, g12, g22, d1, d2 = _gram2(B[0], B[1], y)
    c1, c2, _ = _nnls2(g11, g12, g22, d1, d2, 0.0)  # (only the coefficients: |y|^2 cancels)
    sse = 0.0
    for i in range(T):
        r[i] = y[i] - c1 * B[0, i] - c2 * B[1, i]
        sse += r[i] * r[i]
    free1 = c1 > 0.0
    free2 = c2 > 0.0
    det = g11 * g22 - g12 * g12
    for m in range(2):
        # v = (dB/dth_m) c and w = (dB/dth_m)^T r, per basis curve
        V = J[m]
        w1 = 0.0
        w2 = 0.0
        for i in range(T):
            if code == 3:
                if m == 0:
                    V[i] = c1 * W[0, i]
                    w1 += W[0, i] * r[i]
                else:
                    V[i] = c2 * W[1, i]
                    w2 += W[1, i] * r[i]
            elif m == 0:  # kep
                dg = th1 * W[1, i] + (1.0 - th1) * W[3, i]
                V[i] = c2 * dg
                w2 += dg * r[i]
            else:  # fa
                e0 = ua[i] - uv[i]
                e1 = W[0, i] - W[2, i]
                V[i] = c1 * e0 + c2 * e1
                w1 += e0 * r[i]
                w2 += e1 * r[i]
        z1 = -w1
        z2 = -w2
        for i in range(T):
            z1 += B[0, i] * V[i]
            z2 += B[1, i] * V[i]
        s1 = 0.0
        s2 = 0.0
        if free1 and free2 and det > 0.0:
            s1 = (g22 * z1 - g12 * z2) / det
            s2 = (g11 * z2 - g12 * z1) / det
        elif free1 and g11 > 0.0:
            s1 = z1 / g11
        elif free2 and g22 > 0.0:
            s2 = z2 / g22
        for i in range(T):
            V[i] -= s1 * B[0, i] + s2 * B[1, i]
    return sse, c1, c2, g11, g22


@njit(cache=True, error_model="numpy", fastmath=_FM)
def _vp_refine(code, th, lo, hi, y, ua, uv, h, uniform, B, W, r, J, n_iter):  # pragma: no cover - numba
    """Up to ``n_iter`` bounded Levenberg-Marquardt steps on the two nonlinear parameters ``th``
    (updated in place) of the variable-projection problem; returns (sse, c1, c2, |B1|^2,
    |B2|^2) at the final ``th``.

    A parameter on a bound whose gradient points outwards is held there (as in the full fit).
    One evaluation site (each call site of ``_vp_point`` is another inlined copy to compile):
    every pass evaluates either the start or a trial step, then decides.
    """
    x0 = th[0]
    x1 = th[1]
    sse = np.inf
    c1 = 0.0
    c2 = 0.0
    g1 = 0.0
    g2 = 0.0
    lam = 1e-3
    first = True
    it = 0
    ntry = 0
    a11 = 0.0
    a12 = 0.0
    a22 = 0.0
    q0 = 0.0
    q1 = 0.0
    h0 = False
    h1 = False
    while True:
        s_n, cn1, cn2, gn1, gn2 = _vp_point(code, x0, x1, y, ua, uv, h, uniform, B, W, r, J)
        if first or s_n < sse:
            done = (not first) and s_n > sse * (1.0 - 1e-10)
            if not first:
                lam = max(lam * 0.1, 1e-9)
            first = False
            th[0] = x0
            th[1] = x1
            sse, c1, c2, g1, g2 = s_n, cn1, cn2, gn1, gn2
            if done or it >= n_iter:
                break
            it += 1
            ntry = 0
            # normal equations at th (the work buffers hold th)
            a11, a12, a22, q0, q1 = _gram2(J[0], J[1], r)
            h0 = (th[0] <= lo[0] and q0 < 0.0) or (th[0] >= hi[0] and q0 > 0.0) or not a11 > 0.0
            h1 = (th[1] <= lo[1] and q1 < 0.0) or (th[1] >= hi[1] and q1 > 0.0) or not a22 > 0.0
            if h0 and h1:
                break
        else:
            lam *= 10.0
            ntry += 1
            if ntry >= 8:
                break
        # the next trial step (damped, projected on the box)
        m11 = a11 * (1.0 + lam)
        m22 = a22 * (1.0 + lam)
        if h0:
            d0 = 0.0
            d1 = q1 / m22
        elif h1:
            d0 = q0 / m11
            d1 = 0.0
        else:
            det = m11 * m22 - a12 * a12
            if not det > 0.0:
                break
            d0 = (m22 * q0 - a12 * q1) / det
            d1 = (m11 * q1 - a12 * q0) / det
        x0 = min(max(th[0] + d0, lo[0]), hi[0])
        x1 = min(max(th[1] + d1, lo[1]), hi[1])
        if x0 == th[0] and x1 == th[1]:
            break
    return sse, c1, c2, g1, g2


@njit(cache=True, error_model="numpy", fastmath=_FM)
def _to_params(code, q0, q1, q2, q3, out):  # pragma: no cover - numba
    """Model parameters (kernel units) from the linear coefficients (q0, q1) and the nonlinear
    parameters (q2, q3) of a grid point or a refined start."""
    if code == 3:  # (A1, A2, K1, K2): order the rates, then the bi-exponential's map
        if q3 > q2:
            q0, q1, q2, q3 = q1, q0, q3, q2
        ap, am, kpl, kmi = q0, q1, q2, q3
        fp = ap + am
        if not fp > 0.0:
            out[0], out[1], out[2], out[3] = 0.0, np.nan, np.nan, np.nan
            return
        e = ap / fp
        kb = e * kpl + (1.0 - e) * kmi
        vp = fp / kb if kb > 0.0 else np.inf
        ke = kpl * kmi / kb if kb > 0.0 else 0.0
        ps = (kpl + kmi - ke - kb) * vp if kb > 0.0 else 0.0
        if ps < 0.0:
            ps = 0.0
        ve = ps / ke if ke > 0.0 else np.inf
        out[0], out[1], out[2], out[3] = fp, ps, ve, vp
    elif code == 4:
        a1, a0, kp = q0, q1, q2
        fp = a1 + a0
        ps = fp * a0 / a1 if a1 > 0.0 else np.inf
        out[0], out[1], out[2] = fp, ps, (fp + ps) / kp
    elif code == 5:
        fa_, fv_, k = q0, q1, q2
        fp = fa_ + fv_
        out[0], out[1], out[2] = fp, (fa_ / fp if fp > 0.0 else 0.5), fp / k
    else:
        vp, kt, kep, a = q0, q1, q2, q3
        out[0], out[1], out[2], out[3] = kt, (kt / kep if kep > 0.0 else np.inf), vp, a


@njit(cache=True, nogil=True, error_model="numpy", fastmath=_FM)
def _grid_impl(code, Y, ua, uv, h, uniform, ks, Fa, Fv, G, fas, n_iter, P0, SSE0, P1, SSE1):  # pragma: no cover - numba
    """Best grid point of every voxel (rows of Y), converted to the model's parameters.

    2CXM and dual-input ETM (codes 3, 6): the best grid point and a start in another basin
    (module docstring), each refined by ``n_iter`` variable-projection Levenberg-Marquardt steps;
    P0/SSE0 holds the lower of the two refined residuals, P1/SSE1 the other (NaN / inf where no
    second start exists). Codes 4, 5: the best grid point (SSE1 = inf).
    """
    n, T = Y.shape
    K = ks.shape[0]
    nf = fas.shape[0]
    nb = (n + _BLOCK - 1) // _BLOCK
    kmax = ks[K - 1]
    for blk in range(nb):
        da = np.empty(K)
        dv = np.empty(K)
        S = np.empty((K, max(K, nf)))
        B = np.empty((2, T))
        W = np.empty((4, T))
        r = np.empty(T)
        J = np.empty((2, T))
        y = np.empty(T)
        th = np.empty(2)
        lo2 = np.zeros(2)
        hi2 = np.empty(2)
        hi2[0] = kmax
        hi2[1] = kmax if code == 3 else 1.0
        for i in range(blk * _BLOCK, min(n, (blk + 1) * _BLOCK)):
            yy = 0.0
            ya = 0.0
            yv = 0.0
            for t in range(T):
                y[t] = Y[i, t]
                yy += y[t] * y[t]
                ya += y[t] * ua[t]
                yv += y[t] * uv[t]
            for j in range(K):
                s = 0.0
                for t in range(T):
                    s += y[t] * Fa[j, t]
                da[j] = s
                if code == 5 or code == 6:
                    s = 0.0
                    for t in range(T):
                        s += y[t] * Fv[j, t]
                    dv[j] = s
            best = np.inf
            q0 = np.nan
            q1 = np.nan
            q2 = np.nan
            q3 = np.nan
            jb = 0
            mb = 0
            if code == 3:  # 2CXM: pairs of rates K+ = ks[j] > K- = ks[m]
                for j in range(1, K):
                    for m in range(j):
                        x1, x2, s = _nnls2(G[j, j, 0, 0], G[j, m, 0, 0], G[m, m, 0, 0], da[j], da[m], yy)
                        S[j, m] = s
                        if s < best:
                            best, jb, mb = s, j, m
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
                for j in range(K):
                    for m in range(nf):
                        a = fas[m]
                        b = 1.0 - a
                        g11 = a * a * G[j, 0, 0, 0] + 2.0 * a * b * G[j, 0, 0, 1] + b * b * G[j, 0, 1, 1]
                        g22 = a * a * G[j, 0, 2, 2] + 2.0 * a * b * G[j, 0, 2, 3] + b * b * G[j, 0, 3, 3]
                        g12 = (a * a * G[j, 0, 0, 2] + a * b * (G[j, 0, 0, 3] + G[j, 0, 1, 2])
                               + b * b * G[j, 0, 1, 3])
                        x1, x2, s = _nnls2(g11, g12, g22, a * ya + b * yv, a * da[j] + b * dv[j], yy)
                        S[j, m] = s
                        if s < best:
                            best, jb, mb = s, j, m
            if code == 4 or code == 5:
                SSE0[i] = best
                SSE1[i] = np.inf
                _to_params(code, q0, q1, q2, q3, P0[i])
                for k in range(P1.shape[1]):
                    P1[i, k] = np.nan
                continue
            # two starts, each refined (one call site: every call of _vp_refine is another
            # inlined copy to compile): c = 0 the best grid point, c = 1 one in another basin
            th[0] = ks[jb]
            th[1] = ks[mb] if code == 3 else fas[mb]
            SSE1[i] = np.inf
            for k in range(P1.shape[1]):
                P1[i, k] = np.nan
            for c in range(2):
                s, c1, c2, g1, g2 = _vp_refine(code, th, lo2, hi2, y, ua, uv, h, uniform, B, W, r, J, n_iter)
                if c == 0:
                    SSE0[i] = s
                    _to_params(code, c1, c2, th[0], th[1], P0[i])
                else:
                    if s < SSE0[i]:  # P0 holds the better start
                        for k in range(P0.shape[1]):
                            P1[i, k] = P0[i, k]
                        SSE1[i] = SSE0[i]
                        SSE0[i] = s
                        _to_params(code, c1, c2, th[0], th[1], P0[i])
                    else:
                        SSE1[i] = s
                        _to_params(code, c1, c2, th[0], th[1], P1[i])
                    break
                if n_iter == 0:  # no refinement asked for: the grid's best point alone
                    break
                best2 = np.inf
                j2 = -1
                x2 = np.nan
                if code == 3:
                    # The refined start's main exponential (the larger share of the curve,
                    # c_j |B_j|; two rates closer than _FAR steps are one exponential at their
                    # share-weighted mean rate), paired with every grid rate at least _FAR steps
                    # away on the side its minor exponential is not on: a second exponential the
                    # coarse grid could not show (two neighbouring grid rates mix into any single
                    # exponential between them, which the grid then prefers to the main
                    # exponential plus a minor one at an off-grid main rate). The main
                    # exponential's derivative by its rate is a third column, so that its rate
                    # moves to first order (x2 / x1 is the shift).
                    w1 = c1 * np.sqrt(g1)
                    w2 = c2 * np.sqrt(g2)
                    big = 0 if w1 >= w2 else 1
                    close = abs(np.log((th[0] + 1e-3) / (th[1] + 1e-3))) < _FAR * _STEP
                    t0 = th[0]
                    t1 = th[1]
                    # two rates far apart: the minor exponential as the main one too (its
                    # partner on the other side), and the better of the two scans
                    for pick in range(1 if close or not min(w1, w2) > 0.0 else 2):
                        me = big if pick == 0 else 1 - big
                        kr = t0 if me == 0 else t1
                        km = t1 if me == 0 else t0
                        side = 0.0
                        if w1 + w2 > 0.0 and close:
                            kr = (w1 * t0 + w2 * t1) / (w1 + w2)
                        elif (w2 if me == 0 else w1) > 0.0:
                            side = 1.0 if km > kr else -1.0
                        conv_exp(ua, h, uniform, kr, W[0], W[1], True)
                        gff, gfd, gdd, df, dd = _gram2(W[0], W[1], y)
                        for j in range(K):
                            lr = np.log((ks[j] + 1e-3) / (kr + 1e-3))
                            if abs(lr) < _FAR * _STEP or lr * side > 0.0:
                                continue
                            gjf = 0.0
                            gjd = 0.0
                            for t in range(T):
                                gjf += Fa[j, t] * W[0, t]
                                gjd += Fa[j, t] * W[1, t]
                            s, u1, u2, u3 = _ls3(gff, gfd, gjf, gdd, gjd, G[j, j, 0, 0], df, dd, da[j], yy)
                            if u1 > 0.0 and u3 > 0.0 and s < best2:
                                best2, j2 = s, j
                                x2 = min(max(kr + u2 / u1, 0.5 * kr), 2.0 * kr + 1e-3)
                    if j2 >= 0:
                        th[0] = ks[j2]
                        th[1] = x2
                else:
                    for j in range(K):
                        for m in range(nf):
                            if abs(m - mb) >= 4 and S[j, m] < best2:  # fa at least 0.2 away
                                best2, j2 = S[j, m], j
                                x2 = fas[m]
                    if j2 >= 0:
                        th[0] = ks[j2]
                        th[1] = x2
                if j2 < 0:
                    break


def grid_start(code: int, h: np.ndarray, uniform: bool, ua: np.ndarray, uv: np.ndarray, Y: np.ndarray,
               lo: np.ndarray, hi: np.ndarray, *, refine: bool = True
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Grid starts (kernel units, clipped to [lo, hi]) and their SSEs for every row of Y.

    ``ua``, ``uv``: (T,) inputs shared by all rows (mM); ``h`` frame intervals (min).
    Returns (P0, SSE0, P1, SSE1). 2CXM and dual-input ETM: two starts from different basins,
    each refined by variable projection, P0 the one with the lower SSE; the SSEs are those of
    the refined starts before clipping (so ``min(SSE0, SSE1)`` is what the model reaches
    without the bounds, where the refinement found that basin's minimum). 2CUM and dual-input
    1C: the best grid point (P1 NaN, SSE1 inf). Unbounded conversions (ve of a K- = 0 pair,
    ...) are clipped to the bound. ``refine`` False: the grid's best point alone for every
    model (its SSE at the point the two linear parameters solve; the delay search's grid).
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
    P0 = np.empty((n, p))
    SSE0 = np.empty(n)
    P1 = np.empty((n, p))
    SSE1 = np.empty(n)
    ua = np.ascontiguousarray(ua)
    uv = np.ascontiguousarray(uv)
    n_iter = _REFINE.get(code, 0) if refine else 0
    _blocks(n, lambda a, b: _grid_impl(code, Y[a:b], ua, uv, h, uniform, ks, Fa, Fv, G, _FA, n_iter, P0[a:b],
                                       SSE0[a:b], P1[a:b], SSE1[a:b]))
    with np.errstate(invalid="ignore"):
        return (np.ascontiguousarray(np.clip(P0, lo, hi)), SSE0, np.ascontiguousarray(np.clip(P1, lo, hi)), SSE1)
