"""Is a model's compiled fitting code ready, and compile it ahead of a fit.

The fitting kernels are compiled by numba on first use and cached on disk (``cache=True``); one
kernel serves every model (the model code is a run-time argument), but the liver models need
the grid-start kernel and the others the linear one, so readiness is per model. On an empty
cache :func:`warm_up` compiles the start kernel in a child process while it compiles the
Levenberg-Marquardt kernel (numba compiles one function at a time per process), which brings
the wait on two cores from the sum of the two to the longer one. A front end (CLI, pipeline) that wants to tell its user
"compiling fitting kernels (once, ~N s)" asks :func:`kernels_ready` first and, when it is
False, says so and calls :func:`warm_up`; :func:`theraquant.dce.fit` calls it itself otherwise
(:func:`ensure_ready`). The engine itself never prints.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import numba
import numpy as np

from ._models import MODELS, ModelName, get_model

__all__ = ["COMPILE_ESTIMATE_S", "kernels_ready", "warm_up"]

_LOCK = threading.RLock()  # one warm-up at a time; the thread that warms up re-enters freely
_BUSY = False  # inside warm_up: its own fits must not start another

#: Typical wall time of :func:`warm_up` for one model on an empty cache, s (measured 6.3-6.5 s on
#: 2 idle cores, 2026-12-03: the Levenberg-Marquardt kernel here, 6.5 CPU-s, and the start kernel
#: in a child process at the same time, 4 CPU-s; compiled one after the other they take ~10.5 s;
#: a further model adds 0-1 s).
COMPILE_ESTIMATE_S = 8


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


def _tiny_inputs():
    t = np.arange(0.0, 60.0, 5.0)
    cp = 5.0 * (t / 15.0) * np.exp(1.0 - t / 15.0)
    cv = np.convolve(cp, np.full(3, 1 / 3))[: t.size]
    return t, cp, cv


def _compile_starts(names: list[str]) -> None:
    """Compile (into numba's on-disk cache) only the start kernels of ``names``: the grid of
    the liver models, the linear solution of the others (run in a child by :func:`warm_up`)."""
    from . import _fit as F
    from . import _starts as S

    t, cp, cv = _tiny_inputs()
    h = np.diff(t) / 60.0
    for name in names:
        spec = get_model(name)
        ct = np.outer([0.2, 0.3, 0.4], 0.5 * cp + 0.2 * cv)
        if spec.code in S.GRID_MODELS:
            scale = np.array(spec.scale())
            lo, hi = (np.array(b) * scale for b in spec.bounds(None))
            S.grid_start(spec.code, h, True, cp, cv if spec.n_inputs == 2 else cp, ct, lo, hi)
        else:
            F._linear(spec, h, cp[None], cv[None], ct)


def _start_child(names: list[str]) -> subprocess.Popen | None:
    """A child process compiling the start kernels of ``names`` into the on-disk cache while
    this process compiles the Levenberg-Marquardt kernel (the two compile in parallel on two
    cores; numba compiles one function at a time per process). None where it would not help."""
    if numba.config.DISABLE_JIT or (os.cpu_count() or 1) < 2:
        return None
    from . import _convolve as C
    from . import _starts as S

    need = [n for n in names if not _in_cache(S._grid_impl if get_model(n).code in S.GRID_MODELS
                                              else C._linear_impl)]
    if not need:
        return None
    code = f"from theraquant.dce._kernels import _compile_starts; _compile_starts({need!r})"
    # the child imports this same theraquant (and numba) whatever put it on this process's path
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    try:
        return subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError:  # no child processes here: compile everything in this process
        return None


def ensure_ready(model: ModelName) -> None:
    """Warm up ``model``'s kernels (:func:`warm_up`) unless they are ready; called by
    :func:`theraquant.dce.fit` before its first fit, so that a first fit on an empty cache gets
    the parallel compile too. Other threads wait for a warm-up in progress."""
    if _BUSY or kernels_ready(model):
        return
    with _LOCK:
        if not _BUSY and not kernels_ready(model):
            warm_up(model)


def warm_up(model: ModelName | None = None) -> float:
    """Compile (or load from the cache) the kernels of ``model`` (every model when None).

    Fits three tiny synthetic curves, so the next :func:`theraquant.dce.fit` of real data
    starts at once. On an empty cache the start kernels (grid or linear) compile in a child
    process while this one compiles the Levenberg-Marquardt kernel, and are then loaded from
    numba's on-disk cache (if the child fails, they compile here). Nothing is printed.

    Returns
    -------
    float
        Seconds spent (wall clock).
    """
    global _BUSY
    with _LOCK:
        was, _BUSY = _BUSY, True
        try:
            return _warm_up(model)
        finally:
            _BUSY = was


def _warm_up(model: ModelName | None) -> float:
    from ._fit import fit

    t0 = time.perf_counter()
    names = list(MODELS) if model is None else [model]
    t, cp, cv = _tiny_inputs()
    child = _start_child(names)
    for name in names:
        spec = get_model(name)
        ct = np.outer([0.2, 0.3, 0.4], 0.5 * cp + 0.2 * cv)
        if child is not None:  # the Levenberg-Marquardt kernel alone (a given start needs no start kernel)
            fit(t, ct, spec.name, cp=cp, cp_portal=cv if spec.n_inputs == 2 else None,
                p0={p: s for p, s in zip(spec.free, spec.start())})
    if child is not None:
        child.wait()
    for name in names:
        spec = get_model(name)
        ct = np.outer([0.2, 0.3, 0.4], 0.5 * cp + 0.2 * cv)
        fit(t, ct, spec.name, cp=cp, cp_portal=cv if spec.n_inputs == 2 else None)
    return time.perf_counter() - t0
