"""The one image type of theraquant: an array and its affine.

Convention
----------
``Image.array`` is indexed ``(z, y, x)`` (3-D) or ``(z, y, x, t)`` (4-D, time
or another sample axis last). ``Image.affine`` is a 4x4 matrix that maps an
array index ``(z, y, x, 1)`` to **DICOM patient coordinates, LPS, in mm**:
``+x`` towards the patient's left, ``+y`` posterior, ``+z`` head. This is the
frame DICOM stores (ImagePositionPatient, ImageOrientationPatient) and the
one SimpleITK uses, so DICOM needs no conversion; NIfTI's RAS frame and its
``(i, j, k) = (x, y, z)`` index order are converted in :mod:`theraquant.io`
only.

The science engines take plain arrays and ``spacing_mm``; an ``Image`` carries
the geometry between the readers, the engines and the writers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .errors import TheraquantError

__all__ = ["Image", "normalize_spacing", "check_same_shape", "as_mask"]


def normalize_spacing(spacing_mm: ArrayLike, ndim: int = 3, *, name: str = "spacing_mm") -> tuple[float, ...]:
    """Return ``spacing_mm`` as a tuple of ``ndim`` positive finite floats (mm).

    A scalar means isotropic voxels.

    Examples
    --------
    >>> normalize_spacing(2.0)
    (2.0, 2.0, 2.0)
    >>> normalize_spacing((3, 4.07, 4.07))
    (3.0, 4.07, 4.07)
    """
    arr = np.asarray(spacing_mm, dtype=float)
    if arr.ndim == 0:
        arr = np.full(ndim, float(arr))
    if arr.shape != (ndim,) or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise TheraquantError(
            f"{name} must hold {ndim} positive voxel sizes (z, y, x) in mm, got {spacing_mm!r}; "
            "take them from the image (img.spacing_mm), not from the array shape"
        )
    return tuple(float(v) for v in arr)


def check_same_shape(a: NDArray, b: NDArray, *, names: tuple[str, str] = ("values", "mask")) -> None:
    """Raise :class:`TheraquantError` unless ``a`` and ``b`` have the same shape."""
    if np.shape(a) != np.shape(b):
        raise TheraquantError(
            f"{names[0]} and {names[1]} must be on the same grid: shapes {np.shape(a)} and "
            f"{np.shape(b)} differ; resample one onto the other first (Image.resample_like)"
        )


def as_mask(mask: ArrayLike, *, name: str = "mask", shape: tuple[int, ...] | None = None) -> NDArray[np.bool_]:
    """``mask`` as a boolean array, or a :class:`TheraquantError` saying how to make one.

    The engines take boolean masks. Arrays of another dtype are accepted only when they hold
    nothing but 0 and 1 (a lossless conversion); a label image (other integers), a fractional
    or probability mask, or NaN raise, with the expression that makes a mask (``labels == k``,
    ``prob >= 0.5``): a mask is never cast silently.

    Parameters
    ----------
    mask : array_like
        The mask.
    name : str
        The argument's name, for the message (and ``TheraquantError.argument``).
    shape : tuple of int, optional
        The shape it must have (that of the image it belongs to).

    Examples
    --------
    >>> import numpy as np
    >>> as_mask(np.array([0, 1, 1], np.uint8)).tolist()
    [False, True, True]
    >>> as_mask(np.array([0, 2, 3]), name="lesion_mask")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    theraquant.errors.TheraquantError: lesion_mask is a label image (values [0, 2, 3]), not a mask; ... lesion_mask == 2
    """
    m = np.asarray(mask)
    if shape is not None and m.shape != tuple(shape):
        raise TheraquantError(f"{name} has shape {m.shape} but the image has {tuple(shape)}; resample the mask "
                              "onto the image grid first (Image.resample_like)", argument=name)
    if m.dtype == bool:
        return m
    if m.dtype.kind not in "iuf":
        raise TheraquantError(f"{name} must be a boolean array, got dtype {m.dtype}; make one with a comparison, "
                              f"e.g. labels == 1", argument=name)
    if m.dtype.kind == "f" and np.isnan(m).any():
        raise TheraquantError(f"{name} holds {int(np.isnan(m).sum())} NaN value(s): a mask is True/False; make "
                              f"one with e.g. np.nan_to_num({name}) > 0.5 after checking what NaN meant", argument=name)
    is01 = (m == 0) | (m == 1)
    if is01.all():
        return m.astype(bool)
    if m.dtype.kind == "f" and np.all(m[~is01] == np.round(m[~is01])):
        kind = "label image"
    elif m.dtype.kind == "f":
        vals = m[~is01]
        raise TheraquantError(
            f"{name} is a fractional (probability) mask with values other than 0 and 1 (e.g. "
            f"{float(vals.flat[0]):g}), not a boolean mask; threshold it, e.g. {name} >= 0.5", argument=name)
    else:
        kind = "label image"
    labels = np.unique(m)
    shown = [int(v) if float(v).is_integer() else float(v) for v in labels[:6]]
    example = next((v for v in shown if v not in (0, 1)), shown[-1])
    raise TheraquantError(f"{name} is a {kind} (values {shown}{', ...' if labels.size > 6 else ''}), not a mask; "
                          f"make one mask per label, e.g. {name} == {example}", argument=name)


@dataclass(frozen=True, eq=False)
class Image:
    """An image: a numpy array indexed (z, y, x[, t]) and its LPS affine.

    Parameters
    ----------
    array : (Z, Y, X) or (Z, Y, X, T) ndarray
        Voxel values, in ``units``.
    affine : (4, 4) array_like
        Maps the array index ``(z, y, x, 1)`` to LPS patient coordinates, mm.
    units : str, optional
        Unit of the voxel values (UCUM-like: ``"Bq/mL"``, ``"g/mL"`` for SUV,
        ``"mM"``, ``"Gy"``, ``"1/min"``...). Empty when unknown.
    frame_times_s : (T,) array_like, optional
        For 4-D images, the time of each frame in s from the series start.
    meta : mapping, optional
        Anything else the reader knew (series description, per-frame headers).

    Examples
    --------
    >>> import numpy as np
    >>> img = Image.from_spacing(np.zeros((10, 20, 30)), (3.0, 2.0, 2.0))
    >>> img.spacing_mm
    (3.0, 2.0, 2.0)
    >>> round(img.voxel_volume_ml, 4)
    0.012
    >>> img.index_to_world([1, 0, 0]).tolist()  # one slice along z: 3 mm towards the head
    [0.0, 0.0, 3.0]
    """

    array: NDArray
    affine: NDArray[np.float64]
    units: str = ""
    frame_times_s: NDArray[np.float64] | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        array = np.asarray(self.array)
        if array.ndim not in (3, 4):
            raise TheraquantError(
                f"Image array must be 3-D (z, y, x) or 4-D (z, y, x, t), got shape {array.shape}; "
                "add a singleton axis for a single slice (array[None])"
            )
        affine = np.asarray(self.affine, dtype=np.float64)
        if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
            raise TheraquantError(f"Image affine must be a finite 4x4 matrix, got {np.asarray(self.affine)!r}")
        if not np.allclose(affine[3], [0, 0, 0, 1]) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
            raise TheraquantError(
                "Image affine must be an invertible 4x4 with last row (0, 0, 0, 1); "
                f"got {affine.tolist()}"
            )
        ft = self.frame_times_s
        if ft is not None:
            ft = np.asarray(ft, dtype=np.float64)
            if array.ndim != 4 or ft.shape != (array.shape[-1],):
                raise TheraquantError(
                    f"frame_times_s has {ft.size} values but the image has shape {array.shape}; "
                    "give one time (s) per frame of a 4-D image"
                )
        object.__setattr__(self, "array", array)
        object.__setattr__(self, "affine", affine)
        object.__setattr__(self, "frame_times_s", ft)
        object.__setattr__(self, "meta", dict(self.meta))

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_spacing(
        cls,
        array: ArrayLike,
        spacing_mm: ArrayLike,
        *,
        origin_lps: ArrayLike = (0.0, 0.0, 0.0),
        units: str = "",
        frame_times_s: ArrayLike | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> "Image":
        """An axis-aligned image: x along L, y along P, z along S, voxel size ``spacing_mm`` (z, y, x)."""
        dz, dy, dx = normalize_spacing(spacing_mm)
        affine = np.zeros((4, 4))
        affine[0, 2] = dx  # index x -> LPS x
        affine[1, 1] = dy  # index y -> LPS y
        affine[2, 0] = dz  # index z -> LPS z
        affine[:3, 3] = np.asarray(origin_lps, dtype=float)
        affine[3, 3] = 1.0
        return cls(np.asarray(array), affine, units=units,
                   frame_times_s=None if frame_times_s is None else np.asarray(frame_times_s, float),
                   meta=meta or {})

    def with_array(self, array: ArrayLike, *, units: str | None = None,
                   frame_times_s: ArrayLike | None = None, meta: Mapping[str, Any] | None = None) -> "Image":
        """A new image on the same grid holding ``array`` (same spatial shape).

        A 4-D ``array`` with as many frames as this image keeps this image's ``frame_times_s``
        unless others are given.
        """
        array = np.asarray(array)
        if array.shape[:3] != self.shape:
            raise TheraquantError(
                f"array of shape {array.shape} does not fit the grid {self.shape} (z, y, x)"
            )
        if (frame_times_s is None and array.ndim == 4 and self.frame_times_s is not None
                and array.shape[3] == self.n_frames):
            frame_times_s = self.frame_times_s
        return Image(array, self.affine, units=self.units if units is None else units,
                     frame_times_s=frame_times_s if array.ndim == 4 else None,
                     meta=self.meta if meta is None else meta)

    # ------------------------------------------------------------------ geometry
    @property
    def shape(self) -> tuple[int, int, int]:
        """Spatial shape (z, y, x)."""
        return tuple(int(n) for n in self.array.shape[:3])  # type: ignore[return-value]

    @property
    def n_frames(self) -> int:
        """Number of frames on the last axis (1 for a 3-D image)."""
        return int(self.array.shape[3]) if self.array.ndim == 4 else 1

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        """Voxel size (z, y, x), mm."""
        return tuple(float(v) for v in np.linalg.norm(self.affine[:3, :3], axis=0))  # type: ignore[return-value]

    @property
    def voxel_volume_ml(self) -> float:
        """Voxel volume, mL (1 mL = 1000 mm^3); exact also for oblique or sheared grids."""
        return abs(float(np.linalg.det(self.affine[:3, :3]))) / 1000.0

    @property
    def direction(self) -> NDArray[np.float64]:
        """3x3 matrix whose columns are the unit LPS directions of the z, y and x index axes."""
        return self.affine[:3, :3] / np.asarray(self.spacing_mm)

    @property
    def origin_lps(self) -> NDArray[np.float64]:
        """LPS position (mm) of the centre of voxel (0, 0, 0)."""
        return self.affine[:3, 3].copy()

    def index_to_world(self, index: ArrayLike) -> NDArray[np.float64]:
        """LPS coordinates (mm) of array indices ``(..., 3)`` given as (z, y, x)."""
        idx = np.asarray(index, dtype=float)
        return idx @ self.affine[:3, :3].T + self.affine[:3, 3]

    def world_to_index(self, lps_mm: ArrayLike) -> NDArray[np.float64]:
        """Continuous array indices (z, y, x) of LPS points ``(..., 3)`` in mm."""
        pts = np.asarray(lps_mm, dtype=float) - self.affine[:3, 3]
        return np.linalg.solve(self.affine[:3, :3], pts.T).T if pts.ndim > 1 else np.linalg.solve(self.affine[:3, :3], pts)

    def same_grid(self, other: "Image", *, atol_mm: float = 1e-3) -> bool:
        """True when ``other`` has the same spatial shape and an affine within ``atol_mm``."""
        return self.shape == other.shape and bool(np.allclose(self.affine, other.affine, atol=atol_mm, rtol=0))

    def check_same_grid(self, other: "Image", *, names: tuple[str, str] = ("image", "mask"),
                        atol_mm: float = 1e-3) -> None:
        """Raise :class:`TheraquantError` naming both images unless they share a grid."""
        if not self.same_grid(other, atol_mm=atol_mm):
            raise TheraquantError(
                f"{names[0]} and {names[1]} are on different grids: shapes {self.shape} vs {other.shape}, "
                f"spacing {self.spacing_mm} vs {other.spacing_mm} mm, origin {self.origin_lps.round(3).tolist()} vs "
                f"{other.origin_lps.round(3).tolist()} mm (LPS); resample with "
                f"{names[1]}.resample_like({names[0]})"
            )

    # ------------------------------------------------------------------ SimpleITK bridge
    def to_sitk(self, frame: int | None = None):
        """This image (or one frame of a 4-D image) as a ``SimpleITK.Image`` (LPS, as ITK uses)."""
        import SimpleITK as sitk

        arr = self.array if self.array.ndim == 3 else self.array[..., 0 if frame is None else frame]
        if arr.dtype == bool:
            arr = arr.astype(np.uint8)
        out = sitk.GetImageFromArray(np.ascontiguousarray(arr))
        sp = self.spacing_mm
        out.SetSpacing((sp[2], sp[1], sp[0]))
        out.SetOrigin(tuple(self.origin_lps))
        d = self.direction[:, [2, 1, 0]]  # ITK index order is (x, y, z)
        out.SetDirection(tuple(d.ravel()))
        return out

    @classmethod
    def from_sitk(cls, sitk_image, *, units: str = "", meta: Mapping[str, Any] | None = None) -> "Image":
        """Wrap a 3-D ``SimpleITK.Image`` (LPS) as an :class:`Image`."""
        import SimpleITK as sitk

        arr = sitk.GetArrayFromImage(sitk_image)
        sx, sy, sz = sitk_image.GetSpacing()
        d = np.asarray(sitk_image.GetDirection(), dtype=float).reshape(3, 3)
        affine = np.eye(4)
        affine[:3, :3] = d[:, [2, 1, 0]] * np.array([sz, sy, sx])
        affine[:3, 3] = sitk_image.GetOrigin()
        return cls(arr, affine, units=units, meta=meta or {})

    def resample_like(self, reference: "Image", *,
                      interpolation: Literal["linear", "nearest", "bspline"] = "linear",
                      conserve: bool = False, default_value: float = 0.0) -> "Image":
        """Resample this 3-D image onto ``reference``'s grid with SimpleITK.

        Parameters
        ----------
        reference : Image
            Grid to resample onto.
        interpolation : {"linear", "nearest", "bspline"}
            ``"nearest"`` for masks and labels.
        conserve : bool
            Scale by the voxel-volume ratio so that a per-voxel **amount** (Bq,
            Bq s) is conserved rather than a concentration (Bq/mL, SUV).
        default_value : float
            Value outside this image's field of view.
        """
        import SimpleITK as sitk

        if self.array.ndim != 3:
            raise TheraquantError("resample_like takes a 3-D image; resample a 4-D image frame by frame")
        interp = {"linear": sitk.sitkLinear, "nearest": sitk.sitkNearestNeighbor,
                  "bspline": sitk.sitkBSpline}.get(interpolation)
        if interp is None:
            raise TheraquantError(f"interpolation must be 'linear', 'nearest' or 'bspline', got {interpolation!r}")
        src = self.to_sitk()
        if interpolation != "nearest" and src.GetPixelID() not in (sitk.sitkFloat32, sitk.sitkFloat64):
            src = sitk.Cast(src, sitk.sitkFloat64)
        res = sitk.Resample(src, reference.to_sitk(), sitk.Transform(), interp, float(default_value),
                            src.GetPixelID())
        arr = sitk.GetArrayFromImage(res)
        if self.array.dtype == bool:
            arr = arr.astype(bool)
        if conserve:
            arr = arr * (reference.voxel_volume_ml / self.voxel_volume_ml)
        return Image(arr, reference.affine, units=self.units, meta=self.meta)

    def __repr__(self) -> str:
        sp = ", ".join(f"{v:g}" for v in self.spacing_mm)
        return (f"Image(shape={self.array.shape}, spacing_mm=({sp}), units={self.units!r}, "
                f"dtype={self.array.dtype})")
