"""Tiny DICOM studies for the discovery / run tests (4x4 pixels, a few files, headers as scanners write them).

Not a test module: imported by test_discovery.py, test_run.py and test_cli_pipeline.py through
``load_factory()``-style importlib loading (the suite runs with --import-mode=importlib).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

MR_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
PET_STORAGE = "1.2.840.10008.5.1.4.1.1.128"
NM_STORAGE = "1.2.840.10008.5.1.4.1.1.20"
SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
RTSTRUCT_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"


class Patient:
    """Identifiers of one synthetic patient (the strings the privacy tests grep for)."""

    def __init__(self, patient_id: str, name: str = "Doe^Jane", birth: str = "19561224",
                 accession: str = "ACC0000"):
        self.patient_id, self.name, self.birth, self.accession = patient_id, name, birth, accession
        self.for_uid = generate_uid()
        self._studies: dict[dt.date, str] = {}

    def study_uid(self, date: dt.date) -> str:
        return self._studies.setdefault(date, generate_uid())


def _base(p: Patient, date: dt.date, sop_class: str, modality: str, series_uid: str, desc: str,
          time: str = "100000") -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = sop_class
    ds.PatientID, ds.PatientName, ds.PatientBirthDate = p.patient_id, p.name, p.birth
    ds.AccessionNumber = p.accession
    ds.StudyInstanceUID = p.study_uid(date)
    ds.StudyDate = date.strftime("%Y%m%d")
    ds.StudyTime = "090000"
    ds.SeriesInstanceUID = series_uid
    ds.SeriesDate = ds.StudyDate
    ds.SeriesTime = time
    ds.Modality = modality
    ds.SeriesDescription = desc
    ds.FrameOfReferenceUID = p.for_uid
    return ds


def _pixels(ds: Dataset, z: float, value: int = 1) -> None:
    ds.Rows, ds.Columns = 4, 4
    ds.PixelSpacing = [2.0, 2.0]
    ds.SliceThickness = 2.0
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.ImagePositionPatient = [0.0, 0.0, float(z)]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = np.full((4, 4), value, np.uint16).tobytes()


def _save(ds: Dataset, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(str(path), enforce_file_format=True)
    return path


def mr_series(folder: Path, p: Patient, date: dt.date, *, n_slices: int = 2, n_times: int = 1,
              flip_angles: Sequence[float] = (15.0,), desc: str = "MR", temporal_tags: bool = True,
              times_s: Optional[Sequence[float]] = None, series_uid: Optional[str] = None,
              trigger: bool = False, ext: str = ".dcm") -> str:
    """An MR series: n_times frames x n_slices slices for each flip angle; returns its UID."""
    uid = series_uid or generate_uid()
    times_s = list(times_s) if times_s is not None else [10.0 * k for k in range(n_times)]
    i = 0
    for a, flip in enumerate(flip_angles):
        for t in range(n_times):
            for z in range(n_slices):
                ds = _base(p, date, MR_STORAGE, "MR", uid, desc)
                secs = 36000 + times_s[t] + 60 * a
                hh, rem = divmod(secs, 3600)
                mm, ss = divmod(rem, 60)
                if trigger:
                    ds.TriggerTime = times_s[t] * 1000.0
                else:
                    ds.AcquisitionDate = ds.StudyDate
                    ds.AcquisitionTime = f"{int(hh):02d}{int(mm):02d}{ss:09.6f}"
                ds.FlipAngle = flip
                if temporal_tags and n_times > 1:
                    ds.TemporalPositionIdentifier = t + 1
                    ds.NumberOfTemporalPositions = n_times
                ds.InstanceNumber = i + 1
                _pixels(ds, z * 2.0)
                _save(ds, folder / f"{i:04d}{ext}")
                i += 1
    return uid


def pet_series(folder: Path, p: Patient, date: dt.date, *, tracer: str = "", nuclide: str = "",
               modality: str = "PT", desc: str = "PET", n_slices: int = 2, injection: Optional[str] = None,
               series_uid: Optional[str] = None, time: str = "110000") -> str:
    """A PT (or NM) series with a RadiopharmaceuticalInformationSequence."""
    uid = series_uid or generate_uid()
    for z in range(n_slices):
        ds = _base(p, date, PET_STORAGE if modality == "PT" else NM_STORAGE, modality, uid, desc, time)
        ds.AcquisitionDate, ds.AcquisitionTime = ds.StudyDate, time
        item = Dataset()
        if tracer:
            item.Radiopharmaceutical = tracer
        if nuclide:
            code = Dataset()
            code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "C-X", "SRT", nuclide
            item.RadionuclideCodeSequence = [code]
        item.RadiopharmaceuticalStartDateTime = injection or (ds.StudyDate + "100000")
        ds.RadiopharmaceuticalInformationSequence = [item]
        ds.InstanceNumber = z + 1
        _pixels(ds, z * 2.0)
        _save(ds, folder / f"{z:04d}.dcm")
    return uid


def seg_file(path: Path, p: Patient, date: dt.date, labels: Iterable[str], referenced: Sequence[str]) -> str:
    """A SEG header (segments and references; discovery reads nothing else)."""
    uid = generate_uid()
    ds = _base(p, date, SEG_STORAGE, "SEG", uid, "Segmentation")
    segs = []
    for k, lab in enumerate(labels):
        s = Dataset()
        s.SegmentNumber, s.SegmentLabel = k + 1, lab
        segs.append(s)
    ds.SegmentSequence = segs
    refs = []
    for r in referenced:
        item = Dataset()
        item.SeriesInstanceUID = r
        item.ReferencedInstanceSequence = []
        refs.append(item)
    ds.ReferencedSeriesSequence = refs
    _save(ds, path)
    return uid


def rtstruct_file(path: Path, p: Patient, date: dt.date, names: Iterable[str], referenced: str) -> str:
    """An RTSTRUCT header with ROI names referencing one series."""
    uid = generate_uid()
    ds = _base(p, date, RTSTRUCT_STORAGE, "RTSTRUCT", uid, "Structures")
    del ds.FrameOfReferenceUID
    fr, st, se = Dataset(), Dataset(), Dataset()
    se.SeriesInstanceUID = referenced
    st.ReferencedSOPInstanceUID = ds.StudyInstanceUID
    st.RTReferencedSeriesSequence = [se]
    fr.FrameOfReferenceUID = p.for_uid
    fr.RTReferencedStudySequence = [st]
    ds.ReferencedFrameOfReferenceSequence = [fr]
    rois = []
    for k, n in enumerate(names):
        r = Dataset()
        r.ROINumber, r.ROIName, r.ReferencedFrameOfReferenceUID = k + 1, n, p.for_uid
        rois.append(r)
    ds.StructureSetROISequence = rois
    _save(ds, path)
    return uid


def tare_patient(root: Path, p: Patient, therapy: dt.date, *, n_lesions: int = 2) -> dict[str, str]:
    """A small TARE patient: VFA (2 series), DCE, FMISO, FDG baseline + follow-up, 90Y, SEGs on each.

    Returns the series UIDs by name.
    """
    base = therapy - dt.timedelta(days=10)
    fu = therapy + dt.timedelta(days=60)
    d = root / p.patient_id.lower()
    uids = {}
    uids["vfa2"] = mr_series(d / "mr" / "vfa_a", p, base, flip_angles=(2.0,), desc="VFA 2deg")
    uids["vfa15"] = mr_series(d / "mr" / "vfa_b", p, base, flip_angles=(15.0,), desc="VFA 15deg")
    uids["dce"] = mr_series(d / "mr" / f"dyn_{base.isoformat()}", p, base, n_times=4, flip_angles=(15.0,), desc="DCE",
                            ext="")  # a date in the folder name, as exports often have
    uids["fmiso"] = pet_series(d / "fmiso", p, base - dt.timedelta(days=2), tracer="[18F]FMISO", desc="FMISO")
    uids["fdg"] = pet_series(d / "fdg0", p, base, tracer="Fludeoxyglucose", nuclide="^18^Fluorine",
                             desc="FDG base")
    uids["fdg_fu"] = pet_series(d / "fdg1", p, fu, tracer="FDG -- fluorodeoxyglucose", desc="FDG fu")
    uids["y90"] = pet_series(d / "y90", p, therapy + dt.timedelta(days=1), nuclide="^90^Yttrium", desc="Y90",
                             injection=therapy.strftime("%Y%m%d") + "120000")
    lesions = [f"Lesion {k + 1}" for k in range(n_lesions)]
    for key in ("dce", "fmiso", "fdg", "fdg_fu", "y90"):
        date = {"fmiso": base - dt.timedelta(days=2), "fdg_fu": fu, "y90": therapy + dt.timedelta(days=1)}.get(key, base)
        extra = ["Aorta", "Portal vein"] if key == "dce" else (["Blood pool", "Muscle"] if key == "fmiso" else [])
        uids[f"seg_{key}"] = seg_file(d / "seg" / f"{key}.dcm", p, date, [*lesions, "Liver", *extra], [uids[key]])
    return uids
