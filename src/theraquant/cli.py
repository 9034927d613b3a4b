"""The ``theraquant`` command line: thin typer commands over the library.

Errors on bad input print one line (what failed and the fix) and exit 1;
usage errors exit 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path
from typing import Callable, Optional

import typer
from rich.console import Console
from typer.core import TyperGroup

from . import __version__
from .errors import TheraquantError
from .quantities import PlausibilityWarning
from .pipeline import DCE_AIFS, DCE_MODELS  # public API (private-modules contract)

app = typer.Typer(name="theraquant", help="Quantitative imaging for radionuclide therapy of liver tumours: DCE-MRI "
                  "perfusion, PET SUV and hypoxia, voxel dosimetry, response criteria, cohort statistics.",
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
    strict: bool = typer.Option(False, "--strict", help="Treat implausible values (probable unit slips, e.g. "
                                "--dt 5000 meaning ms) as errors instead of warnings."),
) -> None:
    """theraquant: quantitative imaging for radionuclide therapy of liver tumours."""
    _STATE["debug"] = debug
    _STATE["strict"] = strict


def handle_errors(func: Callable) -> Callable:
    """Errors as one line on stderr and exit code 1 (CONV, issue #9).

    A :class:`TheraquantError` (and a plausibility error under ``--strict``) prints its message,
    prefixed with the command's ``--flag`` for the error's ``.argument`` (the API keyword); an
    expected OS error (missing file, no permission, file exists) prints the file and the reason.
    Anything else is an internal error: one line with a report hint; ``--debug`` shows the
    traceback.
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            with _one_line_warnings(func):  # HARD: each warning on one line, naming the option
                return func(*args, **kwargs)
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except (TheraquantError, PlausibilityWarning) as exc:
            if _STATE["debug"]:
                raise
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            flag = _error_flag(func, getattr(exc, "argument", None))
            _print_error(f"{flag}: {msg}" if flag else msg)
            raise typer.Exit(1)
        except (FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError, NotADirectoryError) as exc:
            if _STATE["debug"]:
                raise
            where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
            _print_error(f"{where}{exc.strerror or exc}")
            raise typer.Exit(1)
        except Exception as exc:  # a bug, not bad input
            if _STATE["debug"]:
                raise
            first = str(exc).splitlines()[0] if str(exc) else ""
            _print_error(f"internal error {type(exc).__name__}{': ' + first if first else ''} - this is a bug in "
                         f"theraquant {__version__}; please report it with the command and the output of "
                         "'theraquant --debug ...'", prefix="[red]internal error:[/] ")
            raise typer.Exit(1)

    return wrapper


def _print_error(text: str, *, prefix: str = "[red]error:[/] ") -> None:
    from rich.markup import escape

    if prefix.startswith("[red]internal"):
        text = text.removeprefix("internal error ")
    err.print(prefix + escape(" ".join(text.split())), highlight=False, soft_wrap=True)


def _error_flag(func: Callable, argument: Optional[str]) -> str:
    """The command-line name of the API keyword ``argument``: its ``--flag`` or argument METAVAR."""
    import inspect

    if not argument:
        return ""
    try:
        param = inspect.signature(func).parameters.get(argument)
    except (TypeError, ValueError):  # pragma: no cover
        param = None
    if param is None:
        return ""
    info = param.default
    decls = [d for d in getattr(info, "param_decls", None) or () if d.startswith("--")]
    if decls:
        return decls[0].split("/")[0]
    metavar = getattr(info, "metavar", None)
    return metavar or argument.upper()


class _OneLineErrorsGroup(TyperGroup):
    """Usage errors too (a missing option, a bad choice) print one line and exit 1 (CONV, issue #9)."""

    def main(self, *args, standalone_mode: bool = True, **kwargs):
        import sys

        usage, click_exc, abort = _click_exception_types()
        try:
            rv = super().main(*args, standalone_mode=False, **kwargs)
        except usage as exc:
            ctx = getattr(exc, "ctx", None)
            where = f"{ctx.command_path}: " if ctx is not None else ""
            _print_error(f"{where}{exc.format_message()} (see --help)")
            sys.exit(1)
        except click_exc as exc:
            _print_error(exc.format_message())
            sys.exit(1)
        except abort:
            err.print("aborted")
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


def _click_exception_types() -> tuple[tuple[type, ...], tuple[type, ...], tuple[type, ...]]:
    """UsageError, ClickException and Abort of click and of the click that typer vendors (typer >= 0.26)."""
    import importlib

    mods = []
    for name in ("typer._click.exceptions", "click.exceptions"):
        try:
            mods.append(importlib.import_module(name))
        except ImportError:
            pass
    return (tuple(m.UsageError for m in mods), tuple(m.ClickException for m in mods),
            tuple(m.Abort for m in mods if hasattr(m, "Abort")) + (typer.Abort,))


app.info.cls = _OneLineErrorsGroup  # the root group: usage errors as one line, exit 1


# ---------------------------------------------------------------------------- HARD: warnings, output checks
def _option_flags(func: Callable) -> dict[str, str]:
    """Python parameter name -> its command-line flag (``weight_kg`` -> ``--weight-kg``)."""
    import inspect

    flags = {}
    for name, param in inspect.signature(func).parameters.items():
        decls = [d for d in getattr(param.default, "param_decls", None) or () if d.startswith("--")]
        if decls:
            flags[name] = decls[0].split("/")[0]
        elif getattr(param.default, "metavar", None):  # a positional argument: its METAVAR
            flags[name] = param.default.metavar
    return flags


@contextlib.contextmanager
def _one_line_warnings(func: Callable):
    """Print each warning once, on one line, with API keywords (``weight_kg=``) shown as the command's
    flags (``--weight-kg``); with ``--strict`` an implausible value is an error."""
    import re
    import warnings

    flags = _option_flags(func)
    seen: set = set()

    def show(message, category, filename, lineno, file=None, line=None):
        text = str(message).splitlines()[0] if str(message) else category.__name__
        arg = getattr(message, "argument", None)
        if arg in flags:  # the API keyword in the message becomes the flag (dt=5000 -> --dt 5000)
            new = re.sub(rf"(?<![\w-]){re.escape(arg)}(=|\b)", lambda m: flags[arg] + (" " if m.group(1) else ""),
                         text, count=1)
            text = new if new != text else f"{flags[arg]}: {text}"
        key = (getattr(message, "quantity", ""), getattr(message, "value", None)) if getattr(
            message, "quantity", "") else text
        if key not in seen:
            seen.add(key)
            from rich.markup import escape

            err.print(f"[yellow]warning:[/] {escape(text)}", highlight=False, soft_wrap=True)

    with warnings.catch_warnings():
        warnings.simplefilter("error" if _STATE.get("strict") else "always", PlausibilityWarning)
        warnings.showwarning = show
        yield


#: Response categories a cohort may simply lack (a --responder value absent from the table is then no typo).
_RESPONSE_CATEGORIES = {"cr", "pr", "sd", "pd", "ne", "cmr", "pmr", "smd", "pmd", "nmd", "1", "0", "yes", "no",
                        "true", "false", "responder", "non-responder", "nonresponder"}


def _stats_check_table(data, path: Path, *, outcome: str, columns: list, responder: Optional[str],
                       allow_duplicates: bool, cluster: Optional[str] = None):
    """Refuse what would silently bend cohort statistics: repeated rows or lesion ids, infinite values,
    --responder values that match nothing (matched case-insensitively). Rows are counted from 1 (the
    first data row)."""
    import numpy as np
    import pandas as pd

    def rows(mask) -> str:
        idx = np.flatnonzero(np.asarray(mask))
        return ", ".join(str(i + 1) for i in idx[:8]) + (" ..." if idx.size > 8 else "")

    name = path.name
    if not allow_duplicates:
        dup = data.duplicated(keep=False).to_numpy()
        if dup.any():
            raise TheraquantError(f"{name}: data rows {rows(dup)} are identical (a copied row counts a lesion twice); "
                                  "remove the copies, or pass --allow-duplicates")
        lesion = next((c for c in ("lesion_id", "lesion") if c in data.columns), None)
        if lesion is not None:
            patient = next((c for c in (cluster, "patient", "patient_id", "subject", "pid") if c and c in data.columns),
                           None)  # lesion ids repeat across patients: the pair must be unique
            keys = [patient, lesion] if patient else [lesion]
            dup = (data.duplicated(subset=keys, keep=False) & data[keys].notna().all(axis=1)).to_numpy()
            if dup.any():
                first = data.loc[dup, keys].iloc[0].tolist()
                raise TheraquantError(f"{name}: {'/'.join(keys)} {'/'.join(map(str, first))} occurs in data rows "
                                      f"{rows(dup)}; each lesion needs one row: fix the ids, or pass --allow-duplicates")
    for col in dict.fromkeys([outcome, *columns]):
        if col in data.columns and pd.api.types.is_numeric_dtype(data[col]) and data[col].dtype != bool:
            bad = np.isinf(data[col].to_numpy(dtype=float))
            if bad.any():
                raise TheraquantError(f"{name}: column {col!r} is infinite in data row(s) {rows(bad)}; every value "
                                      "must be a finite number (or empty when missing): fix or remove the row(s)")
    if responder:
        if outcome not in data.columns:
            raise TheraquantError(f"--outcome column {outcome!r} not in the table; its columns are {list(data.columns)!r}")
        wanted = {v.strip().lower() for v in responder.split(",") if v.strip()}
        col = data[outcome]
        text = col.map(lambda v: (f"{v:g}" if isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
                                  else str(v)).strip().lower(), na_action="ignore")
        found = sorted(set(text.dropna()))
        missing = sorted(wanted - set(found))
        if not wanted & set(found) or any(m not in _RESPONSE_CATEGORIES for m in missing):
            raise TheraquantError(f"--responder value(s) {missing} never occur in {outcome!r} (compared "
                                  f"case-insensitively; its values: {found[:12]}); give --responder from these")
        data = data.copy()
        data[outcome] = text.isin(wanted).astype(float).where(col.notna())
    return data


@contextlib.contextmanager
def _voxel_progress(description: str):
    """A rich progress bar on stderr fed by an engine's ``progress(done, total)`` callback.

    The bar is removed when the work fails, so the one-line error is all that is left.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn(f"[bold]{description}"), BarColumn(), MofNCompleteColumn(), TextColumn("voxels"),
                  TimeElapsedColumn(), console=err, transient=False) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        try:
            yield update
        except BaseException:
            bar.remove_task(task)
            raise


# ---------------------------------------------------------------------------- DCE commands


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


def _cli_float(text: str, argument: str, *, need: str = "a number") -> float:
    """A number given on the command line (the flag of ``argument`` is named on error)."""
    try:
        return float(text)
    except ValueError:
        raise TheraquantError(f"must be {need}, got {text!r}", argument=argument) from None


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
    t10_blood: Optional[float] = typer.Option(None, "--t10-blood", help="Blood T10 in s for vessel ROI inputs "
                                              "with --input signal (about 1.44 at 1.5 T, 1.66 at 3 T)."),
    aif: str = typer.Option("parker", "--aif", help=f"Input function: {', '.join(DCE_AIFS)}, or a text file "
                            "of plasma concentrations (mM, one per frame)."),
    aif_roi: Optional[str] = typer.Option(None, "--aif-roi", help="Artery for --aif roi: a label of --mask or "
                                          "a mask NIfTI (blood, converted to plasma with --hct)."),
    aif_delay: float = typer.Option(0.0, "--aif-delay", help="Bolus arrival of a population AIF, s."),
    portal: str = typer.Option("model", "--portal", help="Portal-venous input for dual-input models: 'model' "
                               "(gut impulse response on the AIF), a label of --mask or a mask NIfTI."),
    hct: float = typer.Option(0.42, "--hct", help="Haematocrit (fraction): plasma = blood / (1 - hct)."),
    model: str = typer.Option("etofts", "--model", help=f"Model: {', '.join(DCE_MODELS)}."),
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
    method: str = typer.Option("nlls", "--method", help="Fit method of theraquant.dce.fit: nlls (bounded "
                               "non-linear least squares) or linear (integral form, Murase 2004)."),
    chunk_voxels: int = typer.Option(65536, "--chunk-voxels", help="Curves per batched fit (memory bound)."),
    series_uid: Optional[str] = typer.Option(None, "--series-uid", help="SeriesInstanceUID to read when the "
                                             "DICOM folder holds several series."),
    compress: bool = typer.Option(True, "--compress/--no-compress", help="Write maps as .nii.gz (or .nii: "
                                  "faster for whole volumes; noisy float32 maps shrink only ~10 %)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Write into a non-empty --out folder."),
) -> None:
    """Fit a tracer-kinetic model voxel by voxel; write one NIfTI map per parameter and a summary table."""
    from .pipeline import DceFitSettings, run_dce_fit

    # CONV: the strings of the command line parsed into library types, then one frozen settings object
    def label_or_path(text: Optional[str], name: str):
        if text is None or (name == "portal" and text == "model"):
            return text
        return int(text) if text.lstrip("-").isdigit() else Path(text)

    aif_value = aif if aif.lower().replace("_", "-") in DCE_AIFS else Path(aif)
    delay_value = "fit" if delay.strip().lower() == "fit" else _cli_float(
        delay, "delay", need="a number of seconds or 'fit'")
    settings = DceFitSettings(
        input_path=input_path, out_dir=out_dir, mask=mask, t1=t1, t10=t10, t10_blood=t10_blood, aif=aif_value,
        aif_roi=label_or_path(aif_roi, "aif_roi"), aif_delay=aif_delay, portal=label_or_path(portal, "portal"),
        hct=hct, model=model, input_kind=input_kind, r1=r1, tr=tr, flip_angle=flip_angle, n_baseline=n_baseline,
        delay=delay_value, frame_times=frame_times, dt=dt,  # text: parsed by the settings (one parser)
        method=method, chunk_voxels=chunk_voxels, compress=compress, overwrite=overwrite, series_uid=series_uid)
    from . import dce  # DCE: compile the model's fitting kernels ahead, saying so (issue #14)

    if model in dce.MODELS and not dce.kernels_ready(model):  # (a wrong name fails in run_dce_fit)
        out.print(f"compiling fitting kernels (once, ~{dce.COMPILE_ESTIMATE_S} s)")
        dce.warm_up(model)
    with _voxel_progress(f"fitting {model}") as progress:
        run = run_dce_fit(settings, progress=progress)
    res = run.fit
    shown = [k for k in res if k not in ("success", "aic", "delay") and not k.endswith("_se")]
    shown += ["delay"] if delay.strip().lower() == "fit" else []
    _print_summary(run.summary[run.summary["parameter"].isin(shown)],
                   title=f"{model}: {res.n_voxels} voxels, {res.n_failed} failed (all statistics in summary.csv)")
    out.print(f"wrote {len(run.written)} files to {out_dir}")


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
    from .pet import read_suv
    from .provenance import provenance

    if normalization not in _PET_NORMALIZATIONS:
        raise TheraquantError(f"must be one of {', '.join(_PET_NORMALIZATIONS)}, got {normalization!r}",
                              argument="normalization")
    from .pipeline import check_output_file

    check_output_file(out_path, overwrite, inputs=[series_dir], suffixes=(".nii.gz", ".nii"))  # HARD
    overrides = {k: v for k, v in dict(weight_kg=weight_kg, height_m=height_m, sex=sex,
                                       injected_dose_bq=injected_dose_bq, injection_time=injection_time,
                                       half_life_s=half_life_s, scan_time=scan_time,
                                       decay_correction=decay_correction).items() if v is not None}
    # errors name their keyword (.argument); the error handler shows its --flag (CONV, issue #9)
    img = read_suv(series_dir, normalization=normalization, series_uid=series_uid, **overrides)  # type: ignore[arg-type]
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
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out file."),
) -> None:
    """SUVmax, SUVmean, SUVpeak, MTV and TLG per lesion label (and the PERCIST liver reference)."""
    import numpy as np

    from .io import read_label_image, read_nifti
    from .pipeline import check_output_file
    from .quantities import check_quantity

    if out_json is not None:  # HARD: checked before any work; never onto an input, even with --overwrite
        check_output_file(out_json, overwrite, inputs=[suv_path, mask_path, liver_mask], suffixes=(".json",))
    from .pet import lesion_metrics, liver_reference
    from .provenance import provenance, write_json

    img = read_nifti(suv_path, mmap=False)
    if img.array.ndim != 3:
        raise TheraquantError(f"{suv_path.name}: SUV image must be 3-D, got shape {img.array.shape}")
    mask_img = read_label_image(mask_path, argument="--mask")  # NaN, probabilities, 2.6: errors
    img.check_same_grid(mask_img, names=("SUV", "mask"))
    values = np.asarray(img.array, dtype=np.float64)
    labels = np.asarray(mask_img.array, dtype=np.int64)
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
        check_quantity("suv_threshold", threshold, argument="--mtv-threshold")  # 41 meaning 41 %? negative?
    elif threshold is not None and threshold.strip().endswith("%"):
        try:
            percent = float(threshold.strip()[:-1])
        except ValueError:
            raise TheraquantError(f"--mtv-threshold {mtv_threshold!r}: a percentage of SUVmax is a number "
                                  "followed by %, e.g. '41%'") from None
        check_quantity("percent", percent, argument="--mtv-threshold")
    liver = None
    if liver_mask is not None:
        liver_img = read_label_image(liver_mask, argument="--liver-mask")
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
    from .io import read_table

    return read_table(path, argument="TABLE")  # HARD: empty, non-UTF-8, malformed: one line naming the file


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
    allow_duplicates: bool = typer.Option(False, "--allow-duplicates", help="Accept repeated rows or lesion ids "
                                          "(by default an error: a copied row counts a lesion twice)."),
) -> None:
    """Cohort statistics of a lesion table: ROC, cut-offs, group tests, logistic/GEE, predictor."""
    from rich.table import Table

    from .provenance import provenance, write_json
    from .stats import analyze, fit_predictor

    from .pipeline import check_output_file

    for option, target, other in (("--json", json_out, save_model), ("--save-model", save_model, json_out)):
        if target is not None:  # HARD: before any work; never onto the table or the other output
            check_output_file(target, overwrite, inputs=[table], option=option, suffixes=(".json",),
                              others={"--save-model" if option == "--json" else "--json": other})
    if cluster and no_cluster:
        raise TheraquantError("give either --cluster COL or --no-cluster, not both")
    data = _stats_read_table(table)
    marker_list = [m.strip() for m in markers.split(",") if m.strip()]
    data = _stats_check_table(data, table, outcome=outcome, columns=[*marker_list, *([dose] if dose else [])],
                              responder=responder, allow_duplicates=allow_duplicates, cluster=cluster)  # HARD
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
        from .io import write_text

        write_text(model.to_json() + "\n", save_model)  # atomic
        out.print(f"predictor written to {save_model} (cut-off p >= {model.cutoff:.4f})", highlight=False)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        record = provenance(settings=dict(report.settings, outcome=outcome, markers=marker_list),
                            inputs=[table], units={"auc": "1", "threshold": "marker units", "d50_gy": "Gy"},
                            Results=report.to_dict(), Predictor=None if model is None else model.to_dict())
        write_json(record, json_out)
        out.print(f"results written to {json_out}", highlight=False)




# ---------------------------------------------------------------------------- PIPE-A: study pipeline (init, run, predict, demo)


def _study_table(study, *, show_identifiers: bool) -> None:
    """What discovery found: one row per series, grouped by patient and session, then the problems."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"{study.study_dir}: {len(study.patients)} patient(s), {study.n_dicom} DICOM files",
                  title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0), pad_edge=False)
    for h in ("patient", "session", "role", "series", "files", "details", "time point"):
        table.add_column(h, no_wrap=h not in ("series", "details"), overflow="fold")
    for p in study.patients:
        name = p.patient_id if show_identifiers else p.pseudonym
        tp_of = {}
        for key, s in p.timepoints.items():
            for uid in s.series_uids:
                tp_of.setdefault(uid, []).append(key)
        for s in p.lu177:
            tp_of.setdefault(s.series_uid, []).append("lu177")
        first, last_session = True, None
        for s in sorted(p.series, key=lambda s: (s.date or __import__("datetime").date.min, s.study_uid,
                                                 s.acquired or __import__("datetime").datetime.min)):
            if s.role == "seg" or s.role == "rtstruct":
                detail = ", ".join(s.segment_labels)
            elif s.role == "dce":
                detail = f"{s.n_temporal} frames"
            elif s.role == "vfa":
                detail = "flip " + "/".join(f"{a:g}" for a in s.flip_angles) + " deg"
            elif s.tracer:
                detail = s.tracer
            else:
                detail = ""
            session = (s.date.isoformat() if s.date else "?") if s.study_uid != last_session else ""
            last_session = s.study_uid
            table.add_row(escape(name) if first else "", session, s.role, escape(s.description or s.modality),
                          str(len(s.files)), escape(detail), ", ".join(tp_of.get(s.series_uid, [])))
            first = False
        therapy = (f"{p.therapy_date.isoformat()} ({p.therapy_source})" if p.therapy_date else "unknown")
        table.add_row("", "", "[dim]therapy[/]", f"[dim]{p.therapy_type or '?'} {therapy}[/]", "", "", "",
                      end_section=True)
    out.print(table)
    for q in study.problems:
        text = str(q)
        if show_identifiers:
            p = next((x for x in study.patients if x.pseudonym == getattr(q, "patient", "")), None)
            text = text.replace(p.pseudonym, p.patient_id, 1) if p is not None else text
        out.print(f"[yellow]problem:[/] {escape(text)}", highlight=False, soft_wrap=True)


@contextlib.contextmanager
def _file_progress(quiet: bool):
    """A rich bar over the files of a study (discovery), on stderr."""
    if quiet:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]discovery"), BarColumn(), MofNCompleteColumn(), TextColumn("files"),
                  TimeElapsedColumn(), console=err, transient=True) as bar:
        task = bar.add_task("discovery", total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


@app.command("init")
@handle_errors
def init_cmd(
    study: Path = typer.Argument(..., help="Study folder: patients' DICOM in any layout."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing STUDY/study.yaml."),
    show_identifiers: bool = typer.Option(False, "--show-identifiers",
                                          help="Show PatientIDs instead of pseudonyms (P001...)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar or table; only write study.yaml."),
) -> None:
    """Scan STUDY, write STUDY/study.yaml (every setting with its default and a comment) and show what was found."""
    from .pipeline import StudyConfig, default_yaml, discover_study, load_config
    from .io import write_text

    target = study / "study.yaml"
    if not study.is_dir():
        raise TheraquantError(f"STUDY {study} does not exist or is not a folder; give the folder holding the "
                              "study's DICOM files")
    if target.exists() and not overwrite:
        raise TheraquantError(f"{target} exists; pass --overwrite to rewrite it (its valid values are kept)")
    try:
        config = load_config(target) if target.exists() else StudyConfig()
    except TheraquantError:
        config = StudyConfig()  # an invalid file is replaced by the defaults
    with _file_progress(quiet) as progress:
        found = discover_study(study, config=config, progress=progress)
    ids = tuple(p.patient_id for p in found.patients)
    write_text(default_yaml(config, patient_ids=ids, header=f"written by theraquant init for {len(ids)} "
                                                             "patient(s); edit and run: theraquant run STUDY --out "
                                                             "RESULTS"), target)
    if not quiet:
        _study_table(found, show_identifiers=show_identifiers)
        out.print(f"settings    {target}", highlight=False)


@app.command("run")
@handle_errors
def run_cmd(
    study: Path = typer.Argument(..., help="Study folder: patients' DICOM in any layout, optional study.yaml."),
    results: Path = typer.Option(..., "--out", help="RESULTS folder (docs/results-layout.md)."),
    workers: int = typer.Option(2, "--workers", help="Dask worker processes of the local cluster."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Address of an existing Dask scheduler "
                                            "(tcp://host:8786) instead of a local cluster."),
    resume: bool = typer.Option(False, "--resume", help="Keep the patients an interrupted run finished."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the outputs of an earlier run in --out."),
    show_identifiers: bool = typer.Option(False, "--show-identifiers", help="Write PatientIDs and real dates "
                                          "(default: pseudonyms P001... and dates shifted per patient)."),
    key: Optional[Path] = typer.Option(None, "--key", help="Write the pseudonym -> PatientID key (CSV) here, "
                                       "outside RESULTS."),
    no_dicom: bool = typer.Option(False, "--no-dicom", help="Skip the DICOM export of the results."),
    no_report: bool = typer.Option(False, "--no-report", help="Skip report.html / report.pdf."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars or messages (for scripts)."),
) -> None:
    """Run a study: every patient in parallel (Dask), then lesions.csv, cohort statistics, predictor, DICOM, report."""
    from .pipeline import RunSettings, run_study

    settings = RunSettings(out=results, workers=workers, scheduler=scheduler, resume=resume, overwrite=overwrite,
                           show_identifiers=show_identifiers, key=key, dicom=not no_dicom, report=not no_report,
                           quiet=quiet)
    run = run_study(study, settings)
    status = run.patients["status"].value_counts().to_dict() if "status" in run.patients.columns else {}
    every_failed = bool(status) and set(status) == {"failed"}
    if quiet:
        if every_failed:  # scripts see it: the folder holds failures.csv and nothing else of use
            err.print(f"[red]error:[/] every patient failed; see {run.results_dir / 'failures.csv'}", highlight=False)
            raise typer.Exit(1)
        return
    counts = ", ".join(f"{v} {k}" for k, v in sorted(status.items()))
    out.print(f"patients    {len(run.patients)} ({counts}); {len(run.ran)} run now, {len(run.resumed)} kept",
              highlight=False)
    out.print(f"lesions     {len(run.lesions)} in {run.results_dir / 'lesions.csv'}", highlight=False)
    n_fail = len(run.failures)
    out.print(f"failures    {n_fail} in {run.results_dir / 'failures.csv'}", highlight=False)
    if key is not None:
        out.print(f"key         {key}", highlight=False)
    out.print(f"done in {run.elapsed_s:.1f} s")
    if every_failed:
        err.print(f"[red]error:[/] every patient failed; see {run.results_dir / 'failures.csv'}", highlight=False)
        raise typer.Exit(1)


@app.command("predict")
@handle_errors
def predict_cmd(
    model: Path = typer.Argument(..., help="model.json of a study run (RESULTS/model.json)."),
    patient_dir: Path = typer.Argument(..., help="Folder of the new patient's baseline DICOM with lesion masks."),
    out_dir: Path = typer.Option(..., "--out", help="Output folder (predictions.csv, predictions.json, maps)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the outputs of an earlier prediction."),
) -> None:
    """Probability of response of each lesion of a new patient from a saved predictor."""
    import time

    from .pipeline import run_predict

    t0 = time.perf_counter()
    res = run_predict(model, patient_dir, out_dir, overwrite=overwrite)
    rows = []
    for r in res.predictions.itertuples(index=False):
        prob = getattr(r, "probability", float("nan"))
        rows.append([str(r.patient), str(r.lesion), "" if prob != prob else f"{prob:.3f}",
                     str(getattr(r, "predicted_response", "")), f"{getattr(r, 'cutoff', float('nan')):.3f}",
                     str(getattr(r, "status", ""))])
    _print_rows("predicted response per lesion", ["patient", "lesion", "p", "responder", "cut-off", "status"],
                rows, n_text=2)
    for f in res.failures:
        err.print(f"[yellow]failed:[/] {f.patient} {f.step} {f.file}: {f.message}", highlight=False,
                  soft_wrap=True)
    out.print(f"predictions {Path(out_dir) / 'predictions.csv'}", highlight=False)
    out.print(f"done in {time.perf_counter() - t0:.1f} s")


@app.command("demo")
@handle_errors
def demo(
    out_dir: Path = typer.Option(Path("theraquant-demo"), "--out", help="Demo folder (tare/ and prrt/ inside)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Write into a folder holding something other "
                                   "than an earlier demo (an earlier demo is always replaced)."),
    workers: int = typer.Option(2, "--workers", help="Dask worker processes."),
    seed: int = typer.Option(2026, "--seed", help="Seed of the phantom studies."),
    no_dicom: bool = typer.Option(False, "--no-dicom", help="Skip the DICOM export of the results."),
    no_report: bool = typer.Option(False, "--no-report", help="Skip the reports."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars or messages."),
) -> None:
    """Two phantom studies (TARE, PRRT) as real DICOM through the whole pipeline, compared with their truth."""
    from .pipeline import run_demo

    def say(text: str) -> None:
        if not quiet:
            err.print(text, highlight=False, soft_wrap=True)

    run = run_demo(out_dir, overwrite=overwrite, workers=workers, seed=seed, dicom=not no_dicom,
                   report=not no_report, quiet=quiet, log=say)
    if quiet:
        return
    from rich import box
    from rich.table import Table

    def num(x: float, fmt: str) -> str:
        return "" if x != x else format(x, fmt)  # NaN (no pair, or no relative error) -> blank

    for design, val in run.validation.items():
        table = Table(title=f"{design.upper()} phantom study: recovered vs truth (Bland-Altman)",
                      title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0), pad_edge=False)
        for j, h in enumerate(["biomarker", "unit", "n", "bias", "bias %", "limits of agreement"]):
            table.add_column(h, justify="left" if j < 2 else "right", no_wrap=True)
        for name, v in val.items():
            if "bias" in v:
                loa = "" if v["n"] < 2 else f"[{v['loa_low']:.3g}, {v['loa_high']:.3g}]"
                table.add_row(name, v["unit"], str(v["n"]), num(v["bias"], ".3g"), num(v["bias_pct"], "+.1f"), loa)
            else:
                table.add_row(name, v["unit"], str(v["n"]), "", num(100 * v["agreement"], ".0f") + "% agree", "")
        out.print(table)
        res = run.out_dir / design / "results"
        out.print(f"{design:<11} {res}/ (lesions.csv, vs_truth.csv, validation.json, report.html)", highlight=False)
    out.print(f"done in {run.elapsed_s:.1f} s")


@dce_app.command("demo")
@handle_errors
def dce_demo(
    out_dir: Path = typer.Option(Path("theraquant-dce-demo"), "--out", help="Output folder."),
    model: str = typer.Option("dual_input_etofts", "--model", help=f"Model fitted to the phantom: "
                              f"{', '.join(DCE_MODELS)}."),
    noise: float = typer.Option(0.02, "--noise", help="Gaussian noise SD added to the phantom, mM."),
    seed: int = typer.Option(2026, "--seed", help="Seed of the noise."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Write into a non-empty --out folder."),
) -> None:
    """DCE-MRI demo on the built-in synthetic liver phantom: maps, summary table (fitted vs truth), PNG figure."""
    import time

    from .pipeline import run_dce_demo

    from . import dce  # DCE: say so when the fitting kernels compile first (issue #14)

    t0 = time.perf_counter()
    if model in dce.MODELS and not dce.kernels_ready(model):
        out.print(f"compiling fitting kernels (once, ~{dce.COMPILE_ESTIMATE_S} s)")
        dce.warm_up(model)
    with _voxel_progress(f"fitting {model}") as progress:
        run = run_dce_demo(out_dir, model=model, noise_sd=noise, seed=seed, overwrite=overwrite, progress=progress)
    rows = [[r.name, r.parameter, r.units, str(r.n_voxels), f"{r.truth_median:.4g}", f"{r.median:.4g}",
             f"{100 * r.median_rel_error:+.1f}%", f"{r.iqr:.3g}"] for r in run.vs_truth.itertuples(index=False)]
    _print_rows(f"{model} fit of the liver phantom vs truth (median per label)",
                ["label", "param", "unit", "n", "truth", "fitted", "error", "IQR"], rows, n_text=3)
    out.print(f"phantom     {run.input_dir}/ (dce.nii.gz, labels.nii.gz), truth maps in {run.truth_dir}/")
    out.print(f"maps        {run.maps_dir}/ ({', '.join(p.name for p in run.maps)})")
    out.print(f"settings    {run.maps_dir / 'dce_fit.json'}")
    out.print(f"summary     {run.maps_dir / 'summary.csv'} and {run.vs_truth_csv}")
    out.print(f"figure      {run.figure}")
    out.print(f"done in {time.perf_counter() - t0:.1f} s")


# ---------------------------------------------------------------------------- REPORT: study report


@app.command("report")
@handle_errors
def report_cmd(
    results: Path = typer.Argument(..., help="RESULTS folder written by 'theraquant run' or 'theraquant demo'."),
    no_pdf: bool = typer.Option(False, "--no-pdf", help="Write report.html only."),
) -> None:
    """Render RESULTS/report.html (self-contained, opens offline) and RESULTS/report.pdf from a study run."""
    import time

    from .report import render_report

    t0 = time.perf_counter()
    files = render_report(results, pdf=not no_pdf)
    out.print(f"report      {files.html}")
    if files.pdf is not None:
        out.print(f"pdf         {files.pdf}")
    out.print(f"done in {time.perf_counter() - t0:.1f} s")


# ---------------------------------------------------------------------------- DICOM: export of a finished run


@app.command("export")
@handle_errors
def export_cmd(
    results: Path = typer.Argument(..., help="RESULTS folder of a finished 'theraquant run'."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the DICOM objects an earlier export wrote."),
) -> None:
    """Write Parametric Maps, SEG, RT Dose and RTSTRUCT of a finished run under RESULTS/patients/<P>/dicom/.

    Identifiers follow the run (pseudonyms unless it ran with --show-identifiers). Exits 1 when an
    object could not be written (each is listed; the others are written).
    """
    import time

    from .pipeline import export_dicom

    t0 = time.perf_counter()
    failures = export_dicom(results, overwrite=overwrite)
    n = len(list(Path(results).glob("patients/*/dicom/*.dcm")))
    out.print(f"dicom       {n} DICOM objects in {Path(results) / 'patients'}/<P>/dicom/")
    for f in failures:
        err.print(f"[yellow]not written:[/] {f.patient} {f.file}: {f.message}", highlight=False, soft_wrap=True)
    out.print(f"done in {time.perf_counter() - t0:.1f} s")
    if failures:
        raise typer.Exit(1)


# ---------------------------------------------------------------------------- CONV: pet hypoxia, dose, response
_HYPOXIA_STATS = ("max", "mean", "median", "peak")
_DOSE_NUCLIDES = ("Y-90", "Lu-177")
_DOSE_INPUTS = ("activity", "tia")
_DOSE_METHODS = ("vsv", "ldm")
_RESPONSE_CRITERIA = ("recist", "mrecist", "percist", "eortc")
_RESPONSE_LEVELS = ("lesion", "patient")


def _cli_floats(text: str, argument: str) -> tuple[float, ...]:
    """Comma-separated numbers ('100,150,200')."""
    try:
        return tuple(float(v) for v in text.replace(",", " ").split())
    except ValueError:
        raise TheraquantError(f"must be comma-separated numbers, got {text!r}", argument=argument) from None


def _cli_choice(value: str, choices: tuple[str, ...], argument: str) -> str:
    if value not in choices:
        raise TheraquantError(f"must be one of {', '.join(choices)}, got {value!r}", argument=argument)
    return value


def _write_text_output(text: str, path: Path, overwrite: bool, inputs: list) -> None:
    from .io import write_text
    from .pipeline import check_output_file

    check_output_file(path, overwrite, inputs=inputs)
    write_text(text, path)


@pet_app.command("hypoxia")
@handle_errors
def pet_hypoxia(
    image_path: Path = typer.Argument(..., metavar="FMISO", help="3-D FMISO PET NIfTI (SUV or Bq/mL)."),
    tumour: str = typer.Option(..., "--tumour", help="Tumour mask NIfTI, or LABELS.nii.gz:K for label K of a "
                               "label image."),
    blood: Optional[str] = typer.Option(None, "--blood", help="Blood-pool (aorta) mask, or LABELS.nii.gz:K."),
    muscle: Optional[str] = typer.Option(None, "--muscle", help="Skeletal-muscle mask, or LABELS.nii.gz:K."),
    threshold: str = typer.Option("arte-miso", "--threshold", help="Hypoxia cut-off: a ratio (e.g. 1.3) or one "
                                  "of arte-miso (T/BP > 1.29, Soydal 2025), rasey1996 (T/BP >= 1.2 voxel-wise), "
                                  "yeh1996 (T/M >= 1.24); also muzi2015, soydal2025, radioembolization."),
    operator: Optional[str] = typer.Option(None, "--operator", help="Comparison of a numeric --threshold: '>' or "
                                           "'>=' (default '>='); named thresholds carry their own."),
    tumour_stat: str = typer.Option("max", "--tumour-stat", help=f"Tumour statistic: {', '.join(_HYPOXIA_STATS)}."),
    reference_stat: str = typer.Option("mean", "--reference-stat",
                                       help=f"Reference statistic: {', '.join(_HYPOXIA_STATS)}."),
    out_json: Optional[Path] = typer.Option(None, "--out", help="Write the result (fields, units, provenance) "
                                            "as JSON."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out file."),
) -> None:
    """FMISO hypoxia of a tumour: T/BP, T/M, hypoxic volume and fraction, and which cut-off decided."""
    from .pet import HYPOXIA_THRESHOLDS
    from .pipeline import MaskSpec, run_hypoxia

    thr: float | str = threshold
    if threshold.strip().lower() not in HYPOXIA_THRESHOLDS:
        thr = _cli_float(threshold, "threshold", need=f"a ratio or one of {', '.join(HYPOXIA_THRESHOLDS)}")
    if operator is not None:
        _cli_choice(operator, (">", ">="), "operator")
    _cli_choice(tumour_stat, _HYPOXIA_STATS, "tumour_stat")
    _cli_choice(reference_stat, _HYPOXIA_STATS, "reference_stat")
    specs = {k: MaskSpec.parse(v) if v is not None else None for k, v in (("blood", blood), ("muscle", muscle))}
    res = run_hypoxia(image_path, MaskSpec.parse(tumour), threshold=thr, operator=operator,
                      tumour_stat=tumour_stat, reference_stat=reference_stat, **specs)
    out.print(res.summary(), highlight=False, soft_wrap=True)
    if out_json is not None:
        _write_text_output(res.to_json() + "\n", out_json, overwrite,
                           [image_path] + [MaskSpec.parse(v).path for v in (tumour, blood, muscle) if v])
        out.print(f"wrote {out_json}", highlight=False)


@app.command("dose")
@handle_errors
def dose_cmd(
    input_path: Path = typer.Argument(..., metavar="INPUT", help="3-D NIfTI: activity concentration at "
                                      "implantation (Bq/mL) or time-integrated activity concentration (Bq s/mL)."),
    out_dir: Path = typer.Option(..., "--out", help="Output folder: dose_gy.nii.gz, dvh.csv, dvh_curves.csv, "
                                 "dose.json."),
    nuclide: str = typer.Option("Y-90", "--nuclide", help=f"Radionuclide: {', '.join(_DOSE_NUCLIDES)}."),
    input_kind: str = typer.Option("activity", "--input", help="What INPUT holds: activity (Bq/mL; TIA = A0 "
                                   "T1/2/ln2, physical decay only: exact for 90Y microspheres) or tia (Bq s/mL)."),
    method: str = typer.Option("vsv", "--method", help="Dose method: vsv (voxel S values, Lanconelli 2012) or "
                               "ldm (local deposition)."),
    mask: Optional[Path] = typer.Option(None, "--mask", help="Label image on the INPUT grid: one DVH row per "
                                        "label (names from its sidecar 'LabelNames')."),
    density_g_ml: Optional[float] = typer.Option(None, "--density", help="Tissue density, g/mL (default 1.04, soft "
                                            "tissue)."),
    d_percent: str = typer.Option("2,50,70,98", "--d", help="Dx levels, % of the volume, comma-separated."),
    v_gy: str = typer.Option("100,150,200", "--v", help="Vy levels, Gy, comma-separated."),
    clip_negative: bool = typer.Option(False, "--clip-negative", help="Set negative voxels (reconstruction "
                                       "noise) to 0 first (recorded); without it they are an error."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Write into a non-empty --out folder."),
) -> None:
    """Absorbed dose map (Gy) and per-region DVH table from an activity or TIA image (90Y, 177Lu)."""
    from .pipeline import DoseSettings, run_dose

    _cli_choice(nuclide, _DOSE_NUCLIDES, "nuclide")
    _cli_choice(input_kind, _DOSE_INPUTS, "input_kind")
    _cli_choice(method, _DOSE_METHODS, "method")
    settings = DoseSettings(input_path=input_path, out_dir=out_dir, nuclide=nuclide, input_kind=input_kind,
                            method=method, mask=mask, density_g_ml=density_g_ml,
                            d_percent=_cli_floats(d_percent, "d_percent"), v_gy=_cli_floats(v_gy, "v_gy"),
                            clip_negative=clip_negative, overwrite=overwrite)
    run = run_dose(settings)
    cols = ["label", "name", "volume_mL", "Dmean", "Dmin", "Dmax"] + [c for c in ("D70", "V100") if c in run.table]
    _print_rows(f"{nuclide} {method}: absorbed dose per region (Gy; Vy in %; every metric in dvh.csv)", cols,
                [[f"{v:.4g}" if isinstance(v, float) else str(v) for v in row] for row in run.table[cols].to_numpy()],
                n_text=2)
    out.print(f"wrote {len(run.written)} files to {out_dir}", highlight=False)


@app.command("response")
@handle_errors
def response_cmd(
    table_path: Path = typer.Argument(..., metavar="TABLE", help="Lesion measurements, CSV or Parquet: baseline "
                                      "and followup columns (mm for RECIST/mRECIST, SULpeak for PERCIST, SUV for "
                                      "EORTC), 'patient' for --level patient."),
    criteria: str = typer.Option(..., "--criteria", help=f"Criteria: {', '.join(_RESPONSE_CRITERIA)}."),
    level: str = typer.Option("lesion", "--level", help=f"Grade each lesion or each patient: "
                              f"{', '.join(_RESPONSE_LEVELS)}."),
    column: Optional[list[str]] = typer.Option(None, "--column", help="Rename: CANONICAL=YOURS, e.g. "
                                               "baseline=SULpeak_bl (repeatable)."),
    after_one_cycle: bool = typer.Option(False, "--after-one-cycle", help="EORTC: follow-up after one cycle "
                                         "(PMR at >= 15 %)."),
    reference: str = typer.Option("liver", "--reference", help="PERCIST reference region: liver, blood_pool."),
    out_path: Optional[Path] = typer.Option(None, "--out", help="Write the graded table (.csv or .parquet)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out file."),
) -> None:
    """Response categories (CR/PR/SD/PD, CMR/PMR/SMD/PMD) of a lesion table, with the rule that fired."""
    from .pipeline import check_output_file, run_response

    _cli_choice(criteria.lower(), _RESPONSE_CRITERIA, "criteria")
    _cli_choice(level, _RESPONSE_LEVELS, "level")
    _cli_choice(reference, ("liver", "blood_pool"), "reference")
    columns = {}
    for item in column or []:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise TheraquantError(f"must be CANONICAL=YOURS (e.g. baseline=SULpeak_bl), got {item!r}",
                                  argument="column")
        columns[key.strip()] = value.strip()
    if out_path is not None:
        check_output_file(out_path, overwrite, inputs=[table_path], suffixes=(".csv", ".parquet"))
    graded = run_response(table_path, criteria, level=level, columns=columns, after_one_cycle=after_one_cycle,
                          reference=reference)
    ids = [c for c in ("patient", "lesion") if c in graded.columns]
    show = ids + [c for c in ("baseline", "followup", "change_fraction", "category", "rule_id") if c in graded.columns]
    _print_rows(f"{graded.attrs.get('criteria', criteria)} {graded.attrs.get('version', '')}: {len(graded)} "
                f"{level}(s)", show,
                [[f"{v:.4g}" if isinstance(v, float) else str(v) for v in row] for row in graded[show].to_numpy()],
                n_text=len(ids))
    if out_path is not None:
        from .io import write_table

        write_table(graded, out_path)
        out.print(f"wrote {out_path}", highlight=False)


def main() -> None:  # console-script entry point
    app()


if __name__ == "__main__":
    main()
