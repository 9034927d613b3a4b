"""NIfTI reading and writing (nibabel), with RAS <-> LPS conversion and a JSON sidecar (written atomically)."""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import TheraquantError
from ..image import Image
from ..provenance import to_jsonable
from ._atomic import atomic_path, atomic_paths

__all__ = ["read_nifti", "write_nifti", "sidecar_path", "read_label_image"]

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


def _machine_memory_bytes() -> int | None:
    """Physical memory of this machine, bytes (None when unknown)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def _check_data_size(path: Path, nii: Any, *, mmap: bool) -> None:
    """Refuse, before reading any voxel, a header that promises more data than the file holds
    (truncated file) or more memory than this machine has."""
    header = nii.header
    shape = tuple(int(n) for n in nii.shape)
    n_vox = int(np.prod(shape, dtype=np.float64)) if shape else 0
    itemsize = header.get_data_dtype().itemsize
    stored = float(n_vox) * itemsize
    compressed = path.name.lower().endswith(".gz")
    if not compressed:
        offset = int(header.get("vox_offset", 0) or 0)
        size = path.stat().st_size
        if size < offset + stored:
            raise TheraquantError(
                f"{path.name}: truncated NIfTI file: it holds {size:,} bytes but its header promises "
                f"{offset + stored:,.0f} ({' x '.join(map(str, shape))} voxels of {header.get_data_dtype()}); "
                "copy or export the file again")
    slope, inter = header.get_slope_inter()
    scaled = (slope not in (None, 1.0) and np.isfinite(slope or np.nan)) or (inter not in (None, 0.0) and
                                                                           np.isfinite(inter or np.nan))
    in_memory = stored * (8 / itemsize if scaled else 1.0)  # scaling makes float64
    if compressed or not mmap or scaled:
        total = _machine_memory_bytes()
        if total is not None and in_memory > total:
            raise TheraquantError(
                f"{path.name}: its header promises {' x '.join(map(str, shape))} voxels, {_gib(in_memory)} in "
                f"memory, more than this machine's {_gib(total)}; check the header (dim, datatype), or "
                "crop/split the image, or store it uncompressed (.nii) so it can be memory-mapped")


def _read_sidecar(side: Path) -> dict[str, Any]:
    try:
        text = side.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TheraquantError(f"{side.name}: JSON sidecar is not UTF-8 text ({exc.reason} at byte {exc.start}); "
                              "save it as UTF-8 or remove it") from None
    except OSError as exc:
        raise TheraquantError(f"{side.name}: cannot read the JSON sidecar ({exc.strerror})") from None
    try:
        js = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TheraquantError(f"{side.name}: sidecar is not valid JSON ({exc}); fix or remove it") from None
    if not isinstance(js, dict):
        raise TheraquantError(f"{side.name}: sidecar must hold a JSON object ({{\"key\": value, ...}}), "
                              f"got a {type(js).__name__}; fix or remove it")
    return js


def _sidecar_frame_times(side: Path, value: Any, n_frames: int) -> np.ndarray:
    try:
        ft = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise TheraquantError(f"{side.name}: FrameTimes_s must be a list of numbers (s), got "
                              f"{str(value)[:60]!r}; fix the sidecar") from None
    if ft.ndim != 1 or ft.size != n_frames:
        raise TheraquantError(f"{side.name}: FrameTimes_s has {ft.size} values but the image has {n_frames} "
                              "frames; give one time (s) per frame")
    if not np.all(np.isfinite(ft)):
        raise TheraquantError(f"{side.name}: FrameTimes_s holds non-finite values; fix the sidecar")
    return ft


def read_nifti(path: str | Path, *, mmap: bool = True) -> Image:
    """Read a 3-D or 4-D NIfTI file as an :class:`~theraquant.image.Image` (LPS, (z, y, x[, t])).

    Frame times and units are taken from a JSON sidecar (``FrameTimes_s``,
    ``Units``) when one exists; otherwise frame times follow from the NIfTI
    ``pixdim[4]`` (TR) when ``xyzt_units`` gives its unit (s, ms or us). A
    4-D file whose time step has no unit (nibabel's default header says
    "unknown", with ``pixdim[4]`` = 1) gets **no** frame times
    (``frame_times_s`` None): callers ask for them rather than assume 1-s frames.

    Before any voxel is read, the header is checked against the file (a
    truncated file is an error naming it) and against this machine's memory.

    Parameters
    ----------
    path : str or Path
        ``.nii`` or ``.nii.gz`` file.
    mmap : bool
        Memory-map uncompressed data where possible (the array is then read lazily).

    Raises
    ------
    TheraquantError
        Missing, truncated or corrupt file, malformed sidecar, a header larger than memory.
    """
    import nibabel as nib

    path = Path(path)
    if not path.exists():
        raise TheraquantError(f"{path}: no such NIfTI file")
    if path.is_dir():
        raise TheraquantError(f"{path} is a folder, not a NIfTI file; give a .nii or .nii.gz file "
                              "(DICOM folders are read by the DICOM readers)")
    try:
        nii = nib.load(str(path), mmap=mmap)
    except Exception as exc:  # nibabel raises several types for corrupt files
        raise TheraquantError(f"{path.name}: not a readable NIfTI file ({type(exc).__name__}: {exc}); "
                              "give a .nii or .nii.gz file") from None
    if not hasattr(nii, "dataobj") or not hasattr(nii.header, "get_data_dtype"):
        raise TheraquantError(f"{path.name}: not a NIfTI image ({type(nii).__name__}); give a .nii or .nii.gz file")
    _check_data_size(path, nii, mmap=mmap)
    try:
        data = np.asanyarray(nii.dataobj)
    except MemoryError:
        raise TheraquantError(f"{path.name}: not enough memory to read {nii.shape} voxels; free memory or "
                              "crop the image") from None
    except (EOFError, OSError, ValueError, zlib.error) as exc:  # truncated or corrupt compressed stream
        raise TheraquantError(f"{path.name}: truncated or corrupt NIfTI data ({type(exc).__name__}: {exc}); "
                              "copy or export the file again") from None
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
    if side.is_file():
        js = _read_sidecar(side)
        meta["sidecar"] = js
        units = str(js.get("Units", "")) if isinstance(js.get("Units", ""), str) else ""
        if "FrameTimes_s" in js and array.ndim == 4:
            frame_times = _sidecar_frame_times(side, js["FrameTimes_s"], array.shape[3])
    if frame_times is None and array.ndim == 4:
        zooms = nii.header.get_zooms()
        tr = float(zooms[3]) if len(zooms) > 3 else 0.0
        t_unit = nii.header.get_xyzt_units()[1]
        scale = {"sec": 1.0, "msec": 1e-3, "usec": 1e-6}.get(t_unit)
        if tr > 0 and np.isfinite(tr) and scale is not None:
            frame_times = np.arange(array.shape[3]) * tr * scale
        elif tr > 0:
            meta["nifti_time_step_unknown_unit"] = tr  # pixdim[4] without a unit: not trusted
    try:
        return Image(array, affine, units=units, frame_times_s=frame_times, meta=meta)
    except TheraquantError as exc:
        raise TheraquantError(f"{path.name}: {exc}") from None


_NIFTI_SUFFIXES = (".nii", ".nii.gz")


def write_nifti(image: Image, path: str | Path, *, sidecar: Mapping[str, Any] | None = None,
                dtype: Any = np.float32) -> Path:
    """Write an :class:`~theraquant.image.Image` to NIfTI (RAS affine) and a JSON sidecar, atomically.

    The map and its sidecar are one result: both are written to temporary names in the target
    folder and fsync-ed, an earlier map of the same name is removed, then the sidecar and the map are
    renamed into place in that order (:func:`theraquant.io.atomic_paths`). A run killed at any moment
    leaves no map without its record, and no half-written file under a final name.

    Parameters
    ----------
    image : Image
        3-D or 4-D image; its LPS affine is converted to NIfTI RAS.
    path : str or Path
        Output ``.nii.gz`` or ``.nii``.
    sidecar : mapping, optional
        Provenance and settings, written as ``<name>.json`` together with
        ``Units`` and ``FrameTimes_s`` (s; kept for 4-D images).
    dtype : numpy dtype or None
        Storage type (float32 by default; maps are computed in float64 and cast
        once here). ``None`` keeps the array's type; boolean arrays become uint8.
    """
    import nibabel as nib

    path = Path(path)
    if not path.name.lower().endswith(_NIFTI_SUFFIXES) or path.name.lower() in _NIFTI_SUFFIXES:
        raise TheraquantError(f"{path.name}: unsupported extension for a NIfTI output; name it <name>.nii.gz "
                              "or <name>.nii")
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
    record: dict[str, Any] = dict(sidecar or {})
    if image.units:
        record.setdefault("Units", image.units)
    if image.frame_times_s is not None:
        record.setdefault("FrameTimes_s", image.frame_times_s)
    side = sidecar_path(path)
    if record:
        text = json.dumps(to_jsonable(record), indent=2, allow_nan=False) + "\n"
        with atomic_paths([side, path]) as (tmp_side, tmp_map):
            tmp_side.write_text(text, encoding="utf-8")
            nib.save(nii, str(tmp_map))
    else:
        had_map = path.exists()
        with atomic_path(path) as tmp_map:
            nib.save(nii, str(tmp_map))
            if had_map and side.is_file():  # the earlier map's record would describe the new one
                side.unlink()
    return path


def read_label_image(path: str | Path, *, argument: str = "mask") -> Image:
    """Read a 3-D NIfTI mask or label image as integer labels (int32; 0 is background).

    Refuses what would otherwise be silently rounded or thresholded: NaN voxels, probability
    (fractional) masks and non-integer labels (an image resampled with linear interpolation),
    each with the fix.

    Parameters
    ----------
    path : str or Path
        ``.nii`` / ``.nii.gz`` label image (boolean, integer, or float holding whole numbers).
    argument : str
        How the image is named in messages (``"--mask"`` on the command line, ``"mask"`` in the API).

    Raises
    ------
    TheraquantError
        Not 3-D, NaN voxels, fractional values, labels beyond int32.
    """
    path = Path(path)
    img = read_nifti(path, mmap=False)
    who = f"{argument} {path.name}" if argument.startswith("-") else f"{argument}={path.name!r}"

    def err(message: str) -> TheraquantError:  # the API keyword travels with the error (the CLI names its flag)
        return TheraquantError(message, argument=argument if argument.isidentifier() else None)

    if img.array.ndim != 3:
        raise err(f"{who}: a mask or label image must be 3-D, got shape {img.array.shape}")
    arr = np.asarray(img.array)
    if arr.dtype == bool or np.issubdtype(arr.dtype, np.integer):
        if arr.size and (arr.min() < np.iinfo(np.int32).min or arr.max() > np.iinfo(np.int32).max):
            raise err(f"{who}: labels beyond the int32 range; renumber the labels 1, 2, 3...")
        return img.with_array(arr.astype(np.int32), units="")
    arr = arr.astype(np.float64, copy=False)
    nan = np.isnan(arr)
    if nan.any():
        raise err(f"{who}: {int(nan.sum())} NaN voxel(s); a label image needs a whole number in "
                              "every voxel (0 = background): set NaN to 0 (np.nan_to_num) and save it again")
    if not np.all(np.isfinite(arr)):
        raise err(f"{who}: infinite voxel values; a label image holds whole numbers (0 = background)")
    frac = arr != np.round(arr)
    if frac.any():
        example = float(arr[frac].flat[0])
        if arr.min() >= 0 and arr.max() <= 1:
            raise err(
                f"{who}: a probability (fractional) mask, values between 0 and 1 such as {example:.3g}; "
                "threshold it into a binary mask first (e.g. mask >= 0.5, or fslmaths in -thr 0.5 -bin out)")
        raise err(
            f"{who}: non-integer labels such as {example:.6g} in {int(frac.sum())} voxel(s) (resampled with "
            "linear interpolation?); resample label images with nearest-neighbour interpolation")
    if arr.size and (arr.min() < np.iinfo(np.int32).min or arr.max() > np.iinfo(np.int32).max):
        raise err(f"{who}: labels beyond the int32 range (e.g. {arr.max():.3g}); renumber the labels")
    return img.with_array(arr.astype(np.int32), units="")
