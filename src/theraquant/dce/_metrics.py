"""Model-free (semi-quantitative) DCE-MRI metrics, vectorised over curves."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..errors import TheraquantError
from ..results import Result
from .aif import _check_frame_times

__all__ = [
    "bolus_arrival",
    "iaugc",
    "time_to_peak",
    "max_upslope",
    "enhancement_ratio",
    "model_free",
    "ModelFreeResult",
]


def _curves(t: ArrayLike, ct: ArrayLike, name: str = "ct") -> tuple[NDArray, NDArray, tuple[int, ...]]:
    """(T,) times, (n, T) curves and the leading shape; curves with a NaN are kept (give NaN)."""
    c = np.asarray(ct, dtype=float)
    if c.ndim < 1:
        raise TheraquantError(f"{name} must have time on its last axis, got a scalar {ct!r}")
    tt = _check_frame_times(t, c.shape[-1])
    return tt, c.reshape(-1, tt.size), c.shape[:-1]


def _arrival_array(arrival: ArrayLike | None, t: NDArray, c2: NDArray, lead: tuple[int, ...],
                   n_baseline: int = 1) -> NDArray:
    if arrival is None:
        return _detect_arrival(t, c2, n_baseline)
    a = np.asarray(arrival, dtype=float)
    try:
        return np.broadcast_to(a, lead).reshape(-1).astype(float)
    except ValueError:
        raise TheraquantError(f"arrival must be a scalar time in s or one per curve (shape {lead}), got shape "
                              f"{a.shape}") from None


def _crossing(t: NDArray, c2: NDArray, level: NDArray) -> NDArray:
    """First time each curve reaches ``level`` (linear interpolation between frames); NaN if never."""
    above = c2 >= level[:, None]
    has = above.any(axis=-1)
    i = np.argmax(above, axis=-1)
    ip = np.maximum(i - 1, 0)
    rows = np.arange(c2.shape[0])
    c0, c1 = c2[rows, ip], c2[rows, i]
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(c1 > c0, (level - c0) / (c1 - c0), 1.0)
    tc = np.where(i == 0, t[0], t[ip] + np.clip(frac, 0, 1) * (t[i] - t[ip]))
    return np.where(has, tc, np.nan)


def _detect_arrival(t: NDArray, c2: NDArray, n_baseline: int = 1, lo: float = 0.1, hi: float = 0.5) -> NDArray:
    base = c2[:, :n_baseline].mean(axis=-1)
    peak = np.max(c2, axis=-1)
    amp = peak - base
    t_lo = _crossing(t, c2, base + lo * amp)
    t_hi = _crossing(t, c2, base + hi * amp)
    arr = t_lo - (t_hi - t_lo) * lo / (hi - lo)
    bad = ~np.all(np.isfinite(c2), axis=-1) | ~(amp > 0)
    return np.where(bad, np.nan, np.clip(arr, t[0], t[-1]))


def bolus_arrival(t: ArrayLike, ct: ArrayLike, *, n_baseline: int = 1) -> NDArray[np.float64]:
    """Bolus arrival time of each curve, found from its upslope.

    Parameters
    ----------
    t : (T,) array_like
        Frame times, s, strictly increasing.
    ct : (..., T) array_like
        Concentration (or enhancement) curves, time last.
    n_baseline : int, optional
        Pre-contrast frames averaged for the baseline level (default 1: the first frame);
        more frames make the detection robust to noise.

    Returns
    -------
    (...) ndarray of float64
        Arrival time, s (NaN for a flat or non-finite curve).

    Notes
    -----
    The times at which the curve first reaches 10 % and 50 % of its rise above the baseline
    (linear interpolation between frames) define a line, extrapolated back to the
    baseline: ``t_a = t10 - (t50 - t10) / 4``. Exact for a linear upslope; for a Gaussian
    first pass it lands within a fraction of the rise time of the onset.

    Examples
    --------
    >>> import numpy as np
    >>> from theraquant.dce import aif
    >>> t = np.arange(0.0, 120.0, 0.5)
    >>> float(bolus_arrival(t, aif.mcgrath(t, delay=12.25)))   # linear rise: exact
    12.25
    """
    tt, c2, lead = _curves(t, ct)
    if isinstance(n_baseline, bool) or not isinstance(n_baseline, (int, np.integer)) or not 1 <= n_baseline < tt.size:
        raise TheraquantError(f"n_baseline must be a frame count between 1 and {tt.size - 1}, got {n_baseline!r}")
    return _detect_arrival(tt, c2, int(n_baseline)).reshape(lead)


def _integral_to(t: NDArray, c2: NDArray, cum: NDArray, tau: NDArray) -> NDArray:
    """Integral of each piecewise-linear curve from t[0] to tau (per curve), exact."""
    k = np.clip(np.searchsorted(t, tau, side="right") - 1, 0, t.size - 2)
    rows = np.arange(c2.shape[0])
    dt = t[k + 1] - t[k]
    x = tau - t[k]
    c0, c1 = c2[rows, k], c2[rows, k + 1]
    return cum[rows, k] + c0 * x + (c1 - c0) * x * x / (2.0 * dt)


def iaugc(t: ArrayLike, ct: ArrayLike, *, window: float = 60.0, arrival: ArrayLike | None = None) -> NDArray[np.float64]:
    """Initial area under the gadolinium concentration curve (IAUGC).

    Parameters
    ----------
    t : (T,) array_like
        Frame times, s, strictly increasing (non-uniform allowed).
    ct : (..., T) array_like
        Tissue concentration, mM, time last.
    window : float, optional
        Integration window after the bolus arrival, s (60 or 90 usually).
    arrival : float or (...) array_like, optional
        Bolus arrival time, s (scalar, or one per curve). Detected with :func:`bolus_arrival`
        when None.

    Returns
    -------
    (...) ndarray of float64
        IAUGC over ``[arrival, arrival + window]``, mM s (divide by 60 for mM min). NaN when
        the window leaves the acquisition or the curve holds NaN.

    Notes
    -----
    The curve is taken as piecewise linear between frames and integrated exactly over the
    window (trapezoids, with partial first and last intervals).

    References
    ----------
    .. [1] Evelhoch JL. Key factors in the acquisition of contrast kinetic data for oncology.
       J Magn Reson Imaging 1999;10:254-9 (IAUGC as a model-free DCE endpoint).
    .. [2] Berks M, et al. Madym: A C++ toolkit for quantitative DCE-MRI analysis. JOSS 2021;
       6(66):3523. doi:10.21105/joss.03523 (the IAUC calibration values of the tests)

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(0.0, 200.0, 5.0)
    >>> ct = np.clip((t - 20.0) * 0.01, 0.0, None)          # 0.01 mM/s ramp from 20 s
    >>> round(float(iaugc(t, ct, window=60.0, arrival=20.0)), 9)   # 0.5 * 60 s * 0.6 mM
    18.0
    """
    tt, c2, lead = _curves(t, ct)
    w = float(window)
    if not np.isfinite(w) or w <= 0:
        raise TheraquantError(f"window must be a positive number of seconds, got {window!r}")
    a = _arrival_array(arrival, tt, c2, lead)
    cum = np.concatenate([np.zeros((c2.shape[0], 1)),
                          np.cumsum(0.5 * (c2[:, 1:] + c2[:, :-1]) * np.diff(tt), axis=-1)], axis=-1)
    end = a + w
    ok = np.isfinite(a) & (a >= tt[0]) & (end <= tt[-1] + 1e-9 * max(1.0, abs(tt[-1]))) & np.all(np.isfinite(c2), axis=-1)
    a_c = np.where(ok, a, tt[0])
    e_c = np.where(ok, np.minimum(end, tt[-1]), tt[0])
    out = _integral_to(tt, c2, cum, e_c) - _integral_to(tt, c2, cum, a_c)
    return np.where(ok, out, np.nan).reshape(lead)


def time_to_peak(t: ArrayLike, ct: ArrayLike, *, arrival: ArrayLike | None = None) -> NDArray[np.float64]:
    """Time from bolus arrival to the curve's maximum.

    Parameters
    ----------
    t : (T,) array_like
        Frame times, s.
    ct : (..., T) array_like
        Concentration curves, mM, time last.
    arrival : float or (...) array_like, optional
        Bolus arrival, s; detected with :func:`bolus_arrival` when None. Pass ``0.0`` (or the
        first frame time) for the time of the peak since the start of the acquisition.

    Returns
    -------
    (...) ndarray of float64
        ``t[argmax(ct)] - arrival``, s (frame resolution); NaN for curves holding NaN.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(0.0, 100.0, 1.0)
    >>> float(time_to_peak(t, np.exp(-((t - 40.0) / 5.0) ** 2), arrival=25.0))
    15.0
    """
    tt, c2, lead = _curves(t, ct)
    a = _arrival_array(arrival, tt, c2, lead)
    finite = np.all(np.isfinite(c2), axis=-1)
    tp = tt[np.argmax(np.where(np.isfinite(c2), c2, -np.inf), axis=-1)]
    return np.where(finite, tp - a, np.nan).reshape(lead)


def max_upslope(t: ArrayLike, ct: ArrayLike) -> NDArray[np.float64]:
    """Maximum slope between consecutive frames.

    Parameters
    ----------
    t : (T,) array_like
        Frame times, s.
    ct : (..., T) array_like
        Concentration curves, mM (or signal), time last.

    Returns
    -------
    (...) ndarray of float64
        ``max_i (c[i+1] - c[i]) / (t[i+1] - t[i])``, mM/s (units of ``ct`` per s); NaN for
        curves holding NaN.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.array([0.0, 10.0, 15.0, 30.0])
    >>> float(max_upslope(t, np.array([0.0, 1.0, 3.0, 2.0])))   # 2 mM over 5 s
    0.4
    """
    tt, c2, lead = _curves(t, ct)
    slope = np.diff(c2, axis=-1) / np.diff(tt)
    return np.max(slope, axis=-1).reshape(lead)


def enhancement_ratio(signal: ArrayLike, *, n_baseline: int, baseline_start: int = 0) -> NDArray[np.float64]:
    """Maximum relative signal enhancement ``(S_max - S_0) / S_0``.

    Parameters
    ----------
    signal : (..., T) array_like
        Signal (arbitrary units), time last.
    n_baseline : int
        Number of pre-contrast frames averaged for S_0.
    baseline_start : int, optional
        First baseline frame (default 0), as in :func:`signal_to_concentration`.

    Returns
    -------
    (...) ndarray of float64
        Dimensionless enhancement ratio; NaN where S_0 <= 0 or the curve holds NaN.

    Examples
    --------
    >>> float(enhancement_ratio([100.0, 100.0, 250.0, 180.0], n_baseline=2))
    1.5
    """
    s = np.asarray(signal, dtype=float)
    if s.ndim < 1:
        raise TheraquantError(f"signal must have time on its last axis, got a scalar {signal!r}")
    if isinstance(n_baseline, bool) or not isinstance(n_baseline, (int, np.integer)) or n_baseline < 1:
        raise TheraquantError(f"n_baseline must be a positive integer number of frames, got {n_baseline!r}")
    if baseline_start < 0 or baseline_start + n_baseline > s.shape[-1]:
        raise TheraquantError(f"baseline frames {baseline_start}..{baseline_start + n_baseline - 1} do not fit "
                              f"in the {s.shape[-1]} frames of the signal")
    s0 = s[..., baseline_start:baseline_start + n_baseline].mean(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        er = (s.max(axis=-1) - s0) / s0
    return np.where(s0 > 0, er, np.nan)


class ModelFreeResult(Result):
    """Model-free metrics per curve: a :class:`theraquant.results.Result` of arrays with the
    curves' leading shape.

    Keys (units): ``"arrival"`` (s), ``"IAUGC60"`` and ``"IAUGC90"`` (mM s; one key per
    window, named by the window in s), ``"TTP"`` (s from arrival), ``"max_upslope"`` (mM/s),
    ``"peak"`` (mM) and, when a signal was given, ``"enhancement_ratio"`` (dimensionless).
    ``settings`` records the windows and whether arrival was detected; ``maps`` is the mapping.
    """

    __slots__ = ("settings",)

    def __init__(self, *, maps: Mapping[str, NDArray[np.float64]], settings: dict[str, Any] | None = None):
        units = {k: ("mM*s" if k.startswith("IAUGC") else _UNITS[k]) for k in maps}
        super().__init__(maps, units=units, title="model-free DCE metrics")
        object.__setattr__(self, "settings", dict(settings or {}))

    @property
    def maps(self) -> Mapping[str, NDArray[np.float64]]:
        """The metrics, read-only."""
        return MappingProxyType(object.__getattribute__(self, "_data"))

    def __reduce__(self) -> Any:
        return (_rebuild_model_free, (dict(self.items()), self.settings))


def _rebuild_model_free(maps, settings) -> ModelFreeResult:
    return ModelFreeResult(maps=maps, settings=settings)


_UNITS = {"arrival": "s", "TTP": "s", "max_upslope": "mM/s", "peak": "mM", "enhancement_ratio": "1"}


def model_free(
    t: ArrayLike,
    ct: ArrayLike,
    *,
    arrival: ArrayLike | None = None,
    windows: tuple[float, ...] = (60.0, 90.0),
    signal: ArrayLike | None = None,
    n_baseline: int | None = None,
) -> ModelFreeResult:
    """All model-free metrics of concentration curves at once.

    Parameters
    ----------
    t : (T,) array_like
        Frame times, s, strictly increasing.
    ct : (..., T) array_like
        Tissue concentration, mM, time last.
    arrival : float or (...) array_like, optional
        Bolus arrival, s; detected per curve with :func:`bolus_arrival` when None.
    windows : tuple of float, optional
        IAUGC windows, s (default 60 and 90: keys ``"IAUGC60"``, ``"IAUGC90"``).
    signal : (..., T) array_like, optional
        The signal the concentration came from, for the enhancement ratio.
    n_baseline : int, optional
        Baseline frames for the enhancement ratio (required with ``signal``) and for the
        arrival detection (default 1 there).

    Returns
    -------
    ModelFreeResult
        Mapping of metric name to array (see :class:`ModelFreeResult`).

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(0.0, 200.0, 5.0)
    >>> res = model_free(t, np.clip((t - 20.0) * 0.01, 0.0, None), arrival=20.0)
    >>> round(float(res["IAUGC60"]), 9), round(float(res["IAUGC90"]), 9), round(float(res["max_upslope"]), 9)
    (18.0, 40.5, 0.01)
    >>> res.units["IAUGC60"], res.units["TTP"]
    ('mM*s', 's')
    """
    tt, c2, lead = _curves(t, ct)
    detected = arrival is None
    a = _arrival_array(arrival, tt, c2, lead, n_baseline or 1).reshape(lead)
    maps: dict[str, NDArray[np.float64]] = {"arrival": np.array(a, dtype=float)}
    for w in windows:
        key = f"IAUGC{float(w):g}"
        maps[key] = iaugc(tt, c2.reshape(*lead, tt.size), window=w, arrival=a)
    maps["TTP"] = time_to_peak(tt, c2.reshape(*lead, tt.size), arrival=a)
    maps["max_upslope"] = max_upslope(tt, c2.reshape(*lead, tt.size))
    maps["peak"] = np.max(c2, axis=-1).reshape(lead)
    if signal is not None:
        if n_baseline is None:
            raise TheraquantError("n_baseline is needed with signal (for the enhancement ratio); "
                                  "pass the number of pre-contrast frames")
        s = np.asarray(signal, dtype=float)
        if s.shape != (*lead, tt.size):
            raise TheraquantError(f"signal must have the shape of ct {(*lead, tt.size)}, got {s.shape}")
        maps["enhancement_ratio"] = enhancement_ratio(s, n_baseline=n_baseline)
    return ModelFreeResult(maps=maps, settings={"windows_s": [float(w) for w in windows],
                                                "arrival_detected": detected})
