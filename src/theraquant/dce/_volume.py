"""Whole-volume fitting: the batched voxel fit driven over a 4-D array in chunks.

The driver reads the input in slabs along its first axis (for a memory-mapped
NIfTI, one slab is a set of contiguous reads, one per frame), keeps only the
masked voxels, converts them to float64 and fits ``chunk_voxels`` curves at a
time with :func:`theraquant.dce.fit`. Maps are stored in float32 as soon as a
chunk is done, so the float64 working set is one chunk, never the volume.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Callable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..errors import TheraquantError
from ..results import Result, describe_call

__all__ = ["fit_volume", "VolumeFit"]

#: ``progress(done, total)``: voxels fitted so far and voxels to fit.
ProgressCallback = Callable[[int, int], None]
#: ``transform(curves, index)``: curves (n, T) float64 of the voxels at flat ``index`` (n,) -> (n, T).
Transform = Callable[[NDArray[np.float64], NDArray[np.int64]], ArrayLike]
#: ``fit_chunk(curves)``: curves (n, T) float64 -> mapping of name to (n,) arrays.
ChunkFitter = Callable[[NDArray[np.float64]], Mapping[str, Any]]


class VolumeFit(Result):
    """Parametric maps of a whole-volume fit: a :class:`theraquant.results.Result` of maps.

    ``result["Ktrans"]`` is a float32 map of the input's leading (spatial)
    shape; voxels outside the mask, with non-finite samples, or whose fit
    failed are NaN. ``result["success"]`` is a boolean map (False outside the
    mask).

    Attributes
    ----------
    maps : dict of str to ndarray
        The maps: parameters in OSIPI CAPLEX units (Ktrans and kep 1/min, ve
        and vp mL/mL, Fp and PS mL/100 mL/min, delay and MTT s), ``"r2"``
        (dimensionless), ``"aic"`` and ``"success"``.
    n_voxels : int
        Voxels selected by the mask.
    n_fitted : int
        Voxels passed to the fit (selected and with finite samples).
    n_nonfinite : int
        Selected voxels skipped because a sample was NaN or infinite (e.g. a
        saturated signal after conversion to concentration).
    n_constant : int
        Selected voxels skipped because their curve is exactly constant in time
        (no enhancement to fit: background, zero padding).
    n_failed : int
        Selected voxels without a successful fit (including the skipped ones).
    chunk_voxels : int
        Curves per call of the fit.
    units : dict of str to str
        Unit of each map (from the fit).
    settings : dict
        Every option of the fit, defaults included (from the fit), and the
        driver's.
    """

    __slots__ = ("n_voxels", "n_fitted", "n_nonfinite", "n_constant", "n_failed", "chunk_voxels", "settings")

    def __init__(self, *, maps: Mapping[str, NDArray], n_voxels: int, n_fitted: int, n_nonfinite: int,
                 n_constant: int, n_failed: int, chunk_voxels: int, units: Mapping[str, str] | None = None,
                 settings: Mapping[str, Any] | None = None, provenance: Mapping[str, Any] | None = None):
        super().__init__(maps, units=units, title="volume fit", provenance=provenance)
        for name, value in (("n_voxels", n_voxels), ("n_fitted", n_fitted), ("n_nonfinite", n_nonfinite),
                            ("n_constant", n_constant), ("n_failed", n_failed), ("chunk_voxels", chunk_voxels)):
            object.__setattr__(self, name, int(value))
        object.__setattr__(self, "settings", dict(settings or {}))

    @property
    def maps(self) -> Mapping[str, NDArray]:
        """The maps, read-only (the same arrays as ``result[name]``)."""
        return MappingProxyType(object.__getattribute__(self, "_data"))

    def __reduce__(self) -> Any:  # pickling (Dask workers)
        return (_rebuild_volume, ({k: v for k, v in self.items()}, self.n_voxels, self.n_fitted, self.n_nonfinite,
                                  self.n_constant, self.n_failed, self.chunk_voxels, dict(self.units),
                                  dict(self.settings), self.provenance))

    def __repr__(self) -> str:
        shape = next(iter(self.maps.values())).shape if len(self) else ()
        return (f"VolumeFit(shape={shape}, maps={list(self.maps)}, n_voxels={self.n_voxels}, "
                f"n_failed={self.n_failed}, n_nonfinite={self.n_nonfinite})")


def _rebuild_volume(maps, n_voxels, n_fitted, n_nonfinite, n_constant, n_failed, chunk_voxels, units, settings,
                    prov) -> VolumeFit:
    return VolumeFit(maps=maps, n_voxels=n_voxels, n_fitted=n_fitted, n_nonfinite=n_nonfinite, n_constant=n_constant,
                     n_failed=n_failed, chunk_voxels=chunk_voxels, units=units, settings=settings, provenance=prov)


def _check_chunk_voxels(chunk_voxels: int) -> int:
    if isinstance(chunk_voxels, bool) or not isinstance(chunk_voxels, (int, np.integer)) or chunk_voxels < 1:
        raise TheraquantError(f"chunk_voxels must be a positive integer, got {chunk_voxels!r}; "
                              "65536 (one 256 x 256 slice) is a good size")
    return int(chunk_voxels)


def _lead_and_mask(ct: Any, n_t: int, mask: ArrayLike | None) -> tuple[tuple[int, ...], NDArray[np.bool_] | None]:
    shape = tuple(int(n) for n in np.shape(ct))
    if len(shape) < 1 or shape[-1] != n_t:
        raise TheraquantError(
            f"ct has shape {shape} but t has {n_t} frame times; the curves need time on the last axis "
            "with one sample per frame time (a 3-D image where a 4-D one is needed?)")
    lead = shape[:-1]
    if mask is None:
        return lead, None
    m = np.asarray(mask)
    if m.shape != lead:
        raise TheraquantError(
            f"mask has shape {m.shape} but the curves' leading (spatial) shape is {lead}; "
            "the mask must be on the image grid (resample it with Image.resample_like)")
    if m.dtype != bool:
        if not (np.issubdtype(m.dtype, np.integer) or np.issubdtype(m.dtype, np.floating)):
            raise TheraquantError(f"mask must be boolean or numeric, got dtype {m.dtype}")
        m = m != 0
    return lead, m


def _fit_chunked(
    ct: Any,
    n_t: int,
    fit_chunk: ChunkFitter,
    *,
    mask: ArrayLike | None = None,
    chunk_voxels: int = 65536,
    transform: Transform | None = None,
    progress: ProgressCallback | None = None,
    frame_times: NDArray[np.float64] | None = None,
) -> VolumeFit:
    """Drive ``fit_chunk`` over the masked voxels of ``ct`` (..., T), chunk by chunk.

    ``ct`` may be any array-like supporting ``shape`` and basic slicing along
    its first axis (a numpy array, a memory map or a transposed view of one, a
    nibabel array proxy); only one slab of it is in memory at a time.
    """
    chunk_voxels = _check_chunk_voxels(chunk_voxels)
    lead, m = _lead_and_mask(ct, n_t, mask)
    single = len(lead) == 0
    if single:  # one curve
        ct = np.asarray(ct)[None]
        lead_it = (1,)
        m = None
    else:
        lead_it = lead
    n_total = math.prod(lead_it)
    n_sel = int(np.count_nonzero(m)) if m is not None else n_total
    if n_sel == 0:
        raise TheraquantError("the mask selects no voxels; check the mask (label value, grid) or omit it")
    m_flat = m.reshape(-1) if m is not None else None
    plane = math.prod(lead_it[1:])
    rows = max(1, chunk_voxels // max(plane, 1))

    maps: dict[str, NDArray] = {}
    success = np.zeros(n_total, dtype=bool)
    pending_idx: list[NDArray[np.int64]] = []
    pending_ct: list[NDArray[np.float64]] = []
    n_pending = 0
    n_done = 0
    n_fitted = 0
    n_nonfinite = 0
    n_constant = 0
    info: dict[str, Any] = {}

    def _store(idx: NDArray[np.int64], curves: NDArray[np.float64]) -> None:
        nonlocal n_fitted
        res = fit_chunk(curves)
        n = idx.size
        if not info:
            info["units"] = dict(getattr(res, "units", {}) or {})
            info["settings"] = dict(getattr(res, "settings", {}) or {})
        for key in res:
            val = np.asarray(res[key])
            if val.shape != (n,):
                continue  # covariances, per-frame residuals...: not a map
            if key == "success":
                success[idx] = val.astype(bool)
                continue
            if key not in maps:
                maps[key] = np.full(n_total, np.nan, dtype=np.float32)
            maps[key][idx] = val
        if "success" not in res:
            success[idx] = True
        n_fitted += n

    def _flush(final: bool) -> None:
        nonlocal pending_idx, pending_ct, n_pending, n_done
        if n_pending == 0:
            return
        idx_all = np.concatenate(pending_idx) if len(pending_idx) > 1 else pending_idx[0]
        ct_all = np.concatenate(pending_ct) if len(pending_ct) > 1 else pending_ct[0]
        start = 0
        while n_pending - start >= chunk_voxels or (final and start < n_pending):
            stop = min(start + chunk_voxels, n_pending)
            _store(idx_all[start:stop], ct_all[start:stop])
            n_done += stop - start
            if progress is not None:
                progress(n_done, n_sel)
            start = stop
        pending_idx = [idx_all[start:]] if start < n_pending else []
        pending_ct = [ct_all[start:]] if start < n_pending else []
        n_pending -= start

    def _prepare(i0: int):
        """Slab ``i0``: the masked curves to fit (float64), their flat indices, and skip counts."""
        i1 = min(i0 + rows, lead_it[0])
        base = i0 * plane
        n_slab = (i1 - i0) * plane
        sel = None
        if m_flat is not None:
            sel = np.flatnonzero(m_flat[base:base + n_slab])
            if sel.size == 0:
                return None
        # one pass: read the slab (a strided gather from a memory map) straight into float64
        slab = np.empty((i1 - i0, *lead_it[1:], n_t), dtype=np.float64)
        slab[...] = ct[i0:i1]
        slab = slab.reshape(n_slab, n_t)
        finite = np.isfinite(slab)
        if n_slab > 1 and not finite.all():
            dead = ~finite.any(axis=0)
            if dead.any():
                k = int(np.flatnonzero(dead)[0])
                when = f" (t = {frame_times[k]:g} s)" if frame_times is not None else ""
                raise TheraquantError(
                    f"frame {k}{when} is NaN or infinite in every voxel of slices {i0}-{i1 - 1} along the "
                    "first axis; drop that frame and its time, or repair the series")
        if sel is None:
            curves, row_finite = slab, finite.all(axis=1)
            idx = np.arange(base, base + n_slab, dtype=np.int64)
        else:
            curves, row_finite = slab[sel], finite[sel].all(axis=1)
            idx = (base + sel).astype(np.int64)
        del slab, finite
        if transform is not None:
            curves = np.asarray(transform(curves, idx), dtype=np.float64)
            if curves.shape != (idx.size, n_t):
                raise TheraquantError(f"transform returned shape {curves.shape}; expected {(idx.size, n_t)}")
            row_finite = np.isfinite(curves).all(axis=1)
        with np.errstate(invalid="ignore"):
            constant = row_finite & (curves.max(axis=1) == curves.min(axis=1))
        keep = row_finite & ~constant
        n_bad = int(idx.size - np.count_nonzero(row_finite))
        n_const = int(np.count_nonzero(constant))
        if not keep.all():
            curves, idx = curves[keep], idx[keep]
        return idx, curves, n_bad, n_const

    for i0 in range(0, lead_it[0], rows):
        item = _prepare(i0)
        if item is None:
            continue
        idx, curves, n_bad, n_const = item
        n_nonfinite += n_bad
        n_constant += n_const
        n_done += n_bad + n_const
        if idx.size:
            pending_idx.append(idx)
            pending_ct.append(curves)
            n_pending += idx.size
        _flush(final=False)
    _flush(final=True)
    if n_fitted == 0:
        raise TheraquantError(
            f"no voxel could be fitted: of {n_sel} selected, {n_nonfinite} have NaN/inf samples and "
            f"{n_constant} are constant in time; check the mask, the frame data and the signal-to-"
            "concentration settings (T10, TR, flip angle)")
    if progress is not None and n_done < n_sel:
        progress(n_sel, n_sel)  # everything left was skipped as non-finite

    out_shape = lead if not single else ()
    out = {k: (v.reshape(out_shape) if not single else v.reshape(())) for k, v in maps.items()}
    out["success"] = success.reshape(out_shape)
    for k, v in maps.items():
        v[~success] = np.nan  # a failed fit has NaN parameters (views of ``out``)
    n_failed = n_sel - int(np.count_nonzero(success))
    units = {k: info.get("units", {}).get(k, "") for k in out}
    return VolumeFit(maps=out, n_voxels=n_sel, n_fitted=n_fitted, n_nonfinite=n_nonfinite,
                     n_constant=n_constant, n_failed=n_failed, chunk_voxels=chunk_voxels, units=units,
                     settings=info.get("settings", {}))


def _old_order(first: Any, second: Any) -> bool:
    """True when called as ``fit_volume(ct, t, ...)`` (the order before issue #9)."""
    n1 = len(getattr(first, "shape", None) or np.shape(first))
    n2 = len(getattr(second, "shape", None) or np.shape(second))
    if n1 >= 2 and n2 == 1:
        return True
    if n1 == 1 and n2 == 1:  # one curve: the frame times are the strictly increasing one
        a, b = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
        return bool(np.all(np.diff(b) > 0) and not np.all(np.diff(a) > 0))
    return False


def fit_volume(
    t: ArrayLike,
    ct: Any,
    model: str,
    *,
    cp: ArrayLike,
    cp_portal: ArrayLike | None = None,
    mask: ArrayLike | None = None,
    method: str = "nlls",
    chunk_voxels: int = 65536,
    transform: Transform | None = None,
    progress: ProgressCallback | None = None,
    **fit_options: Any,
) -> VolumeFit:
    """Fit a tracer-kinetic model to every masked voxel of a 4-D volume, in chunks.

    The same fit as :func:`theraquant.dce.fit` on the masked voxels, with the
    float64 working set bounded by ``chunk_voxels`` curves: the input is read
    one slab (along its first axis) at a time, so a memory-mapped NIfTI is
    never loaded whole, and the maps are stored in float32.

    Parameters
    ----------
    t : (T,) array_like
        Frame times, s (first, as in :func:`theraquant.dce.fit`; the earlier order
        ``fit_volume(ct, t, ...)`` still works for one release with a DeprecationWarning).
    ct : (..., T) array_like
        Tissue concentration, mM, time on the last axis (e.g. (z, y, x, t));
        any object with ``shape`` and slicing along the first axis: an ndarray,
        a ``numpy.memmap``, the array of an :class:`~theraquant.image.Image`
        read with ``read_nifti(..., mmap=True)``. Any dtype (converted to
        float64 one chunk at a time).
    model : str
        Model name as for :func:`theraquant.dce.fit` (``"tofts"``,
        ``"etofts"``, ``"patlak"``, ``"2cxm"``, ``"2cum"``,
        ``"dual_input_1c"``, ``"dual_input_etofts"``).
    cp, cp_portal : (T,) array_like
        Arterial (and portal-venous) plasma concentration, mM.
    mask : (...) array_like of bool, optional
        Voxels to fit (non-zero), on the grid of ``ct``'s leading axes;
        default every voxel.
    method : str
        Passed to :func:`theraquant.dce.fit`: ``"nlls"`` (default) or ``"linear"``.
    chunk_voxels : int
        Curves per call of the fit (default 65536): peak memory grows with
        it, speed saturates beyond a few thousand.
    transform : callable, optional
        ``transform(curves, index) -> curves`` applied to each chunk before the
        fit, with ``curves`` (n, T) float64 and ``index`` (n,) the flat voxel
        indices into the leading shape: converts signal to concentration
        chunk-wise (the T10 map is indexed with ``index``).
    progress : callable, optional
        ``progress(done, total)`` called after each chunk with voxel counts.
    **fit_options
        Passed to :func:`theraquant.dce.fit` (``delay``, bounds...).

    Returns
    -------
    VolumeFit
        Read-only mapping of float32 maps of the leading shape (NaN outside
        the mask and where the fit failed) plus a boolean ``"success"`` map,
        with voxel counts.

    Raises
    ------
    TheraquantError
        ``ct`` without a time axis matching ``t``, a mask on another grid or
        selecting nothing, a frame that is NaN in every voxel of a slab, and
        whatever :func:`theraquant.dce.fit` rejects (model name, ``cp`` length).

    Notes
    -----
    Voxels with a non-finite sample, and voxels whose curve is exactly
    constant, are not fitted: they are NaN, counted in ``n_nonfinite`` or
    ``n_constant`` and have ``success`` False. Chunking never changes the
    result: each voxel's fit is independent of the others in its chunk.

    Examples
    --------
    >>> import numpy as np
    >>> from theraquant import dce
    >>> t = np.arange(0.0, 300.0, 5.0)
    >>> cp = dce.aif.parker(t, hct=0.42)
    >>> truth = {"Ktrans": np.full((2, 3, 4), 0.2), "ve": np.full((2, 3, 4), 0.3),
    ...          "vp": np.full((2, 3, 4), 0.05)}
    >>> ct = dce.simulate(t, "etofts", truth, cp=cp)          # (2, 3, 4, 60) in mM
    >>> res = dce.fit_volume(t, ct, "etofts", cp=cp, chunk_voxels=5)
    >>> res["Ktrans"].shape, res["Ktrans"].dtype, bool(res["success"].all())
    ((2, 3, 4), dtype('float32'), True)
    >>> bool(np.allclose(res["Ktrans"], 0.2, rtol=1e-3))
    True
    """
    from . import _fit as _fitmod  # the batched fit of theraquant.dce

    if _old_order(t, ct):
        warnings.warn("fit_volume(ct, t, ...) is deprecated: pass the frame times first, fit_volume(t, ct, ...), "
                      "as in dce.fit; the old order stops working in the next release",
                      DeprecationWarning, stacklevel=2)
        t, ct = ct, t
    t = np.asarray(t, dtype=np.float64)
    if t.ndim != 1:
        raise TheraquantError(f"t must be a 1-D array of frame times in s, got shape {t.shape}")
    cp = np.asarray(cp, dtype=np.float64)
    if cp.shape != t.shape:
        raise TheraquantError(
            f"cp has {cp.size} samples but there are {t.size} frame times; "
            "give the input function at the frame times (AIF of the wrong length?)")
    if cp_portal is not None:
        cp_portal = np.asarray(cp_portal, dtype=np.float64)
        if cp_portal.shape != t.shape:
            raise TheraquantError(
                f"cp_portal has {cp_portal.size} samples but there are {t.size} frame times; "
                "give the portal-venous input at the frame times")

    def fit_chunk(curves: NDArray[np.float64]) -> Mapping[str, Any]:
        return _fitmod.fit(t, curves, model, cp=cp, cp_portal=cp_portal, method=method, **fit_options)

    res = _fit_chunked(ct, t.size, fit_chunk, mask=mask, chunk_voxels=chunk_voxels, transform=transform,
                       progress=progress, frame_times=t)
    settings = {**res.settings, "model": model, "method": method, "chunk_voxels": int(chunk_voxels),
                "storage": "float32 maps, float64 compute"}
    object.__setattr__(res, "settings", settings)
    from ..provenance import provenance as _provenance

    call = describe_call("theraquant.dce.fit_volume", {"t": t, "ct": ct, "model": model, "method": method,
                                                       "mask": mask, "chunk_voxels": chunk_voxels})
    object.__setattr__(res, "_provenance", _provenance(settings=settings, units=dict(res.units), command=call))
    return res
