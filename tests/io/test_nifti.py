"""NIfTI round trips and the RAS <-> LPS convention at the I/O edge."""

import json

import nibabel as nib
import numpy as np
import pytest
from numpy.testing import assert_allclose

from theraquant import Image, TheraquantError
from theraquant.io import read_nifti, write_nifti


def test_write_then_read_is_identity(tmp_path):
    rng = np.random.default_rng(2)
    img = Image.from_spacing(rng.random((4, 5, 6, 7)), (3.0, 2.0, 1.5), origin_lps=(10, -20, 30),
                             frame_times_s=np.arange(7) * 4.5, units="mM")
    path = write_nifti(img, tmp_path / "x.nii.gz", sidecar={"Settings": {"a": 1}}, dtype=np.float64)
    back = read_nifti(path)
    assert_allclose(back.array, img.array)
    assert_allclose(back.affine, img.affine, atol=1e-6)
    assert_allclose(back.frame_times_s, img.frame_times_s)
    assert back.units == "mM"
    assert json.loads((tmp_path / "x.json").read_text())["Settings"] == {"a": 1}


def test_nifti_affine_is_ras_of_the_lps_world(tmp_path):
    # voxel (z=1, y=2, x=3) of an LPS image at origin (10, -20, 30) with 2 mm voxels
    img = Image.from_spacing(np.zeros((3, 4, 5)), 2.0, origin_lps=(10, -20, 30))
    path = write_nifti(img, tmp_path / "g.nii")
    nii = nib.load(str(path))
    ras = nii.affine @ np.array([3, 2, 1, 1.0])  # NIfTI index order (i, j, k) = (x, y, z)
    lps = img.index_to_world([1, 2, 3])
    assert_allclose(ras[:3], [-lps[0], -lps[1], lps[2]], atol=1e-9)
    assert nii.shape == (5, 4, 3)


def test_unreadable_nifti_names_the_file(tmp_path):
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"not a nifti")
    with pytest.raises(TheraquantError, match="broken.nii.gz"):
        read_nifti(bad)
