"""Output folders: never overwrite results silently."""

from __future__ import annotations

from pathlib import Path

from ..errors import TheraquantError

__all__ = ["prepare_out_dir"]


def prepare_out_dir(path: str | Path, overwrite: bool = False) -> Path:
    """Create the output folder ``path``; refuse a non-empty one unless ``overwrite``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp()) / "maps"
    >>> prepare_out_dir(d).is_dir()
    True
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise TheraquantError(f"{path} is a file; give a folder for the outputs")
    if path.exists() and any(path.iterdir()) and not overwrite:
        raise TheraquantError(f"{path} exists and is not empty; pass --overwrite to replace its files")
    path.mkdir(parents=True, exist_ok=True)
    return path
