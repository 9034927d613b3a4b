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
        raise TheraquantError(f"--normalization must be one of {', '.join(_PET_NORMALIZATIONS)}, got {normalization!r}")
    if out_path.exists() and not overwrite:
        raise FileExistsError(f"{out_path} exists; pass --overwrite to replace it")
    overrides = {k: v for k, v in dict(weight_kg=weight_kg, height_m=height_m, sex=sex,
                                       injected_dose_bq=injected_dose_bq, injection_time=injection_time,
                                       half_life_s=half_life_s, scan_time=scan_time,
                                       decay_correction=decay_correction).items() if v is not None}
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



# ---------------------------------------------------------------------------- stats command


# ---------------------------------------------------------------------------- demo


def main() -> None:  # console-script entry point
    app()


if __name__ == "__main__":
    main()
