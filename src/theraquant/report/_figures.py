"""Figures of results (matplotlib Figure + its own Agg canvas: no display, no process-wide backend)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["dce_phantom_figure"]


def dce_phantom_figure(path: Path, ph, res, model: str, slice_z: int) -> Path:
    """Truth and fitted maps on one slice, and example curves with their fits (matplotlib Agg, PNG).

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
    """
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from .. import dce
    from ..dce import MODELS

    units = dict(getattr(res, "units", {}) or {})  # the fit's own units (no private dce module)

    params = [p for p in MODELS[model].free if p in ph.truth]
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
    for j, value in enumerate((1, 2, 3, 4)):
        ax = panels[j % len(panels)]
        idx = np.argwhere((labels == value) & np.asarray(res["success"]))
        if idx.size == 0:
            continue
        z, y, x = idx[len(idx) // 2]
        data = np.asarray(ph.image.array[z, y, x], dtype=float)
        fitted_params = {p: np.asarray([res[p][z, y, x]], dtype=float) for p in MODELS[model].free}
        fit_curve = dce.simulate(ph.t, model, fitted_params, cp=ph.cp, cp_portal=ph.cp_portal)[0]
        ax.plot(ph.t, data, ".", color=f"C{j}", ms=3, label=f"{ph.label_names[value]} data")
        ax.plot(ph.t, fit_curve, "-", color=f"C{j}", lw=1.2, label=f"{ph.label_names[value]} fit")
        ax.set_xlabel("time (s)")
        ax.set_ylabel("mM")
        ax.legend(fontsize=7)
        ax.set_title("tissue curves (one voxel)", fontsize=9)
    fig.suptitle(f"theraquant demo: synthetic liver DCE phantom, {model} fit (slice z = {slice_z})")
    from ..io import atomic_path

    with atomic_path(path) as tmp:  # a killed run never leaves half a PNG under the final name
        fig.savefig(tmp, dpi=110, format=Path(path).suffix.lstrip(".") or "png")
    return path
