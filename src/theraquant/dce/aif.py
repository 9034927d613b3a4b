"""Input functions for DCE-MRI: population AIFs, a measured AIF, a portal-venous input.

Every population function has the signature ``f(t, *, delay=0.0, hct=None)``: ``t`` in s
(any shape), the formula evaluated at ``t - delay`` and zero before the delay; it returns the
**blood** concentration in mM when ``hct`` is None and the **plasma** concentration
``blood / (1 - hct)`` when a haematocrit is given.

Examples
--------
>>> import numpy as np
>>> from theraquant.dce import aif
>>> t = np.arange(0.0, 300.0, 5.0)                 # s
>>> cb = aif.parker(t, delay=10.0)                 # blood, mM
>>> cp = aif.parker(t, delay=10.0, hct=0.42)       # plasma, mM
>>> bool(np.allclose(cp * (1 - 0.42), cb)), float(cb[0])
(True, 0.0)
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.interpolate import CubicSpline
from scipy.linalg import toeplitz
from scipy.special import gammaln

from ..errors import TheraquantError

__all__ = [
    "parker",
    "orton",
    "weinmann",
    "fritz_hansen",
    "georgiou",
    "mcgrath",
    "population",
    "POPULATION_AIFS",
    "info",
    "measured",
    "portal_venous",
    "gut_irf",
    "shift",
]

#: Haematocrit used to turn the published *plasma* curves of Weinmann and Fritz-Hansen into
#: blood curves (blood = plasma x (1 - 0.42)); with ``hct=0.42`` they return the published
#: plasma curve unchanged. 0.42 is the conventional adult large-vessel value (also Madym's).
HCT_PLASMA_CURVES = 0.42


# ---------------------------------------------------------------- checks and conversion
def _check_t(t: ArrayLike) -> NDArray[np.float64]:
    arr = np.asarray(t, dtype=float)
    if arr.size == 0 or not np.all(np.isfinite(arr)):
        raise TheraquantError(f"t must hold finite times in s, got {t!r}; remove NaN/inf frame times")
    return arr


def _check_delay(delay: float) -> float:
    try:
        d = float(delay)
    except (TypeError, ValueError):
        raise TheraquantError(f"delay must be a number of seconds, got {delay!r}") from None
    if not np.isfinite(d):
        raise TheraquantError(f"delay must be a finite number of seconds, got {delay!r}")
    return d


def _check_hct(hct: float | None) -> float | None:
    if hct is None:
        return None
    try:
        h = float(hct)
    except (TypeError, ValueError):
        raise TheraquantError(f"hct must be a haematocrit fraction in [0, 1), got {hct!r}") from None
    if not (0.0 <= h < 1.0):
        hint = "; a percentage must be divided by 100" if 1.0 < h <= 100.0 else ""
        raise TheraquantError(f"hct must be a haematocrit fraction in [0, 1), got {hct!r}{hint}")
    return h


def _blood_or_plasma(cb: NDArray[np.float64], hct: float | None) -> NDArray[np.float64]:
    h = _check_hct(hct)
    return cb if h is None else cb / (1.0 - h)


def _evaluate(formula: Callable[[NDArray[np.float64]], NDArray[np.float64]], t: ArrayLike,
              delay: float, hct: float | None) -> NDArray[np.float64]:
    """Apply ``formula`` (of time since onset, s) at ``t - delay``; zero before the delay."""
    tt = _check_t(t) - _check_delay(delay)
    _check_hct(hct)
    pos = tt >= 0
    out = np.zeros_like(tt)
    out[pos] = formula(tt[pos])
    return _blood_or_plasma(out, hct)


# ---------------------------------------------------------------- population AIFs
_PARKER = dict(A1=0.809, sigma1=0.0563, T1=0.17046, A2=0.330, sigma2=0.132, T2=0.365,
               alpha=1.050, beta=0.1685, s=38.078, tau=0.483)


def parker(t: ArrayLike, *, delay: float = 0.0, hct: float | None = None) -> NDArray[np.float64]:
    """Parker population AIF (two Gaussians plus a sigmoid-modulated exponential).

    Parameters
    ----------
    t : array_like
        Times, s.
    delay : float, optional
        Bolus arrival delay, s: the formula is evaluated at ``t - delay``, zero before it.
    hct : float, optional
        Haematocrit (fraction). None: blood concentration; given: plasma = blood / (1 - hct).

    Returns
    -------
    ndarray of float64
        Concentration, mM, shape of ``t``.

    Notes
    -----
    With ``u = (t - delay)`` in min (dose 0.1 mmol/kg):
    ``Cb(u) = sum_i A_i/(sigma_i sqrt(2 pi)) exp(-(u - T_i)^2/(2 sigma_i^2))
    + alpha exp(-beta u) / (1 + exp(-s (u - tau)))``, Table 1 of [1]_:
    A1 = 0.809 mM min, sigma1 = 0.0563 min, T1 = 0.17046 min, A2 = 0.330 mM min,
    sigma2 = 0.132 min, T2 = 0.365 min, alpha = 1.050 mM, beta = 0.1685 1/min,
    s = 38.078 1/min, tau = 0.483 min. The published curve is whole blood.

    References
    ----------
    .. [1] Parker GJM, et al. Experimentally-derived functional form for a population-averaged
       high-temporal-resolution arterial input function for dynamic contrast-enhanced MRI.
       Magn Reson Med 2006;56:993-1000. doi:10.1002/mrm.21066

    Examples
    --------
    >>> round(float(parker(60 * 0.17046)), 2)     # first-pass peak, blood, mM
    6.07
    """
    p = _PARKER

    def f(ts: NDArray[np.float64]) -> NDArray[np.float64]:
        u = ts / 60.0
        g1 = p["A1"] / (p["sigma1"] * np.sqrt(2 * np.pi)) * np.exp(-((u - p["T1"]) ** 2) / (2 * p["sigma1"] ** 2))
        g2 = p["A2"] / (p["sigma2"] * np.sqrt(2 * np.pi)) * np.exp(-((u - p["T2"]) ** 2) / (2 * p["sigma2"] ** 2))
        return g1 + g2 + p["alpha"] * np.exp(-p["beta"] * u) / (1.0 + np.exp(-p["s"] * (u - p["tau"])))

    return _evaluate(f, t, delay, hct)


_ORTON = dict(AB=323.0, muB=20.2, AG=1.07, muG=0.172)


def orton(t: ArrayLike, *, delay: float = 0.0, hct: float | None = None) -> NDArray[np.float64]:
    """Orton bi-exponential population AIF (Royal Marsden liver DCE-MRI studies).

    Parameters
    ----------
    t : array_like
        Times, s.
    delay : float, optional
        Bolus arrival delay, s; zero before it.
    hct : float, optional
        Haematocrit (fraction): None gives blood, a value gives plasma = blood / (1 - hct).

    Returns
    -------
    ndarray of float64
        Concentration, mM.

    Notes
    -----
    Orton's "model 3" (exponential), ``u = t - delay`` in min [1]_:
    ``Cb(u) = A_B u exp(-mu_B u) + A_G (exp(-mu_G u) - exp(-mu_B u))`` with the population
    values A_B = 323 mM/min, mu_B = 20.2 1/min, A_G = 1.07 mM, mu_G = 0.172 1/min (blood,
    0.1 mmol/kg), as distributed with dcemriS4 (``aif = "orton.exp"``): the functional form
    of the input used in the Royal Marsden / ICR liver DCE-MRI studies.

    References
    ----------
    .. [1] Orton MR, et al. Computationally efficient vascular input function models for
       quantitative kinetic modelling using DCE-MRI. Phys Med Biol 2008;53:1225-39.
       doi:10.1088/0031-9155/53/5/005

    Examples
    --------
    >>> round(float(orton(60.0 / 20.2)), 2)   # near the peak, at u = 1/mu_B min
    6.55
    """
    p = _ORTON

    def f(ts: NDArray[np.float64]) -> NDArray[np.float64]:
        u = ts / 60.0
        return p["AB"] * u * np.exp(-p["muB"] * u) + p["AG"] * (np.exp(-p["muG"] * u) - np.exp(-p["muB"] * u))

    return _evaluate(f, t, delay, hct)


def _biexp_plasma(a1: float, m1: float, a2: float, m2: float, dose: float):
    def f(ts: NDArray[np.float64]) -> NDArray[np.float64]:
        u = ts / 60.0
        return dose * (a1 * np.exp(-m1 * u) + a2 * np.exp(-m2 * u)) * (1.0 - HCT_PLASMA_CURVES)
    return f


def weinmann(t: ArrayLike, *, delay: float = 0.0, hct: float | None = None) -> NDArray[np.float64]:
    """Weinmann bi-exponential AIF as parameterised by Tofts and Kermode.

    Parameters
    ----------
    t : array_like
        Times, s.
    delay : float, optional
        Bolus arrival (injection) time, s; zero before it.
    hct : float, optional
        Haematocrit (fraction): None gives blood, a value gives plasma = blood / (1 - hct).

    Returns
    -------
    ndarray of float64
        Concentration, mM.

    Notes
    -----
    Published as a plasma curve [1]_ [2]_, ``u = t - delay`` in min:
    ``Cp(u) = D (a1 exp(-m1 u) + a2 exp(-m2 u))`` with D = 0.1 mmol/kg, a1 = 3.99 kg/L,
    a2 = 4.78 kg/L, m1 = 0.144 1/min, m2 = 0.0111 1/min. An instantaneous bolus: it jumps to
    0.877 mM (plasma) at the delay. Blood is taken as ``Cp (1 - 0.42)``
    (:data:`HCT_PLASMA_CURVES`), so ``weinmann(t, hct=0.42)`` is the published plasma curve.

    References
    ----------
    .. [1] Weinmann HJ, Laniado M, Mutzel W. Pharmacokinetics of GdDTPA/dimeglumine after
       intravenous injection into healthy volunteers. Physiol Chem Phys Med NMR 1984;16:167-72.
       PMID 6505043
    .. [2] Tofts PS, Kermode AG. Measurement of the blood-brain barrier permeability and leakage
       space using dynamic MR imaging. Magn Reson Med 1991;17:357-67. doi:10.1002/mrm.1910170208

    Examples
    --------
    >>> round(float(weinmann(0.0, hct=0.42)), 3)   # D (a1 + a2), plasma, mM
    0.877
    """
    return _evaluate(_biexp_plasma(3.99, 0.144, 4.78, 0.0111, 0.1), t, delay, hct)


def fritz_hansen(t: ArrayLike, *, delay: float = 0.0, hct: float | None = None) -> NDArray[np.float64]:
    """Fritz-Hansen bi-exponential AIF.

    Parameters
    ----------
    t : array_like
        Times, s.
    delay : float, optional
        Bolus arrival (injection) time, s; zero before it.
    hct : float, optional
        Haematocrit (fraction): None gives blood, a value gives plasma = blood / (1 - hct).

    Returns
    -------
    ndarray of float64
        Concentration, mM.

    Notes
    -----
    ``Cp(u) = a1 exp(-m1 u) + a2 exp(-m2 u)``, ``u = t - delay`` in min, a1 = 2.4 mM,
    a2 = 0.62 mM, m1 = 3.0 1/min, m2 = 0.016 1/min (0.1 mmol/kg) [1]_, as used for the Tofts
    model in dcemriS4 (``aif = "fritz.hansen"``), i.e. as a plasma curve; blood is taken as
    ``Cp (1 - 0.42)`` (:data:`HCT_PLASMA_CURVES`), so ``hct=0.42`` returns the published curve.

    References
    ----------
    .. [1] Fritz-Hansen T, et al. Measurement of the arterial concentration of Gd-DTPA using MRI:
       a step toward quantitative perfusion imaging. Magn Reson Med 1996;36:225-31.
       doi:10.1002/mrm.1910360209

    Examples
    --------
    >>> round(float(fritz_hansen(0.0, hct=0.42)), 2)   # a1 + a2, plasma, mM
    3.02
    """
    return _evaluate(_biexp_plasma(2.4, 3.0, 0.62, 0.016, 1.0), t, delay, hct)


_GEORGIOU = dict(A1=0.37, m1=0.11, A2=0.33, m2=1.17, A3=10.06, m3=16.02, alpha=5.26, beta=0.032, tau=0.129)


def georgiou(t: ArrayLike, *, delay: float = 0.0, hct: float | None = None) -> NDArray[np.float64]:
    """Georgiou population AIF (Horsfield functional form with recirculation).

    Parameters
    ----------
    t : array_like
        Times, s.
    delay : float, optional
        Bolus arrival delay, s; zero before it.
    hct : float, optional
        Haematocrit (fraction): None gives blood, a value gives plasma = blood / (1 - hct).

    Returns
    -------
    ndarray of float64
        Concentration, mM (blood when ``hct`` is None).

    Notes
    -----
    Eq. 1 of [1]_ (after [2]_), ``u = t - delay`` in min:
    ``Cb(u) = [sum_{i=1..3} A_i exp(-m_i u)] * sum_{j>=0, u >= j tau} g_j(u - j tau)`` with
    ``g_j(x) = x^(a_j) exp(-x/beta) / (beta^(a_j+1) Gamma(a_j+1))`` and
    ``a_j = (j+1) alpha + j``. Table 3 values: A1 = 0.37, A2 = 0.33, A3 = 10.06 mM;
    m1 = 0.11, m2 = 1.17, m3 = 16.02 1/min; alpha = 5.26; beta = 0.032 min; tau = 0.129 min
    (blood, 0.1 mmol/kg, Hct 0.35 subject closest to the cohort). The published *measured*
    curve (the OSIPI reference) differs from this functional form by up to 0.082 mM (1.2 %)
    during the first pass (t <= 20 s); later samples agree within 1e-4 mM + 1 %.

    References
    ----------
    .. [1] Georgiou L, et al. A functional form for a representative individual arterial input
       function measured from a population using high temporal resolution DCE MRI.
       Magn Reson Med 2019;81:1955-63. doi:10.1002/mrm.27524
    .. [2] Horsfield MA, et al. Deriving an arterial input function from dynamic contrast-enhanced
       MRI. Phys Med Biol 2009;54:2933-49. doi:10.1088/0031-9155/54/9/023

    Examples
    --------
    >>> c = georgiou([0.0, 10.0, 60.0, 240.0])
    >>> float(c[0]), bool(c[1] > c[2] > c[3] > 0)
    (0.0, True)
    """
    p = _GEORGIOU

    def f(ts: NDArray[np.float64]) -> NDArray[np.float64]:
        u = ts / 60.0
        envelope = p["A1"] * np.exp(-p["m1"] * u) + p["A2"] * np.exp(-p["m2"] * u) + p["A3"] * np.exp(-p["m3"] * u)
        total = np.zeros_like(u)
        n_circ = int(np.floor(np.max(u, initial=0.0) / p["tau"])) + 1
        for j in range(n_circ):  # recirculation terms (a handful), not voxels
            x = u - j * p["tau"]
            aj = (j + 1) * p["alpha"] + j
            pos = x > 0
            xs = x[pos]
            total[pos] += np.exp(aj * np.log(xs) - xs / p["beta"] - (aj + 1) * np.log(p["beta"]) - gammaln(aj + 1))
        return envelope * total

    return _evaluate(f, t, delay, hct)


_MCGRATH = dict(A1=3.4, k1=0.045, A2=1.81, k2=0.0015, t0=7.0)


def mcgrath(t: ArrayLike, *, delay: float = 0.0, hct: float | None = None) -> NDArray[np.float64]:
    """McGrath preclinical (rodent) population AIF, model B.

    Parameters
    ----------
    t : array_like
        Times, s.
    delay : float, optional
        Injection delay, s; zero before it.
    hct : float, optional
        Haematocrit (fraction): None gives blood, a value gives plasma = blood / (1 - hct).

    Returns
    -------
    ndarray of float64
        Concentration, mM.

    Notes
    -----
    Eq. 5 and Table 1 (model B) of [1]_, ``u = t - delay`` in s: a linear rise to
    A1 + A2 = 5.21 mM at t0 = 7 s, then ``A1 exp(-k1 (u - t0)) + A2 exp(-k2 (u - t0))`` with
    A1 = 3.4 mM, k1 = 0.045 1/s, A2 = 1.81 mM, k2 = 0.0015 1/s.

    References
    ----------
    .. [1] McGrath DM, et al. Comparison of model-based arterial input functions for dynamic
       contrast-enhanced MRI in tumor bearing rats. Magn Reson Med 2009;61:1173-84.
       doi:10.1002/mrm.21959

    Examples
    --------
    >>> mcgrath([0.0, 3.5, 7.0]).round(3).tolist()
    [0.0, 2.605, 5.21]
    """
    p = _MCGRATH

    def f(u: NDArray[np.float64]) -> NDArray[np.float64]:
        rise = (p["A1"] + p["A2"]) * u / p["t0"]
        fall = p["A1"] * np.exp(-p["k1"] * (u - p["t0"])) + p["A2"] * np.exp(-p["k2"] * (u - p["t0"]))
        return np.where(u < p["t0"], rise, fall)

    return _evaluate(f, t, delay, hct)


_POPULATION: dict[str, Callable[..., NDArray[np.float64]]] = {
    "parker": parker, "orton": orton, "weinmann": weinmann, "fritz_hansen": fritz_hansen,
    "georgiou": georgiou, "mcgrath": mcgrath,
}
#: Names accepted by :func:`population`.
POPULATION_AIFS = tuple(_POPULATION)


_INFO = {
    "parker": dict(parameters=_PARKER, time_unit="min", curve="blood", doi="10.1002/mrm.21066",
                   units={"A1": "mM min", "A2": "mM min", "sigma1": "min", "sigma2": "min", "T1": "min",
                          "T2": "min", "alpha": "mM", "beta": "1/min", "s": "1/min", "tau": "min"}),
    "orton": dict(parameters=_ORTON, time_unit="min", curve="blood", doi="10.1088/0031-9155/53/5/005",
                  units={"AB": "mM/min", "muB": "1/min", "AG": "mM", "muG": "1/min"}),
    "weinmann": dict(parameters=dict(D=0.1, a1=3.99, m1=0.144, a2=4.78, m2=0.0111), time_unit="min",
                     curve=f"plasma (blood = plasma x (1 - {HCT_PLASMA_CURVES}))", doi="10.1002/mrm.1910170208",
                     units={"D": "mmol/kg", "a1": "kg/L", "a2": "kg/L", "m1": "1/min", "m2": "1/min"}),
    "fritz_hansen": dict(parameters=dict(a1=2.4, m1=3.0, a2=0.62, m2=0.016), time_unit="min",
                         curve=f"plasma (blood = plasma x (1 - {HCT_PLASMA_CURVES}))", doi="10.1002/mrm.1910360209",
                         units={"a1": "mM", "a2": "mM", "m1": "1/min", "m2": "1/min"}),
    "georgiou": dict(parameters=_GEORGIOU, time_unit="min", curve="blood", doi="10.1002/mrm.27524",
                     units={"A1": "mM", "A2": "mM", "A3": "mM", "m1": "1/min", "m2": "1/min", "m3": "1/min",
                            "alpha": "1", "beta": "min", "tau": "min"}),
    "mcgrath": dict(parameters=_MCGRATH, time_unit="s", curve="blood", doi="10.1002/mrm.21959",
                    units={"A1": "mM", "A2": "mM", "k1": "1/s", "k2": "1/s", "t0": "s"}),
}


def info(name: str) -> dict:
    """Parameters, units and source of a population AIF, for provenance records.

    Parameters
    ----------
    name : str
        One of :data:`POPULATION_AIFS`.

    Returns
    -------
    dict
        ``{"name", "parameters", "units", "time_unit", "curve", "doi"}``; ``curve`` says whether
        the published formula is a blood or a plasma concentration.

    Examples
    --------
    >>> d = info("parker")
    >>> d["doi"], d["parameters"]["A1"], d["units"]["A1"]
    ('10.1002/mrm.21066', 0.809, 'mM min')
    """
    key = str(name).lower().replace("-", "_")
    if key not in _INFO:
        raise TheraquantError(f"unknown population AIF {name!r}; choose one of {POPULATION_AIFS}")
    d = _INFO[key]
    return {"name": key, "parameters": dict(d["parameters"]), "units": dict(d["units"]),
            "time_unit": d["time_unit"], "curve": d["curve"], "doi": d["doi"]}


def population(name: str, t: ArrayLike, *, delay: float = 0.0, hct: float | None = None) -> NDArray[np.float64]:
    """A population AIF by name (for command lines and settings files).

    Parameters
    ----------
    name : str
        One of :data:`POPULATION_AIFS`: "parker", "orton", "weinmann", "fritz_hansen",
        "georgiou", "mcgrath".
    t, delay, hct
        As for :func:`parker`: times in s, delay in s, haematocrit fraction or None (blood).

    Returns
    -------
    ndarray of float64
        Concentration, mM.

    Examples
    --------
    >>> import numpy as np
    >>> bool(np.array_equal(population("parker", [0.0, 30.0]), parker([0.0, 30.0])))
    True
    """
    key = str(name).lower().replace("-", "_")
    if key not in _POPULATION:
        raise TheraquantError(f"unknown population AIF {name!r}; choose one of {POPULATION_AIFS}")
    return _POPULATION[key](t, delay=delay, hct=hct)


# ---------------------------------------------------------------- shifting a sampled curve
def _check_frame_times(t: ArrayLike, n: int | None = None, name: str = "t") -> NDArray[np.float64]:
    tt = np.asarray(t, dtype=float)
    if tt.ndim != 1 or tt.size < 2:
        raise TheraquantError(f"{name} must be a 1-D array of >= 2 frame times in s, got shape {tt.shape}")
    if not np.all(np.isfinite(tt)):
        raise TheraquantError(f"{name} holds NaN/inf frame times; fix the frame timing")
    if np.any(np.diff(tt) <= 0):
        i = int(np.argmax(np.diff(tt) <= 0))
        raise TheraquantError(f"{name} must be strictly increasing, but t[{i}] = {tt[i]:g} s and "
                              f"t[{i + 1}] = {tt[i + 1]:g} s; sort the frames by acquisition time")
    if n is not None and tt.size != n:
        raise TheraquantError(f"{name} has {tt.size} frame times but the curve has {n} samples on its last "
                              "axis; pass one time per frame (time is the LAST axis)")
    return tt


def shift(t: ArrayLike, c: ArrayLike, delay: float | ArrayLike) -> NDArray[np.float64]:
    """Delay sampled curves by ``delay`` seconds with a cubic interpolant.

    The one shift of theraquant: :func:`theraquant.dce.fit` and :func:`~theraquant.dce.simulate`
    shift their inputs with it (and the fitted-delay kernel evaluates the same spline), so a
    fit with ``delay=d`` is a fit to ``shift(t, cp, d)``.

    Parameters
    ----------
    t : (T,) array_like
        Frame times, s, strictly increasing.
    c : (..., T) array_like
        Curves sampled at ``t`` (time on the last axis).
    delay : float or (m,) array_like
        Delay, s (positive: later). Sub-frame delays are resolved by a not-a-knot cubic
        spline through the samples, not a linear interpolant. An array of m delays shifts a
        single curve ``c`` (T,) m times.

    Returns
    -------
    (..., T) or (m, T) ndarray of float64
        ``c(t - delay)``. Outside the sampled range the curve is held: before the first frame
        it equals its first sample (the pre-contrast baseline, which is 0 for a population
        AIF and the baseline offset of a measured one), after the last frame its last sample
        (negative delays).

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(0.0, 60.0, 2.0)
    >>> c = parker(t, delay=5.0)
    >>> bool(np.allclose(shift(t, c, 4.0), parker(t, delay=9.0), atol=0.15))
    True
    >>> shift(t, c + 0.5, 4.0)[:3]   # a baseline offset stays the baseline before the bolus
    array([0.5, 0.5, 0.5])
    """
    tt = _check_frame_times(t)
    cc = np.asarray(c, dtype=float)
    if cc.ndim < 1 or cc.shape[-1] != tt.size:
        raise TheraquantError(f"c must have {tt.size} samples on its last axis (one per frame time), "
                              f"got shape {cc.shape}")
    if np.ndim(delay) == 0:
        d = _check_delay(delay)
        if d == 0.0:
            return cc.copy()
        return CubicSpline(tt, cc, axis=-1, bc_type="not-a-knot")(np.clip(tt - d, tt[0], tt[-1]))
    d = np.asarray(delay, dtype=float)
    if d.ndim != 1 or cc.ndim != 1 or not np.all(np.isfinite(d)):
        raise TheraquantError(f"delay must be a finite number of seconds, or a 1-D array of them for a single "
                              f"curve c, got delay of shape {d.shape} for c of shape {cc.shape}")
    x = np.clip(tt[None, :] - d[:, None], tt[0], tt[-1])
    return CubicSpline(tt, cc, bc_type="not-a-knot")(x)


# ---------------------------------------------------------------- measured input functions
def measured(t: ArrayLike, conc: ArrayLike, *, mask: ArrayLike | None = None, hct: float | None = None,
             delay: float = 0.0) -> NDArray[np.float64]:
    """Input function from a region of interest (arterial, or portal vein for a measured PIF).

    Parameters
    ----------
    t : (T,) array_like
        Frame times, s, strictly increasing.
    conc : (..., T) array_like
        **Blood** concentration curves, mM (e.g. :func:`~theraquant.dce.signal_to_concentration`
        with the blood T10), time on the last axis.
    mask : (...) array_like of bool, optional
        ROI over the leading shape of ``conc``; all curves when None.
    hct : float, optional
        Haematocrit (fraction): given, the result is plasma = blood / (1 - hct); None keeps blood.
    delay : float, optional
        Extra delay, s, applied with :func:`shift` (cubic; zero before the start).

    Returns
    -------
    (T,) ndarray of float64
        Mean ROI concentration, mM. Curves with any NaN sample (e.g. saturated signal) are
        left out of the mean; an error is raised if none is left.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(0.0, 120.0, 4.0)
    >>> roi = np.stack([parker(t), parker(t) * 1.1, parker(t) * 0.9])   # 3 voxels, blood
    >>> bool(np.allclose(measured(t, roi, hct=0.4), parker(t, hct=0.4)))
    True
    """
    tt = _check_frame_times(t)
    c = np.asarray(conc, dtype=float)
    if c.ndim < 1 or c.shape[-1] != tt.size:
        raise TheraquantError(f"conc must have {tt.size} samples (one per frame time) on its last axis, "
                              f"got shape {c.shape}")
    curves = c.reshape(-1, tt.size)
    if mask is not None:
        m = np.asarray(mask)
        if m.shape != c.shape[:-1]:
            raise TheraquantError(f"mask must have the leading shape of conc {c.shape[:-1]}, got {m.shape}; "
                                  "resample the ROI onto the DCE grid")
        curves = curves[m.reshape(-1).astype(bool)]
    curves = curves[np.all(np.isfinite(curves), axis=-1)]
    if curves.shape[0] == 0:
        raise TheraquantError("the ROI holds no curve without NaN/inf samples; check the mask and the "
                              "signal-to-concentration conversion (saturated arterial signal?)")
    cb = curves.mean(axis=0)
    return _blood_or_plasma(shift(tt, cb, delay), hct)


def gut_irf(t: ArrayLike) -> NDArray[np.float64]:
    """Population gut impulse response for the portal-venous input (unnormalised), 1/min.

    Parameters
    ----------
    t : array_like
        Time since the arterial input, s.

    Returns
    -------
    ndarray of float64
        ``h(u)``, ``u`` in min: 0 for u < 0.08; ``24.16 u - 2.01`` for u < 0.17;
        ``2.83 exp(-10.80 u) + 2.12 exp(-1.82 u)`` otherwise: the population gut response
        used by Madym to build a portal-venous input from the AIF [1]_; negative values of the
        linear ramp just above 0.08 min are clipped to 0.

    References
    ----------
    .. [1] Berks M, et al. Madym: A C++ toolkit for quantitative DCE-MRI analysis. JOSS 2021;
       6(66):3523. doi:10.21105/joss.03523

    Examples
    --------
    >>> gut_irf([0.0, 6.0, 60.0]).round(4).tolist()
    [0.0, 0.406, 0.3436]
    """
    u = np.asarray(t, dtype=float) / 60.0
    h = np.where(u < 0.08, 0.0, np.where(u < 0.17, 24.16 * u - 2.01,
                                        2.83 * np.exp(-10.80 * u) + 2.12 * np.exp(-1.82 * u)))
    return np.maximum(h, 0.0)


def portal_venous(t: ArrayLike, cp: ArrayLike, *, delay: float = 0.0) -> NDArray[np.float64]:
    """Portal-venous input modelled from the arterial input with the gut impulse response.

    Parameters
    ----------
    t : (T,) array_like
        Frame times, s, uniformly spaced.
    cp : (T,) or (..., T) array_like
        Arterial concentration, mM (plasma or blood: the output is in the same compartment).
        Pass the already-delayed AIF: the portal input inherits its delay.
    delay : float, optional
        Additional portal-venous delay, s, applied with a cubic interpolant (:func:`shift`).

    Returns
    -------
    (..., T) ndarray of float64
        Portal-venous concentration, mM.

    Notes
    -----
    Madym's construction: ``cv_i = sum_{j<=i} h_j cp_{i-j}`` with ``h_j = h(t_j - t_0)``
    (:func:`gut_irf`) normalised so that ``sum_j h_j = 1`` over the acquisition, so the
    gut conserves tracer over the sampled window. For a measured portal vein use
    :func:`measured` on a portal-vein ROI instead.

    References
    ----------
    .. [1] Berks M, et al. JOSS 2021;6(66):3523. doi:10.21105/joss.03523

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(0.0, 300.0, 2.0)
    >>> cv = portal_venous(t, parker(t, delay=20.0, hct=0.42))
    >>> bool(t[np.argmax(cv)] > t[np.argmax(parker(t, delay=20.0))])   # later, dispersed
    True
    """
    tt = _check_frame_times(t)
    c = np.asarray(cp, dtype=float)
    if c.ndim < 1 or c.shape[-1] != tt.size:
        raise TheraquantError(f"cp must have {tt.size} samples (one per frame time) on its last axis, "
                              f"got shape {c.shape}; pass the AIF sampled at t")
    dt = np.diff(tt)
    if np.ptp(dt) > 1e-6 * dt.mean():
        raise TheraquantError(
            f"portal_venous needs uniformly spaced frame times, got spacings from {dt.min():g} to "
            f"{dt.max():g} s; resample the AIF onto a uniform grid first (e.g. numpy.interp)")
    h = gut_irf(tt - tt[0])
    if h.sum() <= 0:
        raise TheraquantError(f"the acquisition ({tt[-1] - tt[0]:g} s) is too short for the gut impulse "
                              "response, which starts at 4.8 s; acquire longer")
    h = h / h.sum()
    n = tt.size
    # discrete causal convolution along the last axis as a lower-triangular Toeplitz product
    # (exact sums, any number of input curves at once)
    conv = toeplitz(h, np.zeros(n))          # conv[i, j] = h[i - j] for i >= j
    out = c.reshape(-1, n) @ conv.T
    return shift(tt, out.reshape(c.shape), delay)
