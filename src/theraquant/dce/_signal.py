"""Spoiled gradient-echo (SPGR) signal <-> contrast-agent concentration.

Fast water exchange and a linear relaxivity are assumed throughout:
``R1(t) = R10 + r1 * C(t)``, and the steady-state SPGR signal is

    S = M0 sin(a) (1 - E1) / (1 - cos(a) E1),   E1 = exp(-TR R1).

References
----------
.. [1] Schabel MC, Parker DL. Uncertainty and bias in contrast concentration measurements
   using spoiled gradient echo pulse sequences. Phys Med Biol 2008;53:2345-73.
   doi:10.1088/0031-9155/53/9/010
.. [2] van Houdt PJ, et al. Contrast-agent-based perfusion MRI code repository and testing
   framework: ISMRM Open Science Initiative for Perfusion Imaging (OSIPI). Magn Reson Med
   2024. doi:10.1002/mrm.29826 (the SI-to-concentration reference data)
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..errors import TheraquantError
from ..results import Result

__all__ = [
    "signal_to_concentration",
    "concentration_to_signal",
    "spgr_signal",
    "ConcentrationResult",
    "InvalidSignalWarning",
]


class InvalidSignalWarning(RuntimeWarning):
    """Some signal samples could not be converted (saturated, non-positive or non-finite).

    The warning's ``count`` attribute holds the number of samples set to NaN.
    """

    def __init__(self, message: str, count: int = 0) -> None:
        super().__init__(message)
        self.count = count


class ConcentrationResult(Result):
    """Concentration curves and the bookkeeping of samples that could not be converted.

    A :class:`theraquant.results.Result`: ``result["conc"]`` / ``result.conc``, ``invalid`` and
    ``s0`` are its fields; ``n_invalid``, ``n_invalid_voxels`` and ``settings`` attributes.

    Attributes
    ----------
    conc : (..., T) ndarray of float64
        Contrast-agent concentration, mM; NaN where the signal was invalid.
    invalid : (..., T) ndarray of bool
        True where the sample became NaN: signal non-finite or <= 0, signal at or above the
        SPGR maximum ``M0 sin(a)`` (saturated: no finite R1 can produce it), or the voxel's
        baseline, T10 or flip angle is unusable.
    n_invalid : int
        Number of NaN samples (``invalid.sum()``).
    n_invalid_voxels : int
        Number of curves (voxels) with at least one NaN sample.
    s0 : (...) ndarray of float64
        Equilibrium magnetisation M0 derived from the baseline, same units as the signal.
    settings : dict
        The conversion settings (units in the key names), for provenance.
    """

    __slots__ = ("n_invalid", "n_invalid_voxels", "settings")
    _UNITS = {"conc": "mM", "invalid": "", "s0": "a.u."}

    def __init__(self, *, conc: NDArray[np.float64], invalid: NDArray[np.bool_], n_invalid: int,
                 n_invalid_voxels: int, s0: NDArray[np.float64], settings: dict[str, Any]):
        super().__init__({"conc": conc, "invalid": invalid, "s0": s0}, title="signal to concentration")
        object.__setattr__(self, "n_invalid", int(n_invalid))
        object.__setattr__(self, "n_invalid_voxels", int(n_invalid_voxels))
        object.__setattr__(self, "settings", dict(settings))

    def __reduce__(self) -> Any:
        return (_rebuild_conc, (dict(self.items()), self.n_invalid, self.n_invalid_voxels, self.settings))


def _rebuild_conc(fields, n_invalid, n_invalid_voxels, settings) -> ConcentrationResult:
    return ConcentrationResult(**fields, n_invalid=n_invalid, n_invalid_voxels=n_invalid_voxels, settings=settings)


# ---------------------------------------------------------------- argument checks (shared with _t1)
def _positive_scalar(value: Any, name: str, unit: str, fix: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TheraquantError(f"{name} must be one positive number in {unit}, got {value!r}; {fix}") from None
    if not np.isfinite(v) or v <= 0:
        raise TheraquantError(f"{name} must be a positive finite number in {unit}, got {value!r}; {fix}")
    return v


def _check_tr(tr: Any) -> float:
    return _positive_scalar(tr, "tr", "s", "pass the repetition time in seconds (e.g. 0.005 for 5 ms)")


def _check_flip_degrees(flip: ArrayLike, name: str = "flip_angle", *, allow_nan: bool = False) -> NDArray[np.float64]:
    """Flip angle(s) in degrees: finite, in (0, 180); all < 1 is taken as radians by mistake.

    With ``allow_nan`` (per-voxel maps) non-finite entries pass and make their voxels NaN,
    as long as some entry is finite.
    """
    arr = np.asarray(flip, dtype=float)
    fin = np.isfinite(arr)
    if arr.size == 0 or not (np.any(fin) if allow_nan else np.all(fin)):
        raise TheraquantError(f"{name} must hold finite flip angles in degrees, got {flip!r}; "
                              "remove NaN/inf values")
    arr_f = arr[fin]
    if np.any(arr_f <= 0) or np.any(arr_f >= 180):
        raise TheraquantError(f"{name} must lie in (0, 180) degrees, got {flip!r}; "
                              "pass the nominal excitation flip angle in degrees")
    if np.all(arr_f < 1.0):
        raise TheraquantError(
            f"{name} must be in degrees, got {flip!r}: every value is below 1, which looks like "
            "radians; convert with numpy.degrees(...)")
    return arr


def _broadcast_voxelwise(value: ArrayLike, lead_shape: tuple[int, ...], name: str) -> NDArray[np.float64]:
    """Scalar or per-voxel array (the signal's leading shape), as float64 of that shape."""
    arr = np.asarray(value, dtype=float)
    try:
        return np.broadcast_to(arr, lead_shape)
    except ValueError:
        raise TheraquantError(
            f"{name} must be a scalar or one value per voxel with the signal's leading shape "
            f"{lead_shape}, got shape {arr.shape}; time (or flip angle) must be the LAST axis "
            "of the signal") from None


# ---------------------------------------------------------------- forward model
def spgr_signal(m0: ArrayLike, r1: ArrayLike, tr: float, flip_angle: ArrayLike) -> NDArray[np.float64]:
    """Steady-state spoiled gradient-echo signal.

    Parameters
    ----------
    m0 : array_like
        Equilibrium magnetisation (signal units).
    r1 : array_like
        Longitudinal relaxation rate R1, 1/s.
    tr : float
        Repetition time, s.
    flip_angle : array_like
        Flip angle, degrees. All arguments broadcast together.

    Returns
    -------
    ndarray of float64
        ``M0 sin(a) (1 - E1) / (1 - cos(a) E1)`` with ``E1 = exp(-TR R1)``.

    References
    ----------
    .. [1] Schabel MC, Parker DL. Phys Med Biol 2008;53:2345-73. doi:10.1088/0031-9155/53/9/010

    Examples
    --------
    >>> round(float(spgr_signal(1000.0, 1 / 1.5, 0.0035, 10.0)), 4)  # Madym's T1 calibration
    23.1427
    """
    a = np.deg2rad(np.asarray(flip_angle, dtype=float))
    e1 = np.exp(-float(tr) * np.asarray(r1, dtype=float))
    return np.asarray(m0, dtype=float) * np.sin(a) * (1.0 - e1) / (1.0 - np.cos(a) * e1)


_CHUNK = 1 << 15  # voxels per block in signal_to_concentration


def _convert_block(s: NDArray, t10: NDArray, a: NDArray, tr: float, r1: float, start: int,
                   n_bl: int) -> tuple[NDArray, NDArray, NDArray]:
    """Concentration (n, T), validity (n, T) and M0 (n,) for a block of curves; ``a`` in rad."""
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        a = a[:, None]
        e10 = np.exp(-tr / t10)[:, None]
        s_bl = np.mean(s[:, start:start + n_bl], axis=-1, keepdims=True)
        m0 = s_bl * (1.0 - np.cos(a) * e10) / (np.sin(a) * (1.0 - e10))
        y = s / (m0 * np.sin(a))
        ok = (np.isfinite(y) & (y > 0) & (y < 1) & (t10[:, None] > 0) & np.isfinite(m0) & (m0 > 0)
              & np.isfinite(a))
        e1 = np.where(ok, (1.0 - y) / (1.0 - y * np.cos(a)), 1.0)
        r1t = -np.log(e1) / tr
        conc = np.where(ok, (r1t - 1.0 / t10[:, None]) / r1, np.nan)
    return conc, ok, m0[:, 0]


# ---------------------------------------------------------------- public API
def signal_to_concentration(
    signal: ArrayLike,
    *,
    t10: ArrayLike,
    r1: float,
    tr: float,
    flip_angle: ArrayLike,
    n_baseline: int,
    baseline_start: int = 0,
    return_info: bool = False,
) -> NDArray[np.float64] | ConcentrationResult:
    """Convert SPGR signal curves to contrast-agent concentration.

    Parameters
    ----------
    signal : (..., T) array_like
        Signal intensity (arbitrary units), time on the last axis; any leading shape
        (one curve, ROIs, a volume).
    t10 : float or (...) array_like
        Pre-contrast T1 (T10), s; one value or one per voxel (the signal's leading shape).
        Voxels with a non-finite or non-positive T10 (e.g. outside a T1 map's mask) become NaN.
    r1 : float
        Longitudinal relaxivity of the agent, 1/(mM s) (e.g. 4.5 for gadoterate at 1.5 T).
    tr : float
        Repetition time, s.
    flip_angle : float or (...) array_like
        Flip angle, degrees (scalar, or per voxel e.g. after a B1 correction).
    n_baseline : int
        Number of pre-contrast frames averaged for the baseline signal S_BL.
    baseline_start : int, optional
        Index of the first baseline frame (default 0): the baseline is the mean of frames
        ``baseline_start .. baseline_start + n_baseline - 1``, i.e. by default *the mean of the
        first n_baseline frames*. Pass 1 to skip a first frame that has not reached the steady
        state (the OSIPI SI-to-concentration reference uses ``mean(s[1:n])``).
    return_info : bool, optional
        If False (default) return the concentration array; if True return a
        :class:`ConcentrationResult` with the invalid-sample mask and counts.

    Returns
    -------
    conc : (..., T) ndarray of float64
        Concentration, mM, the signal's shape; or a :class:`ConcentrationResult`.
        Samples whose signal is non-finite, non-positive, or at/above the SPGR maximum
        ``M0 sin(a)`` (saturated, no finite R1 explains them) are NaN; if there are any and
        ``return_info`` is False, an :class:`InvalidSignalWarning` carrying the count is issued.

    Notes
    -----
    ``M0 = S_BL (1 - cos(a) E10) / (sin(a) (1 - E10))`` with ``E10 = exp(-TR/T10)``; for each
    sample ``y = S / (M0 sin a)``, ``E1 = (1 - y) / (1 - y cos a)``, ``R1 = -ln(E1)/TR`` and
    ``C = (R1 - 1/T10) / r1``. Valid samples have ``0 < y < 1``.

    References
    ----------
    .. [1] Schabel MC, Parker DL. Phys Med Biol 2008;53:2345-73. doi:10.1088/0031-9155/53/9/010

    Examples
    --------
    >>> import numpy as np
    >>> c = np.array([0.0, 0.0, 0.5, 1.0])                     # mM
    >>> s = concentration_to_signal(c, t10=1.4, r1=4.5, tr=0.005, flip_angle=15.0, m0=1000.0)
    >>> np.round(signal_to_concentration(s, t10=1.4, r1=4.5, tr=0.005, flip_angle=15.0,
    ...                                  n_baseline=2), 6)
    array([0. , 0. , 0.5, 1. ])
    """
    s = np.asarray(signal)
    if s.dtype.kind not in "fiu":
        s = s.astype(float)  # float32/int volumes stay as they are; blocks are cast to float64
    if s.ndim < 1 or s.shape[-1] < 2:
        raise TheraquantError(f"signal must have time on its last axis with >= 2 frames, got shape {s.shape}; "
                              "pass a (..., T) array (for a 4-D image: (z, y, x, t))")
    n_t = s.shape[-1]
    tr_s = _check_tr(tr)
    r1_v = _positive_scalar(r1, "r1", "1/(mM s)", "pass the agent's relaxivity, e.g. 4.5")
    if isinstance(n_baseline, bool) or not isinstance(n_baseline, (int, np.integer)) or n_baseline < 1:
        raise TheraquantError(f"n_baseline must be a positive integer number of frames, got {n_baseline!r}")
    if isinstance(baseline_start, bool) or not isinstance(baseline_start, (int, np.integer)) or baseline_start < 0:
        raise TheraquantError(f"baseline_start must be a non-negative frame index, got {baseline_start!r}")
    if baseline_start + n_baseline > n_t:
        raise TheraquantError(
            f"baseline frames {baseline_start}..{baseline_start + n_baseline - 1} do not fit in the "
            f"{n_t} frames of the signal; reduce n_baseline (got {n_baseline})")
    lead = s.shape[:-1]
    fa = _broadcast_voxelwise(_check_flip_degrees(flip_angle, allow_nan=np.ndim(flip_angle) > 0), lead, "flip_angle")
    t10_a = _broadcast_voxelwise(t10, lead, "t10")
    t10_fin = t10_a[np.isfinite(t10_a)]
    if t10_fin.size and t10_fin.max() > 100.0:
        raise TheraquantError(f"t10 must be in seconds, got values up to {t10_fin.max():g}, which look "
                              "like milliseconds; divide by 1000")

    # voxels in chunks: bounded temporaries for whole volumes (the loop is over blocks, not voxels)
    n = int(np.prod(lead, dtype=np.int64))
    s2 = s.reshape(n, n_t)
    fa2 = np.deg2rad(fa.reshape(n))
    t102 = t10_a.reshape(n)
    conc = np.empty((n, n_t))
    ok = np.empty((n, n_t), dtype=bool)
    m0 = np.empty(n)
    for lo in range(0, n, _CHUNK):
        hi = min(n, lo + _CHUNK)
        conc[lo:hi], ok[lo:hi], m0[lo:hi] = _convert_block(
            s2[lo:hi].astype(np.float64), t102[lo:hi], fa2[lo:hi], tr_s, r1_v, baseline_start, n_baseline)
    conc = conc.reshape(s.shape)
    ok = ok.reshape(s.shape)
    m0 = m0.reshape(lead)[..., None]
    invalid = ~ok
    n_bad = int(invalid.sum())
    settings = {"r1_per_mM_per_s": r1_v, "tr_s": tr_s, "n_baseline": int(n_baseline),
                "baseline_start": int(baseline_start), "signal_model": "SPGR, fast exchange"}
    if return_info:
        return ConcentrationResult(conc=conc, invalid=invalid, n_invalid=n_bad,
                                   n_invalid_voxels=int(np.any(invalid, axis=-1).sum()),
                                   s0=m0[..., 0], settings=settings)
    if n_bad:
        warnings.warn(InvalidSignalWarning(
            f"{n_bad} of {invalid.size} signal samples could not be converted (saturated above the SPGR "
            "maximum, non-positive or non-finite) and are NaN; pass return_info=True for the mask",
            n_bad), stacklevel=2)
    return conc


def concentration_to_signal(
    conc: ArrayLike,
    *,
    t10: ArrayLike,
    r1: float,
    tr: float,
    flip_angle: ArrayLike,
    m0: ArrayLike = 1.0,
) -> NDArray[np.float64]:
    """SPGR signal for given concentration curves (the inverse of :func:`signal_to_concentration`).

    Parameters
    ----------
    conc : (..., T) array_like
        Concentration, mM, time on the last axis.
    t10 : float or (...) array_like
        Pre-contrast T1, s, scalar or per voxel.
    r1 : float
        Relaxivity, 1/(mM s).
    tr : float
        Repetition time, s.
    flip_angle : float or (...) array_like
        Flip angle, degrees.
    m0 : float or (...) array_like, optional
        Equilibrium magnetisation (signal units), default 1.

    Returns
    -------
    (..., T) ndarray of float64
        Signal, same units as ``m0``.

    Examples
    --------
    >>> import numpy as np
    >>> s = concentration_to_signal(np.array([0.0, 1.0]), t10=1.0, r1=4.5, tr=0.005,
    ...                             flip_angle=20.0, m0=100.0)
    >>> bool(s[1] > s[0])  # T1 shortening brightens an SPGR image
    True
    """
    c = np.asarray(conc, dtype=float)
    if c.ndim < 1:
        raise TheraquantError(f"conc must have time on its last axis, got a scalar {conc!r}; pass a (..., T) array")
    tr_s = _check_tr(tr)
    r1_v = _positive_scalar(r1, "r1", "1/(mM s)", "pass the agent's relaxivity, e.g. 4.5")
    lead = c.shape[:-1]
    fa = _broadcast_voxelwise(_check_flip_degrees(flip_angle), lead, "flip_angle")[..., None]
    t10_a = _broadcast_voxelwise(t10, lead, "t10")[..., None]
    m0_a = _broadcast_voxelwise(m0, lead, "m0")[..., None]
    with np.errstate(divide="ignore", invalid="ignore"):
        return spgr_signal(m0_a, 1.0 / t10_a + r1_v * c, tr_s, fa)
