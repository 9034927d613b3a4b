"""Provenance records: every result says how it was made (BIDS-style keys)."""

from __future__ import annotations

import hashlib
import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

__all__ = ["provenance", "file_sha256", "to_jsonable", "write_json"]


def file_sha256(path: str | Path, *, max_files: int = 5000) -> str:
    """SHA-256 of a file, or of the sorted files of a directory (names and contents)."""
    path = Path(path)
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())[:max_files]
    for f in files:
        if path.is_dir():
            h.update(str(f.relative_to(path)).encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def to_jsonable(obj: Any) -> Any:
    """Convert numpy scalars/arrays, paths and tuples into plain JSON types."""
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def provenance(*, settings: Mapping[str, Any] | None = None, constants: Mapping[str, Any] | None = None,
               units: Mapping[str, str] | None = None, inputs: Iterable[str | Path] = (),
               command: str | None = None, **extra: Any) -> dict[str, Any]:
    """A provenance record: software, version, time, command, settings, constants, units, inputs.

    Examples
    --------
    >>> rec = provenance(settings={"model": "etofts"}, units={"Ktrans": "1/min"})
    >>> rec["Software"], sorted(rec["Settings"])
    ('theraquant', ['model'])
    """
    from . import __version__

    record: dict[str, Any] = {
        "Software": "theraquant",
        "SoftwareVersion": __version__,
        "Created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "Command": command if command is not None else " ".join(["theraquant", *sys.argv[1:]]),
        "Settings": to_jsonable(dict(settings or {})),
        "Constants": to_jsonable(dict(constants or {})),
        "Units": dict(units or {}),
        "Inputs": [{"path": str(p), "sha256": file_sha256(p)} for p in inputs if Path(p).exists()],
    }
    record.update(to_jsonable(extra))
    return record


def write_json(record: Mapping[str, Any], path: str | Path) -> Path:
    """Write a JSON record (numpy values converted) atomically and return its path.

    The text goes to a temporary file in the same folder (named as :mod:`theraquant.io`'s atomic
    writers name theirs, ``.tqtmp-<pid>-<token>-<name>``, so their clean-up removes a killed
    writer's leftover), is fsync-ed and renamed onto ``path``: a reader sees the old record or the
    complete new one, never half a file. (This module sits below :mod:`theraquant.io`, so it cannot
    use :func:`theraquant.io.write_json`; both write the same way.)

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = write_json({"a": 1}, pathlib.Path(tempfile.mkdtemp()) / "r.json")
    >>> json.loads(p.read_text())
    {'a': 1}
    """
    import os
    import secrets

    path = Path(path)
    text = json.dumps(to_jsonable(record), indent=2, allow_nan=False) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tqtmp-{os.getpid()}-{secrets.token_hex(4)}-{path.name}")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise
    return path
