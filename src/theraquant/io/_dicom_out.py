"""Shared plumbing of the DICOM result writers (SEG, RTSTRUCT, Parametric Map, RT Dose).

UIDs
----
Every new object gets new Study-independent UIDs (SeriesInstanceUID, SOPInstanceUID) generated
by :func:`pydicom.uid.generate_uid` under **pydicom's registered UID root**
``1.2.826.0.1.3680043.8.498.`` (:data:`UID_ROOT`) with a random suffix.

Identifiers and pseudonymisation
--------------------------------
``identifiers=None`` keeps the source series' patient and study identity and UIDs, so that the
result objects join the original study in PACS (``--show-identifiers``).

A mapping of ``identifiers`` pseudonymises the object, in the spirit of the DICOM PS3.15 Basic
Application Level Confidentiality Profile with the "retain longitudinal temporal information with
modified dates" and "retain patient characteristics" options:

* Patient-module attributes named in the mapping (``PatientName``, ``PatientID``, ... any DICOM
  keyword) are set to the given values; ``PatientName`` defaults to ``PatientID`` as a family
  name (``P001^``). Other directly
  identifying attributes (birth date, other IDs, addresses, accession number, institution,
  physicians, StudyID) are emptied (sequences removed); sex, age, weight and size are
  kept (SUV needs them).
* Every instance, series, study and frame-of-reference UID, also inside references, is replaced by
  ``generate_uid(UID_ROOT, entropy_srcs=[salt, original])``: the same original UID always maps to
  the same new one, so objects written separately for one patient still reference each other and
  share their frame of reference. The salt is ``identifiers["UIDSalt"]`` (default: the pseudonymous
  PatientID); keep it secret if the mapping must not be recomputable from the originals.
* Every date (DA) and the date part of every date-time (DT) is shifted by
  ``identifiers["DateShiftDays"]`` days (an integer given as text; default 0), the same shift for
  all objects of the patient, so intervals between time points stay exact.
* ``PatientIdentityRemoved`` is "YES" and ``DeidentificationMethod`` says what was done.
"""

from __future__ import annotations

import datetime as _dt
import os
import secrets
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ..errors import DicomError, TheraquantError

__all__ = ["UID_ROOT", "new_uid", "flatten_source", "highdicom_sources", "restore_source_classes", "apply_identifiers", "save_dataset",
           "MANUFACTURER", "MODEL_NAME", "software_version", "source_name"]

UID_ROOT = "1.2.826.0.1.3680043.8.498."
"""pydicom's registered UID root, under which theraquant generates every new UID."""

MANUFACTURER = "theraquant"
MODEL_NAME = "theraquant"

#: Keywords of UIDs that identify an instance, series, study or frame of reference (remapped when
#: pseudonymising). Class, transfer-syntax and coding-scheme UIDs are never touched.
_REMAP_UIDS = frozenset({
    "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID",
    "ReferencedSOPInstanceUID", "ReferencedFrameOfReferenceUID", "RelatedFrameOfReferenceUID",
    "MediaStorageSOPInstanceUID", "DimensionOrganizationUID", "ReferencedSOPInstanceUIDInFile",
    "SourceFrameOfReferenceUID", "SynchronizationFrameOfReferenceUID", "IrradiationEventUID",
    "ConcatenationUID", "PyramidUID",
})
#: Directly identifying attributes: emptied (Type 2 in the IODs we write) ...
_EMPTY = ("PatientBirthDate", "AccessionNumber", "ReferringPhysicianName", "StudyID")
#: ... or emptied as well (sequences removed).
_REMOVE = ("OtherPatientIDs", "OtherPatientIDsSequence", "OtherPatientNames", "PatientAddress",
           "PatientTelephoneNumbers", "PatientMotherBirthName", "MilitaryRank", "EthnicGroup",
           "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName", "StationName",
           "PerformingPhysicianName", "OperatorsName", "PhysiciansOfRecord", "NameOfPhysiciansReadingStudy",
           "RequestingPhysician", "PatientComments", "AdditionalPatientHistory", "IssuerOfPatientID", "PatientBirthTime", "RequestAttributesSequence")
_SPECIAL = {"UIDSalt", "DateShiftDays"}


def new_uid() -> str:
    """A new random UID under :data:`UID_ROOT`.

    Examples
    --------
    >>> new_uid().startswith("1.2.826.0.1.3680043.8.498.")
    True
    """
    import pydicom.uid

    return str(pydicom.uid.generate_uid(prefix=UID_ROOT))


def software_version() -> str:
    """theraquant's version string (SoftwareVersions)."""
    from .. import __version__

    return str(__version__)


def source_name(source: Sequence[Any]) -> str:
    """A short name of the source series for messages (its first file or series UID)."""
    for ds in source:
        fn = getattr(ds, "filename", None)
        if fn:
            return str(Path(fn).parent.name or fn)
        uid = getattr(ds, "SeriesInstanceUID", None)
        if uid:
            return f"series {uid}"
    return "source series"


def _flat(items: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for it in items:
        if isinstance(it, (list, tuple)):
            out.extend(_flat(it))
        else:
            out.append(it)
    return out


def flatten_source(source: Sequence[Any], *, what: str = "source") -> list[Any]:
    """The source series as one dataset per slice position, sorted along the slice normal.

    ``source`` may be a flat sequence of :class:`pydicom.Dataset`, or the nested per-slice lists of
    a 4-D series' ``Image.meta["headers"]``; file paths are read (headers only). For a dynamic
    series (several datasets per position) the first one per position is kept, so references point
    at one frame per slice.

    The datasets are not copied: the writers never modify them (highdicom shares some of their
    element objects with the new object, so :func:`apply_identifiers` replaces elements, never
    their values in place).
    """
    import pydicom

    flat = []
    for it in _flat(list(source)):
        if isinstance(it, (str, os.PathLike)):
            try:
                it = pydicom.dcmread(str(it), stop_before_pixels=True)
            except Exception as exc:
                raise DicomError(f"{Path(it).name}: cannot read the source DICOM file ({exc})") from exc
        if not isinstance(it, pydicom.Dataset):
            raise TheraquantError(
                f"{what} must be the pydicom datasets (or files) of the series the data were derived "
                f"from, got an item of type {type(it).__name__}; pass image.meta['headers'] of "
                "io.read_dicom_series"
            )
        flat.append(it)
    if not flat:
        raise TheraquantError(f"{what} is empty; pass the datasets of the series the data were derived from")
    for ds in flat:
        for kw in ("SeriesInstanceUID", "StudyInstanceUID", "FrameOfReferenceUID", "ImagePositionPatient",
                   "ImageOrientationPatient", "SOPInstanceUID", "SOPClassUID"):
            if kw not in ds:
                name = Path(getattr(ds, "filename", "") or "").name or "a source dataset"
                raise DicomError(f"{name}: {kw} is missing; results cannot reference a slice without it")
    iop = np.asarray(flat[0].ImageOrientationPatient, float)
    normal = np.cross(iop[:3], iop[3:])
    keyed = sorted(((float(np.dot(np.asarray(ds.ImagePositionPatient, float), normal)), i)
                    for i, ds in enumerate(flat)))
    out: list[Any] = []
    last = None
    for pos, i in keyed:
        if last is None or abs(pos - last) > 1e-3:
            out.append(flat[i])
            last = pos
    return out


_PROXY_CLASS = "1.2.840.10008.5.1.4.1.1.128"  # PET Image Storage: a single-frame emission IOD


def highdicom_sources(src: Sequence[Any]) -> tuple[list[Any], dict[str, str]]:
    """Source datasets as highdicom takes them, and the SOP classes to restore in its references.

    highdicom handles a multi-frame IOD (NM, as SPECT reconstructions are stored) only as one
    enhanced multi-frame file with functional groups; a series of one-frame files of such an IOD
    (the usual SPECT export) is refused. Those files are given to highdicom as proxies of a
    single-frame class (the same element objects, SOPClassUID replaced, NumberOfFrames left out),
    and :func:`restore_source_classes` puts the true SOP class back into every reference of the new
    object. Other sources are returned as they are.
    """
    import pydicom
    from highdicom._standard_utils import is_multiframe_image

    src = list(src)
    if not src or not is_multiframe_image(src[0]) or "PerFrameFunctionalGroupsSequence" in src[0] \
            or int(src[0].get("NumberOfFrames", 1) or 1) > 1:
        return src, {}
    proxies, restore = [], {}
    for ds in src:
        proxy = pydicom.Dataset()
        for elem in ds:
            if elem.keyword not in ("SOPClassUID", "NumberOfFrames", "PixelData"):
                proxy.add(elem)
        proxy.SOPClassUID = _PROXY_CLASS
        restore[str(ds.SOPInstanceUID)] = str(ds.SOPClassUID)
        proxies.append(proxy)
    return proxies, restore


def restore_source_classes(ds: Any, restore: Mapping[str, str]) -> Any:
    """Set ReferencedSOPClassUID back to the true class for every reference to a proxied source."""
    if not restore:
        return ds
    from pydicom.dataelem import DataElement

    def walk(d: Any) -> None:
        for elem in list(d):
            if elem.VR == "SQ":
                for item in elem.value:
                    uid = str(item.get("ReferencedSOPInstanceUID", ""))
                    if uid in restore and "ReferencedSOPClassUID" in item:
                        tag = item["ReferencedSOPClassUID"].tag
                        item[tag] = DataElement(tag, "UI", restore[uid])
                    walk(item)

    walk(ds)
    return ds


def _shift_date(value: str, days: int) -> str:
    s = str(value).strip()
    if len(s) < 8:
        return s
    try:
        d = _dt.date(int(s[0:4]), int(s[4:6]), int(s[6:8]))
    except ValueError:
        return s
    return (d + _dt.timedelta(days=days)).strftime("%Y%m%d") + s[8:]


def apply_identifiers(ds: Any, identifiers: Mapping[str, str] | None) -> Any:
    """Pseudonymise ``ds`` in place as described in the module docstring (no-op for None).

    Examples
    --------
    >>> from pydicom import Dataset
    >>> ds = Dataset(); ds.PatientName = "Doe^Jane"; ds.PatientID = "12345"; ds.StudyDate = "20240131"
    >>> ds.PatientBirthDate = "19600101"; ds.StudyInstanceUID = "1.2.3.4"
    >>> _ = apply_identifiers(ds, {"PatientID": "P001", "DateShiftDays": "-30"})
    >>> str(ds.PatientName), ds.PatientID, ds.StudyDate, ds.PatientBirthDate
    ('P001^', 'P001', '20240101', '')
    >>> ds.StudyInstanceUID.startswith(UID_ROOT), ds.PatientIdentityRemoved
    (True, 'YES')
    """
    if identifiers is None:
        return ds
    import pydicom.uid
    from pydicom.dataelem import DataElement
    from pydicom.datadict import dictionary_VR, tag_for_keyword

    ids = {str(k): str(v) for k, v in identifiers.items()}
    try:
        shift = int(ids.get("DateShiftDays", "0") or 0)
    except ValueError:
        raise TheraquantError(
            f"identifiers['DateShiftDays'] must be a whole number of days, got {ids['DateShiftDays']!r}"
        ) from None
    pid = ids.get("PatientID") or ids.get("PatientName") or "anonymous"
    salt = ids.get("UIDSalt", pid)
    cache: dict[str, str] = {}

    def remap(uid: str) -> str:
        if uid not in cache:
            cache[uid] = str(pydicom.uid.generate_uid(prefix=UID_ROOT, entropy_srcs=[salt, uid]))
        return cache[uid]

    def put(d: Any, elem: Any, value: Any) -> None:
        # a new element object: writers may share element objects with their source datasets
        d[elem.tag] = DataElement(elem.tag, elem.VR, value)

    def walk(d: Any) -> None:
        for elem in list(d):
            if elem.VR == "SQ":
                for item in elem.value:
                    walk(item)
            elif elem.VR == "UI" and elem.keyword in _REMAP_UIDS and elem.value:
                if elem.VM > 1:
                    put(d, elem, [remap(str(v)) for v in elem.value])
                else:
                    put(d, elem, remap(str(elem.value)))
            elif elem.VR in ("DA", "DT") and elem.value and shift and elem.keyword != "PatientBirthDate":
                if elem.VM > 1:
                    put(d, elem, [_shift_date(v, shift) for v in elem.value])
                else:
                    put(d, elem, _shift_date(elem.value, shift))

    def set_kw(kw: str, value: Any) -> None:
        tag = tag_for_keyword(kw)
        ds[tag] = DataElement(tag, dictionary_VR(kw), value)

    walk(ds)
    if "file_meta" in dir(ds) and getattr(ds, "file_meta", None) is not None:
        walk(ds.file_meta)
    for kw in _EMPTY:
        if kw in ds:
            set_kw(kw, "")
    for kw in _REMOVE:
        if kw in ds:
            if ds[kw].VR == "SQ":
                delattr(ds, kw)
            else:
                set_kw(kw, "")  # zero length: valid for Type 2 and Type 3 alike
    set_kw("PatientName", ids.get("PatientName", pid if "^" in pid else pid + "^"))
    set_kw("PatientID", pid)
    for kw, val in ids.items():
        if kw in _SPECIAL or kw in ("PatientName", "PatientID"):
            continue
        if tag_for_keyword(kw) is None:
            raise TheraquantError(
                f"identifiers key {kw!r} is not a DICOM keyword; use e.g. 'PatientID', 'PatientName', "
                "'DateShiftDays' or 'UIDSalt'"
            )
        if dictionary_VR(kw) == "SQ":
            raise TheraquantError(f"identifiers key {kw!r} is a sequence; only text attributes can be set")
        set_kw(kw, val)
    set_kw("PatientIdentityRemoved", "YES")
    method = "theraquant pseudonymisation: identifiers replaced, UIDs remapped"
    if shift:
        method += ", dates shifted"
    set_kw("DeidentificationMethod", method[:64])
    return ds


def save_dataset(ds: Any, path: str | Path) -> Path:
    """Write ``ds`` as a DICOM Part 10 file (preamble, file meta) atomically.

    The file is written to a temporary name in the target folder and renamed into place, so a
    killed run never leaves a half-written object under the final name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tqtmp-{os.getpid()}-{secrets.token_hex(4)}-{path.name}")
    try:
        ds.save_as(str(tmp), enforce_file_format=True)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
