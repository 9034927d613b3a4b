"""Fuzzing the DICOM header parsing: random deletions and corruptions of the SUV and geometry tags.

Whatever is done to the headers, reading the series as SUV either works or raises
``DicomError`` / ``TheraquantError`` (one clear message): never a ``KeyError``, ``TypeError``,
``AttributeError``, ``IndexError``, ``OverflowError``, ``ZeroDivisionError`` from deep inside.
Examples are kept modest (the module runs in well under a minute) and derandomised, so a failure
is reproducible from the printed falsifying example.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pydicom = pytest.importorskip("pydicom")

from pydicom.dataset import Dataset, FileMetaDataset  # noqa: E402
from pydicom.uid import ExplicitVRLittleEndian  # noqa: E402

from theraquant.errors import TheraquantError  # noqa: E402
from theraquant.pet import read_suv, suv_factor  # noqa: E402

SUV_TAGS = ["Units", "DecayCorrection", "PatientWeight", "PatientSize", "PatientSex", "SeriesDate", "SeriesTime",
            "AcquisitionDate", "AcquisitionTime", "ActualFrameDuration", "FrameReferenceTime", "StudyDate",
            "CorrectedImage", "SUVType"]
RADIO_TAGS = ["RadionuclideTotalDose", "RadionuclideHalfLife", "RadiopharmaceuticalStartDateTime",
              "RadiopharmaceuticalStartTime"]
GEOMETRY_TAGS = ["ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "SliceThickness", "Rows",
                 "Columns", "RescaleSlope", "RescaleIntercept", "SeriesInstanceUID", "Modality",
                 "BitsAllocated", "PixelRepresentation", "SpacingBetweenSlices"]

# values a broken export or a hand edit leaves behind, of every kind a tag may meet
JUNK = st.one_of(
    st.none(), st.just(""), st.just("abc"), st.just("-1"), st.just("0"), st.just("1e400"), st.just("nan"),
    st.floats(allow_nan=True, allow_infinity=True), st.integers(min_value=-(2**40), max_value=2**40),
    st.lists(st.floats(min_value=-1e6, max_value=1e6), min_size=0, max_size=7),
    st.text(alphabet="0123456789.:-T+ ", max_size=16),
)
MUTATION = st.tuples(st.sampled_from(["delete", "set"]), st.sampled_from(SUV_TAGS + RADIO_TAGS + GEOMETRY_TAGS),
                     st.integers(min_value=-1, max_value=2), JUNK)


def _base_series() -> list[Dataset]:
    """A valid 3-slice PT series (4x4 pixels, BQML, START decay correction, 18F)."""
    out = []
    for z in range(3):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.128"
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = f"1.2.826.0.1.3680043.8.498.1.{z + 1}"
        ds.Modality, ds.SeriesInstanceUID, ds.StudyInstanceUID = "PT", "1.2.826.0.1.3680043.8.498.2", "1.2.3.4"
        ds.FrameOfReferenceUID, ds.InstanceNumber = "1.2.826.0.1.3680043.8.498.3", z + 1
        ds.ImagePositionPatient, ds.ImageOrientationPatient = [0.0, 0.0, 4.0 * z], [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing, ds.SliceThickness = [4.0, 4.0], 4.0
        ds.Rows = ds.Columns = 4
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleSlope, ds.RescaleIntercept = 2.0, 0.0
        ds.PixelData = (np.arange(16, dtype=np.uint16) * 100 + z).tobytes()
        ds.Units, ds.DecayCorrection, ds.CorrectedImage = "BQML", "START", ["DECY", "ATTN"]
        ds.PatientWeight, ds.PatientSize, ds.PatientSex = 70.0, 1.75, "M"
        ds.SeriesDate = ds.AcquisitionDate = ds.StudyDate = "20250101"
        ds.SeriesTime, ds.AcquisitionTime = "110000", "110000"
        ds.ActualFrameDuration, ds.FrameReferenceTime = 300000, 150000.0
        rp = Dataset()
        rp.RadionuclideTotalDose, rp.RadionuclideHalfLife = 370e6, 6586.2
        rp.RadiopharmaceuticalStartDateTime, rp.RadiopharmaceuticalStartTime = "20250101100000", "100000"
        ds.RadiopharmaceuticalInformationSequence = [rp]
        out.append(ds)
    return out


def _mutate(series: list[Dataset], mutations: list) -> None:
    for op, tag, which, value in mutations:
        targets = series if which < 0 else [series[which]]
        for ds in targets:
            holder = ds.RadiopharmaceuticalInformationSequence[0] if (
                tag in RADIO_TAGS and "RadiopharmaceuticalInformationSequence" in ds
                and len(ds.RadiopharmaceuticalInformationSequence)) else ds
            if op == "delete":
                if tag in holder:
                    delattr(holder, tag)
                continue
            try:
                setattr(holder, tag, value)  # pydicom may refuse some values for the tag's VR: skip those
            except (TypeError, ValueError, OverflowError, AttributeError):
                pass


def _only_clear_errors(call) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            call()
        except TheraquantError:  # DicomError is one
            pass


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(MUTATION, min_size=1, max_size=4))
def test_suv_factor_on_mutated_headers_raises_only_clear_errors(mutations):
    series = _base_series()
    _mutate(series, mutations)
    _only_clear_errors(lambda: suv_factor(series, names=[f"IM{i}.dcm" for i in range(len(series))]))


@settings(max_examples=100, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(mutations=st.lists(MUTATION, min_size=1, max_size=4))
def test_read_suv_on_mutated_files_raises_only_clear_errors(mutations, tmp_path_factory):
    folder = tmp_path_factory.mktemp("pt")
    series = _base_series()
    _mutate(series, mutations)
    from pydicom import config

    old = config.settings.writing_validation_mode
    config.settings.writing_validation_mode = config.IGNORE  # write the junk as a broken exporter would
    try:
        for i, ds in enumerate(series):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    ds.save_as(folder / f"IM{i}.dcm", enforce_file_format=True)
            except Exception:  # a value pydicom cannot encode at all: that file is simply not written
                pass
    finally:
        config.settings.writing_validation_mode = old
    _only_clear_errors(lambda: read_suv(folder))


def test_the_unmutated_series_reads_and_gives_the_analytic_suv(tmp_path):
    """The fuzzing starts from a valid series: SUV = C * W / (D exp(-ln2 t / T)) (1 h uptake, 18F)."""
    for i, ds in enumerate(_base_series()):
        ds.save_as(tmp_path / f"IM{i}.dcm", enforce_file_format=True)
    img = read_suv(tmp_path)
    decay = math.exp(-math.log(2) * 3600.0 / 6586.2)
    expected = 2.0 * 100 * 5 * 70000.0 / (370e6 * decay)  # pixel 5 of slice 0: stored 500 x slope 2
    assert img.array.shape[0] == 3
    assert float(img.array[0].ravel()[5]) == pytest.approx(expected, rel=1e-9)  # float64 arithmetic


def test_headers_promising_more_memory_than_the_machine_are_refused_with_the_figure(tmp_path, monkeypatch):
    from theraquant.errors import DicomError
    from theraquant.io import _nifti

    for i, ds in enumerate(_base_series()):
        ds.Rows = ds.Columns = 65535  # the largest DICOM allows: 3 x 65535^2 float64 = 96 GiB
        ds.save_as(tmp_path / f"IM{i}.dcm", enforce_file_format=True)
    monkeypatch.setattr(_nifti, "_machine_memory_bytes", lambda: 24 * 2**30)  # this project's 24 GiB machine
    with pytest.raises(DicomError, match=r"IM0.dcm: the series' headers promise 3 x 65535 x 65535 x 1 voxels, "
                                         r"96.0 GiB, more than this machine's 24.0 GiB"):
        read_suv(tmp_path)
