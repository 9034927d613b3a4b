"""DICOM SEG in and out (theraquant.io.read_seg / write_seg), checked against the masks written."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest

from theraquant.errors import DicomError, TheraquantError
from theraquant.io import Segmentation, read_dicom_series, read_seg, write_seg

_spec = importlib.util.spec_from_file_location(
    "tq_dicom_synthetic", Path(__file__).parents[1] / "dicom_results" / "synthetic.py")
syn = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(syn)


def _source(tmp_path, **kw):
    img = syn.oblique_image(**kw)
    img = img.with_array(np.random.default_rng(1).random(img.shape).astype(np.float32) * 100)
    syn.write_series(tmp_path / "mr", img)
    return read_dicom_series(tmp_path / "mr")


def _masks(src):
    c = src.index_to_world([2.6, 9.0, 11.0])
    lesion = syn.ball(src, c, 6.0)
    liver = syn.ball(src, src.index_to_world([3.0, 9.5, 12.0]), 13.0)
    liver[0] = False  # an empty first slice: its frames are omitted from the SEG
    return {"lesion 1": src.with_array(lesion), "liver": src.with_array(liver),
            "blood pool": src.with_array(syn.ball(src, src.index_to_world([4, 3, 3]), 3.0))}


@pytest.mark.parametrize("angle, flip", [(0.0, False), (25.0, False), (0.0, True)])
def test_seg_round_trip_same_voxels_labels_and_lps_geometry(tmp_path, angle, flip):
    src = _source(tmp_path, angle_deg=angle, flip_slices=flip)
    masks = _masks(src)
    out = write_seg(masks, src.meta["headers"], tmp_path / "masks.dcm", series_description="lesions")
    seg = read_seg(out)
    assert isinstance(seg, Segmentation)
    assert list(seg.masks) == ["lesion 1", "liver", "blood pool"]  # labels exactly as given, in order
    hdr = src.meta["headers"][0]
    assert seg.referenced_series_uids == (hdr.SeriesInstanceUID,)
    assert seg.frame_of_reference_uid == hdr.FrameOfReferenceUID
    assert seg.study_uid == hdr.StudyInstanceUID  # identifiers=None joins the source study
    for label, m in masks.items():
        got = seg.masks[label]
        assert got.array.dtype == bool
        # on the SEG's own frames' geometry: every voxel maps to the same LPS point (0.01 mm:
        # positions are stored as DS text of 16 characters)
        idx = np.argwhere(got.array)
        want = np.argwhere(m.array)
        assert len(idx) == len(want) > 0
        np.testing.assert_allclose(np.sort(got.index_to_world(idx), axis=0),
                                   np.sort(m.index_to_world(want), axis=0), atol=0.01)
    # on the reference grid: voxel for voxel, and the grid is the source's (slice axis ascending)
    on_ref = read_seg(out, reference=src)
    for label, m in masks.items():
        assert on_ref.masks[label].same_grid(src)
        np.testing.assert_array_equal(on_ref.masks[label].array, m.array)
    # a mask spanning every slice comes back on exactly the source grid, even without reference
    full = {"liver": src.with_array(np.ones(src.shape, bool))}
    back = read_seg(write_seg(full, src.meta["headers"], tmp_path / "full.dcm")).masks["liver"]
    assert back.same_grid(src, atol_mm=0.01)


def test_seg_property_codes_and_description(tmp_path):
    import pydicom

    src = _source(tmp_path)
    out = write_seg(_masks(src), src.meta["headers"], tmp_path / "m.dcm", series_description="lesions run 1")
    ds = pydicom.dcmread(out)
    assert ds.file_meta.TransferSyntaxUID and ds.preamble is not None  # Part 10 file
    assert ds.SeriesDescription == "lesions run 1"
    assert ds.SeriesInstanceUID.startswith("1.2.826.0.1.3680043.8.498.")
    types = {s.SegmentLabel: (s.SegmentedPropertyTypeCodeSequence[0].CodeValue,
                              s.SegmentedPropertyTypeCodeSequence[0].CodingSchemeDesignator)
             for s in ds.SegmentSequence}
    assert types == {"lesion 1": ("108369006", "SCT"), "liver": ("10200004", "SCT"),
                     "blood pool": ("87612001", "SCT")}


def test_seg_pseudonymised_identifiers(tmp_path):
    import pydicom

    src = _source(tmp_path)
    ids = {"PatientID": "P007", "DateShiftDays": "-100"}
    a = write_seg(_masks(src), src.meta["headers"], tmp_path / "a.dcm", identifiers=ids)
    b = write_seg(_masks(src), src.meta["headers"], tmp_path / "b.dcm", identifiers=ids)
    da, db = pydicom.dcmread(a), pydicom.dcmread(b)
    hdr = src.meta["headers"][0]
    assert (str(da.PatientName), da.PatientID, da.PatientBirthDate) == ("P007^", "P007", "")
    assert da.StudyDate == "20231206"  # 2024-03-15 - 100 days
    assert "ACC123" not in str(da) and "Test^Patient" not in str(da) and hdr.StudyInstanceUID not in str(da)
    # remapped consistently: two objects of one patient share study and frame of reference
    assert da.StudyInstanceUID == db.StudyInstanceUID != hdr.StudyInstanceUID
    assert da.FrameOfReferenceUID == db.FrameOfReferenceUID != hdr.FrameOfReferenceUID
    assert da.SOPInstanceUID != db.SOPInstanceUID
    assert da.PatientIdentityRemoved == "YES"
    # the caller's datasets are untouched
    assert (hdr.PatientID, str(hdr.PatientName), hdr.StudyDate) == ("TQ-0001", "Test^Patient", "20240315")
    assert "PatientIdentityRemoved" not in hdr
    with pytest.raises(TheraquantError, match="DateShiftDays"):
        write_seg(_masks(src), src.meta["headers"], tmp_path / "c.dcm", identifiers={"DateShiftDays": "x"})


def test_read_labelmap_seg(tmp_path):
    import highdicom as hd
    from pydicom.sr.codedict import codes

    src = _source(tmp_path)
    lab = np.zeros(src.shape, np.uint8)
    lab[1:4, 4:9, 5:10] = 1
    lab[2:5, 12:16, 14:20] = 2
    vol = hd.Volume(lab, src.affine, coordinate_system="PATIENT",
                    frame_of_reference_uid=src.meta["headers"][0].FrameOfReferenceUID)
    descs = [hd.seg.SegmentDescription(i, name, codes.SCT.MorphologicallyAbnormalStructure, codes.SCT.Neoplasm,
                                       "MANUAL") for i, name in ((1, "lesion 4"), (2, "Lesion 7b"))]
    seg = hd.seg.Segmentation(src.meta["headers"], vol, "LABELMAP", descs, hd.UID(), 5, hd.UID(), 1, "x", "x",
                              "1", "1")
    seg.save_as(tmp_path / "lab.dcm")
    got = read_seg(tmp_path / "lab.dcm", reference=src)
    assert list(got.masks) == ["lesion 4", "Lesion 7b"]
    np.testing.assert_array_equal(got.masks["lesion 4"].array, lab == 1)
    np.testing.assert_array_equal(got.masks["Lesion 7b"].array, lab == 2)


def test_fractional_seg_is_rejected_naming_the_file(tmp_path):
    import highdicom as hd
    from pydicom.sr.codedict import codes

    src = _source(tmp_path)
    prob = np.zeros(src.shape, np.float32)
    prob[2, 5:9, 5:9] = 0.7
    vol = hd.Volume(prob, src.affine, coordinate_system="PATIENT",
                    frame_of_reference_uid=src.meta["headers"][0].FrameOfReferenceUID)
    desc = hd.seg.SegmentDescription(1, "lesion 1", codes.SCT.MorphologicallyAbnormalStructure,
                                     codes.SCT.Neoplasm, "MANUAL")
    seg = hd.seg.Segmentation(src.meta["headers"], vol, "FRACTIONAL", [desc], hd.UID(), 5, hd.UID(), 1, "x",
                              "x", "1", "1")
    seg.save_as(tmp_path / "prob.dcm")
    with pytest.raises(DicomError, match=r"prob\.dcm: SegmentationType \(0062,0001\) is FRACTIONAL.*BINARY"):
        read_seg(tmp_path / "prob.dcm")


def test_bad_inputs(tmp_path):
    src = _source(tmp_path)
    with pytest.raises(DicomError, match="nope.dcm: no such SEG file"):
        read_seg(tmp_path / "nope.dcm")
    (tmp_path / "junk.dcm").write_bytes(b"not dicom")
    with pytest.raises(DicomError, match="junk.dcm: not a readable DICOM Segmentation"):
        read_seg(tmp_path / "junk.dcm")
    with pytest.raises(TheraquantError, match=r"masks\['lesion 1'\] holds values other than 0 and 1"):
        write_seg({"lesion 1": src.with_array(np.full(src.shape, 2))}, src.meta["headers"], tmp_path / "x.dcm")
    other = syn.oblique_image(shape=(3, 4, 5))
    with pytest.raises(TheraquantError, match="on different grids"):
        write_seg({"a": src.with_array(np.ones(src.shape, bool)), "b": other.with_array(np.ones((3, 4, 5), bool))},
                  src.meta["headers"], tmp_path / "x.dcm")
    with pytest.raises(TheraquantError, match="source must be the pydicom datasets"):
        write_seg({"a": src.with_array(np.ones(src.shape, bool))}, [1, 2], tmp_path / "x.dcm")


@pytest.mark.skipif(shutil.which("dciodvfy") is None,
                    reason="dciodvfy (Debian package dicom3tools) is not installed; .ci/run installs it")
def test_seg_passes_dciodvfy(tmp_path):
    src = _source(tmp_path, angle_deg=15.0)
    for ids in (None, {"PatientID": "P001", "DateShiftDays": "-12"}):
        out = write_seg(_masks(src), src.meta["headers"], tmp_path / "m.dcm", identifiers=ids)
        errors, text = syn.dciodvfy(out)
        assert "Segmentation" in text and errors == [], text


def test_seg_of_one_slice_and_of_slices_with_gaps(tmp_path):
    src = _source(tmp_path, angle_deg=10.0)
    one = np.zeros(src.shape, bool)
    one[3, 5:9, 6:10] = True
    gaps = np.zeros(src.shape, bool)
    gaps[1, 2:4, 2:4] = gaps[4, 2:4, 2:4] = True  # empty slices 2 and 3 are omitted from the SEG
    out = write_seg({"lesion 1": src.with_array(one), "lesion 2": src.with_array(gaps)}, src.meta["headers"],
                    tmp_path / "s.dcm")
    own = read_seg(out).masks
    assert own["lesion 2"].shape == (4, 20, 24) and own["lesion 2"].array.sum() == 8  # slices 1..4
    got = read_seg(out, reference=src).masks
    np.testing.assert_array_equal(got["lesion 1"].array, one)
    np.testing.assert_array_equal(got["lesion 2"].array, gaps)
    single = read_seg(write_seg({"lesion 1": src.with_array(one)}, src.meta["headers"], tmp_path / "1.dcm"))
    m = single.masks["lesion 1"]
    assert m.shape == (1, 20, 24) and np.allclose(m.spacing_mm, src.spacing_mm, atol=1e-6)
    np.testing.assert_allclose(m.origin_lps, src.index_to_world([3, 0, 0]), atol=0.01)
