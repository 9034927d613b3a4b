"""Engines take boolean masks: label images, probability masks and NaN are errors saying how to make one."""

from __future__ import annotations

import numpy as np
import pytest

from theraquant import dosimetry
from theraquant.errors import TheraquantError
from theraquant.image import as_mask
from theraquant.pet import hypoxia, lesion_metrics

IMG = np.full((6, 6, 6), 2.0)
LABELS = np.zeros((6, 6, 6), np.int16)
LABELS[1:3, 1:3, 1:3] = 1
LABELS[3:5, 3:5, 3:5] = 2
PROB = np.where(LABELS > 0, 0.7, 0.0)
NANMASK = np.where(LABELS > 0, 1.0, np.nan)


@pytest.mark.parametrize(("mask", "match"), [
    (LABELS, r"mask is a label image \(values \[0, 1, 2\]\), not a mask; make one mask per label, e.g. mask == 2"),
    (PROB, r"mask is a fractional \(probability\) mask with values other than 0 and 1 \(e.g. 0.7\), "
           r"not a boolean mask; threshold it, e.g. mask >= 0.5"),
    (NANMASK, r"mask holds 200 NaN value\(s\)"),
    (np.where(LABELS > 0, "a", "b"), r"mask must be a boolean array, got dtype <U1"),
])
def test_engines_refuse_non_boolean_masks(mask, match):
    with pytest.raises(TheraquantError, match=match) as info:
        lesion_metrics(IMG, mask, 2.0)
    assert info.value.argument == "mask"
    with pytest.raises(TheraquantError, match=match):
        dosimetry.dose_volume(IMG, mask)
    with pytest.raises(TheraquantError, match=match):
        dosimetry.calibrate_activity(IMG, administered_bq=1e9, mask=mask)
    blood = LABELS == 2
    tumour_match = match.replace("mask", "tumour_mask", 1).replace("e.g. mask", "e.g. tumour_mask")
    with pytest.raises(TheraquantError, match=tumour_match):
        hypoxia(IMG, mask, blood_mask=blood, spacing_mm=2.0)


def test_lossless_masks_are_accepted():
    # bool as is; 0/1 integers and 0.0/1.0 floats convert without loss
    for m in (LABELS == 1, (LABELS == 1).astype(np.uint8), (LABELS == 1).astype(np.float32)):
        out = as_mask(m)
        assert out.dtype == bool and int(out.sum()) == 8
    assert lesion_metrics(IMG, (LABELS == 1).astype(np.uint8), 2.0)["MTV_mL"] == pytest.approx(8 * 8e-3)
