"""DICOM series reading (pydicom): slices sorted in space, frames in time, geometry checked.

The reader returns an :class:`~theraquant.image.Image` whose affine is in LPS, the
frame DICOM itself uses, and keeps every slice's header (without pixel data) in
``image.meta["headers"]`` so that engines' pure tag logic (e.g. SUV conversion)
can read them. Every problem names the file and the tag.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from ..errors import DicomError, TheraquantError
from ..image import Image

__all__ = ["read_dicom_headers", "group_series", "read_dicom_series", "dicom_time_s"]

_REQUIRED_GEOMETRY = {
    "ImagePositionPatient": "(0020,0032)",
    "ImageOrientationPatient": "(0020,0037)",
    "PixelSpacing": "(0028,0030)",
    "Rows": "(0028,0010)",
    "Columns": "(0028,0011)",
}


def _files(series_dir: Path) -> list[Path]:
    if series_dir.is_file():
        return [series_dir]
    if not series_dir.is_dir():
        raise TheraquantError(f"{series_dir}: no such DICOM file or directory")
    return sorted(p for p in series_dir.rglob("*") if p.is_file() and not p.name.startswith("."))


def read_dicom_headers(series_dir: str | Path, *, stop_before_pixels: bool = True,
                       modality: str | Sequence[str] | None = None) -> list[tuple[Path, Any]]:
    """Read the headers of every DICOM file under ``series_dir``.

    Files that are not DICOM (no ``DICM`` preamble and no readable header) are
    skipped; a file that starts as DICOM but cannot be parsed raises
    :class:`~theraquant.errors.DicomError` naming it.

    Parameters
    ----------
    series_dir : str or Path
        A directory (searched recursively) or one file.
    stop_before_pixels : bool
        Skip pixel data (fast header scan).
    modality : str or sequence of str, optional
        Keep only these Modality values (e.g. ``"PT"``); RTSTRUCT, SEG etc.
        beside the images are then ignored.

    Returns
    -------
    list of (Path, pydicom.Dataset)
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    series_dir = Path(series_dir)
    keep = {modality} if isinstance(modality, str) else (set(modality) if modality else None)
    out: list[tuple[Path, Any]] = []
    for f in _files(series_dir):
        try:
            ds = pydicom.dcmread(str(f), stop_before_pixels=stop_before_pixels)
        except InvalidDicomError:
            continue  # not DICOM (a README, a NIfTI mask...)
        except Exception as exc:
            raise DicomError(f"{f.name}: corrupt or truncated DICOM file ({exc}); remove it or re-export the series") from exc
        if "SOPClassUID" not in ds and "PixelData" not in ds and stop_before_pixels is False:
            continue
        if keep is not None and str(getattr(ds, "Modality", "")) not in keep:
            continue
        out.append((f, ds))
    if not out:
        what = f" with Modality {sorted(keep)}" if keep else ""
        raise DicomError(f"{series_dir}: no DICOM files{what} found")
    return out


def group_series(headers: Iterable[tuple[Path, Any]]) -> dict[str, list[tuple[Path, Any]]]:
    """Group ``(path, dataset)`` pairs by SeriesInstanceUID (files lacking it go under ``""``)."""
    groups: dict[str, list[tuple[Path, Any]]] = defaultdict(list)
    for f, ds in headers:
        groups[str(getattr(ds, "SeriesInstanceUID", ""))].append((f, ds))
    return dict(groups)


def dicom_time_s(value: Any) -> float | None:
    """Seconds since midnight of a DICOM TM value (``HHMMSS.FFFFFF``), or None when empty."""
    if value is None:
        return None
    s = str(value).strip()
    if not s:
        return None
    s = s.replace(":", "")
    try:
        hh = int(s[0:2])
        mm = int(s[2:4]) if len(s) >= 4 else 0
        ss = float(s[4:]) if len(s) > 4 else 0.0
    except ValueError:
        return None
    return hh * 3600.0 + mm * 60.0 + ss


#: Slice spacing (mm) given to a single-slice series without SliceThickness: a placeholder with no
#: source (recorded as ``meta["slice_spacing_assumed_mm"]``), so the image has an affine.
SINGLE_SLICE_PLACEHOLDER_MM = 1.0
_COUNTS = {"ImagePositionPatient": 3, "ImageOrientationPatient": 6, "PixelSpacing": 2, "Rows": 1, "Columns": 1}


def _get(ds: Any, f: Path, keyword: str) -> Any:
    """A geometry tag, checked: present, the right number of finite numbers (positive sizes)."""
    tag = _REQUIRED_GEOMETRY.get(keyword, "")
    if keyword not in ds or ds.get(keyword) in (None, ""):
        raise DicomError(f"{f.name}: {keyword} {tag} is missing; the slice cannot be placed in space")
    value = ds.get(keyword)
    n = _COUNTS.get(keyword)
    if n is None:
        return value
    try:
        arr = np.asarray(list(value) if n > 1 and not isinstance(value, (str, bytes)) else [value], dtype=float)
    except (TypeError, ValueError, OverflowError):
        arr = np.asarray([np.nan])
    ok = arr.ndim == 1 and arr.size == n and bool(np.all(np.isfinite(arr)))
    if ok and keyword in ("Rows", "Columns", "PixelSpacing"):
        ok = bool(np.all(arr > 0)) and (keyword == "PixelSpacing" or float(arr[0]).is_integer())
    if not ok:
        raise DicomError(f"{f.name}: {keyword} {tag} is {str(value)[:60]!r}; it must hold {n} finite "
                         f"{'positive ' if keyword != 'ImagePositionPatient' else ''}number(s); fix the header")
    return int(arr[0]) if keyword in ("Rows", "Columns") else arr


def _scalar(ds: Any, f: Path, keyword: str, default: float) -> float:
    """An optional numeric tag as one finite float (``default`` when absent or empty)."""
    value = ds.get(keyword)
    if value is None or value == "":
        return default
    try:
        x = float(value)
    except (TypeError, ValueError, OverflowError):
        x = math.nan
    if not math.isfinite(x):
        raise DicomError(f"{f.name}: {keyword} is {str(value)[:60]!r}; it must be one finite number; fix the header")
    return x


def _frame_key(ds: Any) -> tuple:
    """Sort key of a slice within its position: temporal index, then time, then instance."""
    def num(keyword: str) -> float:  # junk sorts as 0 here; the checks that need the value say so
        try:
            x = float(ds.get(keyword) or 0.0)
        except (TypeError, ValueError, OverflowError):
            return 0.0
        return x if math.isfinite(x) else 0.0

    acq = dicom_time_s(ds.get("AcquisitionTime")) or 0.0
    return (num("TemporalPositionIdentifier"), acq, num("TriggerTime"), num("InstanceNumber"))


def _check_duplicates(series_dir: Any, items: list, slots: list[list[int]], positions: Any) -> None:
    """Refuse a series whose slice positions hold the same image twice (same SOPInstanceUID, or the same
    temporal index, acquisition/trigger/frame-reference time and instance number): read as frames in
    time they would make a 3-D series 4-D."""
    dup: list[tuple[float, str, str]] = []
    for s in slots:
        seen: dict[Any, int] = {}
        for i in s:
            ds = items[i][1]
            keys = [("uid", str(ds.get("SOPInstanceUID") or "")) if ds.get("SOPInstanceUID") else None,
                    ("frame", _frame_key(ds), str(ds.get("FrameReferenceTime") or ""))]
            for key in filter(None, keys):
                if key in seen:
                    dup.append((float(positions[i]), items[seen[key]][0].name, items[i][0].name))
                    break
                seen[key] = i
    if dup:
        z = sorted({round(d[0], 2) for d in dup})
        raise DicomError(
            f"{series_dir}: {len(z)} slice position(s) hold the same image twice (positions {z[:6]} mm along the "
            f"slice normal, e.g. {dup[0][1]} and {dup[0][2]}: same SOPInstanceUID or the same frame time); the "
            "series is present twice (a copied folder or a re-export): remove the duplicate files")


def read_dicom_series(series_dir: str | Path, *, series_uid: str | None = None,
                      modality: str | Sequence[str] | None = None,
                      slice_tolerance_mm: float = 0.01, dtype: Any = np.float64) -> Image:
    """Read one DICOM series (3-D, or 4-D when positions repeat in time) as an Image.

    Slices are sorted along the slice normal (ImageOrientationPatient cross
    product) by ImagePositionPatient. When several slices share a position the
    series is dynamic: each position must then have the same number of frames,
    ordered by TemporalPositionIdentifier, AcquisitionTime, TriggerTime and
    InstanceNumber; ``frame_times_s`` is taken from AcquisitionTime (or
    TriggerTime, ms) relative to the first frame. Each slice is scaled by its own
    RescaleSlope and RescaleIntercept.

    Parameters
    ----------
    series_dir : str or Path
        Directory holding the series (other files are ignored).
    series_uid : str, optional
        Which series to read when the directory holds several.
    modality : str or sequence of str, optional
        Keep only these Modality values (e.g. ``"PT"``, ``"MR"``).
    slice_tolerance_mm : float
        Largest allowed deviation of slice positions from a uniform grid, mm.
    dtype : numpy dtype
        Type of the returned array (float64 by default; float32 halves the memory of a
        large dynamic series, e.g. a whole-liver DCE-MRI).

    Returns
    -------
    Image
        ``meta`` holds ``headers`` (datasets, z order; a list per slice of
        frames for 4-D), ``files`` and ``modality``.

    Raises
    ------
    DicomError
        Missing geometry tags, mixed orientations or matrix sizes, gaps in the
        slice positions, unequal frame counts, unreadable pixel data; the
        message names the file and the tag.
    """
    series_dir = Path(series_dir)
    headers = read_dicom_headers(series_dir, stop_before_pixels=True, modality=modality)
    headers = [(f, ds) for f, ds in headers if "ImagePositionPatient" in ds or "PixelSpacing" in ds
               or "Rows" in ds]
    if not headers:
        raise DicomError(f"{series_dir}: no image slices (only non-image DICOM objects) found")
    groups = group_series(headers)
    if series_uid is not None:
        if series_uid not in groups:
            raise DicomError(f"{series_dir}: no series with SeriesInstanceUID {series_uid}; found {sorted(groups)}")
        items = groups[series_uid]
    elif len(groups) > 1:
        desc = {uid: str(getattr(v[0][1], "SeriesDescription", "")) for uid, v in groups.items()}
        raise DicomError(
            f"{series_dir}: holds {len(groups)} series {desc}; pass series_uid= to choose one, "
            "or put each series in its own folder"
        )
    else:
        items = next(iter(groups.values()))

    f0, ds0 = items[0]
    iop0 = np.asarray(_get(ds0, f0, "ImageOrientationPatient"), dtype=float)
    rows0, cols0 = int(_get(ds0, f0, "Rows")), int(_get(ds0, f0, "Columns"))
    ps0 = np.asarray(_get(ds0, f0, "PixelSpacing"), dtype=float)
    row_dir, col_dir = iop0[:3], iop0[3:]
    normal = np.cross(row_dir, col_dir)
    positions = []
    for f, ds in items:
        iop = np.asarray(_get(ds, f, "ImageOrientationPatient"), dtype=float)
        if not np.allclose(iop, iop0, atol=1e-4):
            raise DicomError(f"{f.name}: ImageOrientationPatient (0020,0037) {iop.tolist()} differs from "
                             f"{f0.name}'s {iop0.tolist()}; the series mixes orientations")
        if (int(_get(ds, f, "Rows")), int(_get(ds, f, "Columns"))) != (rows0, cols0):
            raise DicomError(f"{f.name}: matrix {ds.Rows}x{ds.Columns} differs from {f0.name}'s {rows0}x{cols0}")
        if not np.allclose(np.asarray(_get(ds, f, "PixelSpacing"), float), ps0, atol=1e-4):
            raise DicomError(f"{f.name}: PixelSpacing (0028,0030) differs from {f0.name}'s {ps0.tolist()}")
        positions.append(float(np.dot(np.asarray(_get(ds, f, "ImagePositionPatient"), float), normal)))
    positions = np.asarray(positions)

    # group by position (rounded to the tolerance), then sort frames within each position
    order = np.argsort(positions, kind="stable")
    slots: list[list[int]] = []
    last = None
    for i in order:
        if last is None or abs(positions[i] - last) > slice_tolerance_mm:
            slots.append([i])
            last = positions[i]
        else:
            slots[-1].append(i)
    n_frames = {len(s) for s in slots}
    if len(n_frames) != 1:
        counts = {round(float(positions[s[0]]), 2): len(s) for s in slots}
        raise DicomError(f"{series_dir}: slice positions hold different numbers of frames {counts}; "
                         "the dynamic series is incomplete (missing files?)")
    nt = n_frames.pop()
    for s in slots:
        s.sort(key=lambda i: _frame_key(items[i][1]))
    _check_duplicates(series_dir, items, slots, positions)  # a copied folder / re-export is not a 4-D series
    slice_pos = np.asarray([positions[s[0]] for s in slots])
    thickness = None
    if len(slots) > 1:
        gaps = np.diff(slice_pos)
        dz = float(np.median(gaps))
        if np.max(np.abs(gaps - dz)) > max(slice_tolerance_mm, 0.01 * dz):
            bad = int(np.argmax(np.abs(gaps - dz)))
            raise DicomError(
                f"{items[slots[bad + 1][0]][0].name}: slice spacing {gaps[bad]:.3f} mm differs from the "
                f"series' {dz:.3f} mm (ImagePositionPatient (0020,0032)); a slice is missing or duplicated"
            )
    else:
        # one slice: its thickness, else a placeholder (no source: DICOM gives no spacing for a single
        # slice without SliceThickness (0018,0050), a Type 2 tag that may be empty); volumes from it
        # are not physical, so the assumption is said in the image's meta (CONV, issue #9)
        thickness = ds0.get("SpacingBetweenSlices") or ds0.get("SliceThickness") or None
        dz = float(thickness) if thickness is not None else SINGLE_SLICE_PLACEHOLDER_MM

    import pydicom

    from ._nifti import _gib, _machine_memory_bytes

    need, total = float(len(slots)) * rows0 * cols0 * nt * np.dtype(dtype).itemsize, _machine_memory_bytes()
    if total is not None and need > total:  # headers promising more than the machine has: refuse early
        raise DicomError(f"{f0.name}: the series' headers promise {len(slots)} x {rows0} x {cols0} x {nt} voxels, "
                         f"{_gib(need)}, more than this machine's {_gib(total)}; check Rows/Columns (0028,0010)/"
                         "(0028,0011), or read fewer slices")
    array = np.empty((len(slots), rows0, cols0, nt), dtype=dtype)
    headers_out: list[Any] = []
    files_out: list[Any] = []
    for z, s in enumerate(slots):
        hz, fz = [], []
        for t, i in enumerate(s):
            f, _ = items[i]
            try:
                ds = pydicom.dcmread(str(f))
                pix = ds.pixel_array
            except Exception as exc:
                raise DicomError(f"{f.name}: pixel data cannot be decoded ({exc})") from exc
            if pix.shape != (rows0, cols0):
                raise DicomError(f"{f.name}: pixel array of shape {pix.shape}; expected {(rows0, cols0)}")
            slope = _scalar(ds, f, "RescaleSlope", 1.0) or 1.0
            inter = _scalar(ds, f, "RescaleIntercept", 0.0)
            array[z, :, :, t] = pix * slope + inter
            del ds.PixelData
            hz.append(ds)
            fz.append(f)
        headers_out.append(hz if nt > 1 else hz[0])
        files_out.append(fz if nt > 1 else fz[0])

    first_ipp = np.asarray(items[slots[0][0]][1].ImagePositionPatient, dtype=float)
    affine = np.eye(4)
    affine[:3, 2] = row_dir * ps0[1]  # index x (column) moves along the row direction
    affine[:3, 1] = col_dir * ps0[0]  # index y (row) moves along the column direction
    affine[:3, 0] = normal * dz
    affine[:3, 3] = first_ipp
    frame_times = None
    if nt > 1:
        first_slot = [items[i][1] for i in slots[0]]
        acq = [dicom_time_s(ds.get("AcquisitionTime")) for ds in first_slot]
        trig = [ds.get("TriggerTime") for ds in first_slot]
        if all(a is not None for a in acq) and len(set(acq)) == nt:
            frame_times = np.asarray(acq) - acq[0]
            frame_times[frame_times < 0] += 86400.0  # across midnight
        elif all(v not in (None, "") for v in trig):
            tt = np.asarray([_scalar(ds, f, "TriggerTime", 0.0) for ds, f in zip(first_slot, [items[i][0] for i in slots[0]])])
            frame_times = (tt - tt[0]) / 1000.0
    arr = array[..., 0] if nt == 1 else array
    return Image(arr, affine, frame_times_s=frame_times,
                 meta={"headers": headers_out, "files": files_out, "source": str(series_dir),
                       "modality": str(ds0.get("Modality", "")),
                       "series_description": str(ds0.get("SeriesDescription", "")),
                       **({"slice_spacing_assumed_mm": dz} if len(slots) == 1 and thickness is None else {})})
