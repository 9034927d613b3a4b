"""The report's figures: matplotlib ``Figure`` + Agg canvas (never pyplot, never ``matplotlib.use``).

Every function takes values already in the RESULTS folder and only draws them: nothing here fits,
convolves or simulates. Colour maps are perceptually uniform and readable in grey scale
(viridis / cividis / magma); series are told apart by line style and marker as well as colour.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._doc import Figure as DocFigure
from ._doc import fmt, fmt_ci

__all__ = ["DPI", "render", "new_figure", "MapPanel"]

DPI = 96  # PNG resolution: text at 8-9 pt stays legible at 100 % zoom, files stay small
LINESTYLES = ("-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 2)))


def new_figure(width_in: float, height_in: float, *, layout: str | None = "constrained"):
    """A matplotlib Figure with its own Agg canvas (no pyplot, no global state).

    ``layout=None`` for the many-panel figures laid out by hand (constrained layout costs ~40 %
    of their drawing time).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=DPI, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def render(fig, caption: str, alt: str) -> DocFigure:
    """PNG bytes of ``fig`` (Agg, ``DPI``) wrapped as a report figure."""
    buf = io.BytesIO()
    fig.canvas.print_png(buf)
    w, h = fig.canvas.get_width_height()
    return DocFigure(png=buf.getvalue(), caption=caption, alt=alt, width_px=int(w), height_px=int(h))


def _colours(n: int, cmap: str = "viridis") -> list:
    from matplotlib import colormaps

    cm = colormaps[cmap]
    if n <= 1:
        return [cm(0.3)]
    return [cm(0.9 * i / (n - 1)) for i in range(n)]


# --------------------------------------------------------------------------------------------- cohort
def roc_figure(roc: Mapping[str, Mapping[str, Any]], *, clustered: bool, labels: Mapping[str, str]):
    fig = new_figure(5.8, 5.2 + 0.22 * len(roc))
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="0.6", lw=0.8, ls=":", label="chance")
    cols = _colours(len(roc))
    for k, (marker, r) in enumerate(roc.items()):
        fpr, tpr = r.get("fpr"), r.get("tpr")
        if fpr is None or tpr is None:
            continue
        ci = r.get("ci") or [None, None]
        how = r.get("variance") or ""
        extra = ", ".join(x for x in ("clustered" if clustered else "", how) if x)
        lab = f"{labels.get(marker, marker)}: AUC {fmt(r.get('auc'))} (95 % CI {fmt_ci(*ci)}{', ' + extra if extra else ''})"
        ax.step(fpr, tpr, where="post", color=cols[k], ls=LINESTYLES[k % len(LINESTYLES)], lw=1.8, label=lab)
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel("1 − specificity (false-positive fraction, 1)")
    ax.set_ylabel("sensitivity (true-positive fraction, 1)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), fontsize=8, frameon=False)  # below: never on a curve
    ax.grid(alpha=0.3)
    return fig


def waterfall_figure(change_pct: np.ndarray, categories: Sequence[str], *, measure: str, order: Sequence[str]):
    fig = new_figure(7.5, 3.6)
    ax = fig.add_subplot()
    idx = np.argsort(-np.nan_to_num(change_pct, nan=-np.inf))
    vals = change_pct[idx]
    cats = [categories[i] for i in idx]
    cols = dict(zip(order, _colours(len(order), "cividis")))
    hatches = dict(zip(order, ("", "//", "..", "xx", "\\\\", "++", "--")))
    x = np.arange(len(vals))
    for cat in order:
        sel = np.array([c == cat for c in cats])
        if sel.any():
            ax.bar(x[sel], vals[sel], color=cols[cat], hatch=hatches[cat], edgecolor="0.2", lw=0.4, label=cat)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xlabel("lesion (sorted by change)")
    ax.set_ylabel(f"change in {measure} (%)")
    ax.set_xticks([])
    ax.legend(fontsize=8, ncols=min(len(order), 5), loc="upper right")
    ax.grid(axis="y", alpha=0.3)
    return fig


def dose_response_figure(dose: np.ndarray, responder: np.ndarray, curve: Mapping[str, Sequence[float]],
                         d50: float | None, ci: Sequence[float] | None, *, dose_label: str):
    fig = new_figure(5.6, 3.8)
    ax = fig.add_subplot()
    ok = np.isfinite(dose) & np.isfinite(responder)
    rng = np.random.default_rng(0)  # vertical jitter of the points only, for visibility
    ax.plot(dose[ok], responder[ok] + rng.uniform(-0.03, 0.03, ok.sum()), "o", ms=4, mfc="none",
            color="0.25", label="lesions (0 = non-responder, 1 = responder)")
    d, p = np.asarray(curve.get("dose_gy", []), float), np.asarray(curve.get("p", []), float)
    if d.size:
        ax.plot(d, p, "-", color=_colours(1)[0], lw=2, label="fitted probability of response")
    if d50 is not None and np.isfinite(d50):
        lab = f"D50 = {fmt(d50)} Gy (95 % CI {fmt_ci(*(ci or [None, None]))} Gy)"
        ax.axvline(d50, color="k", ls="--", lw=1, label=lab)
        if ci is not None and all(c is not None and np.isfinite(c) for c in ci):
            ax.axvspan(ci[0], ci[1], color="0.5", alpha=0.2, lw=0)
    ax.set_xlabel(dose_label)
    ax.set_ylabel("probability of response (1)")
    ax.set_ylim(-0.08, 1.08)
    ax.legend(fontsize=7.5, loc="center right")
    ax.grid(alpha=0.3)
    return fig


def marker_box_figure(values: Mapping[str, np.ndarray], categories: np.ndarray, order: Sequence[str],
                      labels: Mapping[str, str]):
    n = len(values)
    ncol = min(n, 3)
    nrow = int(np.ceil(n / ncol))
    fig = new_figure(3.0 * ncol + 0.4, 2.7 * nrow)
    rng = np.random.default_rng(1)  # horizontal jitter of the points only
    for k, (marker, v) in enumerate(values.items()):
        ax = fig.add_subplot(nrow, ncol, k + 1)
        groups = [v[(categories == c) & np.isfinite(v)] for c in order]
        ax.boxplot([g if g.size else np.array([np.nan]) for g in groups], widths=0.55, showfliers=False,
                   medianprops={"color": "k"}, boxprops={"color": "0.3"})
        ax.set_xticks(np.arange(1, len(order) + 1), [f"{c}\n(n={g.size})" for c, g in zip(order, groups)])
        for i, g in enumerate(groups):
            ax.plot(i + 1 + rng.uniform(-0.15, 0.15, g.size), g, "o", ms=3.5, alpha=0.8,
                    color=_colours(len(order), "viridis")[i], mec="0.1", mew=0.3)
        ax.set_ylabel(labels.get(marker, marker), fontsize=8.5)
        ax.set_xlabel("response category")
        ax.tick_params(labelsize=8)
        ax.grid(axis="y", alpha=0.3)
    return fig


def calibration_figure(mean_predicted: Sequence[float], observed: Sequence[float], n: Sequence[float] | None):
    fig = new_figure(4.4, 4.0)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="0.6", ls=":", label="perfect calibration")
    mp, ob = np.asarray(mean_predicted, float), np.asarray(observed, float)
    sizes = 20 + 6 * np.asarray(n, float) if n is not None and len(n) == len(mp) else 30
    ax.scatter(mp, ob, s=sizes, color=_colours(1)[0], edgecolor="k", zorder=3, label="bins (area ~ lesions)")
    ax.plot(mp, ob, "-", color=_colours(1)[0], lw=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.set_xlabel("mean predicted probability (1)")
    ax.set_ylabel("observed response fraction (1)")
    ax.legend(fontsize=7.5, loc="upper left")
    ax.grid(alpha=0.3)
    return fig


# --------------------------------------------------------------------------------------------- patients
@dataclass
class MapPanel:
    """One map slice to draw (already sliced and, for the background, already on the map's grid)."""

    title: str
    unit: str
    values: np.ndarray  # 2-D (y, x)
    extent: tuple[float, float, float, float]  # mm: left, right, bottom, top
    background: np.ndarray | None = None
    outlines: list[tuple[np.ndarray, str]] = field(default_factory=list)  # (bool mask 2-D, label)
    liver: np.ndarray | None = None
    cmap: str = "viridis"
    vmin: float | None = None
    vmax: float | None = None
    note: str = ""


def maps_figure(panels: Sequence[MapPanel]):
    """Map slices on their anatomy, blended here into one RGB image per panel (one image, not two
    composited by Agg: ~3x faster), voxel-edge outlines as line segments, a colour bar per map."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.collections import LineCollection
    from matplotlib.colors import Normalize
    from matplotlib.ticker import MaxNLocator
    n = len(panels)
    ncol = min(n, 4)
    nrow = int(np.ceil(n / ncol))
    width, height = 3.1 * ncol, 2.75 * nrow
    fig = new_figure(width, height, layout=None)
    gs = fig.add_gridspec(nrow, ncol, left=0.15 / width, right=1 - 0.75 / width, bottom=0.45 / height,
                          top=1 - 0.42 / height, wspace=0.62, hspace=0.45)
    for k, p in enumerate(panels):
        ax = fig.add_subplot(gs[k // ncol, k % ncol])
        ax.set_xticks([])  # a scale bar instead of mm ticks on both axes: half the drawing time
        ax.set_yticks([])
        vals = np.asarray(p.values, dtype=float)
        finite = vals[np.isfinite(vals)]
        vmin = p.vmin if p.vmin is not None else (float(np.percentile(finite, 1)) if finite.size else 0.0)
        vmax = p.vmax if p.vmax is not None else (float(np.percentile(finite, 99)) if finite.size else 1.0)
        if not vmax > vmin:
            vmax = vmin + (abs(vmin) or 1.0)
        norm = Normalize(vmin=vmin, vmax=vmax, clip=True)
        cmap = colormaps[p.cmap]
        rgb = cmap(norm(np.nan_to_num(vals, nan=vmin)))[..., :3]
        shown = np.isfinite(vals)
        if p.background is not None:
            bg = np.asarray(p.background, dtype=float)
            ok = np.isfinite(bg)
            lo, hi = np.percentile(bg[ok], [1, 99]) if ok.any() else (0.0, 1.0)
            grey = np.clip((np.nan_to_num(bg, nan=lo) - lo) / ((hi - lo) or 1.0), 0, 1)[..., None]
            alpha = np.where(shown & (vals != 0), 0.8, 0.0)[..., None]
            rgb = alpha * rgb + (1 - alpha) * np.repeat(grey, 3, axis=-1)
        else:
            rgb = np.where(shown[..., None], rgb, 1.0)
        ax.imshow(rgb, extent=p.extent, interpolation="nearest")
        ax.set_xlim(p.extent[0], p.extent[1])
        ax.set_ylim(p.extent[2], p.extent[3])
        if p.liver is not None and p.liver.any():
            ax.add_collection(LineCollection(_edges(p.liver, p.extent), colors="w", linewidths=0.6,
                                             linestyles=(0, (2, 2))))
        for mask, label in p.outlines:
            if mask.any():
                ax.add_collection(LineCollection(_edges(mask, p.extent), colors="w", linewidths=1.3))
                ys, xs = np.nonzero(mask)
                sx = (p.extent[1] - p.extent[0]) / mask.shape[1]
                sy = (p.extent[2] - p.extent[3]) / mask.shape[0]
                ax.text(p.extent[0] + (xs.max() + 1.0) * sx, p.extent[3] + ys.min() * sy, label, color="w",
                        fontsize=7.5, fontweight="bold", bbox={"facecolor": "k", "alpha": 0.55, "pad": 1, "lw": 0})
        cax = ax.inset_axes((1.04, 0.0, 0.06, 1.0))  # no re-gridding of the figure: cheaper than ax=
        cb = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), cax=cax, ticks=MaxNLocator(5))
        cb.set_label(p.unit, fontsize=8)
        cb.ax.tick_params(labelsize=7.5)
        ax.set_title(p.title + (f"\n{p.note}" if p.note else ""), fontsize=9)
        _scale_bar(ax, p.extent)
    return fig


def _scale_bar(ax, extent) -> None:
    """A white bar of a round length (mm) in the lower left corner of an image panel."""
    width = abs(extent[1] - extent[0])
    length = next((v for v in (100, 50, 20, 10, 5, 2, 1) if v <= width / 4), 1)
    x0 = extent[0] + 0.05 * width
    y0 = extent[2] - 0.06 * abs(extent[2] - extent[3])
    ax.plot([x0, x0 + length], [y0, y0], color="w", lw=2.5, solid_capstyle="butt")
    ax.text(x0 + length / 2, y0 - 0.02 * abs(extent[2] - extent[3]), f"{length} mm", color="w", fontsize=7.5,
            ha="center", va="bottom", bbox={"facecolor": "k", "alpha": 0.4, "pad": 0.5, "lw": 0})


def _edges(mask: np.ndarray, extent) -> np.ndarray:
    """Voxel-edge outline of a 2-D mask as line segments (n, 2, 2) in the imshow ``extent`` (mm).

    >>> _edges(np.array([[True]]), (0.0, 2.0, 2.0, 0.0)).tolist()  # one 2-mm pixel: its 4 sides
    [[[0.0, 0.0], [2.0, 0.0]], [[0.0, 2.0], [2.0, 2.0]], [[0.0, 0.0], [0.0, 2.0]], [[2.0, 0.0], [2.0, 2.0]]]
    """
    m = np.pad(np.asarray(mask, bool), 1)
    ny, nx = mask.shape
    sx = (extent[1] - extent[0]) / nx
    sy = (extent[2] - extent[3]) / ny
    x0, y0 = extent[0], extent[3]
    # horizontal edges: between rows r-1 and r (r = 0..ny), columns c
    r, c = np.nonzero(m[1:, 1:-1] != m[:-1, 1:-1])
    h = np.stack([np.stack([x0 + c * sx, y0 + r * sy], -1), np.stack([x0 + (c + 1) * sx, y0 + r * sy], -1)], 1)
    # vertical edges: between columns c-1 and c, rows r
    r, c = np.nonzero(m[1:-1, 1:] != m[1:-1, :-1])
    v = np.stack([np.stack([x0 + c * sx, y0 + r * sy], -1), np.stack([x0 + c * sx, y0 + (r + 1) * sy], -1)], 1)
    return np.concatenate([h, v]).astype(float)


def curves_figure(groups: Sequence[tuple[str, list[tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]]],
                  aifs: Mapping[str, tuple[np.ndarray, np.ndarray]], portals: Mapping[str, tuple[np.ndarray, np.ndarray]]):
    """``groups``: (lesion, [(session, t_data, c_data, t_fit, c_fit), ...]); input functions per session."""
    n = len(groups)
    ncol = min(max(n, 1), 4)
    nrow = max(1, int(np.ceil(n / ncol)))
    width, height = max(3.3 * ncol + 0.3, 5.0), 2.5 * nrow + 0.6
    fig = new_figure(width, height, layout=None)  # laid out by hand: constrained layout doubles the time
    gs = fig.add_gridspec(nrow, ncol, left=0.6 / width, right=1 - 0.55 / width, bottom=1.0 / height,
                          top=1 - 0.3 / height, wspace=0.75, hspace=0.55)
    legend: dict[str, Any] = {}
    session_style = {"baseline": ("o", "-", 0), "followup": ("s", "--", 1)}
    cols = _colours(2)
    for k, (lesion, series) in enumerate(groups):
        ax = fig.add_subplot(gs[k // ncol, k % ncol])
        ax2 = ax.twinx()
        for session, td, cd, tf, cf in series:
            mk, ls, ci = session_style.get(session, ("^", ":", 1))
            if td.size:
                ax.plot(td / 60, cd, mk, ms=2.5, mfc="none", color=cols[ci], label=f"{session} data")
            if tf.size:
                ax.plot(tf / 60, cf, ls, lw=1.5, color=cols[ci], label=f"{session} fit")
            for name, inputs, style in (("AIF", aifs, (0, (4, 2))), ("portal", portals, (0, (1, 1.5)))):
                if session in inputs:
                    ta, ca = inputs[session]
                    ax2.plot(ta / 60, ca, ls=style, lw=0.9, color="0.45",
                             label=f"{name} ({session})" if len(series) > 1 else name)
        ax.set_title(f"lesion {lesion}", fontsize=9)
        ax.set_xlabel("time (min)", fontsize=8)
        ax.set_ylabel("tissue concentration (mM)", fontsize=8)
        ax2.set_ylabel("plasma input (mM)", fontsize=8, color="0.35")
        ax.tick_params(labelsize=7.5)
        ax2.tick_params(labelsize=7.5, colors="0.35")
        for a in (ax, ax2):
            for h, lab in zip(*a.get_legend_handles_labels()):
                legend.setdefault(lab, h)
    if legend:  # one legend for all panels, below them (inside a panel it hides the data)
        fig.legend(list(legend.values()), list(legend.keys()), loc="lower center", fontsize=7.5, frameon=False,
                   ncols=min(len(legend), 3 if width < 7 else 6))
    return fig


def dvh_figure(lines: Sequence[tuple[str, np.ndarray, np.ndarray]]):
    fig = new_figure(4.8, 3.3)
    ax = fig.add_subplot()
    cols = _colours(max(len(lines), 1), "magma")
    for k, (label, dose, vol) in enumerate(lines):
        is_liver = label == "normal liver"
        ax.plot(dose, vol, ls="--" if is_liver else LINESTYLES[k % len(LINESTYLES)],
                color="0.35" if is_liver else cols[k], lw=1.6, label=label)
    ax.set_xlabel("absorbed dose (Gy)")
    ax.set_ylabel("volume receiving ≥ dose (%)")
    ax.set_ylim(0, 102)
    ax.set_xlim(left=0)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


# --------------------------------------------------------------------------------------------- validation
def validation_figure(panels: Sequence[tuple[str, str, np.ndarray, np.ndarray, Mapping[str, Any] | None]]):
    """``panels``: (biomarker, unit, true, recovered, validation-entry)."""
    n = len(panels)
    ncol = min(n, 4)
    nrow = int(np.ceil(n / ncol))
    width, height = 3.2 * ncol + 0.5, 2.8 * nrow
    fig = new_figure(width, height, layout=None)  # by hand: constrained layout doubles the drawing time
    gs = fig.add_gridspec(nrow, ncol, left=0.65 / width, right=1 - 0.75 / width, bottom=0.5 / height,
                          top=1 - 0.45 / height, wspace=0.55, hspace=0.75)
    col = _colours(1)[0]
    for k, (name, unit, true, rec, v) in enumerate(panels):
        ax = fig.add_subplot(gs[k // ncol, k % ncol])
        ok = np.isfinite(true) & np.isfinite(rec)
        ax.plot(true[ok], rec[ok], "o", ms=3.5, color=col, mec="k", mew=0.3)
        if ok.any():
            lo = float(min(true[ok].min(), rec[ok].min()))
            hi = float(max(true[ok].max(), rec[ok].max()))
            pad = 0.05 * (hi - lo or 1.0)
            ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "k--", lw=0.8, label="identity")
        u = f" ({unit})" if unit else ""
        title = name
        if v:
            u_txt = f" {unit}" if unit and unit != "1" else ""
            title += f"\nbias {fmt(v.get('bias'))}{u_txt}, LoA {fmt_ci(v.get('loa_low'), v.get('loa_high'))}{u_txt}"
        ax.set_title(title, fontsize=8.5)
        ax.set_xlabel(f"true{u}", fontsize=8)
        ax.set_ylabel(f"recovered{u}", fontsize=8)
        ax.tick_params(labelsize=7.5)
        ax.grid(alpha=0.3)
    return fig
