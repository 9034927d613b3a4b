"""The generic DICOM series reader (theraquant.io.read_dicom_series) on the oncoray PET DROs.

Data: oncoray/suv_computation DROs (commit bf11a08), (c) 2026 Michael Vacha, CC BY 4.0
(tests/data/nm/suv_dro_oncoray/LICENSE_CC-BY-4.0.txt): 20 slices of 256 x 256, 4 mm voxels,
ImagePositionPatient (0, 0, 4 k), identity orientation; DRO_1_0 has a RescaleSlope per slice.
"""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose

from theraquant.errors import DicomError
from theraquant.io import read_dicom_series

TAR = Path(__file__).resolve().parents[1] / "data" / "nm" / "suv_dro_oncoray" / "oncoray_suv_dro_v2026-02.tar.xz"


@pytest.fixture(scope="module")
def dro(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dro_io")
    with tarfile.open(TAR, "r:xz") as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(("DRO/DRO_0_0/", "DRO/DRO_1_0/"))]
        tar.extractall(root, members=members, filter="data")
    return root / "DRO"


def test_geometry_is_lps_from_the_headers(dro):
    img = read_dicom_series(dro / "DRO_0_0", modality="PT")  # the RTSTRUCT beside it is ignored
    assert img.shape == (20, 256, 256)
    assert img.spacing_mm == (4.0, 4.0, 4.0)
    assert_allclose(img.index_to_world([19, 2, 3]), [12.0, 8.0, 76.0])  # x = col*4, y = row*4, z = IPP z
    assert len(img.meta["headers"]) == 20 and img.meta["modality"] == "PT"
    assert "PixelData" not in img.meta["headers"][0]


def test_rescale_slope_applied_per_slice(dro):
    import pydicom

    img = read_dicom_series(dro / "DRO_1_0" / "PT")
    for z in (5, 8, 12):
        ds = pydicom.dcmread(dro / "DRO_1_0" / "PT" / f"pet_dro_1_0_slice_{z:03d}.dcm")
        assert_allclose(img.array[z], ds.pixel_array * float(ds.RescaleSlope))
    # slopes 4 and 3 on stored 3600 and 4800 give the same activity, 14400 Bq/mL (DRO design)
    assert img.array[5].max() == img.array[8].max() == 14400.0


def test_slices_sorted_by_position_not_by_name(dro, tmp_path):
    series = tmp_path / "PT"
    series.mkdir()
    rng = np.random.default_rng(0)
    files = sorted((dro / "DRO_0_0" / "PT").glob("*.dcm"))
    for f, new in zip(files, rng.permutation(len(files))):
        shutil.copy(f, series / f"IM{new:04d}")
    ref = read_dicom_series(dro / "DRO_0_0" / "PT")
    got = read_dicom_series(series)
    assert_allclose(got.array, ref.array)
    assert_allclose(got.affine, ref.affine)


def test_missing_slice_is_an_error(dro, tmp_path):
    series = tmp_path / "PT"
    shutil.copytree(dro / "DRO_0_0" / "PT", series)
    (series / "pet_dro_0_0_slice_010.dcm").unlink()
    with pytest.raises(DicomError, match=r"pet_dro_0_0_slice_011.dcm: slice spacing 8.000 mm differs"):
        read_dicom_series(series)


def test_two_series_in_one_folder_needs_series_uid(dro, tmp_path):
    import pydicom

    series = tmp_path / "PT"
    shutil.copytree(dro / "DRO_0_0" / "PT", series)
    other = tmp_path / "PT" / "other"
    shutil.copytree(dro / "DRO_1_0" / "PT", other)
    for f in other.glob("*.dcm"):
        ds = pydicom.dcmread(f)
        ds.SeriesInstanceUID = ds.SeriesInstanceUID + ".9"
        ds.save_as(f)
    with pytest.raises(DicomError, match="holds 2 series .* pass series_uid="):
        read_dicom_series(series)
    uid = pydicom.dcmread(next(other.glob("*.dcm"))).SeriesInstanceUID
    assert read_dicom_series(series, series_uid=uid).array[8].max() == 14400.0


def test_missing_geometry_tag_names_the_file(dro, tmp_path):
    import pydicom

    series = tmp_path / "PT"
    shutil.copytree(dro / "DRO_0_0" / "PT", series)
    f = series / "pet_dro_0_0_slice_003.dcm"
    ds = pydicom.dcmread(f)
    del ds.ImageOrientationPatient
    ds.save_as(f)
    with pytest.raises(DicomError, match=r"pet_dro_0_0_slice_003.dcm: ImageOrientationPatient \(0020,0037\) is missing"):
        read_dicom_series(series)
