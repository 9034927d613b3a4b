"""Figures of results (matplotlib Figure + its own Agg canvas: no display, no process-wide backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

__all__ = ["dce_phantom_figure"]


def dce_phantom_figure(path: Path, ph, res, model: str, slice_z: int, *, params: Sequence[str],
                       curves: Sequence[tuple[str, Any, Any]]) -> Path:
    """Truth and fitted maps on one slice, and example curves with their fits (matplotlib Agg, PNG).

    The figure only draws: the fitted curves come from the caller (the pipeline evaluates the model),
    so the report never simulates.

    Parameters
    ----------
    path : Path
        PNG to write.
    ph : theraquant.phantom.LiverDcePhantom
        The phantom (truth maps, labels, input functions).
    res : mapping of str to ndarray
        Fitted maps (as :func:`theraquant.dce.fit_volume` returns them).
    model : str
        Model fitted.
    slice_z : int
        Slice shown.
    params : sequence of str
        The model's free parameters to show (those with a truth map).
    curves : sequence of (name, data, fit)
        One example voxel per tissue: its concentration data and the fitted model's curve at
        ``ph.t``, mM.
    """
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    units = dict(getattr(res, "units", {}) or {})  # the fit's own units

    params = [p for p in params if p in ph.truth]
    fig = Figure(figsize=(3.2 * len(params), 9.0), layout="constrained")  # never pyplot: no global state
    FigureCanvasAgg(fig)
    axes = fig.subplots(3, len(params), squeeze=False)
    labels = ph.labels.array
    tissue = np.isin(labels, [1, 2, 3, 4])
    for j, p in enumerate(params):
        truth = np.where(tissue, ph.truth[p], np.nan)[slice_z]
        fitted = np.where(tissue, res[p], np.nan)[slice_z]
        hi = float(np.nanpercentile(ph.truth[p], 99)) * 1.3
        for i, (arr, what) in enumerate(((truth, "truth"), (fitted, "fitted"))):
            im = axes[i, j].imshow(arr, cmap="viridis", vmin=0.0, vmax=hi, interpolation="nearest")
            axes[i, j].set_title(f"{p} {what} ({units.get(p, '')})", fontsize=9)
            axes[i, j].set_axis_off()
        fig.colorbar(im, ax=axes[:2, j], shrink=0.6)
    # example curves: the voxel nearest each tissue label's centre, data and fitted model
    ax = axes[2, 0]
    ax.plot(ph.t, ph.cp, "k-", lw=1, label="arterial plasma")
    ax.plot(ph.t, ph.cp_portal, "k--", lw=1, label="portal plasma")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("mM")
    ax.legend(fontsize=7)
    ax.set_title("input functions", fontsize=9)
    panels = list(axes[2, 1:]) or [axes[2, 0]]
    for j, (name, data, fit_curve) in enumerate(curves):
        ax = panels[j % len(panels)]
        ax.plot(ph.t, np.asarray(data, dtype=float), ".", color=f"C{j}", ms=3, label=f"{name} data")
        ax.plot(ph.t, np.asarray(fit_curve, dtype=float), "-", color=f"C{j}", lw=1.2, label=f"{name} fit")
        ax.set_xlabel("time (s)")
        ax.set_ylabel("mM")
        ax.legend(fontsize=7)
        ax.set_title("tissue curves (one voxel)", fontsize=9)
    fig.suptitle(f"theraquant demo: synthetic liver DCE phantom, {model} fit (slice z = {slice_z})")
    from ..io import atomic_path

    with atomic_path(path) as tmp:  # a killed run never leaves half a PNG under the final name
        fig.savefig(tmp, dpi=110, format=Path(path).suffix.lstrip(".") or "png")
    return path
