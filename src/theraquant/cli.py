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


# ---------------------------------------------------------------------------- stats command


# ---------------------------------------------------------------------------- demo


def main() -> None:  # console-script entry point
    app()


if __name__ == "__main__":
    main()
