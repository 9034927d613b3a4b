"""Running a study: every patient on Dask, atomic per-patient results, resume, failures, aggregation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

__all__ = ["RunSettings"]


@dataclass(frozen=True)
class RunSettings:
    """How :func:`run_study` runs (the flags of ``theraquant run``).

    Attributes
    ----------
    out : Path
        The RESULTS folder.
    workers : int
        Dask worker processes of the local cluster (one thread each).
    scheduler : str or None
        Address of an existing Dask scheduler (``tcp://host:8786``); None starts a local cluster.
    resume : bool
        Keep the patients an earlier run of the same settings finished; run only the rest.
    overwrite : bool
        Replace an existing RESULTS folder written by theraquant (otherwise a non-empty folder is
        refused unless ``resume``).
    show_identifiers : bool
        Write PatientIDs and real dates instead of pseudonyms (``P001``...) and shifted dates.
    key : Path or None
        Where to write the pseudonym -> PatientID key (CSV); never inside RESULTS by default.
    dicom : bool
        Export the results as DICOM (``pipeline.export_dicom``) after the run.
    report : bool
        Render ``report.html``/``report.pdf`` after the run.
    quiet : bool
        No progress bars or messages.
    memory_limit : str
        Memory limit of each local Dask worker (a worker over it is restarted; its patient fails).
    """

    out: Path
    workers: int = 2
    scheduler: Optional[str] = None
    resume: bool = False
    overwrite: bool = False
    show_identifiers: bool = False
    key: Optional[Path] = None
    dicom: bool = True
    report: bool = True
    quiet: bool = False
    memory_limit: str = "3GiB"

    def __post_init__(self) -> None:
        from ..errors import TheraquantError

        object.__setattr__(self, "out", Path(self.out))
        if self.key is not None:
            object.__setattr__(self, "key", Path(self.key))
        if not isinstance(self.workers, int) or self.workers < 1:
            raise TheraquantError(f"workers={self.workers!r} must be an integer >= 1", argument="workers",
                                  fix="pass e.g. --workers 2")
        if self.resume and self.overwrite:
            raise TheraquantError("resume and overwrite exclude each other: resume keeps finished patients, "
                                  "overwrite removes them", argument="resume", fix="pass only one of them")
