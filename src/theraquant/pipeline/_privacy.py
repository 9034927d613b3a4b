"""Pseudonymisation of study results: pseudonyms, date shifts, scrubbing identifiers from text.

Unless identifiers are shown (``--show-identifiers``), RESULTS never holds a PatientID, patient
name, birth date or accession number, and every calendar date of a patient is shifted by that
patient's own whole number of weeks (so intervals and weekdays are kept, and dates of different
patients cannot be lined up). The shift is derived (HMAC-SHA256) from the PatientID keyed by the
patient's StudyInstanceUIDs, so it is stable between runs of the same study and cannot be
recomputed from the results alone; it lies between 52 and 519 weeks into the past and is written
only to the ``--key`` file, beside the PatientID.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import re
from dataclasses import replace
from typing import Any, Iterable

from ._discovery import PatientStudy

__all__ = ["date_shift_days", "shift_date", "scrub", "identifier_strings", "safe_folder_name", "display_patient"]

_ISO_DATE = re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)")
_DICOM_DATE = re.compile(r"(?<![\d.])((?:19|20)\d{2})(\d{2})(\d{2})(?!\d)")  # YYYYMMDD, not inside a UID
_MIN_LEN = 3  # identifiers shorter than this are not searched for in text (they would match everywhere)


def date_shift_days(patient: PatientStudy) -> int:
    """The patient's date shift in days (negative: into the past; a multiple of 7).

    Parameters
    ----------
    patient : PatientStudy

    Returns
    -------
    int
        Between -3633 and -364 days (52 to 519 weeks).
    """
    key = "\n".join(sorted({s.study_uid for s in patient.series})).encode()
    digest = hmac.new(key or b"theraquant", patient.patient_id.encode(), hashlib.sha256).digest()
    weeks = 52 + int.from_bytes(digest[:4], "big") % 468
    return -7 * weeks


def shift_date(value: _dt.date | _dt.datetime | None, days: int) -> Any:
    """``value`` moved by ``days`` (None stays None)."""
    if value is None:
        return None
    return value + _dt.timedelta(days=days)


def identifier_strings(patient: PatientStudy) -> list[str]:
    """The identifier texts to keep out of results (PatientID, name and its parts, birth date, accessions).

    Longest first, so a name is replaced before its parts.
    """
    out: set[str] = {patient.patient_id}
    for key, value in patient.identifiers.items():
        for part in str(value).split("\\"):
            part = part.strip()
            if not part:
                continue
            out.add(part)
            if key == "PatientName":
                out.update(x.strip() for x in re.split(r"[\^=]", part) if x.strip())
            if key == "PatientBirthDate" and len(part) == 8 and part.isdigit():
                out.add(f"{part[:4]}-{part[4:6]}-{part[6:]}")
    return sorted((s for s in out if len(s) >= _MIN_LEN), key=len, reverse=True)


def scrub(text: str, patient: PatientStudy | None, *, shift_days: int = 0,
          identifiers: Iterable[str] | None = None) -> str:
    """Remove a patient's identifiers from ``text`` and shift its dates (YYYY-MM-DD, and YYYYMMDD not in a UID).

    Parameters
    ----------
    text : str
        Any message or relative path.
    patient : PatientStudy or None
        Whose identifiers are replaced by the pseudonym (case-insensitive).
    shift_days : int
        Shift applied to every ISO date in the text.
    identifiers : iterable of str, optional
        Precomputed :func:`identifier_strings` (faster for many texts).

    Examples
    --------
    >>> from theraquant.pipeline import PatientStudy
    >>> p = PatientStudy("TQ-007", "P003", (), None, "", {}, (), (), identifiers={"PatientName": "Doe^Jane"})
    >>> scrub("tq-007/dce/IM1: Jane Doe scanned 2024-03-01", p, shift_days=-7)
    'P003/dce/IM1: P003 P003 scanned 2024-02-23'
    >>> scrub("TQ-007/20240301/seg.dcm (series 1.2.20240301.5)", p, shift_days=-7)
    'P003/20240223/seg.dcm (series 1.2.20240301.5)'
    """
    if not text:
        return text
    if patient is not None:
        ids = identifier_strings(patient) if identifiers is None else list(identifiers)
        for ident in ids:
            text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(ident)}(?![A-Za-z0-9])", patient.pseudonym, text,
                          flags=re.IGNORECASE)
    if shift_days:
        def _shift(m: re.Match, fmt: str) -> str:
            try:
                d = _dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
            except ValueError:
                return m.group(0)
            return (d + _dt.timedelta(days=shift_days)).strftime(fmt)
        text = _ISO_DATE.sub(lambda m: _shift(m, "%Y-%m-%d"), text)
        text = _DICOM_DATE.sub(lambda m: _shift(m, "%Y%m%d"), text)
    return text


def safe_folder_name(text: str) -> str:
    """A folder name from a PatientID (letters, digits, ``.``, ``_``, ``-``).

    >>> safe_folder_name("PAT 12/3")
    'PAT_12_3'
    """
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "patient"
    return name


def display_patient(patient: PatientStudy, *, show_identifiers: bool) -> PatientStudy:
    """The patient as the run names it: its pseudonym, or (shown identifiers) its PatientID as folder name."""
    if not show_identifiers:
        return patient
    return replace(patient, pseudonym=safe_folder_name(patient.patient_id))
