"""Named constants say where they come from, and a placeholder says it was used (issue #9)."""

from __future__ import annotations

import numpy as np


def test_single_slice_without_thickness_says_its_spacing_is_assumed(tmp_path):
    # io: the 1 mm placeholder of a one-slice series without SliceThickness is recorded, not hidden
    from theraquant import Image
    from theraquant.io import read_dicom_series, write_dicom_series

    img = Image.from_spacing(np.ones((1, 4, 4)), (3.0, 2.0, 2.0))
    files = write_dicom_series(img, tmp_path / "s", modality="MR", headers={})
    import pydicom

    for f in files:
        ds = pydicom.dcmread(f)
        for tag in ("SliceThickness", "SpacingBetweenSlices"):
            if tag in ds:
                delattr(ds, tag)
        ds.save_as(f)
    back = read_dicom_series(tmp_path / "s")
    assert back.meta["slice_spacing_assumed_mm"] == 1.0 and back.spacing_mm[0] == 1.0


def test_plausibility_limits_are_named_and_cited():
    import inspect

    from theraquant.pet import _suv

    src = inspect.getsource(_suv)
    assert _suv.MAX_WEIGHT_KG == 400.0 and "Guinness" in src.split("MAX_WEIGHT_KG =")[0].rsplit("\n\n", 1)[-1]
    assert _suv.MAX_HEIGHT_M == 3.0 and "2.72 m" in src.split("MAX_HEIGHT_M =")[0].rsplit("MAX_WEIGHT_KG", 1)[-1]
