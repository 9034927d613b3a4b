"""NIfTI reading and writing (nibabel), with RAS <-> LPS conversion and a JSON sidecar."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import TheraquantError
from ..image import Image
from ..provenance import to_jsonable

__all__ = ["read_nifti", "write_nifti", "sidecar_path"]

# (z, y, x) index order and LPS <-> NIfTI (i, j, k) = (x, y, z) and RAS
_PERM = np.array([[0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]], dtype=float)
_LPS_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def _ras_ijk_to_lps_zyx(affine_ras: np.ndarray) -> np.ndarray:
    return _LPS_RAS @ affine_ras @ _PERM


def _lps_zyx_to_ras_ijk(affine_lps: np.ndarray) -> np.ndarray:
    return _LPS_RAS @ affine_lps @ _PERM


def sidecar_path(path: str | Path) -> Path:
    """The JSON sidecar beside a NIfTI file: ``x.nii.gz`` -> ``x.json``."""
    path = Path(path)
    name = path.name
    for ext in (".nii.gz", ".nii"):
        if name.endswith(ext):
            return path.with_name(name[: -len(ext)] + ".json")
    return path.with_suffix(".json")


def read_nifti(path: str | Path, *, mmap: bool = True) -> Image:
    """Read a 3-D or 4-D NIfTI file as an :class:`~theraquant.image.Image` (LPS, (z, y, x[, t])).

    Frame times and units are taken from a JSON sidecar (``FrameTimes_s``,
    ``Units``) when one exists; otherwise frame times follow from the NIfTI
    ``pixdim[4]`` (TR) and ``xyzt_units``.

    Parameters
    ----------
    path : str or Path
        ``.nii`` or ``.nii.gz`` file.
    mmap : bool
        Memory-map uncompressed data where possible (the array is then read lazily).
    """
    import nibabel as nib

    path = Path(path)
    if not path.exists():
        raise TheraquantError(f"{path}: no such NIfTI file")
    try:
        nii = nib.load(str(path), mmap=mmap)
    except Exception as exc:  # nibabel raises several types for corrupt files
        raise TheraquantError(f"{path.name}: not a readable NIfTI file ({exc})") from exc
    data = np.asanyarray(nii.dataobj)
    if data.ndim == 5 and data.shape[3] == 1:
        data = data[:, :, :, 0, :]
    if data.ndim == 2:
        data = data[:, :, None]
    if data.ndim not in (3, 4):
        raise TheraquantError(f"{path.name}: NIfTI of shape {data.shape} is neither 3-D nor 4-D")
    axes = (2, 1, 0) if data.ndim == 3 else (2, 1, 0, 3)
    array = np.transpose(data, axes)
    affine = _ras_ijk_to_lps_zyx(np.asarray(nii.affine, dtype=float))
    meta: dict[str, Any] = {"source": str(path)}
    units = ""
    frame_times = None
    side = sidecar_path(path)
    if side.exists():
        try:
            js = json.loads(side.read_text())
        except json.JSONDecodeError as exc:
            raise TheraquantError(f"{side.name}: sidecar is not valid JSON ({exc})") from exc
        meta["sidecar"] = js
        units = str(js.get("Units", "")) if isinstance(js.get("Units", ""), str) else ""
        if "FrameTimes_s" in js and array.ndim == 4:
            frame_times = np.asarray(js["FrameTimes_s"], dtype=float)
    if frame_times is None and array.ndim == 4:
        zooms = nii.header.get_zooms()
        tr = float(zooms[3]) if len(zooms) > 3 else 0.0
        if tr > 0:
            t_unit = nii.header.get_xyzt_units()[1]
            scale = {"msec": 1e-3, "usec": 1e-6}.get(t_unit, 1.0)
            frame_times = np.arange(array.shape[3]) * tr * scale
    return Image(array, affine, units=units, frame_times_s=frame_times, meta=meta)


def write_nifti(image: Image, path: str | Path, *, sidecar: Mapping[str, Any] | None = None,
                dtype: Any = np.float32) -> Path:
    """Write an :class:`~theraquant.image.Image` to NIfTI (RAS affine) and a JSON sidecar.

    Parameters
    ----------
    image : Image
        3-D or 4-D image; its LPS affine is converted to NIfTI RAS.
    path : str or Path
        Output ``.nii.gz`` or ``.nii``.
    sidecar : mapping, optional
        Provenance and settings, written as ``<name>.json`` together with
        ``Units`` and ``FrameTimes_s``.
    dtype : numpy dtype or None
        Storage type (float32 by default; maps are computed in float64 and cast
        once here). ``None`` keeps the array's type; boolean arrays become uint8.
    """
    import nibabel as nib

    path = Path(path)
    arr = image.array
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    elif dtype is not None:
        arr = arr.astype(dtype, copy=False)
    axes = (2, 1, 0) if arr.ndim == 3 else (2, 1, 0, 3)
    data = np.transpose(arr, axes)
    affine = _lps_zyx_to_ras_ijk(image.affine)
    nii = nib.Nifti1Image(np.ascontiguousarray(data) if data.ndim == 3 else data, affine)
    nii.header.set_qform(affine, code=1)
    nii.header.set_sform(affine, code=1)
    nii.header.set_xyzt_units("mm", "sec")
    if arr.ndim == 4 and image.frame_times_s is not None and image.frame_times_s.size > 1:
        zooms = list(nii.header.get_zooms())
        zooms[3] = float(np.median(np.diff(image.frame_times_s)))
        nii.header.set_zooms(zooms)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nii, str(path))
    record: dict[str, Any] = dict(sidecar or {})
    if image.units:
        record.setdefault("Units", image.units)
    if image.frame_times_s is not None:
        record.setdefault("FrameTimes_s", image.frame_times_s)
    if record:
        sidecar_path(path).write_text(json.dumps(to_jsonable(record), indent=2) + "\n")
    return path
