"""Atomic file writing: every output appears complete under its final name, or not at all.

A file is written to a temporary name in the **same folder** (so the final rename never crosses a
file system), flushed and ``fsync``-ed, then renamed into place with :func:`os.replace`, which is
atomic on POSIX and Windows. A run killed at any moment therefore leaves either the previous file,
or the complete new one, under the final name, plus at most a temporary file named
``.tqtmp-<pid>-<token>-<final name>``. Such leftovers never block a later run (every temporary name
is new) and are removed by the next write into the same folder once the process that made them has
ended (:func:`clean_temporaries`).

Third-party writers that want a file name (nibabel, pandas' Parquet, matplotlib, pydicom) write to
:func:`atomic_path`'s temporary path, which keeps the final name's suffixes (``.nii.gz`` stays
gzip-compressed).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from pathlib import Path
from typing import IO, Any, Iterator, Mapping, Sequence

from ..errors import TheraquantError

__all__ = ["atomic_write", "atomic_path", "atomic_paths", "write_json", "write_text", "write_table",
           "clean_temporaries", "TEMP_PREFIX"]

TEMP_PREFIX = ".tqtmp-"
"""Start of every temporary file name (``.tqtmp-<pid>-<token>-<final name>``); hidden on POSIX."""


def _temp_for(path: Path) -> Path:
    return path.with_name(f"{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}-{path.name}")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return False
    return True


def clean_temporaries(folder: str | Path, *, name: str | None = None) -> list[Path]:
    """Remove temporary files left in ``folder`` by writers that were killed.

    Only files named ``.tqtmp-<pid>-<token>-...`` whose process ``<pid>`` no longer runs are removed
    (a concurrent writer's temporary file is left alone).

    Parameters
    ----------
    folder : str or Path
        Folder to clean (not recursive).
    name : str, optional
        Only temporaries of this final file name.

    Returns
    -------
    list of Path
        The files removed.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / ".tqtmp-999999999-00ff00ff-x.json").write_text("{")  # a dead writer's leftover
    >>> [p.name for p in clean_temporaries(d)]
    ['.tqtmp-999999999-00ff00ff-x.json']
    """
    folder = Path(folder)
    removed: list[Path] = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for p in entries:
        n = p.name
        if not n.startswith(TEMP_PREFIX):
            continue
        parts = n[len(TEMP_PREFIX):].split("-", 2)
        if len(parts) != 3 or not parts[0].isdigit() or (name is not None and parts[2] != name):
            continue
        if _pid_alive(int(parts[0])):
            continue
        with contextlib.suppress(OSError):
            p.unlink()
            removed.append(p)
    return removed


def _fsync_dir(folder: Path) -> None:
    # make the rename itself durable (POSIX); not possible (nor needed) on Windows
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _check_target(path: Path) -> None:
    if path.is_dir():
        raise TheraquantError(f"{path} is a folder; give a file name for this output")
    parent = path.parent
    for anc in (parent, *parent.parents):
        if anc.exists():
            if not anc.is_dir():
                raise TheraquantError(f"{path}: {anc} is a file, not a folder; choose an output path in a folder")
            break


def _prepare(path: str | Path) -> Path:
    path = Path(path)
    _check_target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_temporaries(path.parent, name=path.name)
    return path


def _commit(pairs: Sequence[tuple[Path, Path]]) -> None:
    """fsync every temporary file, then rename them into place in the given order."""
    for tmp, _ in pairs:
        _fsync_file(tmp)
    mode = _umask_mode()
    # replacing an earlier result: its data files go first, so a kill during the renames never leaves
    # old data beside the new record (only the record, or the record and the first data files)
    for _, final in pairs[1:]:
        with contextlib.suppress(FileNotFoundError):
            final.unlink()
    for tmp, final in pairs:
        with contextlib.suppress(OSError):
            os.chmod(tmp, mode)
        os.replace(tmp, final)
    for folder in {final.parent for _, final in pairs}:
        _fsync_dir(folder)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path``, renamed onto ``path`` when the block ends without error.

    For writers that need a file name. The temporary name ends with ``path``'s name, so suffix-driven
    writers (``.nii.gz``, ``.parquet``, ``.png``) behave as for the final name. On an exception the
    temporary file is removed and ``path`` is left as it was.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_path(d / "a.txt") as tmp:
    ...     _ = tmp.write_text("done")
    >>> (d / "a.txt").read_text(), sorted(p.name for p in d.iterdir())
    ('done', ['a.txt'])
    """
    with atomic_paths([path]) as (tmp,):
        yield tmp


@contextlib.contextmanager
def atomic_paths(paths: Sequence[str | Path]) -> Iterator[tuple[Path, ...]]:
    """Temporary paths for several files that form one result, renamed into place in the given order.

    All files are written and ``fsync``-ed before the first rename, so a kill leaves at most a
    prefix of ``paths`` renamed: give the record (sidecar) first and the data file last, and a folder
    never holds data without its record.
    """
    finals = [_prepare(p) for p in paths]
    tmps = [_temp_for(p) for p in finals]
    try:
        yield tuple(tmps)
        missing = [t for t in tmps if not t.exists()]
        if missing:
            raise TheraquantError(f"internal: the writer did not create {missing[0].name}")
        _commit(list(zip(tmps, finals)))
    except BaseException:
        for t in tmps:
            with contextlib.suppress(OSError):
                t.unlink()
        raise


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "wb", *, encoding: str | None = None,
                 newline: str | None = None) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` for writing; on success fsync it and rename it onto ``path``.

    Parameters
    ----------
    path : str or Path
        Final file name. Its folder is created when missing.
    mode : {"wb", "w"}
        Binary or text (text defaults to UTF-8).
    encoding, newline : str, optional
        As for :func:`open`, text mode only.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_write(d / "x.bin") as fh:
    ...     _ = fh.write(b"123")
    >>> (d / "x.bin").read_bytes()
    b'123'
    """
    if mode not in ("wb", "w"):
        raise TheraquantError(f"atomic_write mode must be 'wb' or 'w', got {mode!r}")
    if mode == "w" and encoding is None:
        encoding = "utf-8"
    with atomic_path(path) as tmp:
        with open(tmp, mode, encoding=encoding, newline=newline) as fh:
            yield fh
            fh.flush()


def write_text(text: str, path: str | Path) -> Path:
    """Write ``text`` (UTF-8) atomically to ``path`` and return the path."""
    with atomic_write(path, "w") as fh:
        fh.write(text)
    return Path(path)


def write_json(obj: Any, path: str | Path, *, indent: int = 2) -> Path:
    """Write ``obj`` as JSON atomically (numpy values, paths converted; NaN/inf become null).

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np
    >>> p = write_json({"a": np.float32(1.5), "b": [np.nan]}, pathlib.Path(tempfile.mkdtemp()) / "r.json")
    >>> p.read_text()
    '{\\n  "a": 1.5,\\n  "b": [\\n    null\\n  ]\\n}\\n'
    """
    from ..provenance import to_jsonable

    return write_text(json.dumps(to_jsonable(obj), indent=indent, allow_nan=False) + "\n", path)


def write_table(df: Any, path: str | Path, *, index: bool = False, **kwargs: Any) -> Path:
    """Write a pandas DataFrame atomically as CSV or Parquet, chosen by the suffix of ``path``.

    Parameters
    ----------
    df : pandas.DataFrame
        The table.
    path : str or Path
        ``.csv`` (UTF-8, comma-separated) or ``.parquet``.
    index : bool
        Write the index as a column (default False).
    **kwargs
        Passed to ``DataFrame.to_csv`` or ``DataFrame.to_parquet``.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with atomic_write(path, "w", newline="") as fh:
            df.to_csv(fh, index=index, **kwargs)
    elif suffix in (".parquet", ".pq"):
        with atomic_path(path) as tmp:
            df.to_parquet(tmp, index=index, **kwargs)
    else:
        raise TheraquantError(f"{path.name}: unsupported table extension {suffix or '(none)'!r}; "
                              "use .csv or .parquet")
    return path
