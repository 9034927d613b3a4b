"""Lesion size measured from a mask: the longest axial diameter (RECIST 1.1 / mRECIST measurement)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ..errors import TheraquantError
from ..image import as_mask, normalize_spacing

__all__ = ["longest_axial_diameter"]


def longest_axial_diameter(mask: ArrayLike, spacing_mm: ArrayLike) -> float:
    """Longest in-plane diameter of a segmented lesion over its axial slices, mm.

    Parameters
    ----------
    mask : (Z, Y, X) array_like of bool
        The lesion, slices along the first axis (axial acquisition).
    spacing_mm : float or (3,) array_like
        Voxel size (z, y, x), mm.

    Returns
    -------
    float
        The largest, over slices, of the longest distance between two points of the lesion's
        footprint in that slice (the Feret diameter of the union of its pixel squares, edge to
        edge), mm; 0.0 for an empty mask (a lesion that disappeared).

    Notes
    -----
    RECIST 1.1 measures the longest diameter in the axial plane [1]_; a reader measures edge
    to edge, so each pixel counts with its full extent. Per slice the farthest pair of pixel
    corners lies on their convex hull, so only the hull vertices are compared.

    References
    ----------
    .. [1] Eisenhauer EA, et al. New response evaluation criteria in solid tumours: revised
       RECIST guideline (version 1.1). Eur J Cancer 2009;45:228-47. doi:10.1016/j.ejca.2008.10.026

    Examples
    --------
    >>> import numpy as np
    >>> m = np.zeros((3, 10, 10), bool); m[1, 2:5, 2:6] = True       # 3 x 4 pixels of 2 mm
    >>> round(longest_axial_diameter(m, (5.0, 2.0, 2.0)), 6)          # hypot(6, 8)
    10.0
    """
    from scipy.spatial import ConvexHull, QhullError

    m = np.asarray(mask)
    if m.ndim != 3:
        raise TheraquantError(f"mask must be 3-D (z, y, x), got shape {m.shape}", argument="mask")
    m = as_mask(m, name="mask")
    _, dy, dx = normalize_spacing(spacing_mm)
    corners = np.array([[-0.5, -0.5], [-0.5, 0.5], [0.5, -0.5], [0.5, 0.5]])
    best = 0.0
    for z in np.flatnonzero(m.any(axis=(1, 2))):
        yx = np.argwhere(m[z]).astype(float)
        pts = (yx[:, None, :] + corners[None]).reshape(-1, 2) * (dy, dx)
        try:
            pts = pts[ConvexHull(pts).vertices]
        except QhullError:  # collinear pixels cannot happen with corners, but stay safe
            pass
        d = np.sqrt(((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1)).max()
        best = max(best, float(d))
    return best
