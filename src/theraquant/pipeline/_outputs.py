"""Output folders and files: never overwrite results silently, never lose an input, no stale outputs.

The policy every command and run follows:

* an existing output (file, or non-empty folder) is replaced only with ``overwrite=True``
  (``--overwrite``);
* an output path equal to one of the command's inputs is refused, even with ``overwrite``;
* every option and input is checked **before** any output folder or file is created: call
  :func:`check_out_dir` / :func:`check_output_file` first (no side effect), compute, then
  :func:`prepare_out_dir` and write;
* a results folder records what it holds in ``manifest.json`` (:func:`write_manifest`); with
  ``overwrite``, :func:`prepare_out_dir` removes the outputs the earlier run listed there
  (:func:`previous_outputs`), so no stale map of another model stays beside the new ones. Files the
  earlier run did not list (the user's own) are left alone.

Manifest API (used by ``theraquant dce fit``, the study pipeline and the demo)
-----------------------------------------------------------------------------
``write_manifest(out_dir, outputs, *, kind, settings=None, extra=None) -> Path``
    Write ``out_dir/manifest.json`` atomically: ``{"Software": "theraquant", "SoftwareVersion",
    "Created" (UTC ISO), "Kind" (e.g. "dce fit", "study run", "demo"), "SettingsHash" (SHA-256 of
    the canonical JSON of ``settings``, or null), "Outputs": [paths relative to out_dir, POSIX,
    sorted], **extra}``. ``outputs`` are paths inside ``out_dir`` (absolute or relative to it);
    folders may be listed (removed whole on overwrite). Call it last, after every output is written.
``read_manifest(out_dir) -> dict | None``
    The manifest, or None when there is none or it is not a theraquant manifest.
``previous_outputs(out_dir) -> list[Path]``
    Absolute paths the earlier run listed that still exist (never outside ``out_dir``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ..errors import TheraquantError

__all__ = ["prepare_out_dir", "check_out_dir", "check_output_file", "write_manifest", "read_manifest",
           "previous_outputs", "MANIFEST"]

MANIFEST = "manifest.json"


def _existing_ancestor(path: Path) -> Path:
    for anc in (path, *path.parents):
        if anc.exists() or anc.is_symlink():
            return anc
    return Path(".")


def _check_writable_place(path: Path, option: str) -> None:
    """``path`` (file or folder to be) can be created: no regular file on its way, a writable folder."""
    anc = _existing_ancestor(path.parent)
    if not anc.is_dir():
        raise TheraquantError(f"{option} {path}: {anc} is a file, not a folder; choose a path in a folder")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise TheraquantError(f"{option} {path}: cannot write in {anc} (permission denied); choose a "
                              "writable location")


def _same_path(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def _inputs(inputs: Iterable[str | Path | None]) -> list[Path]:
    return [Path(p) for p in inputs if p is not None and str(p) != ""]


def check_out_dir(path: str | Path, overwrite: bool = False, *, inputs: Iterable[str | Path | None] = (),
                  option: str = "--out") -> Path:
    """Check that ``path`` can become the output folder; create nothing.

    Parameters
    ----------
    path : str or Path
        The output folder.
    overwrite : bool
        Allow a non-empty folder (its earlier run's outputs will be replaced).
    inputs : iterable of paths
        The command's inputs: the folder may not be one of them, nor may an earlier run's output
        that will be removed.
    option : str
        How the folder is named in messages (``--out`` on the command line, ``out_dir=`` in the API).

    Raises
    ------
    TheraquantError
        A file at ``path`` or above it, a non-empty folder without ``overwrite``, an input that
        would be overwritten or removed, an unwritable location.
    """
    path = Path(path)
    ins = _inputs(inputs)
    for p in ins:
        if _same_path(path, p):
            raise TheraquantError(f"{option} {path} is also an input of this command; choose another output "
                                  "folder (an input is never overwritten, even with --overwrite)")
    if path.exists() and not path.is_dir():
        raise TheraquantError(f"{option} {path} is a file; give a folder for the outputs")
    if path.is_dir():
        from ..io import TEMP_PREFIX

        # a killed writer's temporary files do not make a folder "not empty" (they never block a run)
        if any(not p.name.startswith(TEMP_PREFIX) for p in path.iterdir()) and not overwrite:
            raise TheraquantError(f"{option} {path} exists and is not empty; pass --overwrite to replace its "
                                  "files (the earlier run's outputs listed in its manifest.json are removed)")
        stale = previous_outputs(path)
        for p in ins:
            for s in stale:
                if _same_path(s, p) or (s.is_dir() and p.resolve().is_relative_to(s.resolve())):
                    raise TheraquantError(f"input {p} is an output of the earlier run in {option} {path} and "
                                          "would be removed by --overwrite; copy it elsewhere or choose "
                                          "another output folder")
        if not os.access(path, os.W_OK | os.X_OK):
            raise TheraquantError(f"{option} {path}: cannot write in it (permission denied); choose a "
                                  "writable folder")
    else:
        _check_writable_place(path, option)
    return path


def prepare_out_dir(path: str | Path, overwrite: bool = False, *, inputs: Iterable[str | Path | None] = (),
                    option: str = "--out") -> Path:
    """Create the output folder ``path``; refuse a non-empty one unless ``overwrite``.

    Runs :func:`check_out_dir` first. With ``overwrite``, the outputs listed in the folder's
    ``manifest.json`` by an earlier run are removed (and the manifest with them), and temporary files
    left by a killed writer are cleaned; anything else in the folder is kept.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp()) / "maps"
    >>> prepare_out_dir(d).is_dir()
    True
    >>> _ = (d / "Fp.nii.gz").write_bytes(b"old"); _ = write_manifest(d, ["Fp.nii.gz"], kind="dce fit")
    >>> _ = (d / "notes.txt").write_text("mine")
    >>> sorted(p.name for p in prepare_out_dir(d, overwrite=True).iterdir())  # stale map gone, notes kept
    ['notes.txt']
    """
    from ..io import clean_temporaries

    path = check_out_dir(path, overwrite, inputs=inputs, option=option)
    if path.is_dir() and overwrite:
        for p in previous_outputs(path):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
        with contextlib.suppress(FileNotFoundError):
            (path / MANIFEST).unlink()
    if path.is_dir():
        clean_temporaries(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def check_output_file(path: str | Path, overwrite: bool = False, *, inputs: Iterable[str | Path | None] = (),
                      option: str = "--out", suffixes: Sequence[str] | None = None,
                      others: Mapping[str, str | Path | None] | None = None) -> Path:
    """Check that the output file ``path`` may be written; create nothing.

    Parameters
    ----------
    path : str or Path
        The output file.
    overwrite : bool
        Allow replacing an existing file.
    inputs : iterable of paths
        The command's inputs: ``path`` may not be one of them, even with ``overwrite``.
    option : str
        The option naming the file in messages (``--out``, ``--json``...).
    suffixes : sequence of str, optional
        Accepted endings (``(".json",)``, ``(".nii.gz", ".nii")``); others are refused.
    others : mapping of str to path, optional
        The command's other outputs by option: two outputs may not be the same file.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> check_output_file(d / "m.json", suffixes=(".json",)).name
    'm.json'
    >>> check_output_file(d / "m", suffixes=(".json",))
    Traceback (most recent call last):
    ...
    theraquant.errors.TheraquantError: --out m: unsupported extension (none); give a file name ending in .json
    """
    path = Path(path)
    if suffixes is not None and not any(path.name.lower().endswith(s) and path.name.lower() != s
                                        for s in suffixes):
        ext = "".join(path.suffixes) or "(none)"
        raise TheraquantError(f"{option} {path.name}: unsupported extension {ext}; give a file name ending in "
                              f"{' or '.join(suffixes)}")
    for p in _inputs(inputs):
        if _same_path(path, p):
            raise TheraquantError(f"{option} {path} is also an input of this command; choose another output "
                                  "file (an input is never overwritten, even with --overwrite)")
    for other_option, other in (others or {}).items():
        if other is not None and _same_path(path, Path(other)):
            raise TheraquantError(f"{option} and {other_option} name the same file {path}; give two different "
                                  "files")
    if path.is_dir():
        raise TheraquantError(f"{option} {path} is a folder; give a file name")
    if path.exists() and not overwrite:
        raise TheraquantError(f"{option} {path} exists; pass --overwrite to replace it")
    _check_writable_place(path, option)
    if path.exists() and not os.access(path.parent, os.W_OK | os.X_OK):
        raise TheraquantError(f"{option} {path}: cannot write in {path.parent} (permission denied)")
    return path


def _settings_hash(settings: Mapping[str, Any] | None) -> str | None:
    if settings is None:
        return None
    from ..provenance import to_jsonable

    text = json.dumps(to_jsonable(settings), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def write_manifest(out_dir: str | Path, outputs: Iterable[str | Path], *, kind: str,
                   settings: Mapping[str, Any] | None = None, extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``out_dir/manifest.json``: what this run wrote (see the module docstring for the layout).

    Parameters
    ----------
    out_dir : str or Path
        The results folder.
    outputs : iterable of paths
        Files or folders this run wrote, inside ``out_dir`` (absolute or relative to it).
    kind : str
        What wrote them (``"dce fit"``, ``"study run"``, ``"demo"``).
    settings : mapping, optional
        The run's settings; their SHA-256 (canonical JSON) is stored as ``SettingsHash``.
    extra : mapping, optional
        More keys (e.g. ``{"Patients": {...status...}}``).

    Returns
    -------
    Path
        The manifest's path.
    """
    from .. import __version__
    from ..io import write_json

    out_dir = Path(out_dir)
    base = out_dir.resolve()
    rel: set[str] = set()
    for p in outputs:
        p = Path(p)
        full = (p if p.is_absolute() else out_dir / p).resolve()
        if not full.is_relative_to(base) or full == base:
            raise TheraquantError(f"write_manifest: output {p} is not inside {out_dir}; list only what the run "
                                  "wrote in its folder")
        if full.name != MANIFEST or full.parent != base:
            rel.add(full.relative_to(base).as_posix())
    record: dict[str, Any] = {
        "Software": "theraquant", "SoftwareVersion": __version__,
        "Created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "Kind": kind,
        "SettingsHash": _settings_hash(settings), "Outputs": sorted(rel)}
    record.update(dict(extra or {}))
    return write_json(record, out_dir / MANIFEST)


def read_manifest(out_dir: str | Path) -> dict[str, Any] | None:
    """The folder's ``manifest.json`` as a dict, or None (absent, unreadable, or not theraquant's)."""
    p = Path(out_dir) / MANIFEST
    try:
        rec = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(rec, dict) or rec.get("Software") != "theraquant" or not isinstance(rec.get("Outputs"), list):
        return None
    return rec


def previous_outputs(out_dir: str | Path) -> list[Path]:
    """Outputs an earlier run listed in ``out_dir/manifest.json`` that still exist (absolute paths).

    Entries that would resolve outside ``out_dir`` (``..``, absolute paths, links out) are ignored,
    so a tampered manifest cannot make ``--overwrite`` delete anything else.
    """
    out_dir = Path(out_dir)
    rec = read_manifest(out_dir)
    if rec is None:
        return []
    base = out_dir.resolve()
    found: list[Path] = []
    for entry in rec["Outputs"]:
        if not isinstance(entry, str) or not entry or Path(entry).is_absolute():
            continue
        p = out_dir / entry
        try:
            full = p.parent.resolve() / p.name  # the entry itself may be a link: remove the link only
        except OSError:
            continue
        if not full.is_relative_to(base) or full == base or not (p.exists() or p.is_symlink()):
            continue
        found.append(p.absolute())
    return found
