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

from ..io import parse_segment_label  # the one place of the label vocabulary
from ._config import StudyConfig

__all__ = ["SeriesInfo", "PatientStudy", "Study", "parse_segment_label", "discover_study", "pseudonym_for",
           "Problem", "ROLES", "TIMEPOINTS"]

#: Series roles assigned from the headers.
ROLES = ("dce", "vfa", "fmiso", "fdg", "y90", "lu177", "seg", "rtstruct", "mr", "ct", "other")
#: Keys of :attr:`PatientStudy.timepoints`.
TIMEPOINTS = ("dce_baseline", "dce_followup", "vfa_baseline", "vfa_followup", "fmiso_baseline", "fdg_baseline",
              "fdg_followup", "y90_post")



class Problem(str):
    """One problem line (a ``str``: ``"P001: dce/IM0001: what is wrong"``) with its parts as attributes.

    Attributes
    ----------
    patient : str
        Pseudonym of the patient ("" for study-level problems).
    file : str
        File or folder relative to the study folder ("" when none).
    kind : str
        ``"file"`` (unreadable / not DICOM), ``"dates"`` (contradicting dates), ``"reference"``
        (a SEG/RTSTRUCT that references nothing present, a series without masks), ``"missing"``
        (an expected series absent), ``"ambiguous"`` (several candidates, one chosen), ``"config"``.
    message : str
        The problem itself.

    Examples
    --------
    >>> p = Problem("P001", "seg/a.dcm", "reference", "SEG references series 1.2.3, none of which is in the study")
    >>> str(p)
    'P001: seg/a.dcm: SEG references series 1.2.3, none of which is in the study'
    >>> p.kind, p.file
    ('reference', 'seg/a.dcm')
    """

    patient: str
    file: str
    kind: str
    message: str

    def __new__(cls, patient: str, file: str, kind: str, message: str) -> "Problem":
        obj = super().__new__(cls, ": ".join(x for x in (patient, file, message) if x))
        obj.patient, obj.file, obj.kind, obj.message = patient, file, kind, message
        return obj

    def __getnewargs__(self) -> tuple[str, str, str, str]:  # type: ignore[override]
        return self.patient, self.file, self.kind, self.message


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


# ---------------------------------------------------------------------------------------------- header scan

_SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
_RTSTRUCT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"
_SKIP_NAMES = {"study.yaml", "study.yml", "DICOMDIR"}
#: Tracer patterns (lower-case text of Radiopharmaceutical, radionuclide / radiopharmaceutical codes).
_TRACERS = (
    ("fmiso", re.compile(r"fmiso|misonidazol")),
    ("fdg", re.compile(r"fdg|fluorodeoxyglucose|deoxyglucose")),
    ("y90", re.compile(r"y-?90|90-?y|yttrium|\^90\^y")),
    ("lu177", re.compile(r"lu-?177|177-?lu|lutetium|\^177\^lu")),
)
_HEADER_TAGS = (  # the tags discovery uses (documentation; reading them all is faster than specific_tags)
    "PatientID", "PatientName", "PatientBirthDate", "OtherPatientIDs", "AccessionNumber", "StudyInstanceUID",
    "StudyDate", "StudyTime", "SeriesInstanceUID", "SeriesDate", "SeriesTime", "SeriesDescription", "Modality",
    "SOPClassUID", "FrameOfReferenceUID", "AcquisitionDate", "AcquisitionTime", "AcquisitionDateTime",
    "ContentDate", "ContentTime", "TriggerTime", "TemporalPositionIdentifier", "NumberOfTemporalPositions",
    "FlipAngle", "ImagePositionPatient", "ImageOrientationPatient", "Rows", "Columns", "PixelSpacing",
    "NumberOfFrames", "RadiopharmaceuticalInformationSequence", "SegmentSequence", "ReferencedSeriesSequence",
    "StructureSetROISequence", "ReferencedFrameOfReferenceSequence", "SharedFunctionalGroupsSequence",
    "PerFrameFunctionalGroupsSequence", "SpecificCharacterSet", "SeriesNumber",
)


@dataclass
class _Header:
    """What discovery keeps of one file's header."""

    path: Path
    patient_id: str
    study_uid: str
    series_uid: str
    modality: str
    sop_class: str
    identifiers: dict
    study_date: Optional[_dt.date]
    acquired: Optional[_dt.datetime]
    description: str
    for_uid: str
    flip_angles: tuple  # per frame
    positions: tuple  # per frame (rounded), () if unknown
    times: tuple  # per frame acquisition/trigger time, s
    temporal_ids: tuple  # per frame
    n_temporal_tag: int
    geometry: tuple
    tracer: str
    injection: Optional[_dt.datetime]
    referenced: tuple
    labels: tuple


def _text(v: Any) -> str:
    return "" if v is None else str(v).strip()


def _parse_date(v: Any) -> Optional[_dt.date]:
    t = _text(v)[:8]
    if len(t) == 8 and t.isdigit():
        try:
            return _dt.date(int(t[:4]), int(t[4:6]), int(t[6:8]))
        except ValueError:
            return None
    return None


def _parse_time_s(v: Any) -> Optional[float]:
    t = _text(v).replace(":", "")
    if not t:
        return None
    try:
        hh = int(t[0:2])
        mm = int(t[2:4]) if len(t) >= 4 else 0
        ss = float(t[4:]) if len(t) > 4 else 0.0
    except ValueError:
        return None
    return hh * 3600.0 + mm * 60.0 + ss


def _parse_datetime(date: Any, time: Any = None) -> Optional[_dt.datetime]:
    """DICOM DA (+ TM) or DT (YYYYMMDDHHMMSS.ffffff[+ZZZZ]) -> naive datetime."""
    t = _text(date)
    if time is None and len(t) > 8:
        time, t = t[8:].split("+")[0].split("-")[0], t[:8]
    d = _parse_date(t)
    if d is None:
        return None
    secs = _parse_time_s(time) or 0.0
    return _dt.datetime(d.year, d.month, d.day) + _dt.timedelta(seconds=min(secs, 86399.999))


def _seq(ds: Any, keyword: str) -> list:
    try:
        v = ds.get(keyword)
    except Exception:  # noqa: BLE001 - a malformed sequence reads as empty; the reader names it later
        return []
    return list(v) if v is not None else []


def _tracer_text(ds: Any) -> tuple[str, Optional[_dt.datetime]]:
    parts = []
    injection = None
    for item in _seq(ds, "RadiopharmaceuticalInformationSequence"):
        parts.append(_text(item.get("Radiopharmaceutical")))
        for code_kw in ("RadionuclideCodeSequence", "RadiopharmaceuticalCodeSequence"):
            for code in _seq(item, code_kw):
                parts += [_text(code.get("CodeMeaning")), _text(code.get("CodeValue"))]
        parts.append(_text(item.get("RadiopharmaceuticalStartDateTime")) and "")
        if injection is None:
            injection = _parse_datetime(item.get("RadiopharmaceuticalStartDateTime"))
    return " ".join(p for p in parts if p), injection


def _classify_tracer(text: str) -> str:
    low = text.lower()
    for role, pattern in _TRACERS:
        if pattern.search(low):
            return role
    return ""


def _frame_info(ds: Any) -> tuple[tuple, tuple, tuple, tuple, tuple]:
    """Per-frame flip angles, positions, times (s), temporal ids, and a geometry key."""
    n = int(ds.get("NumberOfFrames") or 1)
    shared = (_seq(ds, "SharedFunctionalGroupsSequence") or [None])[0]
    per = _seq(ds, "PerFrameFunctionalGroupsSequence")

    def fg(i: int, seq_kw: str, kw: str) -> Any:
        for group in ((per[i] if i < len(per) else None), shared):
            if group is None:
                continue
            items = _seq(group, seq_kw)
            if items and kw in items[0]:
                return items[0].get(kw)
        return None

    flip0 = ds.get("FlipAngle")
    pos0 = ds.get("ImagePositionPatient")
    ori = ds.get("ImageOrientationPatient") or fg(0, "PlaneOrientationSequence", "ImageOrientationPatient")
    spacing = ds.get("PixelSpacing") or fg(0, "PixelMeasuresSequence", "PixelSpacing")
    time0 = _parse_time_s(ds.get("AcquisitionTime"))
    if time0 is None and ds.get("TriggerTime") is not None:
        time0 = float(ds.get("TriggerTime")) / 1000.0
    flips, positions, times, tids = [], [], [], []
    for i in range(n):
        flip = flip0 if n == 1 or flip0 is not None else fg(i, "MRTimingAndRelatedParametersSequence", "FlipAngle")
        pos = pos0 if n == 1 else fg(i, "PlanePositionSequence", "ImagePositionPatient")
        t, tid = time0, ds.get("TemporalPositionIdentifier")
        if n > 1:
            fc = fg(i, "FrameContentSequence", "TemporalPositionIndex")
            tid = fc if fc is not None else tid
            acq = fg(i, "FrameContentSequence", "FrameAcquisitionDateTime")
            if acq is not None:
                dt = _parse_datetime(acq)
                t = dt.hour * 3600 + dt.minute * 60 + dt.second + dt.microsecond / 1e6 if dt else t
        flips.append(round(float(flip), 3) if flip is not None else None)
        positions.append(tuple(round(float(x), 2) for x in pos) if pos is not None else None)
        times.append(round(float(t), 3) if t is not None else None)
        tids.append(int(tid) if tid is not None and str(tid).strip() != "" else None)
    geometry = (int(ds.get("Rows") or 0), int(ds.get("Columns") or 0),
                tuple(round(float(x), 3) for x in ori) if ori is not None else (),
                tuple(round(float(x), 3) for x in spacing) if spacing is not None else ())
    return tuple(flips), tuple(positions), tuple(times), tuple(tids), geometry


def _read_header(path: Path) -> _Header | str:
    """The header of one file, or the reason it was skipped (a short phrase)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(str(path), stop_before_pixels=True, defer_size="4 KB")
    except InvalidDicomError:
        return "not a DICOM file (no DICM preamble); skipped"
    except (OSError, EOFError, ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else ""
        return f"unreadable or truncated DICOM header ({type(exc).__name__}: {detail}); skipped"
    except Exception as exc:  # noqa: BLE001 - discovery must never crash on one bad file
        return f"unreadable DICOM header ({type(exc).__name__}); skipped"
    try:
        series_uid = _text(ds.get("SeriesInstanceUID"))
        modality = _text(ds.get("Modality")).upper()
        if not series_uid:
            return "DICOM without SeriesInstanceUID (0020,000E); skipped"
        sop = _text(ds.get("SOPClassUID"))
        if sop == _SEG_SOP_CLASS:
            modality = "SEG"
        elif sop == _RTSTRUCT_SOP_CLASS:
            modality = "RTSTRUCT"
        identifiers = {k: _text(ds.get(k)) for k in ("PatientID", "PatientName", "PatientBirthDate",
                                                     "AccessionNumber", "OtherPatientIDs")}
        study_date = _parse_date(ds.get("StudyDate"))
        acquired = (_parse_datetime(ds.get("AcquisitionDateTime"))
                    or _parse_datetime(ds.get("AcquisitionDate"), ds.get("AcquisitionTime"))
                    or _parse_datetime(ds.get("SeriesDate"), ds.get("SeriesTime"))
                    or _parse_datetime(ds.get("ContentDate"), ds.get("ContentTime"))
                    or _parse_datetime(ds.get("StudyDate"), ds.get("StudyTime")))
        flips = positions = times = tids = ()
        geometry: tuple = ()
        n_temporal_tag = 0
        tracer, injection = "", None
        referenced: list[str] = []
        labels: list[str] = []
        for_uid = _text(ds.get("FrameOfReferenceUID"))
        if modality in ("MR", "CT", "PT", "NM"):
            flips, positions, times, tids, geometry = _frame_info(ds)
            n_temporal_tag = int(ds.get("NumberOfTemporalPositions") or 0)
        if modality in ("PT", "NM"):
            tracer, injection = _tracer_text(ds)
        if modality == "SEG":
            labels = [_text(s.get("SegmentLabel")) for s in _seq(ds, "SegmentSequence")]
            referenced = [_text(s.get("SeriesInstanceUID")) for s in _seq(ds, "ReferencedSeriesSequence")]
        if modality == "RTSTRUCT":
            labels = [_text(s.get("ROIName")) for s in _seq(ds, "StructureSetROISequence")]
            for fr in _seq(ds, "ReferencedFrameOfReferenceSequence"):
                for_uid = for_uid or _text(fr.get("FrameOfReferenceUID"))
                for st in _seq(fr, "RTReferencedStudySequence"):
                    referenced += [_text(se.get("SeriesInstanceUID")) for se in _seq(st, "RTReferencedSeriesSequence")]
        return _Header(path=path, patient_id=_text(ds.get("PatientID")), study_uid=_text(ds.get("StudyInstanceUID")),
                       series_uid=series_uid, modality=modality, sop_class=sop, identifiers=identifiers,
                       study_date=study_date, acquired=acquired, description=_text(ds.get("SeriesDescription")),
                       for_uid=for_uid, flip_angles=flips, positions=positions, times=times, temporal_ids=tids,
                       n_temporal_tag=n_temporal_tag, geometry=geometry, tracer=tracer, injection=injection,
                       referenced=tuple(r for r in referenced if r), labels=tuple(labels))
    except Exception as exc:  # noqa: BLE001 - a malformed value: the file is skipped with its reason
        return f"malformed DICOM header ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); skipped"


_CHUNK = 256


def _read_chunk(paths: list[Path]) -> list[_Header | str]:
    """Headers of some files (value validation off while reading: discovery checks what it uses)."""
    from pydicom import config

    before = config.settings.reading_validation_mode
    config.settings.reading_validation_mode = config.IGNORE
    try:
        return [_read_header(p) for p in paths]
    finally:
        config.settings.reading_validation_mode = before


def _read_headers(files: list[Path], progress: Optional[Callable[[int, int], None]],
                  executor: Any = None) -> list[_Header | str]:
    """Headers of every file, in order; in chunks on ``executor`` (e.g. the run's Dask client: header parsing
    is CPU-bound), else here."""
    if executor is not None and len(files) > _CHUNK:
        chunks = [files[i:i + _CHUNK] for i in range(0, len(files), _CHUNK)]
        try:
            futures = [executor.submit(_read_chunk, c, pure=False) if _is_dask(executor)
                       else executor.submit(_read_chunk, c) for c in chunks]
            out, done = [], 0
            for fut, c in zip(futures, chunks):
                out += fut.result()
                done += len(c)
                if progress is not None:
                    progress(done, len(files))
            return out
        except Exception:  # noqa: BLE001 - the executor failed (a worker died...): read here, in turn
            pass
    headers: list[_Header | str] = []
    for i in range(0, len(files), 64):
        headers += _read_chunk(files[i:i + 64])
        if progress is not None:
            progress(len(headers), len(files))
    return headers


def _is_dask(executor: Any) -> bool:
    return type(executor).__module__.startswith("distributed")


def _walk(study_dir: Path) -> list[Path]:
    files = []
    for p in sorted(study_dir.rglob("*")):
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(study_dir).parts) \
                and p.name not in _SKIP_NAMES:
            files.append(p)
    return files


# ---------------------------------------------------------------------------------------------- series roles


def _n_temporal(headers: list[_Header]) -> int:
    """Temporal positions of an image series (per flip angle, so a multi-angle VFA series counts 1)."""
    flips: dict[Any, list] = {}
    for h in headers:
        for f, p, t, tid in zip(h.flip_angles, h.positions, h.times, h.temporal_ids):
            flips.setdefault(f, []).append((p, t, tid))
    best = max((h.n_temporal_tag for h in headers), default=0)
    for frames in flips.values():
        tids = {tid for _, _, tid in frames if tid is not None}
        best = max(best, len(tids))
        by_pos: dict[Any, set] = {}
        for p, t, _ in frames:
            if p is not None and t is not None:
                by_pos.setdefault(p, set()).add(t)
        best = max(best, max((len(v) for v in by_pos.values()), default=0))
    if len(flips) > 1 and best == len(flips) and all(
            len({tid for *_, tid in fr if tid is not None}) <= 1 for fr in flips.values()):
        best = 1  # one temporal id per flip angle: a VFA series numbered by angle
    return max(best, 1)


def _make_series(headers: list[_Header], role: str, n_temporal: int) -> SeriesInfo:
    h0 = headers[0]
    acq = [h.acquired for h in headers if h.acquired is not None]
    flips = sorted({f for h in headers for f in h.flip_angles if f is not None})
    return SeriesInfo(
        series_uid=h0.series_uid, study_uid=h0.study_uid, patient_id=h0.patient_id, modality=h0.modality,
        role=role, acquired=min(acq) if acq else None, files=tuple(sorted(h.path for h in headers)),
        description=h0.description, frame_of_reference_uid=next((h.for_uid for h in headers if h.for_uid), ""),
        flip_angles=tuple(float(f) for f in flips), n_temporal=n_temporal,
        referenced_series_uids=tuple(dict.fromkeys(r for h in headers for r in h.referenced)),
        segment_labels=tuple(dict.fromkeys(lab for h in headers for lab in h.labels)),
        study_date=next((h.study_date for h in headers if h.study_date is not None), None),
        tracer=h0.tracer)


def _geometry_key(headers: list[_Header]) -> tuple:
    positions = sorted({p for h in headers for p in h.positions if p is not None})
    return (headers[0].study_uid, headers[0].for_uid, headers[0].geometry, len(positions),
            positions[0] if positions else None, positions[-1] if positions else None)


def _series_of_patient(groups: dict[str, list[_Header]]) -> tuple[list[SeriesInfo], list[SeriesInfo]]:
    """Series of one patient with roles, and the grouped VFA entries (one per geometry and session)."""
    series: list[SeriesInfo] = []
    mr_static: dict[tuple, list[tuple[list[_Header], SeriesInfo]]] = {}
    for uid, headers in groups.items():
        modality = headers[0].modality
        n_t = _n_temporal(headers) if modality in ("MR", "CT", "PT", "NM") else 1
        if modality == "SEG":
            role = "seg"
        elif modality == "RTSTRUCT":
            role = "rtstruct"
        elif modality == "MR":
            role = "dce" if n_t > 1 else "mr"
        elif modality in ("PT", "NM"):
            role = _classify_tracer(headers[0].tracer) or "other"
            if modality == "NM" and role not in ("lu177", "y90"):
                role = "other"
        elif modality == "CT":
            role = "ct"
        else:
            role = "other"
        info = _make_series(headers, role, n_t)
        if role == "mr":
            mr_static.setdefault(_geometry_key(headers), []).append((headers, info))
        else:
            series.append(info)
    vfa_groups: list[SeriesInfo] = []
    for members in mr_static.values():
        flips = sorted({f for _, info in members for f in info.flip_angles})
        if len(flips) >= 2:
            infos = sorted((SeriesInfo(**{**info.__dict__, "role": "vfa"}) for _, info in members),
                           key=lambda s: (s.flip_angles, s.acquired or _dt.datetime.min))
            series += infos
            first = infos[0]
            vfa_groups.append(SeriesInfo(**{
                **first.__dict__, "files": tuple(sorted(f for s in infos for f in s.files)),
                "flip_angles": tuple(flips), "acquired": min((s.acquired for s in infos if s.acquired), default=None),
                "description": " + ".join(dict.fromkeys(s.description for s in infos if s.description)),
                "member_series_uids": tuple(s.series_uid for s in infos) if len(infos) > 1 else ()}))
        else:
            series += [info for _, info in members]
    series.sort(key=lambda s: (s.acquired or _dt.datetime.min, s.series_uid))
    return series, vfa_groups


# ---------------------------------------------------------------------------------------------- time points


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _pick(candidates: list[SeriesInfo], role: str) -> SeriesInfo:
    """The series of a role to use within one session: the most complete (temporal positions, files),
    then the latest acquired."""
    return max(candidates, key=lambda s: (s.n_temporal, len(s.files), s.acquired or _dt.datetime.min))


def _timepoints(pseudonym: str, series: list[SeriesInfo], vfa: list[SeriesInfo], therapy: Optional[_dt.date],
                root: Path, problems: list[str]) -> dict[str, SeriesInfo]:
    tps: dict[str, SeriesInfo] = {}
    by_role: dict[str, list[SeriesInfo]] = {"vfa": list(vfa)}
    for s in series:
        if s.role in ("dce", "fmiso", "fdg"):
            by_role.setdefault(s.role, []).append(s)
    for role, items in by_role.items():
        items = [s for s in items if s.date is not None]
        if not items:
            continue
        sessions: dict[tuple, list[SeriesInfo]] = {}
        for s in items:
            sessions.setdefault((s.date, s.study_uid), []).append(s)
        keys = sorted(sessions)
        before = [k for k in keys if therapy is None or k[0] <= therapy]
        after = [k for k in keys if therapy is not None and k[0] > therapy]
        for tp, chosen in (("baseline", before[-1] if before else None), ("followup", after[0] if after else None)):
            if chosen is None or f"{role}_{tp}" not in TIMEPOINTS:
                continue
            cands = sessions[chosen]
            tps[f"{role}_{tp}"] = pick = _pick(cands, role)
            if len(cands) > 1:
                problems.append(Problem(
                    pseudonym, _rel(pick.files[0].parent, root), "ambiguous", f"{len(cands)} {role} series in "
                    f"one session; using '{pick.description}' ({len(pick.files)} files)"))
    return tps


def _date_problems(pseudonym: str, series: list[SeriesInfo], headers: dict[str, list[_Header]], root: Path,
                   problems: list[str]) -> None:
    """Contradicting dates: a series acquired more than a day from its StudyDate, injection after scan."""
    for s in series:
        hs = headers.get(s.series_uid, [])
        if s.role in ("seg", "rtstruct"):  # derived objects carry their creation date: no acquisition to check
            continue
        if s.study_date is not None and s.acquired is not None and abs((s.acquired.date() - s.study_date).days) > 1:
            problems.append(Problem(pseudonym, _rel(s.files[0], root), "dates", f"contradicting dates: StudyDate "
                            f"{s.study_date.isoformat()} but acquired {s.acquired.date().isoformat()} "
                            f"({s.role} series '{s.description}')"))
        inj = next((h.injection for h in hs if h.injection is not None), None)
        if inj is not None and s.acquired is not None and inj > s.acquired + _dt.timedelta(minutes=1):
            problems.append(Problem(pseudonym, _rel(s.files[0], root), "dates", f"contradicting dates: "
                            f"RadiopharmaceuticalStartDateTime {inj.isoformat()} is after the acquisition "
                            f"{s.acquired.isoformat()} ({s.role} series '{s.description}')"))


_EXPECTED = {
    "tare": (("dce_baseline", "baseline DCE-MRI"), ("fmiso_baseline", "baseline FMISO PET"),
             ("y90_post", "post-therapy 90Y PET")),
    "prrt": (("dce_baseline", "baseline DCE-MRI"), ("dce_followup", "follow-up DCE-MRI")),
}


def _build_patient(pid: str, pseudonym: str, groups: dict[str, list[_Header]], config: StudyConfig,
                   root: Path) -> PatientStudy:
    problems: list[str] = []
    series, vfa = _series_of_patient(groups)
    present = {u for s in series for u in s.series_uids}
    # SEG / RTSTRUCT references
    for s in series:
        if s.role not in ("seg", "rtstruct"):
            continue
        if s.referenced_series_uids and not (set(s.referenced_series_uids) & present):
            problems.append(Problem(pseudonym, _rel(s.files[0], root), "reference", f"{s.modality} references series "
                            f"{', '.join(s.referenced_series_uids)}, none of which is in the study; its masks "
                            f"are used only through the shared frame of reference"))
        if not s.segment_labels:
            problems.append(Problem(
                pseudonym, _rel(s.files[0], root), "reference", f"{s.modality} has no segment labels"))
    _date_problems(pseudonym, series, groups, root, problems)
    # therapy date
    therapy, source = config.therapy_date_for(pid)
    radio = sorted((s for s in series if s.role in ("y90", "lu177") and s.date is not None),
                   key=lambda s: (s.date, s.acquired or _dt.datetime.min))
    if therapy is None and radio:
        therapy, source = radio[0].date, "first y90/lu177"
    if therapy is None:
        problems.append(Problem(
            pseudonym, "", "missing", f"no therapy date (no 90Y/177Lu series and none in study.yaml): every "
            f"session taken as baseline; set therapy.date or patients.<PatientID>.therapy_date"))
    tps = _timepoints(pseudonym, series, vfa, therapy, root, problems)
    # 90Y post-therapy scan: the first within 7 days after (same day included)
    y90 = [s for s in radio if s.role == "y90"]
    if therapy is not None and y90:
        post = [s for s in y90 if 0 <= (s.date - therapy).days <= 7]
        if post:
            tps["y90_post"] = post[0]
        for s in y90:
            if s.date < therapy:
                problems.append(Problem(
                    pseudonym, _rel(s.files[0], root), "dates", f"contradicting dates: the 90Y series of "
                    f"{s.date.isoformat()} is before the therapy date {therapy.isoformat()} "
                    f"({source})"))
            elif s not in post:
                problems.append(Problem(
                    pseudonym, _rel(s.files[0], root), "dates", f"the 90Y series of {s.date.isoformat()} is "
                    f"more than 7 days after the therapy date {therapy.isoformat()} ({source}); not used"))
    lu = tuple(s for s in radio if s.role == "lu177" and (therapy is None or s.date >= therapy))
    for s in radio:
        if s.role == "lu177" and therapy is not None and s.date < therapy:
            problems.append(Problem(
                pseudonym, _rel(s.files[0], root), "dates", f"contradicting dates: the 177Lu series of "
                f"{s.date.isoformat()} is before the therapy date {therapy.isoformat()} ({source})"))
    ttype = config.therapy.type or ("tare" if y90 else "prrt" if lu else None)
    # missing pieces
    for key, what in _EXPECTED.get(ttype or "", ()):
        if key not in tps:
            problems.append(Problem(
                pseudonym, "", "missing", f"missing {what} ({key}): what depends on it is not computed"))
    if ttype == "prrt" and not lu:
        problems.append(Problem(pseudonym, "", "missing", "missing post-therapy 177Lu SPECT/PET: no dose"))
    if not any(s.role in ("seg", "rtstruct") for s in series):
        problems.append(Problem(pseudonym, "", "missing", "no SEG or RTSTRUCT: no lesions, liver or reference regions"))
    else:
        for key, s in sorted(tps.items()):
            if not PatientStudy(pid, pseudonym, tuple(series), None, "", {}, (), ()).masks_for(s.series_uid):
                problems.append(Problem(
                    pseudonym, _rel(s.files[0].parent, root), "reference", f"no SEG/RTSTRUCT references the "
                    f"{key} series '{s.description}' or shares its frame of reference"))
    identifiers: dict[str, str] = {}
    for hs in groups.values():
        for h in hs:
            for k, v in h.identifiers.items():
                if v:
                    vals = identifiers.get(k, "").split("\\") if identifiers.get(k) else []
                    for part in v.split("\\"):
                        if part and part not in vals:
                            vals.append(part)
                    identifiers[k] = "\\".join(vals)
    return PatientStudy(patient_id=pid, pseudonym=pseudonym, series=tuple(series), therapy_date=therapy,
                        therapy_source=source, timepoints=dict(sorted(tps.items(), key=lambda kv:
                                                                    TIMEPOINTS.index(kv[0]))),
                        lu177=lu, problems=tuple(problems), therapy_type=ttype, identifiers=identifiers)


def pseudonym_for(index: int) -> str:
    """The pseudonym of the ``index``-th patient (0-based) in PatientID order: ``P001``, ``P002``...

    >>> pseudonym_for(0), pseudonym_for(41)
    ('P001', 'P042')
    """
    return f"P{index + 1:03d}"


def discover_study(study_dir: str | Path, *, config: StudyConfig | None = None,
                   progress: Optional[Callable[[int, int], None]] = None, executor: Any = None) -> Study:
    """Discover the patients, sessions, series roles and time points of a study folder.

    Only DICOM headers are read; nothing needs renaming. Non-DICOM or unreadable files are
    skipped with a problem line; discovery never raises for a bad file.

    Parameters
    ----------
    study_dir : str or Path
        The study folder (any layout; a ``study.yaml`` at its root is read when ``config`` is None).
    config : StudyConfig, optional
        Settings; default: ``load_config(study_dir)``.
    progress : callable, optional
        ``progress(done, total)`` in files.
    executor : concurrent.futures.Executor or distributed.Client, optional
        Reads the headers in chunks on it (:func:`run_study` passes its Dask client, whose
        worker processes parse in parallel); default: in this process.

    Returns
    -------
    Study
        Patients in PatientID order with pseudonyms ``P001``...; every problem found, one line each
        naming the patient (pseudonym), the file relative to the study and the problem.

    Raises
    ------
    TheraquantError
        ``study_dir`` is not a folder, or its study.yaml is invalid.
    """
    from ..errors import TheraquantError
    from ._config import load_config

    root = Path(study_dir).expanduser().resolve()
    if not root.is_dir():
        raise TheraquantError(f"study folder {study_dir} does not exist or is not a folder", argument="study_dir",
                              fix="give the folder holding the study's DICOM files")
    if config is None:
        config = load_config(root)
    files = _walk(root)
    problems: list[str] = []
    by_patient: dict[str, dict[str, list[_Header]]] = {}
    n_dicom = 0
    for f, h in zip(files, _read_headers(files, progress, executor)):
        if isinstance(h, str):
            problems.append(Problem("", _rel(f, root), "file", h))
        elif h.modality not in ("MR", "CT", "PT", "NM", "SEG", "RTSTRUCT") and not h.patient_id:
            problems.append(Problem(
                "", _rel(f, root), "file", f"DICOM {h.modality or 'object'} without PatientID; skipped"))
        elif not h.patient_id:
            problems.append(Problem("", _rel(f, root), "file", "no PatientID (0010,0020); skipped"))
        else:
            n_dicom += 1
            by_patient.setdefault(h.patient_id, {}).setdefault(h.series_uid, []).append(h)
    if not files:
        problems.append(Problem("", "", "file", f"{root}: no files in the study folder"))
    patients = []
    for i, pid in enumerate(sorted(by_patient)):
        patients.append(_build_patient(pid, pseudonym_for(i), by_patient[pid], config, root))
    unknown = sorted(set(config.patients) - set(by_patient))
    for pid in unknown:
        problems.append(Problem(
            "", "study.yaml", "config", f"patients.{pid}: no such PatientID in the study; the override is unused"))
    problems += [p for pt in patients for p in pt.problems]
    return Study(study_dir=root, patients=tuple(patients), problems=tuple(problems), config=config,
                 n_files=len(files), n_dicom=n_dicom)
