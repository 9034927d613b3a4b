"""RTSTRUCT in and out (theraquant.io.read_rtstruct / write_rtstruct)."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest

from theraquant.errors import DicomError
from theraquant.io import read_dicom_series, read_rtstruct, write_rtstruct
from theraquant.io._rtstruct import mask_to_contours

_spec = importlib.util.spec_from_file_location(
    "tq_dicom_synthetic", Path(__file__).parents[1] / "dicom_results" / "synthetic.py")
syn = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(syn)


def _source(tmp_path, *, shape=(12, 40, 44), **kw):
    img = syn.oblique_image(shape=shape, **kw)
    syn.write_series(tmp_path / "ct", img.with_array(np.random.default_rng(2).random(img.shape) * 100))
    return read_dicom_series(tmp_path / "ct")


def _dice(a, b):
    return 2 * np.sum(a & b) / (a.sum() + b.sum())


def _masks(src):
    c = src.index_to_world([5, 20, 20])
    ring = syn.ball(src, c, 15.0) & ~syn.ball(src, c, 6.0)           # a hole on the middle slices
    ring |= syn.ball(src, src.index_to_world([5, 5, 37]), 4.5)        # a second island on a slice
    checker = np.zeros(src.shape, bool)                               # diagonal-only contacts (saddles)
    checker[3, 10:16:2, 10:16:2] = True
    checker[3, 11:17:2, 11:17:2] = True
    return {"lesion 1": src.with_array(ring), "Liver (segment VIII)": src.with_array(checker)}


@pytest.mark.parametrize("angle, flip", [(0.0, False), (20.0, False), (0.0, True)])
def test_rtstruct_round_trip(tmp_path, angle, flip):
    src = _source(tmp_path, angle_deg=angle, flip_slices=flip)
    masks = _masks(src)
    out = write_rtstruct(masks, src.meta["headers"], tmp_path / "rs.dcm")
    got = read_rtstruct(out, src)
    assert list(got.masks) == list(masks)  # ROI names exactly as written
    hdr = src.meta["headers"][0]
    assert got.referenced_series_uids == (hdr.SeriesInstanceUID,)
    assert got.frame_of_reference_uid == hdr.FrameOfReferenceUID
    for name, m in masks.items():
        g = got.masks[name]
        assert g.same_grid(src)
        # the contract: Dice >= 0.98 and volume within 2 %; voxel-edge contours under the
        # even-odd rule in fact give the mask back exactly, which is what is asserted last
        assert _dice(g.array, m.array) >= 0.98
        assert abs(g.array.sum() / m.array.sum() - 1) <= 0.02
        np.testing.assert_array_equal(g.array, m.array)


def test_contours_trace_voxel_edges_not_centres():
    m = np.zeros((1, 6, 6), bool)
    m[0, 1:4, 2:5] = True  # 3 x 3 voxels of 2 x 1 mm (y, x)
    img = syn.oblique_image(shape=(1, 6, 6), spacing=(3.0, 2.0, 1.0), origin=(0.0, 0.0, 0.0))
    [(k, pts)] = mask_to_contours(img.with_array(m))
    # corners at half-voxel offsets: x from 1.5 to 4.5 mm, y from 1.0 to 7.0 mm
    assert k == 0 and len(pts) == 4
    assert sorted(map(tuple, pts[:, :2].round(6))) == [(1.5, 1.0), (1.5, 7.0), (4.5, 1.0), (4.5, 7.0)]
    # the enclosed area is the mask's area (9 voxels x 2 mm^2), not the centres' (4 x 2 mm^2)
    x, y = pts[:, 0], pts[:, 1]
    area = 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
    assert area == pytest.approx(18.0)


def _set_contours(path, roi_contours):
    """Replace the contours of the ROIs of an RTSTRUCT written by write_rtstruct."""
    import pydicom
    from pydicom.sequence import Sequence

    ds = pydicom.dcmread(path)
    for rc, polys in zip(ds.ROIContourSequence, roi_contours):
        items = []
        for pts in polys:
            c = pydicom.Dataset()
            c.ContourGeometricType = "CLOSED_PLANAR"
            c.NumberOfContourPoints = len(pts)
            c.ContourData = [f"{v:.3f}" for v in np.asarray(pts, float).ravel()]
            items.append(c)
        rc.ContourSequence = Sequence(items)
    ds.save_as(path)


def _square(x0, x1, y0, y1, z):
    return [(x0, y0, z), (x1, y0, z), (x1, y1, z), (x0, y1, z)]


def test_even_odd_holes_and_several_contours_per_slice(tmp_path):
    # axis-aligned grid: voxel (k, j, i) centre at LPS (i*2.5 - 30, j*2 - 20, k*3 + 40)
    src = _source(tmp_path)
    out = write_rtstruct({"lesion 2": src.with_array(np.ones(src.shape, bool))}, src.meta["headers"],
                         tmp_path / "rs.dcm")
    z = 40.0 + 3 * 4  # slice 4
    outer = _square(-20.1, 10.1, -10.1, 20.1, z)   # x in (-20.1, 10.1) -> i = 4..16 ; y -> j = 5..20
    hole = _square(-10.1, 0.1, 0.1, 10.1, z)       # i = 8..12, j = 11..15
    island = _square(39.9, 50.1, 29.9, 40.1, z)    # i = 28..32, j = 25..30
    _set_contours(out, [[outer, hole, island]])
    got = read_rtstruct(out, src).masks["lesion 2"].array
    want = np.zeros(src.shape, bool)
    want[4, 5:21, 4:17] = True
    want[4, 11:16, 8:13] = False
    want[4, 25:31, 28:33] = True
    np.testing.assert_array_equal(got, want)


def test_contour_between_planes_is_an_error_naming_the_roi(tmp_path):
    src = _source(tmp_path)
    out = write_rtstruct({"lesion 9": src.with_array(np.ones(src.shape, bool))}, src.meta["headers"],
                         tmp_path / "rs.dcm")
    _set_contours(out, [[_square(-20, 10, -10, 20, 40.0 + 3 * 4 + 1.5)]])  # half-way between slices 4 and 5
    with pytest.raises(DicomError, match=r"rs\.dcm: ROI 'lesion 9': a contour at 1\.50 mm .* between image planes"):
        read_rtstruct(out, src)
    _set_contours(out, [[_square(-20, 10, -10, 20, 40.0 + 3 * 30)]])
    with pytest.raises(DicomError, match=r"ROI 'lesion 9': a contour lies on slice 30, outside"):
        read_rtstruct(out, src)


def test_structure_and_references(tmp_path):
    import pydicom

    src = _source(tmp_path)
    out = write_rtstruct(_masks(src), src.meta["headers"], tmp_path / "rs.dcm",
                         identifiers={"PatientID": "P003", "DateShiftDays": "7"})
    ds = pydicom.dcmread(out)
    assert ds.preamble is not None and ds.Modality == "RTSTRUCT"
    assert ds.FrameOfReferenceUID == ds.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID
    assert "PositionReferenceIndicator" in ds
    assert [r.ROIName for r in ds.StructureSetROISequence] == ["lesion 1", "Liver (segment VIII)"]
    assert [o.RTROIInterpretedType for o in ds.RTROIObservationsSequence] == ["GTV", ""]
    assert ds.PatientID == "P003" and ds.StudyDate == "20240322"
    series = ds.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
    assert len(series.ContourImageSequence) == src.shape[0]
    assert src.meta["headers"][0].SOPInstanceUID not in str(ds)  # remapped when pseudonymised


@pytest.mark.skipif(shutil.which("dciodvfy") is None,
                    reason="dciodvfy (Debian package dicom3tools) is not installed; .ci/run installs it")
def test_rtstruct_passes_dciodvfy(tmp_path):
    src = _source(tmp_path, angle_deg=10.0)
    for ids in (None, {"PatientID": "P001", "DateShiftDays": "-3"}):
        out = write_rtstruct(_masks(src), src.meta["headers"], tmp_path / "rs.dcm", identifiers=ids)
        errors, text = syn.dciodvfy(out)
        assert "RTStructureSet" in text and errors == [], text


def test_reference_on_another_frame_of_reference_is_an_error(tmp_path):
    src = _source(tmp_path)
    out = write_rtstruct(_masks(src), src.meta["headers"], tmp_path / "rs.dcm")
    syn.write_series(tmp_path / "other", src.with_array(np.ones(src.shape)))  # same grid, new FoR
    other = read_dicom_series(tmp_path / "other")
    with pytest.raises(DicomError, match=r"rs\.dcm: FrameOfReferenceUID \(0020,0052\) .* differs from the "
                                         "reference image's"):
        read_rtstruct(out, other)
