"""Running a study: every patient on Dask, atomic per-patient results, resume, failures, aggregation.

:func:`run_study` discovers the study, runs each patient's science (``process_patient``) as one
Dask task (a ``distributed`` local cluster of worker processes by default), writes each finished
patient's outputs at once and atomically under ``RESULTS/patients/<P>/`` (its maps and masks, and
its rows: ``lesions.parquet``, ``curves.parquet``, ``dvh.parquet``, ``failures.csv``,
``patient.json``, then the completion marker ``done.json``), and rebuilds the cohort tables from
those files. A run that is killed leaves every finished patient complete; ``resume`` redoes only the
patients without a completion marker of the same settings. Then the cohort statistics, the DICOM
export and the report run on the aggregated folder (docs/results-layout.md).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import inspect
import json
import logging
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from ..errors import TheraquantError
from ._config import StudyConfig, load_config
from ._discovery import PatientStudy, Problem, Study, discover_study
from ._privacy import date_shift_days, display_patient, identifier_strings, scrub

__all__ = ["RunSettings", "StudyRun", "run_study", "FAILURE_COLUMNS"]

#: Columns of failures.csv (contract, issue #10).
FAILURE_COLUMNS = ("patient", "step", "file", "message")
_DONE = "done.json"
_PATIENT_TABLES = ("lesions.parquet", "curves.parquet", "dvh.parquet")
_TOP_OUTPUTS = ("provenance.json", "study.json", "lesions.parquet", "lesions.csv", "patients.csv", "failures.csv",
                "curves.parquet", "dvh.parquet", "cohort.json", "cohort.txt", "model.json", "report.html",
                "report.pdf", "patients")
_DISCOVERY_FAILURE_KINDS = ("file", "dates", "reference")
_log = logging.getLogger("theraquant.pipeline")


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
    cohort : bool
        Run the cohort statistics and predictor (``cohort_analysis``) after the patients.
    memory_limit : str
        Memory limit of each local Dask worker (a worker over it is restarted; its patient fails).
    processes : bool
        Local workers are processes (default); False runs them as threads of this process (for
        debugging, or a process function that cannot be pickled).
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
    cohort: bool = True
    memory_limit: str = "3GiB"
    processes: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", Path(self.out))
        if self.key is not None:
            object.__setattr__(self, "key", Path(self.key))
        if not isinstance(self.workers, int) or self.workers < 1:
            raise TheraquantError(f"workers={self.workers!r} must be an integer >= 1", argument="workers",
                                  fix="pass e.g. --workers 2")
        if self.resume and self.overwrite:
            raise TheraquantError("resume and overwrite exclude each other: resume keeps finished patients, "
                                  "overwrite removes them", argument="resume", fix="pass only one of them")


@dataclass(frozen=True)
class StudyRun:
    """What :func:`run_study` did.

    Attributes
    ----------
    results_dir : Path
        The RESULTS folder.
    study : Study
        The discovered study (real PatientIDs: keep it out of shared outputs).
    ran : tuple of str
        Patients (pseudonyms) computed by this call.
    resumed : tuple of str
        Patients kept from an earlier run (``resume``).
    failed : tuple of str
        Patients for which nothing could be computed.
    lesions, patients, failures : pandas.DataFrame
        The aggregated ``lesions.csv``, ``patients.csv`` and ``failures.csv``.
    cohort : dict or None
        What the cohort analysis returned (None when it did not run).
    notes : tuple of str
        What was skipped or went wrong after the patients (cohort, export, report).
    elapsed_s : float
        Wall time of the call, s.
    files : Mapping[str, Path]
        The top-level outputs written, by name.
    """

    results_dir: Path
    study: Study
    ran: tuple[str, ...]
    resumed: tuple[str, ...]
    failed: tuple[str, ...]
    lesions: Any
    patients: Any
    failures: Any
    cohort: Optional[dict]
    notes: tuple[str, ...]
    elapsed_s: float
    files: Mapping[str, Path] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------- reporting


class _Reporter:
    """Rich progress on stderr (nothing when quiet)."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self._progress = None
        self._tasks: dict[str, Any] = {}
        if not quiet:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.console = Console(stderr=True)
            self._progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TextColumn("{task.fields[unit]}"), TimeElapsedColumn(),
                                      TextColumn("{task.fields[last]}"), console=self.console)

    def __enter__(self) -> "_Reporter":
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.stop()

    def bar(self, name: str, description: str, total: Optional[int], unit: str) -> None:
        if self._progress is not None:
            self._tasks[name] = self._progress.add_task(description, total=total, unit=unit, last="")

    def update(self, name: str, done: int, total: Optional[int] = None, last: str = "") -> None:
        if self._progress is not None and name in self._tasks:
            kw: dict[str, Any] = {"completed": done, "last": last}
            if total is not None:
                kw["total"] = total
            self._progress.update(self._tasks[name], **kw)

    def line(self, text: str, style: str = "") -> None:
        if self._progress is not None:
            self._progress.console.print(f"[{style}]{text}[/]" if style else text, highlight=False,
                                         markup=bool(style), soft_wrap=True)


# ---------------------------------------------------------------------------------------------- privacy of rows


def _shift_value(v: Any, days: int) -> Any:
    if v is None or days == 0:
        return v
    if isinstance(v, _dt.datetime | _dt.date):
        return v + _dt.timedelta(days=days)
    if isinstance(v, str):
        return scrub(v, None, shift_days=days)
    return v


def _private_frame(df: Any, patient: PatientStudy, *, days: int, ids: list[str], pseudonym: str) -> Any:
    """A patient's table with its pseudonym in ``patient``, identifiers scrubbed from text, dates shifted."""
    import pandas as pd

    df = pd.DataFrame(df).copy() if df is not None else pd.DataFrame()
    if len(df.columns) == 0:
        return df
    df["patient"] = pseudonym
    for col in df.columns:
        if col == "patient":
            continue
        if "date" in str(col).lower():
            df[col] = [_shift_value(v, days) for v in df[col]]
        elif df[col].dtype == object:
            df[col] = [scrub(v, patient, shift_days=days, identifiers=ids) if isinstance(v, str) else v
                       for v in df[col]]
    return df


def _failure_row(f: Any, pseudonym: str, patient: PatientStudy | None, days: int, ids: list[str],
                 study_dir: str = "") -> dict:
    """A failures.csv row: paths relative to the study folder, identifiers scrubbed, dates shifted."""
    get = (lambda k: f.get(k, "")) if isinstance(f, Mapping) else (lambda k: getattr(f, k, ""))

    def clean(text: str) -> str:
        if study_dir:
            text = text.replace(study_dir.rstrip("/") + "/", "")
        return scrub(text, patient, shift_days=days, identifiers=ids)

    return {"patient": pseudonym, "step": str(get("step") or ""), "file": clean(str(get("file") or "")),
            "message": clean(str(get("message") or ""))}


# ---------------------------------------------------------------------------------------------- one patient


def _call_process(process: Callable, patient: PatientStudy, config: StudyConfig, out: Path, study_dir: Path) -> Any:
    try:
        params = inspect.signature(process).parameters
        takes_study = "study_dir" in params or any(p.kind == p.VAR_KEYWORD for p in params.values())
    except (TypeError, ValueError):
        takes_study = False
    if takes_study:
        return process(patient, config, out, study_dir=study_dir)
    return process(patient, config, out)


def _patient_task(patient: PatientStudy, config: StudyConfig, out_dir: str, study_dir: str, process: Callable,
                  settings_hash: str, pseudonymise: bool) -> dict:
    """Run one patient and write its rows and completion marker (runs on a Dask worker)."""
    import pandas as pd

    from ..io import write_json, write_table

    out = Path(out_dir)
    pname = patient.pseudonym
    pdir = out / "patients" / pname
    if pdir.exists():  # a partial patient of a killed run: start clean so no stale map stays
        shutil.rmtree(pdir)
    days = date_shift_days(patient) if pseudonymise else 0
    ids = identifier_strings(patient) if pseudonymise else []
    t0 = time.perf_counter()
    failures: list[dict] = []
    warnings: list[str] = []
    try:
        outcome = _call_process(process, patient, config, out, Path(study_dir))
        lesions, curves, dvh = outcome.lesions, outcome.curves, outcome.dvh
        row = dict(outcome.patient_row or {})
        failures = [_failure_row(f, pname, patient, days, ids, study_dir) for f in outcome.failures]
        warnings = [scrub(str(w), patient, shift_days=days, identifiers=ids) for w in outcome.warnings]
        status = str(row.get("status") or ("partial" if failures else "ok"))
    except Exception as exc:  # noqa: BLE001 - one patient's failure never stops the cohort
        lesions = curves = dvh = None
        msg = f"{type(exc).__name__}: {exc}" if not isinstance(exc, TheraquantError) else str(exc)
        failures = [_failure_row({"step": "patient", "file": getattr(exc, "file", "") or "", "message": msg},
                                 pname, patient, days, ids, study_dir)]
        row = {"n_lesions": 0, "status": "failed", "notes": failures[0]["message"]}
        status = "failed"
    seconds = time.perf_counter() - t0
    pdir.mkdir(parents=True, exist_ok=True)
    if pseudonymise:
        _scrub_sidecars(pdir, patient, days, ids)
    lesions = _private_frame(lesions, patient, days=days, ids=ids, pseudonym=pname)
    if "notes" not in lesions.columns:
        lesions["notes"] = pd.Series([""] * len(lesions), dtype=object)
    lesions["notes"] = lesions["notes"].fillna("").astype(str)
    if "patient" not in lesions.columns:
        lesions.insert(0, "patient", pd.Series([pname] * len(lesions), dtype=object))
    curves = _private_frame(curves, patient, days=days, ids=ids, pseudonym=pname)
    dvh = _private_frame(dvh, patient, days=days, ids=ids, pseudonym=pname)
    row["patient"] = pname
    row.setdefault("n_lesions", int(lesions["lesion"].nunique()) if "lesion" in lesions.columns else 0)
    row.setdefault("therapy_type", patient.therapy_type)
    row.setdefault("therapy_date", patient.therapy_date)
    row["status"] = status
    row["notes"] = str(row.get("notes") or "")
    for k, v in list(row.items()):
        if k == "patient":
            continue
        if "date" in k.lower():  # a date value: shifted once
            v = _shift_value(v, days)
            row[k] = _iso(v) if isinstance(v, _dt.date) else v
        elif isinstance(v, str):
            row[k] = scrub(v, patient, shift_days=days, identifiers=ids)
    write_table(lesions, pdir / "lesions.parquet")
    write_table(curves, pdir / "curves.parquet")
    write_table(dvh, pdir / "dvh.parquet")
    write_table(pd.DataFrame(failures, columns=list(FAILURE_COLUMNS)), pdir / "failures.csv")
    write_json({"row": row, "warnings": warnings, "seconds": seconds}, pdir / "patient.json")
    # the completion marker, last: a patient without it is redone by --resume
    write_json({"settings_hash": settings_hash, "status": status, "seconds": seconds,
                "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}, pdir / _DONE)
    return {"patient": pname, "status": status, "seconds": seconds, "n_lesions": int(len(lesions)),
            "n_failures": len(failures)}


def _scrub_sidecars(pdir: Path, patient: PatientStudy, days: int, ids: list[str]) -> None:
    """Every JSON the per-patient step wrote (map and mask sidecars): identifiers out, dates shifted."""
    from ..io import write_json

    def clean(obj: Any) -> Any:
        if isinstance(obj, str):
            return scrub(obj, patient, shift_days=days, identifiers=ids)
        if isinstance(obj, list):
            return [clean(v) for v in obj]
        if isinstance(obj, dict):
            return {clean(k) if isinstance(k, str) else k: clean(v) for k, v in obj.items()}
        return obj

    for f in sorted(pdir.rglob("*.json")):
        try:
            obj = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        new = clean(obj)
        if new != obj:
            write_json(new, f)


def _finished(pdir: Path, settings_hash: str) -> Optional[dict]:
    """The completion marker of a patient finished (ok/partial) under the same settings, else None."""
    try:
        rec = json.loads((pdir / _DONE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if rec.get("settings_hash") != settings_hash or rec.get("status") not in ("ok", "partial"):
        return None
    return rec


# ---------------------------------------------------------------------------------------------- the study run


def _settings_record(config: StudyConfig, settings: RunSettings, study: Optional[Study] = None) -> dict:
    """What decides the per-patient results (hashed for --resume)."""
    from .. import __version__

    return {"config": config.model_dump(mode="json"), "show_identifiers": settings.show_identifiers,
            "software_version": __version__, "study_dir": None if study is None else str(study.study_dir)}


def _patients_token(study: Study) -> str:
    """A hash of the study's patients and sessions (PatientIDs never stored): resume needs the same set."""
    h = hashlib.sha256()
    for p in study.patients:
        h.update(p.patient_id.encode() + b"\0")
        for uid in sorted({s.study_uid for s in p.series}):
            h.update(uid.encode() + b"\0")
    return h.hexdigest()[:32]


def _prepare_results(out: Path, settings: RunSettings, study_dir: Path) -> Optional[dict]:
    """Check / create RESULTS; return the earlier manifest when resuming."""
    from ._outputs import check_out_dir, prepare_out_dir, read_manifest

    if out.resolve() == study_dir.resolve() or out.resolve().is_relative_to(study_dir.resolve()):
        raise TheraquantError(f"--out {out} is inside the study folder {study_dir}; results would be read as "
                              "study files on the next run", argument="out", fix="choose a folder outside STUDY")
    if study_dir.resolve().is_relative_to(out.resolve()):
        raise TheraquantError(f"--out {out} contains the study folder {study_dir}; --overwrite could remove it",
                              argument="out", fix="choose a folder outside STUDY")
    if settings.resume and out.is_dir() and any(out.iterdir()):
        manifest = read_manifest(out)
        if manifest is None or manifest.get("Kind") != "study run":
            raise TheraquantError(f"--resume: {out} holds no study run of theraquant (no manifest.json of kind "
                                  "'study run')", argument="resume",
                                  fix="run without --resume into an empty folder, or pass --overwrite")
        check_out_dir(out, True)
        return manifest
    prepare_out_dir(out, settings.overwrite, inputs=[study_dir], option="--out")
    return None


def _write_manifest(out: Path, settings_rec: dict, *, patients: Mapping[str, dict], study: Study, complete: bool,
                    started: str) -> None:
    from ._outputs import write_manifest

    outputs = [n for n in _TOP_OUTPUTS] + (["vs_truth.csv", "validation.json"] if (out / "vs_truth.csv").exists()
                                            else [])
    if (out / "dicom").exists():
        outputs.append("dicom")
    write_manifest(out, outputs, kind="study run", settings=settings_rec,
                   extra={"StudyDir": str(study.study_dir), "PatientsToken": _patients_token(study),
                          "Started": started, "Complete": complete,
                          "Patients": {k: patients[k] for k in sorted(patients)}})


def _read_patient_tables(out: Path, names: list[str]) -> dict[str, Any]:
    import pandas as pd

    tables: dict[str, list] = {"lesions": [], "curves": [], "dvh": [], "failures": [], "rows": [], "warnings": []}
    for name in names:
        pdir = out / "patients" / name
        for t in ("lesions", "curves", "dvh"):
            f = pdir / f"{t}.parquet"
            if f.exists():
                df = pd.read_parquet(f)
                if len(df.columns):
                    tables[t].append(df)
        if (pdir / "failures.csv").exists():
            tables["failures"].append(pd.read_csv(pdir / "failures.csv", dtype=str, keep_default_na=False))
        if (pdir / "patient.json").exists():
            rec = json.loads((pdir / "patient.json").read_text(encoding="utf-8"))
            tables["rows"].append(rec.get("row", {}))
            tables["warnings"] += [f"{name}: {w}" for w in rec.get("warnings", [])]
    return tables


def _natural(text: Any) -> tuple:
    import re

    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.findall(r"\d+|\D+", str(text)))


def _concat(frames: list, columns: tuple[str, ...] = ()) -> Any:
    import pandas as pd

    frames = [f for f in frames if len(f.columns)]
    df = pd.concat(frames, ignore_index=True, sort=False) if frames else pd.DataFrame(columns=list(columns))
    for c in columns:
        if c not in df.columns:
            df[c] = pd.Series(dtype=object)
    lead = [c for c in columns if c in df.columns]
    return df[lead + [c for c in df.columns if c not in lead]]


def _sort_rows(df: Any, keys: tuple[str, ...]) -> Any:
    keys = tuple(k for k in keys if k in df.columns)
    if not keys or df.empty:
        return df.reset_index(drop=True)
    order = sorted(range(len(df)), key=lambda i: tuple(_natural(df[k].iloc[i]) for k in keys))
    return df.iloc[order].reset_index(drop=True)


def _series_record(s: Any, root: Path, patient: PatientStudy, days: int, ids: list[str], private: bool) -> dict:
    from ._discovery import _rel

    files = [_rel(f, root) for f in s.files]
    redacted = False
    if private:
        clean = [scrub(f, patient, shift_days=days, identifiers=ids) for f in files]
        redacted = clean != files
        files = clean
    rec = {"series_uid": s.series_uid, "study_uid": s.study_uid, "role": s.role, "modality": s.modality,
           "description": scrub(s.description, patient, shift_days=days, identifiers=ids) if private else s.description,
           "date": _iso(_shift_value(s.date, days)), "acquired": _iso(_shift_value(s.acquired, days)),
           "frame_of_reference_uid": s.frame_of_reference_uid, "flip_angles": list(s.flip_angles),
           "n_temporal": s.n_temporal, "referenced_series_uids": list(s.referenced_series_uids),
           "segment_labels": list(s.segment_labels), "tracer": s.tracer, "n_files": len(s.files), "files": files}
    if s.member_series_uids:
        rec["member_series_uids"] = list(s.member_series_uids)
    if redacted:
        rec["files_redacted"] = True
    return rec


def _iso(v: Any) -> Optional[str]:
    if v is None:
        return None
    return v.isoformat(timespec="seconds") if isinstance(v, _dt.datetime) else v.isoformat()


def _study_record(study: Study, shown: list[PatientStudy], private: bool) -> dict:
    """study.json: the design as discovered (pseudonymised unless identifiers are shown)."""
    root = study.study_dir
    patients = []
    for orig, p in zip(study.patients, shown):
        days = date_shift_days(orig) if private else 0
        ids = identifier_strings(orig) if private else []
        sessions: dict[str, dict] = {}
        for s in orig.series:
            sess = sessions.setdefault(s.study_uid, {"study_uid": s.study_uid, "date": _iso(_shift_value(s.date, days)),
                                                    "roles": []})
            if s.role not in sess["roles"]:
                sess["roles"].append(s.role)
        tps = {}
        for key, s in orig.timepoints.items():
            tps[key] = {"series_uid": s.series_uid, "series_uids": list(s.series_uids),
                        "date": _iso(_shift_value(s.date, days))}
        patients.append({
            "patient": p.pseudonym, "therapy_type": orig.therapy_type,
            "therapy_date": _iso(_shift_value(orig.therapy_date, days)), "therapy_source":
                orig.therapy_source.replace(orig.patient_id, p.pseudonym) if private else orig.therapy_source,
            "sessions": sorted(sessions.values(), key=lambda r: r["date"] or ""),
            "series": [_series_record(s, root, orig, days, ids, private) for s in orig.series],
            "timepoints": tps, "lu177": [s.series_uid for s in orig.lu177],
            "missing": [scrub(str(q.message if isinstance(q, Problem) else q), orig, shift_days=days, identifiers=ids)
                        for q in orig.problems if getattr(q, "kind", "") == "missing"],
            "problems": [scrub(str(q), orig, shift_days=days, identifiers=ids) if private else str(q)
                         for q in orig.problems]})
    study_level = [q for q in study.problems if not getattr(q, "patient", "")]
    return {"study_dir": str(root), "pseudonymised": private,
            "date_shift": ("every date of a patient is moved by that patient's own whole number of weeks "
                           "(52 to 519 weeks back; intervals and weekdays kept); the shifts are in the --key file "
                           "only") if private else None,
            "n_files": study.n_files, "n_dicom": study.n_dicom, "patients": patients,
            "problems": [_scrub_all(str(q), study, private) for q in study_level]}


def _scrub_all(text: str, study: Study, private: bool) -> str:
    """A study-level text with every patient's identifiers replaced by that patient's pseudonym."""
    if not private:
        return text
    for p in study.patients:
        text = scrub(text, p)
    return text


def _discovery_failures(study: Study, private: bool) -> list[dict]:
    rows = []
    by_pseudonym = {p.pseudonym: p for p in study.patients}
    for q in study.problems:
        if not isinstance(q, Problem) or q.kind not in _DISCOVERY_FAILURE_KINDS:
            continue
        p = by_pseudonym.get(q.patient)
        if private and p is not None:
            days, ids = date_shift_days(p), identifier_strings(p)
            rows.append({"patient": q.patient, "step": "discovery", "file": scrub(q.file, p, shift_days=days,
                                                                                 identifiers=ids),
                         "message": scrub(q.message, p, shift_days=days, identifiers=ids)})
        else:
            name = q.patient
            if not private and p is not None:
                name = display_patient(p, show_identifiers=True).pseudonym
            rows.append({"patient": name, "step": "discovery", "file": _scrub_all(q.file, study, private),
                         "message": _scrub_all(q.message, study, private)})
    return rows


def _default_process() -> Callable:
    from . import _patient

    return _patient.process_patient


def _write_key(path: Path, study: Study) -> None:
    import pandas as pd

    from ..io import write_table

    rows = [{"pseudonym": p.pseudonym, "patient_id": p.patient_id, "date_shift_days": date_shift_days(p)}
            for p in study.patients]
    write_table(pd.DataFrame(rows, columns=["pseudonym", "patient_id", "date_shift_days"]), path)


def _probe(address: str) -> None:
    """Fail fast (instead of the client's retries) when nothing listens at a tcp:// scheduler address."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    if parts.scheme == "tcp" and parts.hostname and parts.port:
        socket.create_connection((parts.hostname, parts.port), timeout=10).close()


def _start_client(settings: RunSettings) -> tuple[Any, Any]:
    import dask
    from distributed import Client, LocalCluster

    if settings.scheduler:
        try:
            _probe(settings.scheduler)
            return Client(settings.scheduler, timeout="20s"), None
        except (OSError, TimeoutError) as exc:
            raise TheraquantError(f"--scheduler {settings.scheduler}: cannot connect ({exc})", argument="scheduler",
                                  fix="start the scheduler first (dask scheduler) or omit --scheduler") from None
    import os

    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}) or {})
    # numba's threads per worker: the cores shared out, so workers do not oversubscribe them
    environ.setdefault("NUMBA_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // settings.workers)))
    with dask.config.set({"distributed.scheduler.allowed-failures": 0,
                          "logging.distributed": "error", "distributed.nanny.pre-spawn-environ": environ}):
        with warnings.catch_warnings():  # "port 8787 in use" when another cluster runs: a free port is taken
            warnings.simplefilter("ignore", UserWarning)
            cluster = LocalCluster(n_workers=settings.workers, threads_per_worker=1, processes=settings.processes,
                                   memory_limit=settings.memory_limit, dashboard_address=None,
                                   silence_logs=logging.ERROR)
            client = Client(cluster)
    return client, cluster


def run_study(study_dir: str | Path, settings: RunSettings, *, config: StudyConfig | None = None,
              process: Callable | None = None, client: Any = None) -> StudyRun:
    """Run a whole study: every patient in parallel, then the cohort tables, statistics, DICOM and report.

    Parameters
    ----------
    study_dir : str or Path
        The study folder (DICOM in any layout, optional ``study.yaml``).
    settings : RunSettings
        Output folder, workers, resume/overwrite, privacy and the steps after the patients.
    config : StudyConfig, optional
        Settings instead of the folder's ``study.yaml``.
    process : callable, optional
        ``process(patient, config, out_dir, *, study_dir) -> PatientOutcome``, the per-patient step
        (default :func:`theraquant.pipeline.process_patient`); must be picklable for process workers.
    client : distributed.Client, optional
        An open Dask client to use (and leave open) instead of the cluster ``settings`` describe.

    Returns
    -------
    StudyRun

    Raises
    ------
    TheraquantError
        Bad folder or settings, a resume that does not match the earlier run, no patient in the
        study. A failing patient never raises: it is a row of ``failures.csv``.
    """
    t_start = time.perf_counter()
    started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    root = Path(study_dir).expanduser()
    if not root.is_dir():
        raise TheraquantError(f"STUDY {study_dir} does not exist or is not a folder", argument="study_dir",
                              fix="give the folder holding the study's DICOM files")
    root = root.resolve()
    out = Path(settings.out).expanduser().absolute()
    if settings.key is not None:
        key = Path(settings.key).expanduser().absolute()
        if key.resolve().is_relative_to(out.resolve()):
            raise TheraquantError(f"--key {settings.key} is inside RESULTS {out}; the key re-identifies the "
                                  "patients and must be kept apart", argument="key",
                                  fix="write the key outside the results folder")
    config = config if config is not None else load_config(root)
    process = process or _default_process()
    private = not settings.show_identifiers
    manifest_before = _prepare_results(out, settings, root)
    own_client = client is None
    cluster = None
    if own_client:
        client, cluster = _start_client(settings)  # first: its workers read the headers too
    try:
        return _run_study(root, out, settings, config, process, client, manifest_before, started, t_start, private)
    finally:
        if own_client:
            with contextlib.suppress(Exception):
                client.close()
            if cluster is not None:
                with contextlib.suppress(Exception):
                    cluster.close()


def _run_study(root: Path, out: Path, settings: RunSettings, config: StudyConfig, process: Callable, client: Any,
               manifest_before: Optional[dict], started: str, t_start: float, private: bool) -> StudyRun:
    import pandas as pd

    from ..io import write_json, write_table

    notes: list[str] = []
    with _Reporter(settings.quiet) as rep:
        rep.bar("files", "discovery", None, "files")
        study = discover_study(root, config=config, progress=lambda d, t: rep.update("files", d, t),
                               executor=client)
        for q in study.problems:
            rep.line(f"problem: {q}", "yellow")
        if not study.patients:
            raise TheraquantError(f"STUDY {root}: no patient found ({study.n_files} files, {study.n_dicom} DICOM)",
                                  argument="study_dir", fix="check the folder holds the study's DICOM files")
        settings_rec = _settings_record(config, settings, study)
        shash = hashlib.sha256(json.dumps(settings_rec, sort_keys=True, default=str).encode()).hexdigest()[:32]
        if manifest_before is not None:
            if manifest_before.get("PatientsToken") != _patients_token(study):
                raise TheraquantError(f"--resume: the patients or sessions of {root} differ from the earlier run in "
                                      f"{out} (pseudonyms would not match)", argument="resume",
                                      fix="run again with --overwrite")
            from ._outputs import _settings_hash

            if manifest_before.get("SettingsHash") != _settings_hash(settings_rec):
                raise TheraquantError(f"--resume: the settings (study.yaml, --show-identifiers or the theraquant "
                                      f"version) differ from the earlier run in {out}", argument="resume",
                                      fix="run again with --overwrite, or restore the earlier settings")
        shown = [display_patient(p, show_identifiers=settings.show_identifiers) for p in study.patients]
        names = [p.pseudonym for p in shown]
        if len(set(names)) != len(names):
            raise TheraquantError("--show-identifiers: two PatientIDs give the same folder name "
                                  f"({sorted(n for n in names if names.count(n) > 1)})", argument="show_identifiers",
                                  fix="run pseudonymised (without --show-identifiers)")
        status: dict[str, dict] = {}
        todo: list[PatientStudy] = []
        resumed: list[str] = []
        for p in shown:
            rec = _finished(out / "patients" / p.pseudonym, shash) if settings.resume else None
            if rec is not None:
                status[p.pseudonym] = {"status": rec["status"], "seconds": rec.get("seconds")}
                resumed.append(p.pseudonym)
            else:
                todo.append(p)
        if settings.key is not None:
            _write_key(Path(settings.key).expanduser(), study)
        _write_manifest(out, settings_rec, patients=status, study=study, complete=False, started=started)
        rep.bar("patients", "patients", len(shown), "patients")
        rep.update("patients", len(resumed), last=f"{len(resumed)} kept from the earlier run" if resumed else "")
        ran: list[str] = []
        if todo:
            ran = _run_patients(todo, config, out, root, process, shash, private, settings, rep, status, study,
                                settings_rec, started, len(resumed), client)
        # aggregate
        tables = _read_patient_tables(out, names)
        LESION_COLUMNS, PATIENT_COLUMNS, CURVE_COLUMNS, DVH_COLUMNS = _columns()
        lesions = _sort_rows(_concat(tables["lesions"], ("patient", "lesion")), ("patient", "lesion"))
        if "notes" not in lesions.columns:
            lesions["notes"] = pd.Series([""] * len(lesions), dtype=object)
        lead = [c for c in LESION_COLUMNS if c in lesions.columns]
        lesions = lesions[lead + [c for c in lesions.columns if c not in lead]]
        patients_df = _sort_rows(_concat([pd.DataFrame([r]) for r in tables["rows"]], PATIENT_COLUMNS),
                                 ("patient",))
        curves = _sort_rows(_concat(tables["curves"], CURVE_COLUMNS), ())
        dvh = _sort_rows(_concat(tables["dvh"], DVH_COLUMNS), ())
        failures = pd.DataFrame(_discovery_failures(study, private), columns=list(FAILURE_COLUMNS))
        failures = pd.concat([failures, *[f.astype(object) for f in tables["failures"] if len(f)]], ignore_index=True)
        failures = failures[list(FAILURE_COLUMNS)] if len(failures) else pd.DataFrame(columns=list(FAILURE_COLUMNS))
        files: dict[str, Path] = {}
        files["lesions.parquet"] = write_table(lesions, out / "lesions.parquet")
        files["lesions.csv"] = write_table(lesions, out / "lesions.csv")
        files["patients.csv"] = write_table(patients_df, out / "patients.csv")
        files["curves.parquet"] = write_table(curves, out / "curves.parquet")
        files["dvh.parquet"] = write_table(dvh, out / "dvh.parquet")
        files["failures.csv"] = write_table(failures, out / "failures.csv")
        files["study.json"] = write_json(_study_record(study, shown, private), out / "study.json")
        files["provenance.json"] = write_json(
            _provenance(study, shown, config, settings, private, tables["warnings"], shash, started,
                        time.perf_counter() - t_start), out / "provenance.json")
        # cohort statistics, DICOM export, report: each optional, each failing alone
        cohort = None
        extra_failures: list[dict] = []
        cohort_fn = _public("cohort_analysis")
        if not settings.cohort:
            pass
        elif cohort_fn is None:
            notes.append("cohort statistics skipped: pipeline.cohort_analysis is not available")
        elif lesions.empty:
            notes.append("cohort statistics skipped: no lesion rows")
        else:
            try:
                cohort = cohort_fn(lesions, config, out)
            except Exception as exc:  # noqa: BLE001
                extra_failures.append({"patient": "", "step": "cohort", "file": "",
                                       "message": _scrub_all(f"{type(exc).__name__}: {exc}", study, private)})
        if settings.dicom:
            export = _public("export_dicom")
            if export is None:
                notes.append("DICOM export skipped: pipeline.export_dicom is not available")
            else:
                try:
                    for f in export(out) or ():
                        extra_failures.append(_failure_row(f, getattr(f, "patient", "") if not isinstance(f, Mapping)
                                                           else f.get("patient", ""), None, 0, []))
                except Exception as exc:  # noqa: BLE001
                    extra_failures.append({"patient": "", "step": "export", "file": "",
                                           "message": _scrub_all(f"{type(exc).__name__}: {exc}", study, private)})
        if extra_failures:
            failures = pd.concat([failures, pd.DataFrame(extra_failures, columns=list(FAILURE_COLUMNS))],
                                 ignore_index=True)
            files["failures.csv"] = write_table(failures, out / "failures.csv")
        if settings.report:
            notes += _render_report(out, study, private, failures)
            failures = pd.read_csv(out / "failures.csv", dtype=str, keep_default_na=False)
        _write_manifest(out, settings_rec, patients=status, study=study, complete=True, started=started)
        for n in notes:
            rep.line(n, "dim")
    failed = tuple(k for k, v in status.items() if v.get("status") == "failed")
    return StudyRun(results_dir=out, study=study, ran=tuple(ran), resumed=tuple(resumed), failed=failed,
                    lesions=lesions, patients=patients_df, failures=failures, cohort=cohort, notes=tuple(notes),
                    elapsed_s=time.perf_counter() - t_start, files=files)


def _columns() -> tuple[tuple[str, ...], ...]:
    """Column orders of lesions.csv, patients.csv, curves and DVH (the per-patient module's, if present)."""
    try:
        from ._patient import CURVE_COLUMNS, DVH_COLUMNS, LESION_COLUMNS, PATIENT_COLUMNS
    except ImportError:  # pragma: no cover - the layout's contract columns
        return (("patient", "lesion"), ("patient", "n_lesions", "therapy_type", "therapy_date", "response",
                                        "response_rule", "dose_normal_liver_gy", "tumour_to_normal_ratio", "status",
                                        "notes"),
                ("patient", "lesion", "session", "kind", "t_s", "value_mM"),
                ("patient", "lesion", "dose_gy", "volume_pct"))
    return tuple(LESION_COLUMNS), tuple(PATIENT_COLUMNS), tuple(CURVE_COLUMNS), tuple(DVH_COLUMNS)


def _render_report(out: Path, study: Study, private: bool, failures: Any) -> list[str]:
    import pandas as pd

    from ..io import write_table

    try:
        from .. import report as _report
    except Exception as exc:  # noqa: BLE001 - the report is optional for a run
        return [f"report skipped: theraquant.report cannot be imported ({type(exc).__name__})"]
    render = getattr(_report, "render_report", None)
    if render is None:
        return ["report skipped: report.render_report is not available"]
    try:
        render(out)
    except Exception as exc:  # noqa: BLE001
        row = {"patient": "", "step": "report", "file": "",
               "message": _scrub_all(f"{type(exc).__name__}: {exc}", study, private)}
        write_table(pd.concat([failures, pd.DataFrame([row])], ignore_index=True), out / "failures.csv")
        return [f"report failed: {row['message']}"]
    return []


def _public(name: str) -> Optional[Callable]:
    """A function of theraquant.pipeline's public API added by another area (None when not there yet)."""
    import importlib

    pkg = importlib.import_module("theraquant.pipeline")
    fn = getattr(pkg, name, None)
    return fn if callable(fn) else None


def _provenance(study: Study, shown: list[PatientStudy], config: StudyConfig, settings: RunSettings, private: bool,
                warnings: list[str], shash: str, started: str, elapsed: float) -> dict:
    from ..provenance import provenance

    cfg = config.model_dump(mode="json")
    if private:  # per-patient overrides are keyed by PatientID: key them by pseudonym, dates shifted
        by_id = {p.patient_id: p for p in study.patients}
        pats = {}
        for pid, val in cfg.get("patients", {}).items():
            p = by_id.get(pid)
            if p is None:
                continue
            days = date_shift_days(p)
            d = val.get("therapy_date")
            pats[p.pseudonym] = {"therapy_date": _iso(_shift_value(_dt.date.fromisoformat(d), days)) if d else None}
        cfg["patients"] = pats
        if cfg["therapy"].get("date"):
            cfg["therapy"]["date"] = "(set; shifted per patient, see study.json)"
    inputs = {}
    for orig, p in zip(study.patients, shown):
        inputs[p.pseudonym] = {key: list(s.series_uids) for key, s in orig.timepoints.items()}
        if orig.lu177:
            inputs[p.pseudonym]["lu177"] = [s.series_uid for s in orig.lu177]
    run = {"workers": settings.workers, "scheduler": settings.scheduler, "resume": settings.resume,
           "show_identifiers": settings.show_identifiers, "dicom": settings.dicom, "report": settings.report}
    return provenance(settings={"study": cfg, "run": run, "settings_hash": shash},
                      constants={"pseudonym_order": "PatientID, ascending", "y90_post_window_days": 7},
                      command=f"run_study({str(study.study_dir)!r}, out={str(settings.out)!r})",
                      InputSeries=inputs, Started=started, RunTime_s=round(elapsed, 3),
                      Warnings=[_scrub_all(w, study, private) for w in warnings],
                      Pseudonymised=private)


def _run_patients(todo: list[PatientStudy], config: StudyConfig, out: Path, root: Path, process: Callable,
                  shash: str, private: bool, settings: RunSettings, rep: _Reporter, status: dict, study: Study,
                  settings_rec: dict, started: str, n_done: int, client: Any = None) -> list[str]:
    """Submit one Dask task per patient; record each as it finishes (manifest updated atomically)."""
    from distributed import as_completed

    ran: list[str] = []
    futures = {}
    for p in todo:
        fut = client.submit(_patient_task, p, config, str(out), str(root), process, shash, private,
                            key=f"theraquant-patient-{p.pseudonym}-{shash[:8]}-{time.time_ns()}", pure=False)
        futures[fut] = p
    done = n_done
    for fut in as_completed(list(futures)):
        p = futures[fut]
        try:
            res = fut.result()
        except Exception as exc:  # noqa: BLE001 - a dead worker (memory, crash): this patient failed
            res = _worker_lost(p, out, shash, private, exc, settings)
        status[p.pseudonym] = {"status": res["status"], "seconds": round(float(res["seconds"]), 3)}
        ran.append(p.pseudonym)
        done += 1
        rep.update("patients", done, last=f"{p.pseudonym} {res['status']}")
        if res["status"] != "ok":
            rep.line(f"{p.pseudonym}: {res['status']} ({res.get('n_failures', 0)} failure(s), see failures.csv)",
                     "yellow")
        _write_manifest(out, settings_rec, patients=status, study=study, complete=False, started=started)
    return ran


def _worker_lost(p: PatientStudy, out: Path, shash: str, private: bool, exc: BaseException,
                 settings: RunSettings) -> dict:
    """Write a failed patient whose Dask worker died (no rows, one failure)."""
    def crash(*_a: Any, **_k: Any) -> Any:
        raise TheraquantError(f"the Dask worker running this patient died ({type(exc).__name__}: {exc}); "
                              f"memory limit per worker {settings.memory_limit}")

    return _patient_task(p, StudyConfig(), str(out), "", crash, shash, private)
