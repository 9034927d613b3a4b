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


# ---------------------------------------------------------------------------- hardening (issue #11)
def test_4d_nifti_without_a_time_unit_has_no_frame_times(tmp_path):
    """nibabel's default header says pixdim[4] = 1 with unit 'unknown': not read as 1-s frames."""
    p = tmp_path / "d.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((2, 2, 2, 5), np.float32), np.eye(4)), str(p))
    img = read_nifti(p)
    assert img.frame_times_s is None
    assert img.meta["nifti_time_step_unknown_unit"] == 1.0


def test_4d_nifti_time_step_in_ms_is_converted(tmp_path):
    nii = nib.Nifti1Image(np.zeros((2, 2, 2, 4), np.float32), np.eye(4))
    nii.header.set_xyzt_units("mm", "msec")
    nii.header.set_zooms((1.0, 1.0, 1.0, 2500.0))
    nib.save(nii, str(tmp_path / "d.nii"))
    assert_allclose(read_nifti(tmp_path / "d.nii").frame_times_s, [0.0, 2.5, 5.0, 7.5])  # exact in binary


def test_frame_times_survive_with_array_and_writing(tmp_path):
    img = Image.from_spacing(np.zeros((2, 2, 2, 3)), 2.0, frame_times_s=[0.0, 4.0, 9.0])
    other = img.with_array(np.ones((2, 2, 2, 3)))
    assert_allclose(other.frame_times_s, [0.0, 4.0, 9.0])
    assert img.with_array(np.ones((2, 2, 2))).frame_times_s is None  # a 3-D map has no frames
    back = read_nifti(write_nifti(other, tmp_path / "x.nii.gz"))
    assert_allclose(back.frame_times_s, [0.0, 4.0, 9.0])


def test_map_and_sidecar_are_replaced_together_or_not_at_all(tmp_path, monkeypatch):
    img = Image.from_spacing(np.ones((2, 2, 2)), 2.0)
    path = write_nifti(img, tmp_path / "m.nii.gz", sidecar={"Round": 1})
    before = (path.read_bytes(), (tmp_path / "m.json").read_bytes())

    def broken_save(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(nib, "save", broken_save)
    with pytest.raises(OSError, match="No space left"):
        write_nifti(img.with_array(np.zeros((2, 2, 2))), path, sidecar={"Round": 2})
    assert (path.read_bytes(), (tmp_path / "m.json").read_bytes()) == before  # the old pair, intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.nii.gz"]  # no temporary left


def test_overwriting_a_map_without_a_record_removes_its_old_sidecar(tmp_path):
    img = Image.from_spacing(np.ones((2, 2, 2)), 2.0)
    path = write_nifti(img, tmp_path / "m.nii", sidecar={"Model": "2cxm"})
    write_nifti(img, path)  # no units, no frame times, no sidecar: the old record would describe it
    assert not (tmp_path / "m.json").exists()


def test_header_larger_than_memory_is_refused_with_the_figure(tmp_path, monkeypatch):
    from theraquant.io import _nifti

    path = write_nifti(Image.from_spacing(np.ones((16, 16, 16)), 2.0), tmp_path / "m.nii.gz")
    monkeypatch.setattr(_nifti, "_machine_memory_bytes", lambda: 1024)  # a 1 kB machine
    with pytest.raises(TheraquantError, match=r"m.nii.gz: its header promises 16 x 16 x 16 voxels, 0.0 GiB in "
                                              r"memory, more than this machine's 0.0 GiB"):
        read_nifti(path)
    read_nifti(write_nifti(Image.from_spacing(np.ones((16, 16, 16)), 2.0), tmp_path / "m.nii"))  # mmap: fine


@pytest.mark.parametrize(("values", "dtype"), [([0, 1, 2], np.int16), ([0.0, 1.0, 3.0], np.float32),
                                               ([False, True, True], np.uint8)])
def test_label_images_of_whole_numbers_are_read_as_int32(tmp_path, values, dtype):
    from theraquant.io import read_label_image

    arr = np.zeros((3, 2, 2), dtype=dtype)
    arr[:, 0, 0] = values
    lab = read_label_image(write_nifti(Image.from_spacing(arr, 1.0), tmp_path / "l.nii.gz", dtype=None))
    assert lab.array.dtype == np.int32 and lab.array[:, 0, 0].tolist() == [int(v) for v in values]
