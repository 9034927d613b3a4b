"""Mass density from CT numbers (HU), for density-corrected voxel dosimetry."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..errors import TheraquantError

__all__ = ["density_from_ct", "GENERIC_CT_CALIBRATION"]

#: Generic piecewise-linear HU -> mass density (g/mL) curve: air, water, and the ICRU 46
#: cortical-bone point (1.92 g/mL) placed at 1600 HU, as in bilinear calibrations for
#: diagnostic CT at 120 kVp. Scanner- and kVp-specific points (from a density phantom) should
#: replace it where available.
GENERIC_CT_CALIBRATION: tuple[tuple[float, float], ...] = ((-1000.0, 0.0012), (0.0, 1.0), (1600.0, 1.92))


def density_from_ct(hu: ArrayLike, *, calibration: Sequence[tuple[float, float]] | None = None,
                    minimum_g_ml: float = 0.0012) -> NDArray[np.float64]:
    """Mass density per voxel from CT numbers, g/mL, by a piecewise-linear calibration.

    Parameters
    ----------
    hu : array_like
        CT numbers, HU, on the activity map's grid (resample the CT first, e.g.
        ``ct.resample_like(pet)`` on :class:`theraquant.Image`).
    calibration : sequence of (HU, g/mL) pairs, optional
        Calibration points, HU strictly increasing; outside them the end segments are
        extrapolated linearly. None uses :data:`GENERIC_CT_CALIBRATION`.
    minimum_g_ml : float
        Lower clip, g/mL (air), so that extrapolation below -1000 HU stays physical.

    Returns
    -------
    ndarray of float64 (float64 scalar for a scalar input)
        Density, g/mL; pass it as ``density=`` to :func:`theraquant.dosimetry.absorbed_dose`.

    References
    ----------
    .. [1] Schneider U, Pedroni E, Lomax A. The calibration of CT Hounsfield units for
       radiotherapy treatment planning. Phys Med Biol 1996;41:111-24. doi:10.1088/0031-9155/41/1/009
    .. [2] ICRU Report 46 (1992): tissue compositions and densities.

    Examples
    --------
    >>> density_from_ct([-1000.0, 0.0, 40.0, 800.0]).round(4).tolist()
    [0.0012, 1.0, 1.023, 1.46]
    """
    pts = np.asarray(GENERIC_CT_CALIBRATION if calibration is None else calibration, dtype=float)
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < 2:
        raise TheraquantError(f"calibration must be at least two (HU, g/mL) pairs, got {calibration!r}")
    if not np.all(np.isfinite(pts)) or np.any(np.diff(pts[:, 0]) <= 0) or np.any(pts[:, 1] <= 0):
        raise TheraquantError("calibration HU values must increase strictly and densities be positive (g/mL), "
                              f"got {pts.tolist()}")
    h = np.asarray(hu, dtype=float)
    if not np.all(np.isfinite(h)):
        raise TheraquantError(f"hu holds {int(np.size(h) - np.count_nonzero(np.isfinite(h)))} NaN or infinite "
                              "value(s); fill the CT's missing voxels (e.g. with -1000 HU outside the scan)")
    x, y = pts[:, 0], pts[:, 1]
    scalar = h.ndim == 0
    h = np.atleast_1d(h)
    rho = np.interp(h, x, y)
    lo, hi = h < x[0], h > x[-1]
    rho[lo] = y[0] + (h[lo] - x[0]) * (y[1] - y[0]) / (x[1] - x[0])
    rho[hi] = y[-1] + (h[hi] - x[-1]) * (y[-1] - y[-2]) / (x[-1] - x[-2])
    rho = np.maximum(rho, minimum_g_ml)
    return rho[0] if scalar else rho
