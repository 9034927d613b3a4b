"""FMISO hypoxia ratios, hypoxic volume and fraction.

Thresholds: tests/data/nm/analytic/fmiso_hypoxia_thresholds.csv (Rasey 1996 / Muzi 2015 T/B >= 1.2;
Soydal 2025 ARTE-MISO T/BP > 1.29; Yeh 1996 T/M >= 1.24). Expected values below are computed by hand
from the phantom's piecewise-constant values.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from theraquant.errors import TheraquantError
from theraquant.pet import HYPOXIA_THRESHOLDS, hypoxia, suv_peak

CSV = Path(__file__).resolve().parents[1] / "data" / "nm" / "analytic" / "fmiso_hypoxia_thresholds.csv"
SP = (2.0, 2.0, 2.0)  # mm; voxel 8 uL


@pytest.fixture()
def phantom():
    img = np.full((30, 30, 30), 0.9)
    tumour = np.zeros(img.shape, bool)
    tumour[5:15, 5:15, 5:15] = True           # 1000 voxels = 8 mL
    img[5:10, 5:15, 5:15] = 2.0               # 500 voxels at 2.0
    img[10:15, 5:15, 5:15] = 1.25             # 500 voxels at 1.25
    img[10:12, 5:15, 5:15] = 1.5              # of which 200 at 1.5
    blood = np.zeros(img.shape, bool)
    blood[20:26, 20:26, 20:26] = True
    img[blood] = 1.25
    muscle = np.zeros(img.shape, bool)
    muscle[20:26, 2:8, 2:8] = True
    img[muscle] = 1.0
    return img, tumour, muscle, blood


def test_ratios_and_hypoxic_volume(phantom):
    img, tumour, muscle, blood = phantom
    res = hypoxia(img, tumour, muscle_mask=muscle, blood_mask=blood, spacing_mm=SP)
    assert res["T/M"] == pytest.approx(2.0)
    assert res["T/BP"] == pytest.approx(1.6)
    # voxel / blood 1.25: 2.0 -> 1.6 and 1.5 -> 1.2 are >= 1.2 (500 + 200 voxels); 1.25 -> 1.0 is not
    assert res["hypoxic_fraction"] == pytest.approx(0.7)
    assert res["hypoxic_volume_mL"] == pytest.approx(700 * 8e-3)
    assert res["reference"] == "blood pool" and res["tumour_volume_mL"] == pytest.approx(8.0)


def test_muscle_reference_when_no_blood_mask(phantom):
    img, tumour, muscle, _ = phantom
    res = hypoxia(img, tumour, muscle_mask=muscle, spacing_mm=SP, threshold=1.25)
    assert np.isnan(res["T/BP"]) and res["reference"] == "muscle"
    # voxel / muscle 1.0 >= 1.25: all 1000 tumour voxels (1.25 counts: "at least" the threshold)
    assert res["hypoxic_fraction"] == 1.0


def test_named_threshold_radioembolization(phantom):
    img, tumour, _, blood = phantom
    res = hypoxia(img, tumour, blood_mask=blood, spacing_mm=SP, threshold="radioembolization")
    assert res["threshold"] == 1.29 and res["threshold_name"] == "radioembolization"
    assert res["hypoxic_fraction"] == pytest.approx(0.5)  # only 2.0 / 1.25 = 1.6 >= 1.29


def test_named_thresholds_match_the_literature_table():
    with open(CSV, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))

    def cutoff(author):
        row = next(r for r in rows if r["source"].startswith(author))
        return row["threshold"]

    assert "T/BP > 1.29" in cutoff("Soydal") and HYPOXIA_THRESHOLDS["soydal2025"].rule() == "T/BP > 1.29"
    assert "TB >= 1.2" in cutoff("Muzi") and HYPOXIA_THRESHOLDS["rasey1996"].rule() == "T/BP >= 1.2"
    assert ">= 1.24" in cutoff("Yeh") and HYPOXIA_THRESHOLDS["yeh1996"].rule() == "T/M >= 1.24"
    assert HYPOXIA_THRESHOLDS["rasey1996"].statistic == "voxel" and float(HYPOXIA_THRESHOLDS["arte-miso"]) == 1.29


def _lesion_at(ratio_num, blood_value=1.25):
    """A tumour whose maximum is ``ratio_num`` and a blood pool at ``blood_value`` (2 mm voxels)."""
    img = np.full((12, 12, 12), 0.5)
    tumour = np.zeros(img.shape, bool)
    tumour[2:5, 2:5, 2:5] = True
    img[tumour] = 0.8
    img[3, 3, 3] = ratio_num
    blood = np.zeros(img.shape, bool)
    blood[8:11, 8:11, 8:11] = True
    img[blood] = blood_value
    return img, tumour, blood


def test_artemiso_exactly_at_cutoff_is_not_hypoxic():
    # T/BP = (1.29 * 1.25) / 1.25: 1.29 up to round-off; ARTE-MISO says "> 1.29"
    img, tumour, blood = _lesion_at(1.29 * 1.25)
    res = hypoxia(img, tumour, blood_mask=blood, spacing_mm=SP, threshold="arte-miso")
    assert res["T/BP"] == pytest.approx(1.29, rel=1e-12)
    assert res.hypoxic is False and res.hypoxic_volume_mL == 0.0
    assert res.decided_by == "T/BP = 1.29 <= 1.29 (arte-miso)"
    assert res.threshold_ratio == "T/BP" and res.threshold_operator == ">"
    # 1e-6 above the cut-off (1000x the comparison tolerance) is hypoxic, one voxel of 8 uL
    img, tumour, blood = _lesion_at(1.290001 * 1.25)
    res = hypoxia(img, tumour, blood_mask=blood, spacing_mm=SP, threshold="arte-miso")
    assert res.hypoxic is True and res.hypoxic_volume_mL == pytest.approx(8e-3)


def test_rasey_at_cutoff_counts_voxel():
    # Rasey 1996: TB ">= 1.2": a voxel at exactly 1.2 (1.5 / 1.25) is hypoxic
    img, tumour, blood = _lesion_at(1.5)
    res = hypoxia(img, tumour, blood_mask=blood, spacing_mm=SP, threshold="rasey1996")
    assert res.hypoxic is True and res.hypoxic_volume_mL == pytest.approx(8e-3)
    assert res.threshold_operator == ">="


def test_numeric_threshold_takes_operator():
    img, tumour, blood = _lesion_at(1.5)
    strict = hypoxia(img, tumour, blood_mask=blood, spacing_mm=SP, threshold=1.2, operator=">")
    assert strict.hypoxic is False and strict.threshold_source == "user-given"


@pytest.mark.parametrize(("name", "mask", "match"), [
    ("yeh1996", "blood", r"'yeh1996' is a T/M cut-off \(T/M >= 1.24.*only blood_mask \(T/BP\) was given"),
    ("arte-miso", "muscle", r"'arte-miso' is a T/BP cut-off \(T/BP > 1.29.*only muscle_mask \(T/M\) was given"),
])
def test_threshold_with_wrong_reference_names_both(phantom, name, mask, match):
    img, tumour, muscle, blood = phantom
    kw = {"blood_mask": blood} if mask == "blood" else {"muscle_mask": muscle}
    with pytest.raises(TheraquantError, match=match) as info:
        hypoxia(img, tumour, spacing_mm=SP, threshold=name, **kw)
    assert info.value.argument == ("muscle_mask" if mask == "blood" else "blood_mask")


def test_named_threshold_fixes_its_statistic_and_operator(phantom):
    img, tumour, _, blood = phantom
    with pytest.raises(TheraquantError, match="defined on the tumour max over the reference mean"):
        hypoxia(img, tumour, blood_mask=blood, spacing_mm=SP, threshold="arte-miso", tumour_stat="mean")
    with pytest.raises(TheraquantError, match=r"defined as T/BP > 1.29 .* operator='>=' contradicts it"):
        hypoxia(img, tumour, blood_mask=blood, spacing_mm=SP, threshold="arte-miso", operator=">=")


def test_yeh_uses_muscle_even_with_blood(phantom):
    img, tumour, muscle, blood = phantom
    res = hypoxia(img, tumour, muscle_mask=muscle, blood_mask=blood, spacing_mm=SP, threshold="yeh1996")
    # voxel / muscle 1.0: all 1000 tumour voxels >= 1.24 (1.25, 1.5, 2.0); T/M = 2.0
    assert res.reference == "muscle" and res.hypoxic_fraction == 1.0 and res.decided_by.startswith("T/M = 2 >= 1.24")


def test_selectable_statistics(phantom):
    img, tumour, muscle, blood = phantom
    mean = hypoxia(img, tumour, blood_mask=blood, spacing_mm=SP, tumour_stat="mean")
    assert mean["T/BP"] == pytest.approx(img[tumour].mean() / 1.25)
    peak = hypoxia(img, tumour, muscle_mask=muscle, spacing_mm=SP, tumour_stat="peak", reference_stat="max")
    assert peak["T/M"] == pytest.approx(suv_peak(img, tumour, SP) / 1.0)
    # the 2.0 half is 10 mm thick, thinner than the 12.4 mm sphere: the peak mixes in lower voxels
    assert 1.5 < peak["tumour_value"] < 2.0


@pytest.mark.parametrize(("kwargs", "match"), [
    ({}, "needs a reference region"),
    ({"blood": True, "threshold": "tight"}, "threshold 'tight' is not a known name"),
    ({"blood": True, "tumour_stat": "p90"}, "tumour_stat must be one of"),
    ({"blood": True, "threshold": -1.0}, "threshold must be a positive ratio"),
])
def test_bad_options(phantom, kwargs, match):
    img, tumour, _, blood = phantom
    kw = dict(kwargs)
    if kw.pop("blood", False):
        kw["blood_mask"] = blood
    with pytest.raises(TheraquantError, match=match):
        hypoxia(img, tumour, spacing_mm=SP, **kw)


def test_bad_arrays(phantom):
    img, tumour, muscle, blood = phantom
    with pytest.raises(TheraquantError, match="values and blood_mask must be on the same grid"):
        hypoxia(img, tumour, blood_mask=blood[:-1], spacing_mm=SP)
    bad = img.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(TheraquantError, match="NaN or infinite"):
        hypoxia(bad, tumour, blood_mask=blood, spacing_mm=SP)
    with pytest.raises(TheraquantError, match="the muscle reference .* is 0"):
        hypoxia(np.where(muscle, 0.0, img), tumour, muscle_mask=muscle, spacing_mm=SP)
