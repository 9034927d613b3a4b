"""The ``theraquant`` command line: thin typer commands over the library.

Errors on bad input print one line (what failed and the fix) and exit 1;
usage errors exit 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable, Optional

import typer
from rich.console import Console

from . import __version__
from .errors import TheraquantError

app = typer.Typer(name="theraquant", help=__doc__.splitlines()[0] if __doc__ else None,
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
dce_app = typer.Typer(help="DCE-MRI perfusion: tracer-kinetic model fitting.", no_args_is_help=True)
pet_app = typer.Typer(help="PET quantification: SUV, lesion metrics, hypoxia.", no_args_is_help=True)
app.add_typer(dce_app, name="dce")
app.add_typer(pet_app, name="pet")

err = Console(stderr=True)
out = Console()
_STATE = {"debug": False}


def _version_callback(value: bool) -> None:
    if value:
        out.print(f"theraquant {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True,
                                 help="Print the version and exit."),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
) -> None:
    """theraquant: quantitative imaging for radionuclide therapy of liver tumours."""
    _STATE["debug"] = debug


def handle_errors(func: Callable) -> Callable:
    """Turn bad-input errors into one line on stderr and exit code 1."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (TheraquantError, ValueError, FileNotFoundError, FileExistsError) as exc:
            if _STATE["debug"]:
                raise
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            err.print(f"[red]error:[/] {msg}", highlight=False, soft_wrap=True)
            raise typer.Exit(1)

    return wrapper


def check_out_dir(path: Path, overwrite: bool) -> Path:
    """Create an output folder; refuse a non-empty one unless ``overwrite``."""
    if path.exists() and any(path.iterdir()) and not overwrite:
        raise FileExistsError(f"{path} exists and is not empty; pass --overwrite to replace its files")
    path.mkdir(parents=True, exist_ok=True)
    return path


# ---------------------------------------------------------------------------- DCE commands


_DCE_MODELS = ("tofts", "etofts", "patlak", "2cxm", "2cum", "dual_input_1c", "dual_input_etofts")
_DCE_AIFS = ("parker", "orton", "weinmann", "fritz-hansen", "georgiou", "mcgrath", "roi")
_DCE_MAP_DESCRIPTION = {"success": "1 where the fit converged", "r2": "coefficient of determination",
                        "aic": "Akaike information criterion"}


def _dce_parse_delay(delay: str) -> float | str:
    if delay.strip().lower() == "fit":
        return "fit"
    try:
        value = float(delay)
    except ValueError:
        raise TheraquantError(f"--delay must be a number of seconds or 'fit', got {delay!r}") from None
    return value


def _dce_frame_times(image, frame_times: Optional[str], dt: Optional[float], source: Path):
    """Frame times (s) of a 4-D image: --frame-times, --dt, else the sidecar/header/DICOM times."""
    import numpy as np

    n = image.n_frames
    if frame_times is not None:
        p = Path(frame_times)
        text = p.read_text() if p.is_file() else frame_times
        try:
            t = np.asarray([float(v) for v in text.replace(",", " ").split()], dtype=float)
        except ValueError:
            raise TheraquantError(f"--frame-times must be comma-separated seconds or a text file of them, "
                                  f"got {frame_times!r}") from None
        origin = "--frame-times"
    elif dt is not None:
        if not dt > 0:
            raise TheraquantError(f"--dt must be a positive frame interval in s, got {dt!r}")
        t, origin = np.arange(n) * float(dt), "--dt"
    elif image.frame_times_s is not None and (n < 2 or np.ptp(image.frame_times_s) > 0):
        t, origin = np.asarray(image.frame_times_s, float), "input"
    else:
        raise TheraquantError(f"{source.name}: no frame times (no FrameTimes_s in a JSON sidecar, no time step "
                              "in the header, no AcquisitionTime); pass --frame-times or --dt")
    if t.shape != (n,):
        raise TheraquantError(f"{origin} gives {t.size} frame times but {source.name} has {n} frames; "
                              "give one time (s) per frame")
    if not np.all(np.isfinite(t)) or np.any(np.diff(t) <= 0):
        raise TheraquantError(f"frame times from {origin} must be finite and strictly increasing (s), got "
                              f"{np.round(t[:6], 3).tolist()}...; fix the timing")
    return t, origin


def _dce_read_input(path: Path, series_uid: Optional[str] = None):
    import numpy as np

    from .io import read_dicom_series, read_nifti

    if not path.exists():
        raise TheraquantError(f"{path}: no such file or directory; give a 4-D NIfTI or a DICOM series folder")
    if path.is_dir():
        try:
            image = read_dicom_series(path, series_uid=series_uid, dtype=np.float32)  # half the memory
        except TheraquantError as exc:
            raise TheraquantError(str(exc).replace("pass series_uid= to choose one", "pass --series-uid to "
                                                   "choose one")) from exc
    else:
        image = read_nifti(path, mmap=True)
    if image.array.ndim != 4 or image.n_frames < 3:
        raise TheraquantError(f"{path.name}: image of shape {image.array.shape} is not a dynamic series; "
                              "dce fit needs a 4-D (z, y, x, t) image with one frame per time point")
    return image


def _dce_acquisition(image, tr: Optional[float], flip_angle: Optional[float]):
    """TR (s) and flip angle (degrees): the options, else the DICOM headers (RepetitionTime in ms)."""
    headers = image.meta.get("headers") if isinstance(image.meta, dict) else None
    origin = "options"
    if headers and (tr is None or flip_angle is None):
        first = headers[0][0] if isinstance(headers[0], list) else headers[0]
        if tr is None and first.get("RepetitionTime") not in (None, ""):
            tr, origin = float(first.RepetitionTime) / 1000.0, "DICOM headers"
        if flip_angle is None and first.get("FlipAngle") not in (None, ""):
            flip_angle, origin = float(first.FlipAngle), "DICOM headers"
    return tr, flip_angle, origin


def _dce_read_3d(path: Path, image, option: str):
    from .io import read_nifti

    other = read_nifti(path, mmap=False)
    if other.array.ndim != 3:
        raise TheraquantError(f"{option} {path.name}: shape {other.array.shape} is not a 3-D image")
    image.check_same_grid(other, names=("INPUT", option))
    return other


def _dce_roi_curves(array, roi):
    """Curves (n, T) of the voxels in ``roi`` (z, y, x), read slice by slice from a (memory-mapped) array."""
    import numpy as np

    zs = np.flatnonzero(roi.any(axis=(1, 2)))
    if zs.size == 0:
        return np.empty((0, array.shape[-1]))
    return np.concatenate([np.asarray(array[z][roi[z]], dtype=np.float64) for z in zs])


def _dce_fit_run(input_path: Path, out_dir: Path, *, mask: Optional[Path] = None, t1: Optional[Path] = None,
                 t10: Optional[float] = None, aif: str = "parker", aif_roi: Optional[str] = None,
                 aif_delay: float = 0.0, portal: str = "model", hct: float = 0.42, model: str = "etofts",
                 input_kind: str = "concentration", r1: float = 4.5, tr: Optional[float] = None,
                 flip_angle: Optional[float] = None, n_baseline: int = 5, delay: str = "0",
                 frame_times: Optional[str] = None, dt: Optional[float] = None, method: str = "nlls",
                 chunk_voxels: int = 65536, compress: bool = True, overwrite: bool = False, label_names=None,
                 series_uid: Optional[str] = None, quiet: bool = False):
    """The whole of ``theraquant dce fit``; returns (VolumeFit, summary DataFrame, written paths)."""
    import os
    import time
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from . import dce
    from .dce._models import MODELS, UNITS
    from .image import Image
    from .io import write_nifti
    from .provenance import provenance, write_json

    t_start = time.perf_counter()
    # ---- options, checked before any work
    if model not in MODELS:
        raise TheraquantError(f"--model must be one of {', '.join(_DCE_MODELS)}, got {model!r}")
    spec = MODELS[model]
    aif_key = aif.lower().replace("_", "-")
    aif_file = None
    if aif_key not in _DCE_AIFS:
        if not Path(aif).is_file():
            raise TheraquantError(f"--aif must be one of {', '.join(_DCE_AIFS)} or a text file of plasma "
                                  f"concentrations (mM, one per frame), got {aif!r}")
        aif_file, aif_key = Path(aif), "file"
    if aif_key == "roi" and aif_roi is None:
        raise TheraquantError("--aif roi needs --aif-roi (a label of --mask, or a mask NIfTI of the artery)")
    if input_kind not in ("concentration", "signal"):
        raise TheraquantError(f"--input must be 'concentration' or 'signal', got {input_kind!r}")
    if not 0.0 <= hct < 1.0:
        raise TheraquantError(f"--hct must be a fraction in [0, 1), got {hct!r}")
    if t10 is not None and not 0.0 < t10 < 100.0:
        raise TheraquantError(f"--t10 must be a positive T1 in s (e.g. 1.4), got {t10!r}")
    fit_delay = _dce_parse_delay(delay)

    image = _dce_read_input(input_path, series_uid)
    acq_from = None
    if input_kind == "signal":
        tr, flip_angle, acq_from = _dce_acquisition(image, tr, flip_angle)
        missing = [o for o, v in (("--tr", tr), ("--flip-angle", flip_angle)) if v is None]
        if t1 is None and t10 is None:
            missing.append("--t1 or --t10")
        if missing:
            raise TheraquantError(f"--input signal needs {', '.join(missing)} to convert signal to "
                                  "concentration (TR and T10 in s, flip angle in degrees)")
    t, t_origin = _dce_frame_times(image, frame_times, dt, input_path)
    labels = None
    if mask is not None:
        lab_img = _dce_read_3d(mask, image, "--mask")
        lab = np.asarray(lab_img.array)
        if lab.dtype == bool:
            lab = lab.astype(np.int16)
        if not np.all(np.isfinite(lab)):
            raise TheraquantError(f"--mask {mask.name} holds NaN values; give a label image of integers")
        labels = np.rint(lab).astype(np.int32)
        if label_names is None:
            side = lab_img.meta.get("sidecar", {}) if isinstance(lab_img.meta, dict) else {}
            names = side.get("LabelNames") or {}
            label_names = {int(k): str(v) for k, v in names.items()}
    t10_map = None
    if t1 is not None:
        t10_map = np.asarray(_dce_read_3d(t1, image, "--t1").array, dtype=np.float64)

    # ---- signal to concentration, one chunk at a time
    def to_conc(curves, index):
        t10_v = t10_map.reshape(-1)[index] if t10_map is not None else float(t10)
        return dce.signal_to_concentration(curves, t10=t10_v, r1=r1, tr=tr, flip_angle=flip_angle,
                                           n_baseline=n_baseline, return_info=True).conc

    def roi_mask(spec_str: str, what: str):
        if spec_str.lstrip("-").isdigit():
            if labels is None:
                raise TheraquantError(f"{what} {spec_str} is a label value but no --mask was given; pass "
                                      "--mask with the label image, or a mask NIfTI file")
            roi = labels == int(spec_str)
            if not roi.any():
                raise TheraquantError(f"{what} {spec_str}: no voxel of --mask has that label; labels present: "
                                      f"{sorted(int(v) for v in np.unique(labels) if v)}")
            return roi, int(spec_str)
        roi = np.asarray(_dce_read_3d(Path(spec_str), image, what).array) != 0
        if not roi.any():
            raise TheraquantError(f"{what} {spec_str} selects no voxel")
        return roi, None

    def roi_input(spec_str: str, what: str):
        roi, label = roi_mask(spec_str, what)
        curves = _dce_roi_curves(image.array, roi)
        if input_kind == "signal":
            idx = np.flatnonzero(roi.reshape(-1))
            curves = to_conc(curves, idx)
        return dce.aif.measured(t, curves, hct=hct), label, int(roi.sum())

    # ---- input functions (plasma, mM)
    roi_labels: list[int] = []
    aif_info: dict = {"aif": aif_key, "hct": hct}
    if aif_key == "roi":
        cp, lab_v, n_roi = roi_input(aif_roi, "--aif-roi")
        aif_info.update({"aif_roi": aif_roi, "aif_roi_voxels": n_roi})
        roi_labels += [lab_v] if lab_v is not None else []
    elif aif_file is not None:
        try:
            cp = np.asarray([float(v) for v in aif_file.read_text().replace(",", " ").split()])
        except ValueError:
            raise TheraquantError(f"--aif {aif_file.name}: not a list of numbers; give the plasma AIF in mM, "
                                  "one value per frame, separated by commas, spaces or newlines") from None
        aif_info.update({"aif": str(aif_file), "aif_units": "mM plasma, as given"})
    else:
        cp = dce.aif.population(aif_key, t, delay=aif_delay, hct=hct)
        aif_info["aif_delay_s"] = aif_delay
    cp_portal = None
    if spec.n_inputs == 2:
        if portal == "model":
            cp_portal = dce.aif.portal_venous(t, cp)
            aif_info["portal"] = "modelled from the AIF with the gut impulse response (aif.portal_venous)"
        else:
            cp_portal, lab_v, n_roi = roi_input(portal, "--portal")
            aif_info.update({"portal": portal, "portal_voxels": n_roi})
            roi_labels += [lab_v] if lab_v is not None else []
    for name, curve in (("AIF", cp), ("portal-venous input", cp_portal)):
        if curve is not None and np.shape(curve) != t.shape:
            raise TheraquantError(f"the {name} has {np.size(curve)} samples but there are {t.size} frame times; "
                                  "give the input function at the frame times (cp has the wrong length)")
        if curve is not None and not np.all(np.isfinite(curve)):
            raise TheraquantError(f"the {name} holds NaN or infinite values; check its ROI or file")
    fit_mask = None
    if labels is not None:
        fit_mask = (labels != 0) & ~np.isin(labels, roi_labels)  # vessels are inputs, not tissue
        if not fit_mask.any():
            raise TheraquantError(f"--mask {mask.name} holds no tissue voxel (only background"
                                  f"{' and the input ROIs' if roi_labels else ''})")

    check_out_dir(out_dir, overwrite)

    # ---- the fit, with a progress bar fed by the driver
    n_total = int(fit_mask.sum()) if fit_mask is not None else int(np.prod(image.shape))
    with Progress(TextColumn("[bold]fitting {task.fields[model]}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("voxels"), TimeElapsedColumn(), console=err, transient=False,
                  disable=quiet) as bar:
        task = bar.add_task("fit", total=n_total, model=model)
        try:
            res = dce.fit_volume(
                image.array, t, model, cp=cp, cp_portal=cp_portal, mask=fit_mask, method=method,
                chunk_voxels=chunk_voxels, transform=to_conc if input_kind == "signal" else None,
                progress=lambda done, total: bar.update(task, completed=done), delay=fit_delay)
        except Exception:
            bar.remove_task(task)  # the error is the one line left on the terminal
            raise
    t_fit = time.perf_counter() - t_start

    # ---- outputs
    settings = {
        "input": str(input_path), "input_kind": input_kind, "mask": str(mask) if mask else None,
        "model": model, "method": method, "delay": fit_delay, **aif_info,
        "t1_map": str(t1) if t1 else None, "t10_s": t10, "r1_per_mM_per_s": r1 if input_kind == "signal" else None,
        "tr_s": tr, "flip_angle_deg": flip_angle, "acquisition_from": acq_from,
        "n_baseline": n_baseline if input_kind == "signal" else None,
        "frame_times_from": t_origin, "chunk_voxels": chunk_voxels, "compress": compress,
        "series_uid": series_uid,
        "fit": dict(res.settings),
    }
    units = {k: res.units.get(k) or UNITS.get(k, "") for k in res}
    ext = ".nii.gz" if compress else ".nii"

    def write_map(name: str) -> Path:
        sidecar = {"Parameter": name, "Units": units[name], "Model": model, "ModelCAPLEX": spec.caplex,
                   "Description": _DCE_MAP_DESCRIPTION.get(name, f"{name} of the {model} model")}
        return write_nifti(Image(res[name], image.affine), out_dir / f"{name}{ext}", sidecar=sidecar,
                           dtype=np.uint8 if name == "success" else np.float32)

    # a fixed delay is a setting, not a map; gzip releases the GIL, so maps compress in parallel
    names_out = [k for k in res if not (k == "delay" and fit_delay != "fit")]
    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        written = list(pool.map(write_map, names_out))
    t_write = time.perf_counter() - t_start - t_fit
    summary_labels = labels if labels is not None else np.ones(image.shape, dtype=np.int32)
    names = dict(label_names or {})
    if labels is None:
        names.setdefault(1, "all voxels")
    elif roi_labels:
        summary_labels = np.where(np.isin(labels, roi_labels), 0, labels)
    summarised = [k for k in names_out if k not in ("success", "aic") and not k.endswith("_se")]
    summary = dce.summarize_maps(res, summary_labels, parameters=summarised, label_names=names)
    summary.insert(3, "units", [units.get(p, "") for p in summary["parameter"]])
    summary_csv = out_dir / "summary.csv"
    summary.to_csv(summary_csv, index=False, float_format="%.6g")
    record = provenance(
        settings=settings, constants={"hct": hct, **({"r1_per_mM_per_s": r1} if input_kind == "signal" else {})},
        units=units, inputs=[p for p in (input_path, mask, t1) if p is not None],
        Model=model, ModelCAPLEX=spec.caplex, ModelReference=spec.reference,
        FrameTimes_s=t, InputFunction_mM={"plasma_arterial": cp, **({"plasma_portal": cp_portal}
                                                                    if cp_portal is not None else {})},
        Counts={"voxels": res.n_voxels, "fitted": res.n_fitted, "failed": res.n_failed,
                "nonfinite": res.n_nonfinite, "constant": res.n_constant},
        Maps=[p.name for p in written], Summary=summary_csv.name, FitSeconds=round(t_fit, 3),
        WriteSeconds=round(t_write, 3))
    written.append(write_json(record, out_dir / "dce_fit.json"))
    written.append(summary_csv)
    return res, summary, written


def _print_summary(summary, *, title: str) -> None:
    """The summary table, compact enough for an 80-column terminal (summary.csv has every column:
    the 10/25/75/90th percentiles, mean, SD)."""
    cols = [("name", "label"), ("parameter", "param"), ("units", "unit"), ("n_voxels", "n"),
            ("median", "median"), ("iqr", "IQR"), ("skewness", "skew"), ("kurtosis", "kurt"),
            ("failed_fraction", "failed")]
    cols = [(c, h) for c, h in cols if c in summary.columns]
    rows = []
    for row in summary[[c for c, _ in cols]].itertuples(index=False):
        cells = []
        for (c, _), v in zip(cols, row):
            if c == "failed_fraction":
                cells.append(f"{100 * v:.0f}%")
            elif isinstance(v, float):
                cells.append(f"{v:.3g}")
            else:
                cells.append(str(v))
        rows.append(cells)
    _print_rows(title, [h for _, h in cols], rows, n_text=3)


def _print_rows(title: str, headers: list[str], rows: list[list[str]], *, n_text: int) -> None:
    """A compact rich table: the first ``n_text`` columns left-aligned (the first cut at 10 characters)."""
    from rich import box
    from rich.table import Table

    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0),
                  pad_edge=False, collapse_padding=True)
    for j, h in enumerate(headers):
        width = max([len(h), *(len(r[j]) for r in rows)])
        table.add_column(h, justify="left" if j < n_text else "right", no_wrap=True,
                         width=min(width, 10) if j == 0 else width)
    for cells in rows:
        table.add_row(*cells)
    out.print(table)


@dce_app.command("fit")
@handle_errors
def dce_fit(
    input_path: Path = typer.Argument(..., metavar="INPUT",
                                      help="4-D NIfTI (frame times from its JSON sidecar) or DICOM DCE series folder."),
    out_dir: Path = typer.Option(..., "--out", help="Output folder for the maps, sidecar and summary."),
    mask: Optional[Path] = typer.Option(None, "--mask", help="Label image (NIfTI): non-zero voxels are fitted "
                                        "and summarised per label (names from a 'LabelNames' key in its "
                                        "JSON sidecar)."),
    t1: Optional[Path] = typer.Option(None, "--t1", help="T10 map in s (NIfTI), for --input signal."),
    t10: Optional[float] = typer.Option(None, "--t10", help="Fixed T10 in s, for --input signal."),
    aif: str = typer.Option("parker", "--aif", help=f"Input function: {', '.join(_DCE_AIFS)}, or a text file "
                            "of plasma concentrations (mM, one per frame)."),
    aif_roi: Optional[str] = typer.Option(None, "--aif-roi", help="Artery for --aif roi: a label of --mask or "
                                          "a mask NIfTI (blood, converted to plasma with --hct)."),
    aif_delay: float = typer.Option(0.0, "--aif-delay", help="Bolus arrival of a population AIF, s."),
    portal: str = typer.Option("model", "--portal", help="Portal-venous input for dual-input models: 'model' "
                               "(gut impulse response on the AIF), a label of --mask or a mask NIfTI."),
    hct: float = typer.Option(0.42, "--hct", help="Haematocrit (fraction): plasma = blood / (1 - hct)."),
    model: str = typer.Option("etofts", "--model", help=f"Model: {', '.join(_DCE_MODELS)}."),
    input_kind: str = typer.Option("concentration", "--input", help="INPUT holds 'concentration' (mM) or "
                                   "'signal' (SPGR)."),
    r1: float = typer.Option(4.5, "--r1", help="Relaxivity, 1/(mM s), for --input signal."),
    tr: Optional[float] = typer.Option(None, "--tr", help="Repetition time, s, for --input signal."),
    flip_angle: Optional[float] = typer.Option(None, "--flip-angle", help="Flip angle, degrees, for --input signal."),
    n_baseline: int = typer.Option(5, "--n-baseline", help="Pre-contrast frames averaged for the baseline signal."),
    delay: str = typer.Option("0", "--delay", help="Tissue delay relative to the input, s, or 'fit'."),
    frame_times: Optional[str] = typer.Option(None, "--frame-times", help="Frame times, s: comma-separated, or "
                                              "a text file (overrides the input's)."),
    dt: Optional[float] = typer.Option(None, "--dt", help="Uniform frame interval, s (overrides the input's)."),
    method: str = typer.Option("nlls", "--method", help="Fit method passed to theraquant.dce.fit."),
    chunk_voxels: int = typer.Option(65536, "--chunk-voxels", help="Curves per batched fit (memory bound)."),
    series_uid: Optional[str] = typer.Option(None, "--series-uid", help="SeriesInstanceUID to read when the "
                                             "DICOM folder holds several series."),
    compress: bool = typer.Option(True, "--compress/--no-compress", help="Write maps as .nii.gz (or .nii: "
                                  "faster for whole volumes; noisy float32 maps shrink only ~10 %)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Write into a non-empty --out folder."),
) -> None:
    """Fit a tracer-kinetic model voxel by voxel; write one NIfTI map per parameter and a summary table."""
    res, summary, written = _dce_fit_run(
        input_path, out_dir, mask=mask, t1=t1, t10=t10, aif=aif, aif_roi=aif_roi, aif_delay=aif_delay,
        portal=portal, hct=hct, model=model, input_kind=input_kind, r1=r1, tr=tr, flip_angle=flip_angle,
        n_baseline=n_baseline, delay=delay, frame_times=frame_times, dt=dt, method=method,
        chunk_voxels=chunk_voxels, compress=compress, overwrite=overwrite, series_uid=series_uid)
    shown = [k for k in res if k not in ("success", "aic", "delay") and not k.endswith("_se")]
    shown += ["delay"] if delay.strip().lower() == "fit" else []
    _print_summary(summary[summary["parameter"].isin(shown)],
                   title=f"{model}: {res.n_voxels} voxels, {res.n_failed} failed (all statistics in summary.csv)")
    out.print(f"wrote {len(written)} files to {out_dir}")



# ---------------------------------------------------------------------------- PET commands
_PET_NORMALIZATIONS = ("bw", "lbm-james", "lbm-janmahasatian", "bsa", "ibw")


@pet_app.command("suv")
@handle_errors
def pet_suv(
    series_dir: Path = typer.Argument(..., metavar="SERIES_DIR", help="Folder holding one PET DICOM series."),
    out_path: Path = typer.Option(..., "--out", help="Output SUV NIfTI (.nii.gz); a JSON sidecar is written beside it."),
    normalization: str = typer.Option("bw", "--normalization",
                                      help=f"SUV normalisation: {', '.join(_PET_NORMALIZATIONS)}."),
    weight_kg: Optional[float] = typer.Option(None, "--weight-kg", help="Patient weight, kg (replaces PatientWeight)."),
    height_m: Optional[float] = typer.Option(None, "--height-m", help="Patient height, m (replaces PatientSize)."),
    sex: Optional[str] = typer.Option(None, "--sex", help="M, F or O (replaces PatientSex)."),
    injected_dose_bq: Optional[float] = typer.Option(None, "--injected-dose-bq",
                                                     help="Injected activity, Bq (replaces RadionuclideTotalDose)."),
    injection_time: Optional[str] = typer.Option(None, "--injection-time",
                                                 help="Injection 'YYYY-MM-DDTHH:MM:SS' (or 'HH:MM:SS')."),
    half_life_s: Optional[float] = typer.Option(None, "--half-life-s", help="Radionuclide half-life, s."),
    scan_time: Optional[str] = typer.Option(None, "--scan-time",
                                            help="Decay-correction reference time 'YYYY-MM-DDTHH:MM:SS'."),
    decay_correction: Optional[str] = typer.Option(None, "--decay-correction", help="START, ADMIN or NONE."),
    series_uid: Optional[str] = typer.Option(None, "--series-uid", help="Which series when the folder holds several."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output file."),
) -> None:
    """Write an SUV image (NIfTI, RAS affine, + JSON sidecar) from a PET DICOM series; print the constants."""
    from .io import sidecar_path, write_nifti
    from .pet import OVERRIDES, read_suv
    from .provenance import provenance

    if normalization not in _PET_NORMALIZATIONS:
        raise TheraquantError(f"--normalization must be one of {', '.join(_PET_NORMALIZATIONS)}, got {normalization!r}")
    if out_path.exists() and not overwrite:
        raise FileExistsError(f"{out_path} exists; pass --overwrite to replace it")
    overrides = {k: v for k, v in dict(weight_kg=weight_kg, height_m=height_m, sex=sex,
                                       injected_dose_bq=injected_dose_bq, injection_time=injection_time,
                                       half_life_s=half_life_s, scan_time=scan_time,
                                       decay_correction=decay_correction).items() if v is not None}
    try:
        img = read_suv(series_dir, normalization=normalization, series_uid=series_uid, **overrides)  # type: ignore[arg-type]
    except TheraquantError as exc:  # name the command-line option, not the keyword argument
        msg = str(exc)
        for name in OVERRIDES:
            msg = msg.replace(f"pass {name}=", f"pass --{name.replace('_', '-')} ")
        raise type(exc)(msg) from exc
    conv = img.meta["suv"]
    record = provenance(settings={"normalization": normalization, "series_uid": series_uid, **overrides},
                        constants=conv["Constants"], inputs=[series_dir],
                        Decisions=conv["Decisions"], Overrides=conv["Overrides"],
                        SUVFactorRange=conv["SUVFactorRange"], Modality="PT")
    record["Units"] = img.units  # a string, as read_nifti expects
    write_nifti(img, out_path, sidecar=record)
    out.print(f"SUV{normalization} ({img.units}) from {series_dir}: {img.shape} voxels", highlight=False)
    for k, v in conv["Constants"].items():
        out.print(f"  {k:<24} {v}", highlight=False)
    for k, v in conv["Overrides"].items():
        out.print(f"  override {k:<15} {v['value']} (header: {v['header_value']})", highlight=False)
    for d in conv["Decisions"]:
        out.print(f"  - {d}", highlight=False)
    out.print(f"wrote {out_path} and {sidecar_path(out_path).name}", highlight=False)


@pet_app.command("check")
@handle_errors
def pet_check(
    series_dir: Path = typer.Argument(..., metavar="SERIES_DIR", help="Folder holding one PET DICOM series."),
    normalization: str = typer.Option("bw", "--normalization",
                                      help=f"SUV normalisation to check for: {', '.join(_PET_NORMALIZATIONS)}."),
    series_uid: Optional[str] = typer.Option(None, "--series-uid", help="Which series when the folder holds several."),
) -> None:
    """List every problem that stops (or bends) the SUV conversion of a PET series; exit 1 on errors."""
    from .io import group_series, read_dicom_headers
    from .pet import check_suv_headers

    groups = group_series(read_dicom_headers(series_dir, modality="PT"))
    if series_uid is None and len(groups) > 1:
        raise TheraquantError(f"{series_dir}: holds {len(groups)} PET series; pass --series-uid (one of {sorted(groups)})")
    items = groups[series_uid] if series_uid is not None else next(iter(groups.values()))
    findings = check_suv_headers([ds for _, ds in items], normalization=normalization,  # type: ignore[arg-type]
                                 names=[f.name for f, _ in items])
    for f in findings:
        tag = "[red]error[/]" if f.level >= 40 else "[yellow]warning[/]"
        err.print(f"{tag} {f.check}: {f.message}" + (f" (fix: {f.fix})" if f.fix else ""), soft_wrap=True)
    n_err = sum(f.level >= 40 for f in findings)
    out.print(f"{len(items)} PET headers: {n_err} error(s), {len(findings) - n_err} warning(s)", highlight=False)
    if n_err:
        raise typer.Exit(1)


@pet_app.command("metrics")
@handle_errors
def pet_metrics(
    suv_path: Path = typer.Argument(..., metavar="SUV", help="SUV (or SUL) NIfTI, e.g. from 'theraquant pet suv'."),
    mask_path: Path = typer.Option(..., "--mask", help="Lesion mask or label NIfTI on the SUV grid; one row per label."),
    liver_mask: Optional[Path] = typer.Option(None, "--liver-mask",
                                              help="Normal-liver mask: 3 cm PERCIST reference sphere placed inside."),
    mtv_threshold: Optional[str] = typer.Option(None, "--mtv-threshold",
                                                help="MTV rule: an SUV (2.5), a % of SUVmax ('41%') or 'percist'."),
    sphere_ml: float = typer.Option(1.0, "--sphere-ml", help="SUVpeak sphere volume, mL."),
    out_json: Optional[Path] = typer.Option(None, "--out", help="Write the metrics and provenance as JSON."),
) -> None:
    """SUVmax, SUVmean, SUVpeak, MTV and TLG per lesion label (and the PERCIST liver reference)."""
    import numpy as np

    from .io import read_nifti
    from .pet import lesion_metrics, liver_reference
    from .provenance import provenance, write_json

    img = read_nifti(suv_path, mmap=False)
    if img.array.ndim != 3:
        raise TheraquantError(f"{suv_path.name}: SUV image must be 3-D, got shape {img.array.shape}")
    mask_img = read_nifti(mask_path, mmap=False)
    img.check_same_grid(mask_img, names=("SUV", "mask"))
    values = np.asarray(img.array, dtype=np.float64)
    labels = np.rint(np.asarray(mask_img.array)).astype(np.int64)
    ids = [int(i) for i in np.unique(labels) if i != 0]
    if not ids:
        raise TheraquantError(f"{mask_path.name}: the mask is empty (no non-zero voxel)")
    threshold = mtv_threshold
    if threshold is not None and threshold.strip().lower() not in ("percist",) and not threshold.strip().endswith("%"):
        try:
            threshold = float(threshold)  # type: ignore[assignment]
        except ValueError:
            raise TheraquantError(f"--mtv-threshold must be an SUV, a percentage ('41%') or 'percist', "
                                  f"got {mtv_threshold!r}") from None
    liver = None
    if liver_mask is not None:
        liver_img = read_nifti(liver_mask, mmap=False)
        img.check_same_grid(liver_img, names=("SUV", "liver mask"))
        liver = liver_reference(values, img.spacing_mm, liver_mask=np.asarray(liver_img.array) > 0)
        out.print(liver.summary(), highlight=False)
    rows = {}
    for i in ids:
        res = lesion_metrics(values, labels == i, img.spacing_mm, mtv_threshold=threshold, liver=liver,
                             sphere_ml=sphere_ml)
        rows[i] = dict(res)
        out.print(res.summary().replace("lesion metrics", f"label {i}: lesion metrics", 1), highlight=False)
    if out_json is not None:
        record = provenance(settings={"mtv_threshold": mtv_threshold, "sphere_ml": sphere_ml},
                            inputs=[p for p in (suv_path, mask_path, liver_mask) if p is not None],
                            units={"SUV": img.units or "g/mL", "MTV_mL": "mL", "TLG": "g"},
                            Lesions={str(k): v for k, v in rows.items()},
                            LiverReference=dict(liver) if liver is not None else None)
        write_json(record, out_json)
        out.print(f"wrote {out_json}", highlight=False)



# ---------------------------------------------------------------------------- stats command
def _stats_read_table(path: Path):
    import pandas as pd

    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file; give a lesion table (.csv or .parquet)")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(path)
    if suffix in (".csv", ".txt", ".tsv"):
        return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
    raise TheraquantError(f"{path}: unknown table type {suffix!r}; give a .csv, .tsv or .parquet file")


def _stats_parse_strata(text: Optional[str]) -> dict:
    if not text:
        return {}
    strata = {}
    for item in text.split(","):
        name, sep, cut = item.rpartition(":")
        try:
            strata[name.strip()] = float(cut)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise TheraquantError(f"--strata must look like 'tbp:1.29,dmean:89', got {text!r}")
    return strata


def _stats_parse_paired(text: Optional[str]):
    if not text:
        return None
    cols = [c.strip() for c in text.split(",")]
    if len(cols) != 2 or not all(cols):
        raise TheraquantError(f"--paired must name two columns, baseline,follow-up (e.g. suv_base,suv_fu), got {text!r}")
    return tuple(cols)


@app.command("stats")
@handle_errors
def stats_cmd(
    table: Path = typer.Argument(..., help="Lesion table, one row per lesion (.csv or .parquet)."),
    outcome: str = typer.Option(..., "--outcome", help="0/1 response column (1 = responder)."),
    markers: str = typer.Option(..., "--markers", help="Comma-separated marker columns, e.g. tbp,suvmax,dmean."),
    responder: Optional[str] = typer.Option(
        None, "--responder", help="Outcome values that count as response, e.g. CR,PR (then --outcome may be text)."),
    cluster: Optional[str] = typer.Option(
        None, "--cluster", help="Patient column. Default: a column named patient/patient_id/subject/pid if present."),
    no_cluster: bool = typer.Option(False, "--no-cluster", help="Treat lesions as independent (lesion level)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write every result and its provenance here."),
    dose: Optional[str] = typer.Option(None, "--dose", help="Dose column (Gy) for the dose-response curve and D50."),
    strata: Optional[str] = typer.Option(None, "--strata", help="Stratified table cut-offs, e.g. tbp:1.29,dmean:89."),
    group: Optional[str] = typer.Option(None, "--group", help="Category column (e.g. RECIST) for Kruskal-Wallis."),
    paired: Optional[str] = typer.Option(None, "--paired", help="Baseline,follow-up columns for a signed-rank test."),
    n_boot: int = typer.Option(1000, "--n-boot", help="Bootstrap replicates (0 skips the bootstrap)."),
    seed: int = typer.Option(0, "--seed", help="Bootstrap seed."),
    folds: int = typer.Option(5, "--folds", help="Cross-validation folds (grouped by patient)."),
    save_model: Optional[Path] = typer.Option(None, "--save-model", help="Fit the predictor on all markers; write its JSON."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing --json / --save-model files."),
) -> None:
    """Cohort statistics of a lesion table: ROC, cut-offs, group tests, logistic/GEE, predictor."""
    from rich.table import Table

    from .provenance import provenance, write_json
    from .stats import analyze, fit_predictor

    for target in (json_out, save_model):
        if target is not None and target.exists() and not overwrite:
            raise FileExistsError(f"{target} exists; pass --overwrite to replace it")
    if cluster and no_cluster:
        raise TheraquantError("give either --cluster COL or --no-cluster, not both")
    data = _stats_read_table(table)
    if responder:
        if outcome not in data.columns:
            raise TheraquantError(f"--outcome column {outcome!r} not in the table; its columns are {list(data.columns)!r}")
        values = {v.strip() for v in responder.split(",") if v.strip()}
        seen = set(data[outcome].dropna().astype(str))
        if not values & seen:
            raise TheraquantError(f"--responder values {sorted(values)!r} never occur in {outcome!r} "
                                  f"(its values: {sorted(seen)[:10]!r})")
        data[outcome] = data[outcome].astype(str).isin(values).astype(int).where(data[outcome].notna())
    marker_list = [m.strip() for m in markers.split(",") if m.strip()]
    report = analyze(data, outcome, marker_list, cluster=None if no_cluster else (cluster or "auto"),
                     n_boot=n_boot, seed=seed, n_splits=folds, dose=dose, strata=_stats_parse_strata(strata),
                     group=group, paired=_stats_parse_paired(paired))
    who = f"{report.n_lesions} lesions ({report.n_responders} responding)"
    if report.n_patients is not None:
        who += f" in {report.n_patients} patients"
    tab = Table(title=f"{table.name}: {outcome} vs markers   {who}", caption=report.analysis)
    for h in report.HEADER:
        tab.add_column(h, justify="left" if h == "marker" else "right")
    for row in report.marker_rows():
        tab.add_row(*[str(v) for v in row])
    out.print(tab)
    rest = report.summary().split("\n\n")[3:]  # the text sections after the marker table
    if rest:
        out.print("\n\n".join(rest), highlight=False, soft_wrap=True)
    model = None
    if save_model is not None:
        model = fit_predictor(data, outcome, marker_list, cluster=report.cluster, n_splits=folds)
        save_model.parent.mkdir(parents=True, exist_ok=True)
        save_model.write_text(model.to_json() + "\n")
        out.print(f"predictor written to {save_model} (cut-off p >= {model.cutoff:.4f})", highlight=False)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        record = provenance(settings=dict(report.settings, outcome=outcome, markers=marker_list),
                            inputs=[table], units={"auc": "1", "threshold": "marker units", "d50_gy": "Gy"},
                            Results=report.to_dict(), Predictor=None if model is None else model.to_dict())
        write_json(record, json_out)
        out.print(f"results written to {json_out}", highlight=False)




# ---------------------------------------------------------------------------- demo


def _demo_figure(path: Path, ph, res, model: str, slice_z: int) -> Path:
    """Truth and fitted maps on one slice, and example curves with their fits (matplotlib Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from . import dce
    from .dce._models import MODELS, UNITS

    params = [p for p in MODELS[model].free if p in ph.truth]
    fig, axes = plt.subplots(3, len(params), figsize=(3.2 * len(params), 9.0), constrained_layout=True)
    labels = ph.labels.array
    tissue = np.isin(labels, [1, 2, 3, 4])
    for j, p in enumerate(params):
        truth = np.where(tissue, ph.truth[p], np.nan)[slice_z]
        fitted = np.where(tissue, res[p], np.nan)[slice_z]
        hi = float(np.nanpercentile(ph.truth[p], 99)) * 1.3
        for i, (arr, what) in enumerate(((truth, "truth"), (fitted, "fitted"))):
            im = axes[i, j].imshow(arr, cmap="viridis", vmin=0.0, vmax=hi, interpolation="nearest")
            axes[i, j].set_title(f"{p} {what} ({UNITS.get(p, '')})", fontsize=9)
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
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


@app.command("demo")
@handle_errors
def demo(
    out_dir: Path = typer.Option(Path("theraquant-demo"), "--out", help="Output folder."),
    model: str = typer.Option("dual_input_etofts", "--model", help="Model fitted to the phantom."),
    noise: float = typer.Option(0.02, "--noise", help="Gaussian noise SD added to the phantom, mM."),
    seed: int = typer.Option(2026, "--seed", help="Seed of the noise."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Write into a non-empty --out folder."),
) -> None:
    """DCE-MRI demo on the built-in synthetic liver phantom: maps, summary table (fitted vs truth), PNG figure."""
    import time

    import numpy as np

    from .dce import summarize_maps
    from .image import Image
    from .io import write_nifti
    from .phantom import LIVER_LABELS, liver_dce_phantom

    t0 = time.perf_counter()
    if model not in ("dual_input_etofts", "etofts", "tofts", "patlak"):
        raise TheraquantError(f"--model must be dual_input_etofts, etofts, tofts or patlak for the demo (the "
                              f"phantom's truth is Ktrans, ve, vp, fa), got {model!r}")
    check_out_dir(out_dir, overwrite)
    ph = liver_dce_phantom(noise_sd=noise, rng=seed)
    inp = out_dir / "input"
    dce_path = write_nifti(ph.image, inp / "dce.nii.gz",
                           sidecar={"Description": "synthetic liver DCE phantom (concentration)", **ph.settings})
    lab_path = write_nifti(ph.labels, inp / "labels.nii.gz", dtype=np.int16,
                           sidecar={"LabelNames": dict(LIVER_LABELS)})
    for name, arr in ph.truth.items():
        write_nifti(Image(arr, ph.image.affine), out_dir / "truth" / f"{name}.nii.gz",
                    sidecar={"Parameter": name, "Description": "ground truth of the phantom"})
    # the same code path as `theraquant dce fit`: ROI input functions from the aorta and portal vein labels
    res, summary, written = _dce_fit_run(
        dce_path, out_dir / "maps", mask=lab_path, aif="roi", aif_roi="5", portal="6", hct=ph.settings["hct"],
        model=model, overwrite=True, label_names=dict(LIVER_LABELS))
    truth_tab = summarize_maps({p: ph.truth[p] for p in ph.truth if p in res},
                               np.where(np.isin(ph.labels.array, [5, 6]), 0, ph.labels.array),
                               label_names=dict(LIVER_LABELS))
    both = summary.merge(truth_tab[["label", "parameter", "median"]].rename(columns={"median": "truth_median"}),
                         on=["label", "parameter"], how="inner")
    both["median_rel_error"] = both["median"] / both["truth_median"] - 1.0
    cols = ["label", "name", "parameter", "units", "n_voxels", "truth_median", "median", "median_rel_error",
            "iqr", "p10", "p90", "failed_fraction"]
    both = both[cols]
    vs_truth = out_dir / "summary_vs_truth.csv"
    both.to_csv(vs_truth, index=False, float_format="%.6g")
    slice_z = int(np.argmax(np.isin(ph.labels.array, [2, 3, 4]).sum(axis=(1, 2))))
    png = _demo_figure(out_dir / "demo.png", ph, res, model, slice_z)

    rows = [[r.name, r.parameter, r.units, str(r.n_voxels), f"{r.truth_median:.4g}", f"{r.median:.4g}",
             f"{100 * r.median_rel_error:+.1f}%", f"{r.iqr:.3g}"] for r in both.itertuples(index=False)]
    _print_rows(f"{model} fit of the liver phantom vs truth (median per label)",
                ["label", "param", "unit", "n", "truth", "fitted", "error", "IQR"], rows, n_text=3)
    out.print(f"phantom     {inp}/ (dce.nii.gz, labels.nii.gz), truth maps in {out_dir / 'truth'}/")
    out.print(f"maps        {out_dir / 'maps'}/ ({', '.join(p.name for p in written if p.suffix == '.gz')})")
    out.print(f"settings    {out_dir / 'maps' / 'dce_fit.json'}")
    out.print(f"summary     {out_dir / 'maps' / 'summary.csv'} and {vs_truth}")
    out.print(f"figure      {png}")
    out.print(f"done in {time.perf_counter() - t0:.1f} s")



def main() -> None:  # console-script entry point
    app()


if __name__ == "__main__":
    main()
