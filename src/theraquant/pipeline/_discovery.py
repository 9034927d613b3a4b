"""Study discovery: a folder of DICOM files in any layout -> patients, sessions, series roles, time points.

Only headers are read (``pydicom.dcmread(stop_before_pixels=True)``, large values deferred). Files
are grouped by PatientID, then StudyInstanceUID (an imaging session), then SeriesInstanceUID; each
series gets a role from its headers alone (issue #10):

- ``dce``: MR with more than one temporal position (TemporalPositionIdentifier /
  NumberOfTemporalPositions, or several AcquisitionTime/TriggerTime values at one slice position
  and flip angle);
- ``vfa``: MR 3-D series of one geometry and session holding two or more distinct FlipAngle values
  (one series per angle or several angles in one series; grouped into one time point);
- PT by tracer (RadiopharmaceuticalInformationSequence text or radionuclide code, case-insensitive):
  ``fmiso``, ``fdg``, ``y90``, ``lu177`` (PT or NM);
- ``seg`` (DICOM SEG, segment labels and referenced series from the header), ``rtstruct`` (ROI
  names), else ``mr``, ``ct`` or ``other``.

Time points per patient: the therapy date is ``patients.<PatientID>.therapy_date``, else
``therapy.date``, else the date of the first 90Y/177Lu series; baseline = the last session of a role
on or before it, follow-up = the first after it, ``y90_post`` = the first 90Y series within 7 days
after it.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from ._config import StudyConfig

__all__ = ["SeriesInfo", "PatientStudy", "Study", "parse_segment_label", "discover_study", "ROLES",
           "TIMEPOINTS"]


def discover_study(study_dir: str | Path, *, config: StudyConfig | None = None,
                   progress: Optional[Callable[[int, int], None]] = None) -> "Study":
    """Scan a study folder (implementation follows in the next commit)."""
    raise NotImplementedError("discover_study: in progress")

#: Series roles assigned from the headers.
ROLES = ("dce", "vfa", "fmiso", "fdg", "y90", "lu177", "seg", "rtstruct", "mr", "ct", "other")
#: Keys of :attr:`PatientStudy.timepoints`.
TIMEPOINTS = ("dce_baseline", "dce_followup", "vfa_baseline", "vfa_followup", "fmiso_baseline", "fdg_baseline",
              "fdg_followup", "y90_post")


@dataclass(frozen=True)
class SeriesInfo:
    """One DICOM series as discovered from its headers.

    Attributes
    ----------
    series_uid, study_uid : str
        SeriesInstanceUID and StudyInstanceUID (the imaging session).
    patient_id : str
        PatientID.
    modality : str
        Modality (MR, PT, NM, CT, SEG, RTSTRUCT, ...).
    role : str
        One of :data:`ROLES`.
    acquired : datetime or None
        Earliest acquisition date-time of the series (else series, else study date-time).
    files : tuple of Path
        Absolute paths of the series' files, sorted.
    description : str
        SeriesDescription.
    frame_of_reference_uid : str
        FrameOfReferenceUID ("" when absent).
    flip_angles : tuple of float
        Distinct FlipAngle values, degrees, ascending (MR).
    n_temporal : int
        Number of temporal positions (1 for a static series).
    referenced_series_uids : tuple of str
        Series a SEG/RTSTRUCT references.
    segment_labels : tuple of str
        SEG SegmentLabels / RTSTRUCT ROINames, as written.
    study_date : date or None
        The session's StudyDate (else the date of ``acquired``).
    tracer : str
        Radiopharmaceutical text / radionuclide read for PT and NM ("" otherwise).
    member_series_uids : tuple of str
        For a VFA time point assembled from several series (one per flip angle): every member
        series' UID (``series_uid`` is the first's, ``files`` holds all); else empty.
    """

    series_uid: str
    study_uid: str
    patient_id: str
    modality: str
    role: str
    acquired: Optional[_dt.datetime]
    files: tuple[Path, ...]
    description: str = ""
    frame_of_reference_uid: str = ""
    flip_angles: tuple[float, ...] = ()
    n_temporal: int = 1
    referenced_series_uids: tuple[str, ...] = ()
    segment_labels: tuple[str, ...] = ()
    study_date: Optional[_dt.date] = None
    tracer: str = ""
    member_series_uids: tuple[str, ...] = ()

    @property
    def date(self) -> Optional[_dt.date]:
        """The session date (``study_date``, else the date of ``acquired``)."""
        if self.study_date is not None:
            return self.study_date
        return self.acquired.date() if self.acquired is not None else None

    @property
    def series_uids(self) -> tuple[str, ...]:
        """Every series UID this entry stands for (the members of a grouped VFA, else its own)."""
        return self.member_series_uids or (self.series_uid,)


@dataclass(frozen=True)
class PatientStudy:
    """One patient's discovered series and time points.

    Attributes
    ----------
    patient_id : str
        PatientID (never written to results unless identifiers are shown).
    pseudonym : str
        ``P001``... in the order of PatientID within the study.
    series : tuple of SeriesInfo
        Every series of the patient, by acquisition time.
    therapy_date : date or None
        The therapy date used for the time points.
    therapy_source : str
        Where it came from: ``"patients.<id>.therapy_date"``, ``"therapy.date"``,
        ``"first y90/lu177"`` or ``""`` when unknown.
    timepoints : Mapping[str, SeriesInfo]
        Keys among :data:`TIMEPOINTS` (absent when there is no such series).
    lu177 : tuple of SeriesInfo
        Every post-therapy 177Lu time point, in time order.
    problems : tuple of str
        One line each: the patient (pseudonym), the file (relative to the study) and the problem.
    therapy_type : str or None
        ``"tare"`` / ``"prrt"`` from study.yaml, else from the images (90Y -> tare, 177Lu -> prrt).
    identifiers : Mapping[str, str]
        Header identifiers that must stay out of pseudonymised results (PatientID, PatientName,
        PatientBirthDate, AccessionNumber, OtherPatientIDs), as read.
    """

    patient_id: str
    pseudonym: str
    series: tuple[SeriesInfo, ...]
    therapy_date: Optional[_dt.date]
    therapy_source: str
    timepoints: Mapping[str, SeriesInfo]
    lu177: tuple[SeriesInfo, ...]
    problems: tuple[str, ...]
    therapy_type: Optional[str] = None
    identifiers: Mapping[str, str] = field(default_factory=dict)

    def masks_for(self, series_uid: str) -> tuple[SeriesInfo, ...]:
        """SEG/RTSTRUCT series that reference ``series_uid``; else those sharing its frame of reference.

        Parameters
        ----------
        series_uid : str
            SeriesInstanceUID of an image series (any member of a grouped VFA works).
        """
        masks = [s for s in self.series if s.role in ("seg", "rtstruct")]
        target = next((s for s in self.series if s.series_uid == series_uid), None)
        if target is None:
            target = next((s for s in self.timepoints.values() if series_uid in s.series_uids), None)
        uids = set(target.series_uids) if target is not None else {series_uid}
        direct = tuple(m for m in masks if uids & set(m.referenced_series_uids))
        if direct:
            return direct
        if target is None or not target.frame_of_reference_uid:
            return ()
        return tuple(m for m in masks if m.frame_of_reference_uid == target.frame_of_reference_uid)

    def series_by_uid(self, series_uid: str) -> Optional[SeriesInfo]:
        """The series with this UID (None when absent)."""
        return next((s for s in self.series if s.series_uid == series_uid), None)


@dataclass(frozen=True)
class Study:
    """A discovered study folder.

    Attributes
    ----------
    study_dir : Path
        The folder (absolute).
    patients : tuple of PatientStudy
        In the order of PatientID (= pseudonym order).
    problems : tuple of str
        Study-level problems (unreadable or non-DICOM files, ...), one line each, plus every
        patient's problems.
    config : StudyConfig
        The settings used (study.yaml after defaults, or the config passed).
    n_files : int
        Files looked at.
    n_dicom : int
        Files read as DICOM.
    """

    study_dir: Path
    patients: tuple[PatientStudy, ...]
    problems: tuple[str, ...]
    config: StudyConfig
    n_files: int = 0
    n_dicom: int = 0

    def patient(self, key: str) -> PatientStudy:
        """The patient with this pseudonym or PatientID."""
        for p in self.patients:
            if key in (p.pseudonym, p.patient_id):
                return p
        raise KeyError(key)


_LABEL_KINDS = (
    ("lesion", re.compile(r"^(?:lesion|tumou?r)\s*[-#:]?\s*(\S.*)$", re.IGNORECASE)),
    ("liver", re.compile(r"^(?:whole\s*)?liver$", re.IGNORECASE)),
    ("muscle", re.compile(r"^muscle(?:\s*reference)?$", re.IGNORECASE)),
    ("blood_pool", re.compile(r"^blood\s*pool$", re.IGNORECASE)),
    ("aorta", re.compile(r"^(?:descending\s*|abdominal\s*)?aorta$", re.IGNORECASE)),
    ("portal_vein", re.compile(r"^portal\s*vein$", re.IGNORECASE)),
)


def parse_segment_label(label: str) -> tuple[str, Optional[str]]:
    """What a SEG segment label / RTSTRUCT ROI name stands for (case-insensitive).

    Parameters
    ----------
    label : str
        The label as written, e.g. ``"Lesion 3"``, ``"tumour_2"``, ``"Blood pool"``, ``"Portal vein"``.

    Returns
    -------
    tuple (kind, lesion_id)
        ``kind`` is one of ``"lesion"``, ``"liver"``, ``"muscle"``, ``"blood_pool"``, ``"aorta"``,
        ``"portal_vein"``, ``"other"``; ``lesion_id`` is the ``<id>`` text for lesions (the same
        ``<id>`` in different sessions is the same lesion), else None.

    Examples
    --------
    >>> parse_segment_label("Lesion 3"), parse_segment_label("TUMOR-12"), parse_segment_label("tumour A")
    (('lesion', '3'), ('lesion', '12'), ('lesion', 'A'))
    >>> parse_segment_label("Liver"), parse_segment_label("blood_pool"), parse_segment_label("Portal Vein")
    (('liver', None), ('blood_pool', None), ('portal_vein', None))
    >>> parse_segment_label("aorta"), parse_segment_label("Muscle"), parse_segment_label("spleen")
    (('aorta', None), ('muscle', None), ('other', None))
    """
    text = re.sub(r"[\s_]+", " ", str(label)).strip()
    for kind, pattern in _LABEL_KINDS:
        m = pattern.match(text)
        if m:
            return (kind, m.group(1).strip()) if kind == "lesion" else (kind, None)
    return "other", None
