"""Small synthetic DICOM source series for the DICOM-results tests (written with pydicom).

Used by tests/io/test_seg.py, tests/io/test_rtstruct.py and tests/dicom_results/ (loaded by path,
the tests folder not being a package). Nothing here is a test.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np

from theraquant.image import Image

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
PET_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.128"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
NM_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.20"  # a multi-frame IOD, here one file per slice (1 frame each)


def oblique_image(shape=(6, 20, 24), spacing=(3.0, 2.0, 2.5), angle_deg=0.0, origin=(-30.0, -20.0, 40.0),
                  flip_slices=False) -> Image:
    """An empty Image with an in-plane rotation of ``angle_deg`` about the slice normal."""
    a = np.deg2rad(angle_deg)
    row = np.array([np.cos(a), np.sin(a), 0.0])       # index x direction
    col = np.array([-np.sin(a), np.cos(a), 0.0])      # index y direction
    normal = np.cross(row, col)
    if flip_slices:
        normal = -normal
    aff = np.eye(4)
    aff[:3, 0] = normal * spacing[0]
    aff[:3, 1] = col * spacing[1]
    aff[:3, 2] = row * spacing[2]
    aff[:3, 3] = origin
    return Image(np.zeros(shape, np.float32), aff)


def _ds(values):
    from pydicom.valuerep import DSfloat

    return [DSfloat(float(v), auto_format=True) for v in values]


def dciodvfy(path) -> tuple[list[str], str]:
    """Run dciodvfy on one file: (error lines, whole output). A crash raises AssertionError."""
    import shutil
    import subprocess

    exe = shutil.which("dciodvfy")
    assert exe is not None
    res = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=120)
    text = res.stdout + res.stderr
    if res.returncode < 0 or res.returncode > 1 or "Segmentation fault" in text or "Abort" in text:
        raise AssertionError(f"dciodvfy crashed on {path} (exit {res.returncode}):\n{text[-2000:]}")
    errors = [ln for ln in text.splitlines() if ln.startswith("Error")]
    return errors, text


def write_series(out_dir: Path, image: Image, *, modality: str = "MR", patient_id: str = "TQ-0001",
                 patient_name: str = "Test^Patient", study_uid: str | None = None,
                 for_uid: str | None = None, series_number: int = 3,
                 study_date: str = "20240315") -> list:
    """Write ``image`` (3-D) as a single-frame-per-slice series; return the datasets (with filename)."""
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sop_class = {"MR": MR_IMAGE_STORAGE, "PT": PET_IMAGE_STORAGE, "CT": CT_IMAGE_STORAGE,
                 "NM": NM_IMAGE_STORAGE}[modality]
    study_uid = study_uid or generate_uid()
    for_uid = for_uid or generate_uid()
    series_uid = generate_uid()
    arr = np.asarray(image.array, dtype=float)
    sp = image.spacing_mm
    row = image.affine[:3, 2] / sp[2]
    col = image.affine[:3, 1] / sp[1]
    lo, hi = float(arr.min()), float(arr.max())
    slope = (hi - lo) / 60000.0 if hi > lo else 1.0
    out = []
    for k in range(arr.shape[0]):
        fm = FileMetaDataset()
        fm.MediaStorageSOPClassUID = sop_class
        sop_uid = generate_uid()
        fm.MediaStorageSOPInstanceUID = sop_uid
        fm.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = pydicom.Dataset()
        ds.file_meta = fm
        ds.SOPClassUID = sop_class
        ds.SOPInstanceUID = sop_uid
        ds.Modality = modality
        ds.PatientName = patient_name
        ds.PatientID = patient_id
        ds.PatientBirthDate = "19600101"
        ds.PatientSex = "F"
        ds.PatientWeight = 70.0
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = for_uid
        ds.PositionReferenceIndicator = ""
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = ds.AcquisitionDate = study_date
        ds.StudyTime = ds.SeriesTime = ds.ContentTime = "101500"
        ds.AccessionNumber = "ACC123"
        ds.ReferringPhysicianName = "Ref^Doc"
        ds.StudyID = "1"
        ds.SeriesNumber = series_number
        ds.InstanceNumber = k + 1
        ds.Manufacturer = "synthetic"
        ds.SeriesDescription = f"synthetic {modality}"
        ds.BodyPartExamined = "ABDOMEN"
        ds.PatientPosition = "HFS"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"] if modality == "CT" else ["ORIGINAL", "PRIMARY"]
        ds.ImageOrientationPatient = _ds(np.r_[row, col])
        ds.ImagePositionPatient = _ds(image.index_to_world([k, 0, 0]))
        ds.PixelSpacing = _ds([sp[1], sp[2]])
        ds.SliceThickness = ds.SpacingBetweenSlices = _ds([sp[0]])[0]
        ds.Rows, ds.Columns = arr.shape[1], arr.shape[2]
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 0
        ds.RescaleSlope, ds.RescaleIntercept = _ds([slope, lo])
        if modality == "MR":
            ds.ScanningSequence = "GR"
            ds.SequenceVariant = "SP"
            ds.ScanOptions = ""
            ds.MRAcquisitionType = "3D"
            ds.EchoTime = 1.5
            ds.RepetitionTime = 4.0
            ds.EchoTrainLength = 1
            ds.FlipAngle = 15
        if modality == "PT":
            ds.Units = "BQML"
            ds.CorrectedImage = ["DECY", "ATTN"]
            ds.DecayCorrection = "START"
            ds.SeriesType = ["STATIC", "IMAGE"]
            ds.ImageType = ["ORIGINAL", "PRIMARY"]
            ds.AcquisitionTime = "101500"
        if modality == "NM":
            ds.NumberOfFrames = 1
            ds.ImageType = ["ORIGINAL", "PRIMARY", "RECON TOMO", "EMISSION"]
        pix = np.round((arr[k] - lo) / slope).astype(np.uint16)
        ds.PixelData = pix.tobytes()
        path = out_dir / f"IM{k + 1:04d}.dcm"
        ds.save_as(str(path), enforce_file_format=True)
        ds.filename = str(path)
        out.append(ds)
    return out


def ball(image: Image, centre_lps, radius_mm: float) -> np.ndarray:
    """Boolean mask of voxels whose centres lie within ``radius_mm`` of ``centre_lps``."""
    idx = np.indices(image.shape).reshape(3, -1).T
    pts = image.index_to_world(idx)
    d = np.linalg.norm(pts - np.asarray(centre_lps, float), axis=1)
    return (d <= radius_mm).reshape(image.shape)


def today() -> str:
    return dt.date.today().strftime("%Y%m%d")
