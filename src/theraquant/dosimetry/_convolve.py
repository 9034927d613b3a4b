"""Linear (not circular) 3-D FFT convolution of a dose map with a small symmetric kernel."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import fft as sfft

__all__ = ["convolve_same"]


def _symmetric_spectrum(kernel: NDArray[np.float64], shape: tuple[int, int, int]) -> NDArray[np.float64]:
    """Real DFT (rfftn layout) of a kernel even in every axis, centred at index 0 of `shape`.

    For an even kernel the DFT is real: sum_o k[o] cos(2 pi f o / L) per axis, separable, so
    three small matrix products replace a full-size FFT of the zero-padded kernel.
    """
    cos = []
    for axis, n in enumerate(shape):
        m = kernel.shape[axis]
        offsets = np.arange(m) - m // 2
        nf = n // 2 + 1 if axis == 2 else n
        cos.append(np.cos(2.0 * np.pi * np.outer(np.arange(nf), offsets) / n))  # (nf, m)
    # contract the small axes first; the last product writes the full spectrum C-contiguous, in
    # the layout of the data's rfftn (a strided spectrum makes the multiply 1.5x slower)
    t = np.einsum("ijk,ck->ijc", kernel, cos[2])  # (m0, m1, nf2)
    t = np.einsum("ijc,bj->ibc", t, cos[1])  # (m0, nf1, nf2)
    m0 = kernel.shape[0]
    return (cos[0] @ t.reshape(m0, -1)).reshape(cos[0].shape[0], cos[1].shape[0], cos[2].shape[0])


def convolve_same(values: NDArray[np.float64], kernel: NDArray[np.float64], *,
                  workers: int = -1, precision: str = "double") -> NDArray[np.float64]:
    """Linear convolution of `values` with an odd-sized centred kernel, same shape as `values`.

    Only the bounding box of the non-zero voxels, widened by the kernel's half-size, is
    transformed (outside it the result is exactly 0). Zero padding to ``n + m // 2`` (rounded
    up to a fast FFT length) per axis: enough to make the circular convolution linear for
    every output voxel. Real transforms (scipy.fft, all cores); the kernel spectrum from
    separable cosine sums when the kernel is even (no transform of the padded kernel); the
    inverse axis by axis, keeping only the needed output rows before the next axis.

    Parameters
    ----------
    values : (nz, ny, nx) ndarray of float
        Source map (e.g. time-integrated activity per voxel, MBq s).
    kernel : (mz, my, mx) ndarray of float
        Kernel with odd sizes, centre at ``m // 2`` (e.g. mGy/(MBq s)).
    workers : int
        Threads for scipy.fft (-1: all cores).
    precision : {"double", "single"}
        Floating-point precision of the transforms. ``"single"`` (float32 FFTs, result returned
        as float64) is about 1.5-2x faster and half the memory; its round-off is ~3e-7 of the
        maximum of the result (absolute), which is negligible at the peak but not in the far
        tail: keep ``"double"`` where doses of less than ~1e-4 of the maximum matter.

    Returns
    -------
    (nz, ny, nx) ndarray of float64
        ``out[i] = sum_o values[i - o] * kernel[o + m // 2]`` with zeros outside `values`.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.zeros((5, 5, 5)); a[0, 0, 0] = 1.0
    >>> k = np.arange(27.0).reshape(3, 3, 3)
    >>> out = convolve_same(a, k)
    >>> bool(np.allclose(out[:2, :2, :2], k[1:, 1:, 1:])), bool(abs(out[4, 4, 4]) < 1e-12)
    (True, True)
    """
    if precision not in ("double", "single"):
        raise ValueError(f"precision must be 'double' or 'single', got {precision!r}")
    a = np.asarray(values, dtype=np.float64)
    k = np.asarray(kernel, dtype=np.float64)
    dtype = np.float64 if precision == "double" else np.float32
    if a.ndim != 3 or k.ndim != 3 or any(m % 2 == 0 for m in k.shape):
        raise ValueError(f"need a 3-D map and an odd-sized 3-D kernel, got {a.shape} and {k.shape}")
    # Only the bounding box of the non-zero voxels, widened by the kernel's reach, can receive
    # dose: transform that box (activity maps are usually zero outside the liver or body).
    lo, hi = [], []
    for ax in range(3):
        # scan slices inwards from both ends: a map that is non-zero at its faces costs 6 slices
        b = np.moveaxis(a, ax, 0)
        first = next((i for i in range(b.shape[0]) if b[i].any()), None)
        if first is None:  # nothing but zeros
            return np.zeros(a.shape)
        last = next(i for i in range(b.shape[0] - 1, -1, -1) if b[i].any())
        lo.append(first)
        hi.append(last + 1)
    if any(h_ - l_ < n for l_, h_, n in zip(lo, hi, a.shape)):
        out = np.zeros(a.shape)
        src = a[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        olo = [max(l_ - m // 2, 0) for l_, m in zip(lo, k.shape)]
        ohi = [min(h_ + m // 2, n) for h_, m, n in zip(hi, k.shape, a.shape)]
        # convolve the box padded (with zeros) out to the output region, so every output voxel
        # of that region is computed by the full-size routine below
        padded = np.zeros(tuple(h_ - l_ for l_, h_ in zip(olo, ohi)))
        padded[lo[0] - olo[0]:hi[0] - olo[0], lo[1] - olo[1]:hi[1] - olo[1], lo[2] - olo[2]:hi[2] - olo[2]] = src
        out[olo[0]:ohi[0], olo[1]:ohi[1], olo[2]:ohi[2]] = _convolve_full(padded, k, workers, dtype)
        return out
    return _convolve_full(a, k, workers, dtype)


def _convolve_full(a: NDArray[np.float64], k: NDArray[np.float64], workers: int,
                   dtype: type = np.float64) -> NDArray[np.float64]:
    n0, n1, n2 = a.shape
    shape = tuple(sfft.next_fast_len(n + m // 2, real=True) for n, m in zip(a.shape, k.shape))
    L0, L1, L2 = shape
    # even to rounding (interpolated kernels differ from their mirror by ~1e-17 of the centre):
    # then symmetrise exactly and use the real separable spectrum instead of a full transform
    even = all(np.allclose(k, np.flip(k, axis=ax), rtol=1e-12, atol=1e-14 * np.abs(k).max()) for ax in range(3))
    if even:
        for ax in range(3):
            k = 0.5 * (k + np.flip(k, axis=ax))
    if even:
        spec = _symmetric_spectrum(k, shape)
    else:
        kp = np.zeros(shape)
        idx = [np.arange(-(m // 2), m // 2 + 1) % L for m, L in zip(k.shape, shape)]
        kp[np.ix_(*idx)] = k
        spec = sfft.rfftn(kp, workers=workers)
    spec = spec.astype(dtype if even else np.result_type(dtype, np.complex64), copy=False)
    x = sfft.rfftn(a.astype(dtype, copy=False), s=shape, workers=workers)  # one multi-axis pass beats staged 1-D passes here
    x *= spec
    x = sfft.ifft(x, axis=0, workers=workers, overwrite_x=True)[:n0]
    x = sfft.ifft(x, axis=1, workers=workers, overwrite_x=True)[:, :n1]
    # a view of the first n2 samples of the padded last axis: copying it out (0.1 s for 256^3 here)
    # would cost as much as a transform; the padding is 3-5 % of the array
    return sfft.irfft(x, n=L2, axis=2, workers=workers)[:, :, :n2].astype(np.float64, copy=False)
