"""Phantom anatomy in patient space (LPS, mm): body, liver, lesions, vessels, muscle; grids; blur.

Every structure is an analytic shape in millimetres, rasterised on each image's own grid
(voxel centre inside the shape), so that the masks of all of a patient's series agree in
physical space (one FrameOfReferenceUID: the series are registered by construction).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..image import Image

__all__ = ["Lesion", "Anatomy", "make_anatomy", "grid", "world", "blur", "FWHM_TO_SIGMA"]

FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))


@dataclass(frozen=True)
class Lesion:
    """A spherical lesion: id text, centre (LPS mm) and radius (mm)."""

    lesion_id: str
    center: tuple[float, float, float]
    radius_mm: float

    def resized(self, radius_mm: float) -> "Lesion":
        return replace(self, radius_mm=float(radius_mm))


@dataclass(frozen=True)
class Anatomy:
    """Analytic anatomy of one patient (all in LPS mm)."""

    body_semi: tuple[float, float] = (130.0, 100.0)            # ellipse in x, y (any z)
    liver_center: tuple[float, float, float] = (-45.0, 5.0, 0.0)
    liver_semi: tuple[float, float, float] = (70.0, 60.0, 50.0)
    aorta: tuple[float, float, float] = (32.0, 40.0, 11.0)    # x, y, radius (cylinder along z)
    portal_vein: tuple[float, float, float] = (2.0, 2.0, 7.0)
    muscle: tuple[float, float, float, float] = (0.0, 84.0, 35.0, 11.0)  # ellipse x, y, semi x, semi y
    lesions: tuple[Lesion, ...] = field(default_factory=tuple)

    def masks(self, img: Image, *, lesions: tuple[Lesion, ...] | None = None) -> dict[str, NDArray[np.bool_]]:
        """Boolean masks on ``img``'s grid: body, liver (parenchyma without vessels and lesions),
        aorta, portal vein, muscle, blood pool (aorta core, radius - 4 mm) and ``lesion <id>``."""
        x, y, z = world(img)
        bx, by = self.body_semi
        body = (x / bx) ** 2 + (y / by) ** 2 <= 1.0
        body = np.broadcast_to(body, img.shape).copy()
        cx, cy, cz = self.liver_center
        ax, ay, az = self.liver_semi
        liver_env = ((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2 + ((z - cz) / az) ** 2 <= 1.0
        ao = np.broadcast_to((x - self.aorta[0]) ** 2 + (y - self.aorta[1]) ** 2 <= self.aorta[2] ** 2, img.shape)
        bp = np.broadcast_to((x - self.aorta[0]) ** 2 + (y - self.aorta[1]) ** 2 <= (self.aorta[2] - 4.0) ** 2,
                             img.shape)
        pv = np.broadcast_to((x - self.portal_vein[0]) ** 2 + (y - self.portal_vein[1]) ** 2
                             <= self.portal_vein[2] ** 2, img.shape)
        mx, my, msx, msy = self.muscle
        mu = np.broadcast_to(((x - mx) / msx) ** 2 + ((y - my) / msy) ** 2 <= 1.0, img.shape)
        out: dict[str, NDArray[np.bool_]] = {}
        les_all = np.zeros(img.shape, bool)
        for les in (self.lesions if lesions is None else lesions):
            m = ((x - les.center[0]) ** 2 + (y - les.center[1]) ** 2 + (z - les.center[2]) ** 2
                 <= les.radius_mm ** 2)
            m = np.broadcast_to(m, img.shape).copy()
            out[f"lesion {les.lesion_id}"] = m
            les_all |= m
        liver = np.broadcast_to(liver_env, img.shape) & ~pv & ~ao & ~les_all
        return {"body": body, "liver": liver, "aorta": ao.copy(), "portal vein": pv.copy() & ~les_all,
                "blood pool": bp.copy(), "muscle": mu.copy() & ~np.broadcast_to(liver_env, img.shape), **out}


def make_anatomy(rng: np.random.Generator, n_lesions: int, *, radius_mm: tuple[float, float] = (5.0, 15.0),
                 z_max_mm: float = 16.0, gap_mm: float = 14.0) -> Anatomy:
    """Anatomy with ``n_lesions`` non-overlapping spherical lesions inside the liver, away from the vessels."""
    base = Anatomy()
    cx, cy, cz = base.liver_center
    ax, ay, az = base.liver_semi
    lesions: list[Lesion] = []
    tries = 0
    while len(lesions) < n_lesions:
        tries += 1
        if tries > 4000:  # no room left: fewer lesions (rare; deterministic for a seed)
            break
        r = float(rng.uniform(*radius_mm))
        c = np.array([cx + rng.uniform(-0.62, 0.62) * ax, cy + rng.uniform(-0.62, 0.62) * ay,
                      rng.uniform(-z_max_mm, z_max_mm)])
        # inside the liver with a margin of 8 mm
        if ((abs(c[0] - cx) + r + 0.5 * gap_mm) / ax) ** 2 + ((abs(c[1] - cy) + r + 0.5 * gap_mm) / ay) ** 2 > 1.0:
            continue
        if np.hypot(c[0] - base.portal_vein[0], c[1] - base.portal_vein[1]) < r + base.portal_vein[2] + 10:
            continue
        if any(np.linalg.norm(c - np.array(o.center)) < r + o.radius_mm + gap_mm for o in lesions):
            continue
        lesions.append(Lesion(str(len(lesions) + 1), (float(c[0]), float(c[1]), float(c[2])), r))
    return replace(base, lesions=tuple(lesions))


def grid(shape: tuple[int, int, int], spacing_mm: tuple[float, float, float], *,
         shift_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> Image:
    """An axis-aligned grid centred on the LPS origin (plus ``shift_mm`` in x, y, z)."""
    nz, ny, nx = shape
    dz, dy, dx = spacing_mm
    origin = (-(nx - 1) / 2 * dx + shift_mm[0], -(ny - 1) / 2 * dy + shift_mm[1], -(nz - 1) / 2 * dz + shift_mm[2])
    return Image.from_spacing(np.zeros(shape, np.float32), spacing_mm, origin_lps=origin)


def world(img: Image) -> tuple[NDArray, NDArray, NDArray]:
    """LPS x, y, z (mm) of the voxel centres of an axis-aligned grid, broadcastable to (z, y, x)."""
    nz, ny, nx = img.shape
    a = img.affine
    x = (a[0, 3] + a[0, 2] * np.arange(nx))[None, None, :]
    y = (a[1, 3] + a[1, 1] * np.arange(ny))[None, :, None]
    z = (a[2, 3] + a[2, 0] * np.arange(nz))[:, None, None]
    return x, y, z


def blur(values: NDArray[np.float64], spacing_mm: tuple[float, float, float], fwhm_mm: float) -> NDArray[np.float64]:
    """Gaussian scanner blur of FWHM ``fwhm_mm`` (mm), edges by reflection."""
    from scipy.ndimage import gaussian_filter

    sigma = [fwhm_mm * FWHM_TO_SIGMA / s for s in spacing_mm]
    return gaussian_filter(np.asarray(values, dtype=np.float64), sigma, mode="nearest")


def describe(anat: Anatomy) -> dict[str, Any]:
    return {"lesions": [{"id": l.lesion_id, "center_mm": list(l.center), "radius_mm": l.radius_mm}
                        for l in anat.lesions]}
