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
           "MANUFACTURER", "MODEL_NAME", "software_version", "source_name", "new_file_dataset",
           "new_result_dataset", "sop_reference"]

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


def new_file_dataset(sop_class_uid: str, sop_instance_uid: str, *, character_set: str | None = "ISO_IR 192",
                     implementation_class_uid: str | None = None) -> Any:
    """A new dataset with its Part-10 file meta (explicit VR little endian) and SOP Common identity.

    Parameters
    ----------
    sop_class_uid : str
        SOPClassUID (and MediaStorageSOPClassUID).
    sop_instance_uid : str
        SOPInstanceUID (and MediaStorageSOPInstanceUID).
    character_set : str, optional
        SpecificCharacterSet; None leaves it out.
    implementation_class_uid : str, optional
        ImplementationClassUID of the file meta; None leaves it to pydicom when the file is saved.

    Returns
    -------
    pydicom.Dataset

    Examples
    --------
    >>> ds = new_file_dataset("1.2.840.10008.5.1.4.1.1.481.3", "1.2.3")
    >>> ds.file_meta.MediaStorageSOPInstanceUID, ds.SOPInstanceUID, ds.SpecificCharacterSet
    ('1.2.3', '1.2.3', 'ISO_IR 192')
    """
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    fm = FileMetaDataset()
    fm.MediaStorageSOPClassUID = sop_class_uid
    fm.MediaStorageSOPInstanceUID = sop_instance_uid
    fm.TransferSyntaxUID = ExplicitVRLittleEndian
    if implementation_class_uid is not None:
        fm.ImplementationClassUID = implementation_class_uid
    ds = pydicom.Dataset()
    ds.file_meta = fm
    if character_set is not None:
        ds.SpecificCharacterSet = character_set
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = sop_instance_uid
    return ds


#: Patient and General Study attributes copied from the source into a result object ...
_COPIED = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "PatientAge", "PatientWeight",
           "PatientSize", "StudyInstanceUID", "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID",
           "AccessionNumber", "StudyDescription")
#: ... of which these are Type 2: present (empty) even when the source lacks them.
_TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
          "ReferringPhysicianName", "StudyID", "AccessionNumber")


def new_result_dataset(sop_class_uid: str, modality: str, source: Any, *, series_description: str,
                       series_number: int) -> Any:
    """Start a result object written with pydicom (RTSTRUCT, RT Dose) on the source series.

    Sets the file meta and SOP Common module (new SOPInstanceUID, creation date and time), copies
    the Patient and General Study modules from ``source`` (Type 2 attributes present, empty where
    the source lacks them), and fills a new General Series, the source's Frame of Reference and
    the General Equipment module; InstanceNumber is 1. The caller adds the IOD's own modules and
    then pseudonymises the whole object with :func:`apply_identifiers` (so that the references
    it adds are remapped as well) before :func:`save_dataset`.

    Parameters
    ----------
    sop_class_uid : str
        SOPClassUID of the new object.
    modality : str
        Modality (``"RTSTRUCT"``, ``"RTDOSE"``).
    source : pydicom.Dataset
        A dataset of the source series (the first of :func:`flatten_source`).
    series_description : str
        SeriesDescription (cut to 64 characters).
    series_number : int
        SeriesNumber.

    Returns
    -------
    pydicom.Dataset
        The new dataset; InstanceCreationDate and InstanceCreationTime also serve as SeriesDate
        and SeriesTime.
    """
    now = _dt.datetime.now()
    ds = new_file_dataset(sop_class_uid, new_uid())
    ds.InstanceCreationDate = now.strftime("%Y%m%d")
    ds.InstanceCreationTime = now.strftime("%H%M%S")
    for kw in _COPIED:
        if kw in source:
            setattr(ds, kw, source.get(kw))
    for kw in _TYPE2:
        if kw not in ds:
            setattr(ds, kw, "")
    ds.Modality = modality
    ds.SeriesInstanceUID = new_uid()
    ds.SeriesNumber = int(series_number)
    ds.SeriesDescription = series_description[:64]
    ds.SeriesDate = ds.InstanceCreationDate
    ds.SeriesTime = ds.InstanceCreationTime
    ds.OperatorsName = ""
    ds.FrameOfReferenceUID = source.FrameOfReferenceUID
    ds.PositionReferenceIndicator = str(source.get("PositionReferenceIndicator", "") or "")
    ds.Manufacturer = MANUFACTURER
    ds.ManufacturerModelName = MODEL_NAME
    ds.SoftwareVersions = software_version()
    ds.InstanceNumber = 1
    return ds


def sop_reference(ds: Any) -> Any:
    """A reference item to ``ds``: ReferencedSOPClassUID and ReferencedSOPInstanceUID."""
    import pydicom

    item = pydicom.Dataset()
    item.ReferencedSOPClassUID = ds.SOPClassUID
    item.ReferencedSOPInstanceUID = ds.SOPInstanceUID
    return item


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
