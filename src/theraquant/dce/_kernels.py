"""Is a model's compiled fitting code ready, and compile it ahead of a fit.

The fitting kernels are compiled by numba on first use and cached on disk (``cache=True``); one
kernel serves every model (the model code is a run-time argument), but the liver models need
the grid-start kernel and the others the linear one, so readiness is per model. A front end (CLI, pipeline) that wants to tell its user
"compiling fitting kernels (once, ~N s)" asks :func:`kernels_ready` first and, when it is
False, says so and calls :func:`warm_up`. The engine itself never prints.
"""

from __future__ import annotations

import time

import numpy as np

from ._models import MODELS, ModelName, get_model

__all__ = ["COMPILE_ESTIMATE_S", "kernels_ready", "warm_up"]

#: Typical compile time of the first model's kernels on an empty cache, s (measured 9 CPU-s,
#: 12.6 s wall at load 4 on 2 cores, 2026-12-03; a further model adds 1-3 s).
COMPILE_ESTIMATE_S = 10


def _dispatchers(code: int) -> list:
    from . import _convolve as C
    from . import _starts as S

    out = [C._row_stats_impl, C._lm_impl]
    out += [S._grid_impl, C.conv_exp] if code in S.GRID_MODELS else [C._linear_impl]
    return out


def _in_cache(disp) -> bool:
    """True when ``disp`` is compiled in this process or has a compiled version in numba's
    on-disk cache for this machine (same source, same CPU)."""
    if disp.signatures:
        return True
    cache = getattr(disp, "_cache", None)
    try:
        overloads = cache._cache_file._load_index()
        probe = cache._index_key(None, disp.targetctx.codegen())
    except Exception:  # noqa: BLE001 - no cache (NUMBA_DISABLE_JIT, read-only folder...): not ready
        return False
    return any(key[1:] == probe[1:] for key in overloads)


def kernels_ready(model: ModelName | None = None) -> bool:
    """Whether fitting ``model`` (every model when None) starts without compiling.

    Parameters
    ----------
    model : str, optional
        Model name as for :func:`theraquant.dce.fit`; None checks all seven.

    Returns
    -------
    bool
        True when every kernel the fit needs is compiled in this process or found in numba's
        on-disk cache; False means the first fit compiles (about :data:`COMPILE_ESTIMATE_S` s
        per model).

    Examples
    --------
    >>> from theraquant import dce
    >>> _ = dce.warm_up("tofts")
    >>> dce.kernels_ready("tofts")
    True
    """
    names = list(MODELS) if model is None else [model]
    return all(_in_cache(d) for name in names for d in _dispatchers(get_model(name).code))


def warm_up(model: ModelName | None = None) -> float:
    """Compile (or load from the cache) the kernels of ``model`` (every model when None).

    Fits three tiny synthetic curves, so the next :func:`theraquant.dce.fit` of real data
    starts at once. Nothing is printed.

    Returns
    -------
    float
        Seconds spent (wall clock).
    """
    from ._fit import fit

    t0 = time.perf_counter()
    t = np.arange(0.0, 60.0, 5.0)
    cp = 5.0 * (t / 15.0) * np.exp(1.0 - t / 15.0)
    cv = np.convolve(cp, np.full(3, 1 / 3))[: t.size]
    for name in (list(MODELS) if model is None else [model]):
        spec = get_model(name)
        ct = np.outer([0.2, 0.3, 0.4], 0.5 * cp + 0.2 * cv)
        fit(t, ct, spec.name, cp=cp, cp_portal=cv if spec.n_inputs == 2 else None)
    return time.perf_counter() - t0
