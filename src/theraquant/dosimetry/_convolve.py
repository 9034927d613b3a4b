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
    out = kernel
    for axis, n in enumerate(shape):
        m = kernel.shape[axis]
        offsets = np.arange(m) - m // 2
        nf = n // 2 + 1 if axis == 2 else n
        cos = np.cos(2.0 * np.pi * np.outer(np.arange(nf), offsets) / n)  # (nf, m)
        out = np.moveaxis(np.tensordot(cos, out, axes=([1], [axis])), 0, axis)
    return out


def convolve_same(values: NDArray[np.float64], kernel: NDArray[np.float64], *,
                  workers: int = -1) -> NDArray[np.float64]:
    """Linear convolution of `values` with an odd-sized centred kernel, same shape as `values`.

    Zero padding to ``n + m // 2`` (rounded up to a fast FFT length) per axis: enough to make
    the circular convolution linear for every output voxel. Real transforms (scipy.fft, all
    cores), the kernel spectrum computed by separable cosine sums when the kernel is even,
    zero rows skipped on the forward pass and only the needed rows kept on the inverse pass.

    Parameters
    ----------
    values : (nz, ny, nx) ndarray of float
        Source map (e.g. time-integrated activity per voxel, MBq s).
    kernel : (mz, my, mx) ndarray of float
        Kernel with odd sizes, centre at ``m // 2`` (e.g. mGy/(MBq s)).
    workers : int
        Threads for scipy.fft (-1: all cores).

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
    a = np.asarray(values, dtype=np.float64)
    k = np.asarray(kernel, dtype=np.float64)
    if a.ndim != 3 or k.ndim != 3 or any(m % 2 == 0 for m in k.shape):
        raise ValueError(f"need a 3-D map and an odd-sized 3-D kernel, got {a.shape} and {k.shape}")
    n0, n1, n2 = a.shape
    shape = tuple(sfft.next_fast_len(n + m // 2, real=True) for n, m in zip(a.shape, k.shape))
    L0, L1, L2 = shape
    even = all(np.array_equal(k, np.flip(k, axis=ax)) for ax in range(3))
    if even:
        spec = _symmetric_spectrum(k, shape)
    else:
        kp = np.zeros(shape)
        idx = [np.arange(-(m // 2), m // 2 + 1) % L for m, L in zip(k.shape, shape)]
        kp[np.ix_(*idx)] = k
        spec = sfft.rfftn(kp, workers=workers)
    x = sfft.rfft(a, n=L2, axis=2, workers=workers)
    x = sfft.fft(x, n=L1, axis=1, workers=workers, overwrite_x=True)
    x = sfft.fft(x, n=L0, axis=0, workers=workers, overwrite_x=True)
    x *= spec
    x = sfft.ifft(x, axis=0, workers=workers, overwrite_x=True)[:n0]
    x = sfft.ifft(x, axis=1, workers=workers, overwrite_x=True)[:, :n1]
    return np.ascontiguousarray(sfft.irfft(x, n=L2, axis=2, workers=workers)[:, :, :n2])
