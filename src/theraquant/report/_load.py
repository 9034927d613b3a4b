"""Read a study RESULTS folder (docs/results-layout.md) for the report: files only, nothing recomputed."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import TheraquantError

__all__ = ["Results", "load_results", "IDENTIFIER_KEYS"]

#: keys whose values identify a person; withheld from the report unless the run had --show-identifiers
IDENTIFIER_KEYS = frozenset(k.lower() for k in (
    "PatientName", "PatientID", "patient_name", "patient_id", "PatientBirthDate", "birth_date",
    "OtherPatientIDs", "OtherPatientNames", "AccessionNumber", "accession_number", "PatientAddress",
    "ReferringPhysicianName", "original_patient_id", "source_patient_id"))


@dataclass
class Results:
    """The files of one RESULTS folder, as read (missing optional files are ``None``; see ``problems``)."""

    root: Path
    provenance: dict = field(default_factory=dict)
    study: dict = field(default_factory=dict)
    manifest: dict = field(default_factory=dict)
    lesions: pd.DataFrame = field(default_factory=pd.DataFrame)
    patients: pd.DataFrame = field(default_factory=pd.DataFrame)
    failures: pd.DataFrame = field(default_factory=pd.DataFrame)
    cohort: dict | None = None
    cohort_text: str = ""
    model: dict | None = None
    curves: pd.DataFrame | None = None
    dvh: pd.DataFrame | None = None
    vs_truth: pd.DataFrame | None = None
    validation: dict | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def show_identifiers(self) -> bool:
        """Whether the run was made with ``--show-identifiers`` (read from provenance.json / manifest.json)."""
        for doc in (self.provenance, self.manifest):
            found = _find_key(doc, "show_identifiers")
            if found is not None:
                return bool(found)
        return False

    @property
    def has_truth(self) -> bool:
        """Ground truth exists (the demo): vs_truth.csv or validation.json."""
        return self.vs_truth is not None or self.validation is not None

    def patient_ids(self) -> list[str]:
        """Patients (pseudonyms) in table order, then any folder under ``patients/`` not in the tables."""
        ids: list[str] = []
        for df in (self.patients, self.lesions):
            if "patient" in df.columns:
                ids += [str(p) for p in df["patient"].dropna().unique() if str(p) not in ids]
        pdir = self.root / "patients"
        if pdir.is_dir():
            ids += sorted(p.name for p in pdir.iterdir() if p.is_dir() and p.name not in ids)
        return ids


def _find_key(obj: Any, key: str) -> Any:
    if isinstance(obj, dict):
        if key in obj:
            return obj[key]
        for v in obj.values():
            found = _find_key(v, key)
            if found is not None:
                return found
    elif isinstance(obj, list):
        for v in obj:
            found = _find_key(v, key)
            if found is not None:
                return found
    return None


def _read_json(path: Path, problems: list[str]) -> Any:
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        problems.append(f"{path.name}: not readable JSON ({exc}); its part of the report is left out")
        return None


def _read_table(root: Path, stem: str, problems: list[str], *, prefer: tuple[str, ...] = (".parquet", ".csv")) -> pd.DataFrame | None:
    for suffix in prefer:
        path = root / f"{stem}{suffix}"
        if not path.exists():
            continue
        try:
            if suffix == ".parquet":
                return pd.read_parquet(path)
            return pd.read_csv(path, keep_default_na=True)
        except Exception as exc:  # pyarrow and pandas raise many types for corrupt files
            problems.append(f"{path.name}: not a readable table ({exc}); its part of the report is left out")
    return None


def load_results(results_dir: str | Path) -> Results:
    """Read the files of a RESULTS folder written by ``theraquant run`` / ``theraquant demo``.

    Parameters
    ----------
    results_dir : str or Path
        The run's ``--out`` folder.

    Returns
    -------
    Results
        Tables and documents; optional files that are missing are ``None`` and a remark is added
        to ``problems`` for files that exist but cannot be read.

    Raises
    ------
    TheraquantError
        When the folder does not exist or holds none of the result files.
    """
    root = Path(results_dir)
    if not root.is_dir():
        raise _error(f"results_dir {str(root)!r} is not a folder; give the --out folder of 'theraquant run' "
                     "or 'theraquant demo'")
    names = ("lesions.csv", "lesions.parquet", "patients.csv", "provenance.json", "cohort.json", "study.json")
    if not any((root / n).exists() for n in names):
        raise _error(f"results_dir {str(root)!r} holds no study results (none of {', '.join(names)}); run "
                     f"'theraquant run STUDY --out {root}' first, or give the folder that run wrote")
    problems: list[str] = []
    res = Results(root=root, problems=problems)
    res.provenance = _read_json(root / "provenance.json", problems) or {}
    res.study = _read_json(root / "study.json", problems) or {}
    res.manifest = _read_json(root / "manifest.json", problems) or {}
    lesions = _read_table(root, "lesions", problems)
    res.lesions = lesions if lesions is not None else pd.DataFrame()
    if "notes" in res.lesions.columns:
        res.lesions["notes"] = res.lesions["notes"].fillna("").astype(str)
    patients = _read_table(root, "patients", problems, prefer=(".csv", ".parquet"))
    res.patients = patients if patients is not None else pd.DataFrame()
    failures = _read_table(root, "failures", problems, prefer=(".csv",))
    res.failures = failures if failures is not None else pd.DataFrame(columns=["patient", "step", "file", "message"])
    res.cohort = _read_json(root / "cohort.json", problems)
    if (root / "cohort.txt").exists():
        res.cohort_text = (root / "cohort.txt").read_text(encoding="utf-8", errors="replace")
    res.model = _read_json(root / "model.json", problems)
    res.curves = _read_table(root, "curves", problems, prefer=(".parquet", ".csv"))
    res.dvh = _read_table(root, "dvh", problems, prefer=(".parquet", ".csv"))
    res.vs_truth = _read_table(root, "vs_truth", problems, prefer=(".csv", ".parquet"))
    res.validation = _read_json(root / "validation.json", problems)
    for df in (res.lesions, res.patients, res.curves, res.dvh, res.vs_truth, res.failures):
        if df is not None:
            for col in ("patient", "lesion"):
                if col in df.columns:
                    df[col] = df[col].map(_as_label)
    return res


def _as_label(v: Any) -> str:
    """Patient / lesion labels as text ("3" not "3.0"; "" for missing)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _error(message: str) -> TheraquantError:
    """A TheraquantError naming the ``results_dir`` argument (``argument=`` once errors.py takes it)."""
    try:
        return TheraquantError(message, argument="results_dir")  # type: ignore[call-arg]
    except TypeError:
        return TheraquantError(message)
