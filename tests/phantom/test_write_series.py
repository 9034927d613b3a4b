"""io.write_dicom_series: MR (3-D, 4-D dynamic, VFA), PT with three vendors' SUV conventions, NM.

Every test writes an image, reads it back through the package's own readers
(io.read_dicom_series, pet.read_suv) and compares with the values written.
Tolerances: values are stored as 16-bit integers with a RescaleSlope, so the
round trip is exact to half a stored step (max |value| / 65535 / 2, or / 32767
when signed); SUV must agree within 1e-3 relative (the header's rounded
PatientWeight is used for the reference, so only the rescale rounding remains).
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pydicom
import pytest
from numpy.testing import assert_allclose

from theraquant.errors import TheraquantError
from theraquant.image import Image
from theraquant.io import read_dicom_series, write_dicom_series
from theraquant.pet import read_suv
from theraquant.phantom._headers import pet_headers, suv_bw

RNG = np.random.default_rng(5)


def _oblique_affine(spacing=(4.0, 2.5, 2.0)):
    """A rotated (about z and x) right-handed grid with a non-zero origin."""
    a, b = np.deg2rad(20.0), np.deg2rad(10.0)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    r = rx @ rz
    aff = np.eye(4)
    aff[:3, 2] = r[:, 0] * spacing[2]
    aff[:3, 1] = r[:, 1] * spacing[1]
    aff[:3, 0] = r[:, 2] * spacing[0]
    aff[:3, 3] = (-120.0, -80.5, 33.0)
    return aff


def test_mr_3d_geometry_and_values(tmp_path):
    arr = RNG.uniform(0, 1500, size=(5, 8, 7))
    img = Image(arr, _oblique_affine())
    files = write_dicom_series(img, tmp_path / "a" / "b", modality="MR",
                               headers={"PatientID": "P9", "FlipAngle": 15.0, "RepetitionTime": 4.0},
                               file_name="{index}")  # no extension
    assert len(files) == 5 and all(f.suffix == "" for f in files)
    back = read_dicom_series(tmp_path / "a")
    assert_allclose(back.affine, img.affine, atol=1e-5)
    step = arr.max() / 65535
    assert np.abs(back.array - arr).max() <= 0.5 * step * 1.0001
    ds = pydicom.dcmread(files[0])
    assert ds.Modality == "MR" and float(ds.FlipAngle) == 15.0 and float(ds.RepetitionTime) == 4.0
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.4" and ds.PatientID == "P9"


def test_mr_4d_dynamic_nonuniform_frames(tmp_path):
    t = np.array([0.0, 3.5, 7.0, 10.0, 14.25, 30.0, 61.5])
    arr = RNG.normal(0, 100, size=(3, 6, 5, t.size))  # signed values
    img = Image.from_spacing(arr, (5.0, 4.0, 4.0), origin_lps=(1.0, 2.0, 3.0), frame_times_s=t)
    start = datetime(2026, 3, 4, 10, 15, 30, 250000)
    files = write_dicom_series(img, tmp_path, modality="MR", headers={"StudyDate": "20260304"}, start=start)
    assert len(files) == 3 * t.size
    back = read_dicom_series(tmp_path)
    assert back.array.shape == arr.shape
    assert_allclose(back.frame_times_s, t, atol=1e-6)  # TM written with microseconds
    assert np.abs(back.array - arr).max() <= 0.5 * np.abs(arr).max() / 32767 * 1.0001
    ds = pydicom.dcmread(files[4])  # slice 0, frame 4
    assert int(ds.TemporalPositionIdentifier) == 5 and int(ds.NumberOfTemporalPositions) == t.size
    assert float(ds.TriggerTime) == pytest.approx(14250.0) and ds.AcquisitionTime == "101544.500000"


@pytest.mark.parametrize("vendor", ["siemens", "ge", "ge_admin", "philips"])
def test_pet_vendor_conventions_give_suv(tmp_path, vendor):
    bq = RNG.uniform(0, 30000.0, size=(4, 6, 6))
    bq[0] *= 0.1  # per-slice slopes differ
    inj, scan = datetime(2026, 5, 1, 9, 0, 0), datetime(2026, 5, 1, 10, 12, 0)
    h, scale = pet_headers(vendor, "fmiso", injected_bq=350e6, injection=inj, scan_start=scan, weight_kg=72.4,
                           height_m=1.78)
    write_dicom_series(Image.from_spacing(bq * scale, (4.0, 4.0, 4.0)), tmp_path, modality="PT",
                       headers={"PatientID": "P1", **h})
    suv = read_suv(tmp_path)
    ref = suv_bw(bq, tracer="fmiso", injected_bq=350e6, uptake_s=(scan - inj).total_seconds(), weight_kg=72.4)
    assert_allclose(suv.array, ref, rtol=1e-3, atol=1e-3 * ref.max())
    decisions = " ".join(suv.meta["suv_conversion"].decisions)
    expected = {"siemens": "SeriesDate/SeriesTime", "ge": "(0009,100D)", "ge_admin": "ADMIN",
                "philips": "(7053,1000)"}[vendor]
    assert expected in decisions
    ds = pydicom.dcmread(next(p for p in tmp_path.iterdir()))
    assert "DECY" in ds.CorrectedImage and "ATTN" in ds.CorrectedImage
    assert float(ds.PatientWeight) == 72.4 and float(ds.PatientSize) == 1.78
    assert ds.DecayCorrection == ("ADMIN" if vendor == "ge_admin" else "START")
    assert ds.Units == ("CNTS" if vendor == "philips" else "BQML")
    rp = ds.RadiopharmaceuticalInformationSequence[0]
    assert "FMISO" in rp.Radiopharmaceutical and rp.RadionuclideCodeSequence[0].CodeMeaning == "^18^Fluorine"
    # per-slice RescaleSlope: the faint slice 0 has a smaller slope than the others
    slopes = sorted(float(pydicom.dcmread(p).RescaleSlope) for p in tmp_path.iterdir())
    assert slopes[0] < 0.5 * slopes[-1]


def test_nm_quantitative_spect(tmp_path):
    bq = RNG.uniform(0, 5e4, size=(4, 5, 5))
    h, scale = pet_headers("siemens", "lu177", injected_bq=7.4e9, injection=datetime(2026, 1, 1, 8),
                           scan_start=datetime(2026, 1, 2, 8), weight_kg=70.0, height_m=1.7, modality="NM")
    assert scale == 1.0
    files = write_dicom_series(Image.from_spacing(bq, 4.8), tmp_path, modality="NM", headers=h)
    back = read_dicom_series(tmp_path)
    assert np.abs(back.array - bq).max() <= 0.5 * 5e4 / 65535 * 1.0001
    ds = pydicom.dcmread(files[0])
    assert ds.Modality == "NM" and ds.Units == "BQML"
    assert "Lu-177" in ds.RadiopharmaceuticalInformationSequence[0].Radiopharmaceutical


def test_bad_input_messages(tmp_path):
    img = Image.from_spacing(np.zeros((2, 3, 3)), 1.0)
    with pytest.raises(TheraquantError, match="modality must be one of"):
        write_dicom_series(img, tmp_path, modality="CT")
    with pytest.raises(TheraquantError, match="not a DICOM keyword"):
        write_dicom_series(img, tmp_path, modality="MR", headers={"NotATag": 1})
    with pytest.raises(TheraquantError, match="dynamic MR series only"):
        write_dicom_series(Image.from_spacing(np.zeros((2, 3, 3, 2)), 1.0, frame_times_s=[0, 1]), tmp_path,
                           modality="PT")
    with pytest.raises(TheraquantError, match="NaN"):
        write_dicom_series(img.with_array(np.full((2, 3, 3), np.nan)), tmp_path, modality="MR")
    left = Image(np.zeros((2, 3, 3)), np.diag([1.0, 1.0, -1.0, 1.0])[[2, 1, 0, 3]])
    with pytest.raises(TheraquantError, match="left-handed"):
        write_dicom_series(left, tmp_path, modality="MR")
