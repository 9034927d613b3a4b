"""Independent NumPy reference of the liver perfusion models, for ``scipy.optimize.curve_fit``.

The same exact convolution as theraquant's kernels (input linear between frames, recursive
exponential; Flouri et al. 2016, doi:10.1002/mrm.25991), written with ``scipy.signal.lfilter``
on a uniform frame grid, and a best-of-three-starts ``curve_fit`` to compare fitted residuals
with. Used by tests/dce/test_fit_starts.py and bench/bench_dce_fit.py; not part of the package.
Parameters are in public units (Fp, PS mL/100 mL/min; Ktrans 1/min; ve, vp, fa fractions).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit
from scipy.signal import lfilter

FREE = {"2cxm": ("Fp", "PS", "ve", "vp"), "2cum": ("Fp", "PS", "vp"),
        "dual_input_1c": ("Fp", "fa", "ve"), "dual_input_etofts": ("Ktrans", "ve", "vp", "fa")}
#: theraquant's default bounds (OSIPI), public units
BOUNDS = {"2cxm": ([0, 0, 1e-4, 1e-4], [200, 500, 1, 1]), "2cum": ([0, 0, 1e-4], [200, 500, 1]),
          "dual_input_1c": ([0, 0, 1e-4], [500, 1, 1]), "dual_input_etofts": ([0, 1e-4, 0, 0], [5, 1, 1, 1])}
#: OSIPI's recommended starting values
OSIPI_START = {"2cxm": [20, 15, 0.2, 0.01], "2cum": [20, 15, 0.01], "dual_input_1c": [20, 0.5, 0.2],
               "dual_input_etofts": [0.6, 0.2, 0.01, 0.5]}


def conv(u: np.ndarray, h_min: float, k: float) -> np.ndarray:
    """u conv e^{-k t} on a uniform grid of step h_min (min), exact for piecewise-linear u."""
    x = k * h_min
    e = np.exp(-x)
    if x < 1e-6:
        pa = pb = 0.5
    else:
        pb = (1 - e * (1 + x)) / x ** 2
        pa = (1 - e) / x - pb
    w = np.concatenate([[0.0], h_min * (pb * u[:-1] + pa * u[1:])])
    return lfilter([1.0], [1.0, -e], w)


def forward(model: str, h_min: float, ca: np.ndarray, cv: np.ndarray, *p: float) -> np.ndarray:
    """Tissue concentration (mM) of ``model`` at public-unit parameters ``p``."""
    if model == "2cxm":
        fp, ps, ve, vp = p[0] / 100, p[1] / 100, p[2], p[3]
        kb, ke, kp = fp / vp, ps / ve, (fp + ps) / vp
        s, q = kp + ke, ke * kb
        d = np.sqrt(max(s * s - 4 * q, 1e-300))
        kplus, kminus = 0.5 * (s + d), max(0.5 * (s - d), 0.0)
        aplus = fp * (kb - kminus) / d
        return aplus * conv(ca, h_min, kplus) + (fp - aplus) * conv(ca, h_min, kminus)
    if model == "2cum":
        fp, ps, vp = p[0] / 100, p[1] / 100, p[2]
        s = max(fp + ps, 1e-300)
        return fp * fp / s * conv(ca, h_min, s / vp) + fp * ps / s * conv(ca, h_min, 0.0)
    if model == "dual_input_1c":
        fp, fa, ve = p[0] / 100, p[1], p[2]
        k = fp / ve
        return fp * (fa * conv(ca, h_min, k) + (1 - fa) * conv(cv, h_min, k))
    kt, ve, vp, fa = p
    k = kt / ve
    return vp * (fa * ca + (1 - fa) * cv) + kt * (fa * conv(ca, h_min, k) + (1 - fa) * conv(cv, h_min, k))


def mid_start(model: str) -> list[float]:
    """Middle of theraquant's bounds (geometric middle for the flows, whose range spans decades)."""
    lo, hi = BOUNDS[model]
    return [np.sqrt(max(a, 1e-2 * b) * b) if name in ("Fp", "PS") else 0.5 * (a + b)
            for name, a, b in zip(FREE[model], lo, hi)]


def best_of_starts(model: str, t_s: np.ndarray, ca: np.ndarray, cv: np.ndarray, y: np.ndarray,
                   starts: list[list[float]]) -> tuple[float, np.ndarray]:
    """Lowest SSE (mM^2) over ``curve_fit`` (trf, theraquant's bounds) runs from each start."""
    h = float(t_s[1] - t_s[0]) / 60.0
    lo, hi = BOUNDS[model]

    def f(_t, *p):
        return forward(model, h, ca, cv, *p)

    best, best_p = np.inf, np.full(len(lo), np.nan)
    for p0 in starts:
        p0 = np.clip(p0, np.array(lo) + 1e-9 * (np.array(hi) - np.array(lo)),
                     np.array(hi) - 1e-9 * (np.array(hi) - np.array(lo)))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", OptimizeWarning)
                warnings.simplefilter("ignore", RuntimeWarning)
                p, _ = curve_fit(f, t_s, y, p0=p0, bounds=(lo, hi), method="trf", max_nfev=2000)
        except (RuntimeError, ValueError):
            continue
        sse = float(np.sum((y - f(t_s, *p)) ** 2))
        if sse < best:
            best, best_p = sse, p
    return best, best_p


def sample_params(model: str, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Parameters spanning the OSIPI ranges with the hard corners over-represented.

    2cxm: a third general (Fp 5-150, PS 1-60, ve 0.05-0.6, vp 0.02-0.3), a third flow-limited
    (PS 100-500 >> Fp 5-60), a third PS -> 0 (PS 0-0.5). 2cum: general and PS -> 0 halves.
    Dual-input: a third general (Ktrans / Fp, ve, vp, fa), a third fa -> 0 or Ktrans -> 0, a
    third high Ktrans (0.8-1.5 1/min) with high fa (0.7-0.95).
    """
    u = rng.uniform
    third = np.arange(n) % 3
    if model == "2cxm":
        fp, ps = u(5, 150, n), u(1, 60, n)
        fp = np.where(third == 1, u(5, 60, n), fp)
        ps = np.where(third == 1, u(100, 500, n), np.where(third == 2, u(0, 0.5, n), ps))
        return {"Fp": fp, "PS": ps, "ve": u(0.05, 0.6, n), "vp": u(0.02, 0.3, n)}
    if model == "2cum":
        return {"Fp": u(5, 150, n), "PS": np.where(third == 2, u(0, 0.5, n), u(1, 60, n)), "vp": u(0.02, 0.3, n)}
    if model == "dual_input_1c":
        fa = np.where(third == 1, u(0, 0.05, n), np.where(third == 2, u(0.7, 0.95, n), u(0.05, 0.7, n)))
        fp = np.where(third == 2, u(150, 400, n), u(20, 250, n))
        return {"Fp": fp, "fa": fa, "ve": u(0.1, 0.5, n)}
    kt = np.where(third == 2, u(0.8, 1.5, n), u(0.02, 0.8, n))
    fa = np.where(third == 2, u(0.7, 0.95, n), u(0.05, 0.9, n))
    corner = third == 1
    half = rng.random(n) < 0.5
    fa = np.where(corner & half, u(0, 0.03, n), fa)
    kt = np.where(corner & ~half, u(0, 0.01, n), kt)
    return {"Ktrans": kt, "ve": u(0.1, 0.6, n), "vp": u(0.0, 0.15, n), "fa": fa}
