"""Exact convolution of a piecewise-linear input with exponentials (numba kernels).

The tissue models of :mod:`theraquant.dce` are all sums of terms ``A * (u conv e^{-k t})``
(plus a plasma term ``v * u``). With the input ``u`` linear between frames, the convolution
``F(t_i) = int_{t_0}^{t_i} u(s) e^{-k (t_i - s)} ds`` obeys the exact recursion

    F_i = E_i F_{i-1} + h_i [phi_B(x_i) u_{i-1} + phi_A(x_i) u_i],
    h_i = t_i - t_{i-1},  x_i = k h_i,  E_i = e^{-x_i},
    phi_A(x) = (1 - E)/x - phi_B(x),  phi_B(x) = (1 - (1 + x) E) / x^2,

valid for any (non-uniform) frame spacing; ``k = 0`` gives the trapezoid integral. The
derivative ``dF/dk`` (for analytic Jacobians) follows by differentiating the recursion.
Near ``x = 0`` the phi functions are evaluated from their Taylor series.

References
----------
.. [1] Flouri D, Lesnic D, Sourbron SP. Fitting the two-compartment model in DCE-MRI by
   linear inversion. Magn Reson Med 2016;76:998-1006. doi:10.1002/mrm.25991
.. [2] Sourbron SP, Buckley DL. Tracer kinetic modelling in MRI: estimating perfusion and
   capillary permeability. Phys Med Biol 2012;57:R1-33. doi:10.1088/0031-9155/57/2/R1

All kernels work in minutes (time) and 1/min (rates); :mod:`._fit` converts.
Model codes (order of the free parameters in ``th``, internal units):

0 tofts (Ktrans, ve) | 1 etofts (Ktrans, ve, vp) | 2 patlak (Ktrans, vp) |
3 2cxm (Fp, PS, ve, vp) | 4 2cum (Fp, PS, vp) | 5 dual_input_1c (Fp, fa, ve) |
6 dual_input_etofts (Ktrans, ve, vp, fa); Fp and PS in mL/mL/min (= 1/min).
"""

from __future__ import annotations

import os
from collections import namedtuple
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from numba import njit

__all__ = ["ModelInputs", "conv_exp", "forward_kernel", "linear_kernel", "lm_kernel", "row_stats"]

_SERIES_X = 0.05  # below this x = k h the phi functions come from their Taylor series
_BLOCK = 128  # voxels per work block (buffers are allocated once per block)
_FM = {"contract", "reassoc", "arcp"}  # fastmath without nnan/ninf: NaN checks stay valid


@njit(cache=True, error_model="numpy", fastmath=_FM)
def _phi(x):  # pragma: no cover - numba
    """E, phi_A, phi_B and their x-derivatives for x = k h >= 0."""
    if x < _SERIES_X:
        x2 = x * x
        x3 = x2 * x
        x4 = x3 * x
        x5 = x4 * x
        e = np.exp(-x)
        pa = 0.5 - x / 6.0 + x2 / 24.0 - x3 / 120.0 + x4 / 720.0 - x5 / 5040.0
        pb = 0.5 - x / 3.0 + x2 / 8.0 - x3 / 30.0 + x4 / 144.0 - x5 / 840.0
        dpa = -1.0 / 6.0 + x / 12.0 - x2 / 40.0 + x3 / 180.0 - x4 / 1008.0
        dpb = -1.0 / 3.0 + x / 4.0 - x2 / 10.0 + x3 / 36.0 - x4 / 168.0
        return e, pa, pb, dpa, dpb
    e = np.exp(-x)
    x2 = x * x
    pb = (1.0 - e * (1.0 + x)) / x2
    pa = (1.0 - e) / x - pb
    dpb = (x2 * e - 2.0 + 2.0 * e + 2.0 * x * e) / (x2 * x)
    dpa = (x * e - 1.0 + e) / x2 - dpb
    return e, pa, pb, dpa, dpb


@njit(cache=True, error_model="numpy", fastmath=_FM)
def conv_exp(u, h, uniform, k, F, dF, want_d):  # pragma: no cover - numba
    """F = u conv e^{-k t} on the frame grid (exact for piecewise-linear u); dF = dF/dk.

    ``u`` (T,) input, ``h`` (T-1,) frame intervals (min), ``k`` rate (1/min, >= 0).
    """
    n = u.shape[0]
    F[0] = 0.0
    if want_d:
        dF[0] = 0.0
    e, pa, pb, dpa, dpb = _phi(k * h[0])
    for i in range(1, n):
        hi = h[i - 1]
        if not uniform:
            e, pa, pb, dpa, dpb = _phi(k * hi)
        if want_d:
            dF[i] = e * dF[i - 1] - hi * e * F[i - 1] + hi * hi * (dpb * u[i - 1] + dpa * u[i])
        F[i] = e * F[i - 1] + hi * (pb * u[i - 1] + pa * u[i])


@njit(cache=True, error_model="numpy", fastmath=_FM)
def _two_cx(th, g):  # pragma: no cover - numba
    """2CXM bi-exponential: amplitudes/rates and their derivatives w.r.t. (Fp, PS, ve, vp).

    g[0..3] = (A+, A-, K+, K-); g[4 + 4*j + m] = d g[j] / d th[m].
    """
    fp, ps, ve, vp = th[0], th[1], th[2], th[3]
    kb = fp / vp
    ke = ps / ve
    kp = (fp + ps) / vp
    s = kp + ke
    q = ke * kb
    disc = s * s - 4.0 * q
    if disc < 1e-300:
        disc = 1e-300
    d = np.sqrt(disc)
    kplus = 0.5 * (s + d)
    kminus = 0.5 * (s - d)
    if kminus < 0.0:
        kminus = 0.0
    aplus = fp * (kb - kminus) / d
    g[0] = aplus
    g[1] = fp - aplus
    g[2] = kplus
    g[3] = kminus
    # derivatives w.r.t. (fp, ps, ve, vp)
    dkb = (1.0 / vp, 0.0, 0.0, -fp / (vp * vp))
    dke = (0.0, 1.0 / ve, -ps / (ve * ve), 0.0)
    dkp = (1.0 / vp, 1.0 / vp, 0.0, -(fp + ps) / (vp * vp))
    dfp = (1.0, 0.0, 0.0, 0.0)
    for m in range(4):
        ds = dkp[m] + dke[m]
        dq = dke[m] * kb + ke * dkb[m]
        dd = (s * ds - 2.0 * dq) / d
        dkplus = 0.5 * (ds + dd)
        dkminus = 0.5 * (ds - dd)
        dap = dfp[m] * (kb - kminus) / d + fp * (dkb[m] - dkminus) / d - fp * (kb - kminus) * dd / (d * d)
        g[4 + m] = dap
        g[8 + m] = dfp[m] - dap
        g[12 + m] = dkplus
        g[16 + m] = dkminus


@njit(cache=True, error_model="numpy", fastmath=_FM)
def _model(code, th, ua, uv, h, uniform, f, J, want_jac, w, g):  # pragma: no cover - numba
    """Evaluate model ``code`` at parameters ``th``: f (T,), J (p, T) (transposed) if want_jac.

    w is a (6, T) work array, g a (20,) work array.
    """
    T = ua.shape[0]
    Fa = w[0]
    dFa = w[1]
    Fv = w[2]
    dFv = w[3]
    if code == 0 or code == 1:  # Tofts / extended Tofts
        kt = th[0]
        ve = th[1]
        vp = th[2] if code == 1 else 0.0
        k = kt / ve
        conv_exp(ua, h, uniform, k, Fa, dFa, want_jac)
        for i in range(T):
            f[i] = vp * ua[i] + kt * Fa[i]
        if want_jac:
            for i in range(T):
                J[0, i] = Fa[i] + kt * dFa[i] / ve
                J[1, i] = -kt * dFa[i] * kt / (ve * ve)
                if code == 1:
                    J[2, i] = ua[i]
    elif code == 2:  # Patlak
        kt = th[0]
        vp = th[1]
        conv_exp(ua, h, uniform, 0.0, Fa, dFa, False)
        for i in range(T):
            f[i] = vp * ua[i] + kt * Fa[i]
            if want_jac:
                J[0, i] = Fa[i]
                J[1, i] = ua[i]
    elif code == 3:  # 2CXM
        _two_cx(th, g)
        conv_exp(ua, h, uniform, g[2], Fa, dFa, want_jac)
        conv_exp(ua, h, uniform, g[3], Fv, dFv, want_jac)
        for i in range(T):
            f[i] = g[0] * Fa[i] + g[1] * Fv[i]
        if want_jac:
            for i in range(T):
                for m in range(4):
                    J[m, i] = (g[4 + m] * Fa[i] + g[0] * dFa[i] * g[12 + m]
                               + g[8 + m] * Fv[i] + g[1] * dFv[i] * g[16 + m])
    elif code == 4:  # 2CUM: Fp [(1-E) e^{-Kp t} + E], E = PS/(Fp+PS), Kp = (Fp+PS)/vp
        fp = th[0]
        ps = th[1]
        vp = th[2]
        s = fp + ps
        if s < 1e-300:
            s = 1e-300
        kp = s / vp
        a1 = fp * fp / s
        a0 = fp * ps / s
        conv_exp(ua, h, uniform, kp, Fa, dFa, want_jac)
        conv_exp(ua, h, uniform, 0.0, Fv, dFv, False)
        for i in range(T):
            f[i] = a1 * Fa[i] + a0 * Fv[i]
        if want_jac:
            da1_dfp = fp * (fp + 2.0 * ps) / (s * s)
            da1_dps = -fp * fp / (s * s)
            for i in range(T):
                J[0, i] = da1_dfp * Fa[i] + a1 * dFa[i] / vp + (1.0 - da1_dfp) * Fv[i]
                J[1, i] = da1_dps * Fa[i] + a1 * dFa[i] / vp - da1_dps * Fv[i]
                J[2, i] = -a1 * dFa[i] * s / (vp * vp)
    elif code == 5:  # dual-input one compartment: Fp [fa ca + (1-fa) cv] conv e^{-Fp/ve t}
        fp = th[0]
        fa = th[1]
        ve = th[2]
        k = fp / ve
        conv_exp(ua, h, uniform, k, Fa, dFa, want_jac)
        conv_exp(uv, h, uniform, k, Fv, dFv, want_jac)
        for i in range(T):
            gi = fa * Fa[i] + (1.0 - fa) * Fv[i]
            f[i] = fp * gi
            if want_jac:
                dg = fa * dFa[i] + (1.0 - fa) * dFv[i]
                J[0, i] = gi + fp * dg / ve
                J[1, i] = fp * (Fa[i] - Fv[i])
                J[2, i] = -fp * dg * fp / (ve * ve)
    else:  # 6: dual-input extended Tofts
        kt = th[0]
        ve = th[1]
        vp = th[2]
        fa = th[3]
        k = kt / ve
        conv_exp(ua, h, uniform, k, Fa, dFa, want_jac)
        conv_exp(uv, h, uniform, k, Fv, dFv, want_jac)
        for i in range(T):
            cin = fa * ua[i] + (1.0 - fa) * uv[i]
            gi = fa * Fa[i] + (1.0 - fa) * Fv[i]
            f[i] = vp * cin + kt * gi
            if want_jac:
                dg = fa * dFa[i] + (1.0 - fa) * dFv[i]
                J[0, i] = gi + kt * dg / ve
                J[1, i] = -kt * dg * kt / (ve * ve)
                J[2, i] = cin
                J[3, i] = vp * (ua[i] - uv[i]) + kt * (Fa[i] - Fv[i])


@njit(cache=True, nogil=True, error_model="numpy", fastmath=_FM)
def _forward_impl(code, h, uniform, ua, uv, P, out):  # pragma: no cover - numba
    """out[i] = model(P[i]) for every voxel i; ua/uv have 1 row (shared) or one per voxel."""
    n, T = out.shape
    nb = (n + _BLOCK - 1) // _BLOCK
    for b in range(nb):
        w = np.empty((6, T))
        g = np.empty(20)
        J = np.empty((P.shape[1], T))
        for i in range(b * _BLOCK, min(n, (b + 1) * _BLOCK)):
            ia = i if ua.shape[0] > 1 else 0
            iv = i if uv.shape[0] > 1 else 0
            _model(code, P[i], ua[ia], uv[iv], h, uniform, out[i], J, False, w, g)


@njit(cache=True, error_model="numpy", fastmath=_FM)
def _gram(A, v, q, G, b, with_rhs):  # pragma: no cover - numba
    """Normal equations of the rows of A (q x T): G = A A^T and, when with_rhs, b = A v."""
    T = A.shape[1]
    for a in range(q):
        if with_rhs:
            s = 0.0
            for i in range(T):
                s += A[a, i] * v[i]
            b[a] = s
        for c in range(a + 1):
            s = 0.0
            for i in range(T):
                s += A[a, i] * A[c, i]
            G[a, c] = s
            G[c, a] = s


@njit(cache=True, error_model="numpy", fastmath=_FM)
def _chol_solve(A, b, x, L, p):  # pragma: no cover - numba
    """Solve A x = b (p x p, symmetric positive definite) by Cholesky; False if not SPD."""
    for j in range(p):
        s = A[j, j]
        for m in range(j):
            s -= L[j, m] * L[j, m]
        if not s > 0.0:
            return False
        L[j, j] = np.sqrt(s)
        for i in range(j + 1, p):
            s = A[i, j]
            for m in range(j):
                s -= L[i, m] * L[j, m]
            L[i, j] = s / L[j, j]
    for i in range(p):
        s = b[i]
        for m in range(i):
            s -= L[i, m] * x[m]
        x[i] = s / L[i, i]
    for i in range(p - 1, -1, -1):
        s = x[i]
        for m in range(i + 1, p):
            s -= L[m, i] * x[m]
        x[i] = s / L[i, i]
    return True


@njit(cache=True, error_model="numpy", fastmath=_FM)
def _spline_shift(ts, c, d, out, dout):  # pragma: no cover - numba
    """out = S(t - d), dout = dS(t - d)/dd = -S'(t - d) for a cubic spline with coefficients c
    (4, T-1) on knots ts (scipy CubicSpline layout); constant outside [ts[0], ts[-1]]."""
    T = ts.shape[0]
    k = 0
    for i in range(T):
        x = ts[i] - d
        if x <= ts[0]:
            out[i] = c[3, 0]
            dout[i] = 0.0
            continue
        if x >= ts[T - 1]:
            dx = ts[T - 1] - ts[T - 2]
            out[i] = ((c[0, T - 2] * dx + c[1, T - 2]) * dx + c[2, T - 2]) * dx + c[3, T - 2]
            dout[i] = 0.0
            continue
        while k < T - 2 and x >= ts[k + 1]:
            k += 1
        dx = x - ts[k]
        out[i] = ((c[0, k] * dx + c[1, k]) * dx + c[2, k]) * dx + c[3, k]
        dout[i] = -((3.0 * c[0, k] * dx + 2.0 * c[1, k]) * dx + c[2, k])


#: What the model needs besides its parameters (one namedtuple instead of ten arguments):
#: ``code`` model code, ``h`` (T-1,) frame intervals (min), ``uniform`` equal intervals,
#: ``ua``/``uv`` (T,) arterial / portal inputs (mM), ``fit_delay`` the last parameter is a delay
#: (s) applied to cubic splines with coefficients ``ca_c``/``cv_c`` (4, T-1) on knots ``ts`` (s)
#: (``two``: a portal input exists).
ModelInputs = namedtuple("ModelInputs", ["code", "h", "uniform", "ua", "uv", "fit_delay", "ts", "ca_c",
                                         "cv_c", "two"])
#: Per-thread work buffers of the Levenberg-Marquardt fit (allocated once per block of voxels).
LmWork = namedtuple("LmWork", ["f", "fn", "J", "Jn", "r", "w", "g", "A", "JTJ", "grad", "dlt", "L", "pn", "e",
                               "free", "sb"])


@njit(cache=True, error_model="numpy", fastmath=_FM)
def _work(p, T):  # pragma: no cover - numba
    return LmWork(np.empty(T), np.empty(T), np.zeros((p, T)), np.zeros((p, T)), np.empty(T), np.empty((6, T)),
                  np.empty(20), np.empty((p, p)), np.empty((p, p)), np.empty(p), np.empty(p), np.zeros((p, p)),
                  np.empty(p), np.empty(p), np.empty(p), np.empty((5, T)))


@njit(cache=True, error_model="numpy", fastmath=_FM)
def _eval(code, inp, ua, uv, th, f, J, want_jac, ws):  # pragma: no cover - numba
    """_model, or (inp.fit_delay) _model on inputs shifted by th[-1] (s) plus the delay column of J.

    The model is linear in its input samples, so dC/d(delay) is the model applied to the
    derivative samples -S'(t - delay) of the cubic-spline inputs.
    """
    # one call site of _model (it is inlined: every call site is another copy of all seven
    # models for the compiler, which is what the first fit's compile time is made of)
    sb = ws.sb
    p = th.shape[0]
    n_pass = 1
    if inp.fit_delay:
        ts = inp.ts
        d = th[p - 1]
        _spline_shift(ts, inp.ca_c, d, sb[0], sb[2])
        if inp.two:
            _spline_shift(ts, inp.cv_c, d, sb[1], sb[3])
        else:
            for i in range(ts.shape[0]):
                sb[1, i] = sb[0, i]
                sb[3, i] = sb[2, i]
        if want_jac:
            n_pass = 2
    for k in range(n_pass):
        if not inp.fit_delay:
            a, v, out, jac = ua, uv, f, want_jac
        elif k == 0:
            a, v, out, jac = sb[0], sb[1], f, want_jac
        else:  # the model on the derivative samples: the delay column of J
            a, v, out, jac = sb[2], sb[3], sb[4], False
        _model(code, th, a, v, inp.h, inp.uniform, out, J, jac, ws.w, ws.g)
    if n_pass == 2:
        for i in range(sb.shape[1]):
            J[p - 1, i] = sb[4, i]


@njit(cache=True, error_model="numpy", fastmath=_FM)
def _lm_one(code, inp, ua, uv, y, p0, lo, hi, max_iter, tol, pout, se, ws):  # pragma: no cover - numba
    """Bounded Levenberg-Marquardt for one voxel. Returns (sse, status).

    status: 1 converged, 2 iteration limit reached, -1 non-finite data, -2 non-finite result.
    Bounds: a parameter on a bound whose gradient points outwards is held there for the
    iteration (its row and column leave the normal equations), so the other parameters still
    take a full Gauss-Newton step; the step is then projected on the box (projected LM,
    Kanzow C, Yamashita N, Fukushima M. J Comput Appl Math 2004;172:375-97,
    doi:10.1016/j.cam.2004.02.013). Damping: Marquardt's diagonal scaling, lambda x10 on a
    rejected step and x0.1 on an accepted one (Marquardt DW. J Soc Ind Appl Math
    1963;11:431-41, doi:10.1137/0111030).
    """
    T = y.shape[0]
    p = p0.shape[0]
    f, fn, J, Jn, r = ws.f, ws.fn, ws.J, ws.Jn, ws.r
    A, JTJ, grad, dlt, L, pn, e, free = ws.A, ws.JTJ, ws.grad, ws.dlt, ws.L, ws.pn, ws.e, ws.free
    for i in range(T):
        if not np.isfinite(y[i]):
            for j in range(p):
                pout[j] = np.nan
                se[j] = np.nan
            return np.nan, -1
    for j in range(p):
        v = p0[j]
        if not np.isfinite(v):
            v = 0.5 * (lo[j] + hi[j])
        pout[j] = min(max(v, lo[j]), hi[j])
    # One evaluation site (the model is inlined at every call site, which is what compiling the
    # kernel costs): each pass evaluates either the start (pout -> f, J) or a trial step
    # (pn -> fn, Jn), then decides, then builds the next trial.
    status = 2
    lam = 1e-4
    it = 0
    ntry = 0
    sse = np.inf
    moved = 0.0
    dmax = 0.0
    trial = False
    check = False
    while True:
        if trial:
            th, ff, JJ = pn, fn, Jn
        else:
            th, ff, JJ = pout, f, J
        _eval(code, inp, ua, uv, th, ff, JJ, True, ws)
        ssen = 0.0
        for i in range(T):
            d = y[i] - ff[i]
            ssen += d * d
        fresh = False
        if not trial:
            for i in range(T):
                r[i] = y[i] - f[i]
            sse = ssen
            if not np.isfinite(sse):
                status = -2
                break
            fresh = True
        elif np.isfinite(ssen) and ssen <= sse:
            drop = sse - ssen
            sse = ssen
            for a in range(p):
                pout[a] = pn[a]
            for i in range(T):
                r[i] = y[i] - fn[i]
            f, fn = fn, f
            J, Jn = Jn, J
            lam = max(lam * 0.1, 1e-12)
            # a small drop or move: converged if the Gauss-Newton model agrees (below)
            check = drop <= tol * sse or moved <= tol
            fresh = True
        else:
            lam *= 10.0
            ntry += 1
            if moved <= tol * 1e-2 or ntry >= 12:
                status = 1  # no downhill step left: at a (bounded) minimum
                break
        if fresh:  # a new iteration at the accepted point: normal equations and active set
            _gram(J, r, p, JTJ, grad, True)
            dmax = 0.0
            for a in range(p):
                if JTJ[a, a] > dmax:
                    dmax = JTJ[a, a]
            if dmax <= 0.0:
                status = 1
                break
            nfree = 0
            for a in range(p):
                held = (pout[a] <= lo[a] and grad[a] < 0.0) or (pout[a] >= hi[a] and grad[a] > 0.0)
                free[a] = 0.0 if held else 1.0
                e[a] = 0.0 if held else grad[a]
                if not held:
                    nfree += 1
            if nfree == 0:
                status = 1  # every parameter pinned on a bound by its gradient: a (corner) minimum
                break
            if check:
                # after a small drop, converged only where the undamped Gauss-Newton step on the
                # free parameters predicts at most tol x SSE left to gain (e^T (J^T J)^-1 e): a
                # small drop alone also ends heavily damped steps crawling along a flat valley
                for a in range(p):
                    for b in range(p):
                        A[a, b] = JTJ[a, b] * free[a] * free[b]
                    A[a, a] = JTJ[a, a] + 1e-12 * dmax if free[a] > 0.0 else 1.0
                pred = 0.0
                if _chol_solve(A, e, dlt, L, p):
                    for a in range(p):
                        pred += e[a] * dlt[a]
                if pred <= tol * sse:
                    status = 1
                    break
                check = False
            if it >= max_iter:
                break
            it += 1
            ntry = 0
        # the next trial step (damped, projected on the box)
        found = False
        while ntry < 12:
            for a in range(p):
                for b in range(p):
                    A[a, b] = JTJ[a, b] * free[a] * free[b]
                A[a, a] = JTJ[a, a] + lam * max(JTJ[a, a], 1e-12 * dmax) if free[a] > 0.0 else 1.0
            if not _chol_solve(A, e, dlt, L, p):
                lam *= 10.0
                ntry += 1
                continue
            moved = 0.0
            for a in range(p):
                v = min(max(pout[a] + dlt[a], lo[a]), hi[a])
                pn[a] = v
                rel = abs(v - pout[a]) / (abs(pout[a]) + 1e-6 * (hi[a] - lo[a]) + 1e-12)
                if rel > moved:
                    moved = rel
            found = True
            break
        if not found:
            status = 1  # no downhill step left: at a (bounded) minimum
            break
        if moved <= tol and lam < 1.0:
            status = 1  # the (Gauss-Newton-like) step is negligible: converged
            break
        trial = True
    # standard errors from the Jacobian: cov = s^2 (J^T J)^-1
    dof = T - p
    _gram(J, r, p, JTJ, grad, False)
    s2 = sse / dof if dof > 0 else np.nan
    for a in range(p):
        for b in range(p):
            e[b] = 1.0 if a == b else 0.0
        if _chol_solve(JTJ, e, dlt, L, p) and dlt[a] >= 0.0:
            se[a] = np.sqrt(s2 * dlt[a])
        else:
            se[a] = np.nan
    for a in range(p):
        if not np.isfinite(pout[a]):
            status = -2
    if not np.isfinite(sse):
        status = -2
    return sse, status


@njit(cache=True, nogil=True, error_model="numpy", fastmath=_FM)
def _lm_impl(code, inp, Y, P0, lo, hi, max_iter, tol, P, SE, SSE, STATUS):  # pragma: no cover
    """Batched bounded Levenberg-Marquardt over all voxels (rows of Y), parallel over blocks.

    ``inp`` is a :data:`ModelInputs`; its ``ua``/``uv`` are (1, T) (shared) or (n, T) (per
    voxel). max_iter = 0 only evaluates the SSE and standard errors at P0 (clipped to the
    bounds). Rows are copied into block-local buffers (no per-voxel array views: their
    reference counting would be shared between threads).
    """
    n, T = Y.shape
    p = P0.shape[1]
    ua, uv = inp.ua, inp.uv
    nb = (n + _BLOCK - 1) // _BLOCK
    for b in range(nb):
        ws = _work(p, T)
        y = np.empty(T)
        p0 = np.empty(p)
        pout = np.empty(p)
        se = np.empty(p)
        abuf = np.empty(T)
        vbuf = np.empty(T)
        arow = ua[0].copy()
        vrow = uv[0].copy()
        for i in range(b * _BLOCK, min(n, (b + 1) * _BLOCK)):
            if ua.shape[0] > 1:
                for k in range(T):
                    abuf[k] = ua[i, k]
                arow = abuf
            if uv.shape[0] > 1:
                for k in range(T):
                    vbuf[k] = uv[i, k]
                vrow = vbuf
            for k in range(T):
                y[k] = Y[i, k]
            for j in range(p):
                p0[j] = P0[i, j]
            s, st = _lm_one(code, inp, arow, vrow, y, p0, lo, hi, max_iter, tol, pout, se, ws)
            for j in range(p):
                P[i, j] = pout[j]
                SE[i, j] = se[j]
            SSE[i] = s
            STATUS[i] = st


@njit(cache=True, error_model="numpy", fastmath=_FM)
def _cumtrapz1(y, h, out):  # pragma: no cover - numba
    out[0] = 0.0
    for i in range(1, y.shape[0]):
        out[i] = out[i - 1] + 0.5 * h[i - 1] * (y[i] + y[i - 1])


@njit(cache=True, nogil=True, error_model="numpy", fastmath=_FM)
def _linear_impl(code, h, ua, uv, Y, X):  # pragma: no cover - numba
    """Linear least squares of the model's integral form, per voxel (raw coefficients X).

    Columns (c: tissue, a/v: arterial/portal input, I: running integral):
    0 [Ia, -Ic]; 1 [a, Ia, -Ic]; 2 [a, Ia]; 3 [-Ic, -IIc, Ia, IIa]; 4 [-Ic, Ia, IIa];
    5 [-Ic, Ia, Iv]; 6 [-Ic, a, v, Ia, Iv]. Columns are scaled to unit norm before solving;
    a voxel whose system is singular or not finite gets NaN.
    """
    n, T = Y.shape
    q = X.shape[1]
    nb = (n + _BLOCK - 1) // _BLOCK
    for blk in range(nb):
        cols = np.empty((q, T))
        w = np.empty((4, T))
        G = np.empty((q, q))
        b = np.empty(q)
        s = np.empty(q)
        x = np.empty(q)
        L = np.zeros((q, q))
        for k in range(blk * _BLOCK, min(n, (blk + 1) * _BLOCK)):
            y = Y[k]
            a = ua[k if ua.shape[0] > 1 else 0]
            v = uv[k if uv.shape[0] > 1 else 0]
            ic = w[0]
            ia = w[1]
            _cumtrapz1(y, h, ic)
            _cumtrapz1(a, h, ia)
            for i in range(T):
                if code == 0:
                    cols[0, i] = ia[i]
                    cols[1, i] = -ic[i]
                elif code == 1:
                    cols[0, i] = a[i]
                    cols[1, i] = ia[i]
                    cols[2, i] = -ic[i]
                elif code == 2:
                    cols[0, i] = a[i]
                    cols[1, i] = ia[i]
                elif code == 3 or code == 4 or code == 5:
                    cols[0, i] = -ic[i]
                elif code == 6:
                    cols[0, i] = -ic[i]
                    cols[1, i] = a[i]
                    cols[2, i] = v[i]
                    cols[3, i] = ia[i]
            if code == 3:
                _cumtrapz1(ic, h, w[2])
                _cumtrapz1(ia, h, w[3])
                for i in range(T):
                    cols[1, i] = -w[2, i]
                    cols[2, i] = ia[i]
                    cols[3, i] = w[3, i]
            elif code == 4:
                _cumtrapz1(ia, h, w[3])
                for i in range(T):
                    cols[1, i] = ia[i]
                    cols[2, i] = w[3, i]
            elif code == 5 or code == 6:
                _cumtrapz1(v, h, w[2])
                for i in range(T):
                    if code == 5:
                        cols[1, i] = ia[i]
                        cols[2, i] = w[2, i]
                    else:
                        cols[4, i] = w[2, i]
            ok = True
            _gram(cols, y, q, G, b, True)
            for j in range(q):
                s[j] = np.sqrt(G[j, j]) if G[j, j] > 0.0 else 1.0
            for j in range(q):
                b[j] /= s[j]
                for m in range(q):
                    G[j, m] /= s[j] * s[m]
                G[j, j] += 1e-12
                if not np.isfinite(b[j]):
                    ok = False
            if ok:
                ok = _chol_solve(G, b, x, L, q)
            for j in range(q):
                X[k, j] = x[j] / s[j] if ok else np.nan


@njit(cache=True, nogil=True, error_model="numpy", fastmath=_FM)
def _row_stats_impl(Y, sst):  # pragma: no cover - numba
    """Sum of squares about the mean of every row (NaN for a row holding NaN; 0 when the
    row is constant to rounding, i.e. below 1e-20 of its plain sum of squares)."""
    n, T = Y.shape
    for k in range(n):
        m = 0.0
        for i in range(T):
            m += Y[k, i]
        m /= T
        acc = 0.0
        tot = 0.0
        for i in range(T):
            d = Y[k, i] - m
            acc += d * d
            tot += Y[k, i] * Y[k, i]
        sst[k] = acc if (acc > 1e-20 * tot or acc != acc) else 0.0


# ---------------------------------------------------------------------------------------------
# Entry points. The model code is a run-time argument: one compiled kernel serves all seven
# models. (Specialising per model, the code a compile-time constant, was measured: it saves
# only ~20 % of one model's compile time and multiplies the time to compile all of them.)
# The kernels are serial and release the GIL (nogil); the rows are split into one block per
# thread here. numba's own parallel loops (prange) took a third of the first fit's compile
# time (issue #14: <= 8 s); threads over row blocks cost nothing to compile.
_POOL: ThreadPoolExecutor | None = None
_POOL_PID = 0  # a pool inherited through fork() has no threads: make a new one in the child


def n_threads() -> int:
    """Threads used by the kernels: numba's thread count (NUMBA_NUM_THREADS), default every CPU."""
    try:
        return max(1, int(numba.get_num_threads()))
    except Exception:  # noqa: BLE001
        return max(1, os.cpu_count() or 1)


def _blocks(n: int, run) -> None:
    """Call ``run(a, b)`` on about equal row ranges [a, b) covering [0, n), one per thread."""
    global _POOL, _POOL_PID
    k = min(n_threads(), max(1, n // _BLOCK))
    if k <= 1:
        run(0, n)
        return
    if _POOL is None or _POOL._max_workers < k or _POOL_PID != os.getpid():
        _POOL = ThreadPoolExecutor(max_workers=k, thread_name_prefix="theraquant-dce")
        _POOL_PID = os.getpid()
    edges = np.linspace(0, n, k + 1).astype(int)
    for fut in [_POOL.submit(run, int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]) if b > a]:
        fut.result()


def _rows(arr, a, b):
    """Rows [a, b) of a per-voxel (n, T) array, or the shared (1, T) row itself."""
    return arr if arr.shape[0] == 1 else arr[a:b]


def lm_kernel(inp, Y, P0, lo, hi, max_iter, tol, P, SE, SSE, STATUS):
    """Batched bounded Levenberg-Marquardt over all voxels (rows of Y), parallel over blocks.

    ``inp`` is a :data:`ModelInputs` (``inp.code`` the model); its ``ua``/``uv`` are (1, T)
    (shared) or (n, T) (per voxel). max_iter = 0 only evaluates the SSE and standard errors at
    P0 (clipped to the bounds). Results go to P, SE (n, p), SSE, STATUS (n,).
    """
    def run(a, b):
        sub = inp._replace(ua=_rows(inp.ua, a, b), uv=_rows(inp.uv, a, b))
        _lm_impl(inp.code, sub, Y[a:b], P0[a:b], lo, hi, max_iter, tol, P[a:b], SE[a:b], SSE[a:b], STATUS[a:b])
    _blocks(Y.shape[0], run)


def forward_kernel(code, h, uniform, ua, uv, P, out):
    """out[i] = model(P[i]) for every voxel i; ua/uv have 1 row (shared) or one per voxel."""
    _blocks(P.shape[0], lambda a, b: _forward_impl(code, h, uniform, _rows(ua, a, b), _rows(uv, a, b), P[a:b],
                                                   out[a:b]))


def linear_kernel(code, h, ua, uv, Y, X):
    """Linear least squares of model ``code``'s integral form per voxel (see ``_linear_impl``)."""
    _blocks(Y.shape[0], lambda a, b: _linear_impl(code, h, _rows(ua, a, b), _rows(uv, a, b), Y[a:b], X[a:b]))


def row_stats(Y, sst):
    """Sum of squares about the mean of every row (see ``_row_stats_impl``), parallel over blocks."""
    _blocks(Y.shape[0], lambda a, b: _row_stats_impl(Y[a:b], sst[a:b]))
