"""The Image type: geometry conventions and the SimpleITK bridge."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

from theraquant import Image, TheraquantError
from theraquant.image import normalize_spacing


def oblique_affine():
    # rotation about the LPS z axis by 30 degrees, anisotropic voxels (z 3, y 2, x 1.5 mm)
    c, s = np.cos(np.pi / 6), np.sin(np.pi / 6)
    rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])
    aff = np.eye(4)
    aff[:3, 2] = rot[:, 0] * 1.5  # x index
    aff[:3, 1] = rot[:, 1] * 2.0  # y index
    aff[:3, 0] = rot[:, 2] * 3.0  # z index
    aff[:3, 3] = [-100.0, 20.0, 35.0]
    return aff


def test_spacing_volume_and_world_round_trip():
    img = Image(np.zeros((4, 5, 6)), oblique_affine())
    assert_allclose(img.spacing_mm, (3.0, 2.0, 1.5), rtol=1e-12)
    assert img.voxel_volume_ml == pytest.approx(9.0e-3, rel=1e-12)  # 3*2*1.5 mm^3
    idx = np.array([[1.0, 2.0, 3.0], [0.5, 0.0, 5.5]])
    assert_allclose(img.world_to_index(img.index_to_world(idx)), idx, atol=1e-12)


def test_sitk_bridge_round_trip_keeps_geometry():
    arr = np.random.default_rng(0).random((4, 5, 6))
    img = Image(arr, oblique_affine())
    back = Image.from_sitk(img.to_sitk())
    assert_allclose(back.affine, img.affine, atol=1e-9)
    assert_allclose(back.array, arr)
    # ITK's physical point of index (x=3, y=2, z=1) equals our index (1, 2, 3)
    assert_allclose(img.to_sitk().TransformIndexToPhysicalPoint((3, 2, 1)), img.index_to_world([1, 2, 3]), atol=1e-9)


def test_resample_conserves_amount_when_asked():
    rng = np.random.default_rng(1)
    fine = Image.from_spacing(rng.random((8, 8, 8)), 2.0)
    coarse_grid = Image.from_spacing(np.zeros((4, 4, 4)), 4.0, origin_lps=(1.0, 1.0, 1.0))
    res = fine.resample_like(coarse_grid, conserve=True)
    # linear interpolation at the centre of each 2x2x2 block averages the block; conserve scales by 8
    assert res.array.sum() == pytest.approx(fine.array.sum(), rel=1e-9)


def test_bad_inputs_name_the_problem():
    with pytest.raises(TheraquantError, match="3-D .* or 4-D"):
        Image(np.zeros((3, 3)), np.eye(4))
    with pytest.raises(TheraquantError, match="invertible"):
        Image(np.zeros((3, 3, 3)), np.zeros((4, 4)))
    with pytest.raises(TheraquantError, match="frame_times_s has 2 values"):
        Image(np.zeros((2, 2, 2, 3)), np.eye(4), frame_times_s=[0, 1])
    with pytest.raises(TheraquantError, match=r"spacing_mm must hold 3 positive"):
        normalize_spacing((1.0, -2.0, 1.0))
    a = Image.from_spacing(np.zeros((2, 3, 4)), 1.0)
    b = Image.from_spacing(np.zeros((2, 3, 4)), 1.0, origin_lps=(0, 0, 5))
    with pytest.raises(TheraquantError, match="different grids"):
        a.check_same_grid(b)
