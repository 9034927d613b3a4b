"""Bad and degenerate input gives a TheraquantError that says what, the value and the fix."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from theraquant.errors import TheraquantError
from theraquant.response import Lesion, criteria, eortc, grade_lesions, mrecist, percist, recist

TWO = [Lesion("L1", "liver", 40.0), Lesion("L2", "lung", 30.0)]


@pytest.mark.parametrize("bad", [math.nan, -3.0, math.inf, "12", None])
def test_lesion_diameter_must_be_finite_non_negative(bad):
    with pytest.raises(TheraquantError, match=r"Lesion 'L1': diameter_mm must be a finite number >= 0 mm"):
        Lesion("L1", "liver", bad)


def test_lesion_id_and_flags():
    with pytest.raises(TheraquantError, match="Lesion id must be a non-empty string"):
        Lesion("", "liver", 10.0)
    with pytest.raises(TheraquantError, match="is_node must be True or False"):
        Lesion("N1", "node", 10.0, is_node="yes")


def test_nan_in_followup_mapping():
    with pytest.raises(TheraquantError, match=r"Lesion 'L1': diameter_mm .* got nan; give 0 for a lesion"):
        recist(TWO, {"L1": math.nan, "L2": 30.0})


def test_more_than_five_targets():
    base = [Lesion(f"L{i}", f"organ{i}", 20.0) for i in range(6)]
    with pytest.raises(TheraquantError, match=r"6 target lesions \(at most 5\).*select_targets=True"):
        recist(base, {})


def test_more_than_two_per_organ():
    base = [Lesion(f"L{i}", "liver", 20.0) for i in range(3)]
    with pytest.raises(TheraquantError, match=r"\{'liver': 3\} target lesions per organ \(at most 2\)"):
        mrecist(base, {})


def test_select_targets_documents_the_dropped():
    base = [Lesion(f"L{i}", "liver", 20.0 + i) for i in range(3)]
    res = recist(base, {"L0": 20.0, "L1": 21.0, "L2": 22.0}, select_targets=True)
    assert res.values["targets"] == ("L1", "L2")
    assert res.findings[0].check == "recist.target_selection" and "['L0']" in res.findings[0].message


def test_unmeasurable_target():
    with pytest.raises(TheraquantError, match=r"'N1' measures 12 mm, below the RECIST measurability limit of 15 mm"):
        recist([Lesion("N1", "lymph node", 12.0, is_node=True)], {"N1": 5.0})
    with pytest.raises(TheraquantError, match=r"'L1' measures 9.9 mm, below the RECIST measurability limit of 10 mm"):
        recist([Lesion("L1", "liver", 9.9)], {"L1": 5.0})


def test_followup_lesion_not_in_baseline():
    with pytest.raises(TheraquantError, match=r"followup has lesion id\(s\) \['L9'\].*new_lesions=True"):
        recist(TWO, {"L1": 40.0, "L2": 30.0, "L9": 12.0})


def test_duplicate_ids():
    with pytest.raises(TheraquantError, match="lesion id 'L1' twice"):
        recist([Lesion("L1", "liver", 40.0), Lesion("L1", "lung", 30.0)], {})


def test_nadir_above_baseline_and_negative():
    with pytest.raises(TheraquantError, match=r"nadir_mm=80.0 exceeds the baseline sum of diameters .*70 mm"):
        recist(TWO, {"L1": 40.0, "L2": 30.0}, nadir_mm=80.0)
    with pytest.raises(TheraquantError, match="nadir_mm must be a finite number >= 0 mm, got -1.0"):
        recist(TWO, {"L1": 40.0, "L2": 30.0}, nadir_mm=-1.0)


def test_non_target_value_and_empty_disease():
    with pytest.raises(TheraquantError, match=r"non_target must be one of \['CR', 'non-CR/non-PD', 'PD', 'NE'\]"):
        recist(TWO, {"L1": 40.0, "L2": 30.0}, non_target="SD")
    with pytest.raises(TheraquantError, match="baseline has no target lesion and non_target is None"):
        recist([], {})


def test_wrong_container_and_frame_columns():
    with pytest.raises(TheraquantError, match="baseline must hold Lesion objects, got tuple"):
        recist([("L1", "liver", 40.0)], {})
    with pytest.raises(TheraquantError, match=r"baseline DataFrame lacks column\(s\) \['organ'\]"):
        recist(pd.DataFrame({"id": ["L1"], "diameter_mm": [40.0]}), {})


def test_dataframe_input_equals_lesions():
    df = pd.DataFrame({"id": ["L1", "L2"], "organ": ["liver", "lung"], "diameter_mm": [40.0, 30.0]})
    fu = pd.DataFrame({"id": ["L1", "L2"], "diameter_mm": [28.0, 21.0]})
    a, b = recist(df, fu), recist(TWO, {"L1": 28.0, "L2": 21.0})
    assert (a.category, a.rule.id, dict(a.values)) == (b.category, b.rule.id, dict(b.values)) == (
        "PR", "recist.target.pr", dict(b.values))


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf])
def test_percist_baseline_must_be_positive(bad):
    with pytest.raises(TheraquantError, match="baseline_sulpeak must be a finite number > 0 SUL"):
        percist(bad, 1.0)


def test_percist_argument_checks():
    with pytest.raises(TheraquantError, match="reference_mean and reference_sd go together"):
        percist(5.0, 4.0, reference_mean=2.0)
    with pytest.raises(TheraquantError, match="reference must be 'liver' or 'blood_pool', got 'spleen'"):
        percist(5.0, 4.0, reference="spleen")
    with pytest.raises(TheraquantError, match="give both as numbers .lesion level. or both as mappings"):
        percist({"A": 5.0}, 4.0)
    with pytest.raises(TheraquantError, match="baseline_tlg and followup_tlg go together"):
        percist(5.0, 4.0, baseline_tlg=10.0)
    with pytest.raises(TheraquantError, match=r"followup_sulpeak\['B'\] must be a finite number >= 0 SUL, got nan"):
        percist({"A": 5.0}, {"B": math.nan})
    with pytest.raises(TheraquantError, match="baseline_sulpeak holds no lesion"):
        percist({}, {})
    with pytest.raises(TheraquantError, match="new_lesions must be True or False, got 'no'"):
        percist(5.0, 4.0, new_lesions="no")
    with pytest.raises(TheraquantError, match="strict must be 'warn', 'raise' or 'ignore'"):
        percist(5.0, 4.0, strict="loud")


def test_percist_unstable_reference_warns_or_raises():
    kw = dict(reference_mean=2.0, reference_sd=0.3, followup_reference_mean=2.5)
    with pytest.warns(UserWarning, match=r"liver reference SUL mean changed from 2 to 2.5 \(\+25.0 %, \+0.50 SUL\)"):
        res = percist(10.0, 6.0, **kw)
    assert res.category == "PMR" and res.findings[-1].level == 30
    with pytest.raises(TheraquantError, match="PERCIST needs a change < 20 % and < 0.3 SUL"):
        percist(10.0, 6.0, strict="raise", **kw)


def test_eortc_argument_checks():
    with pytest.raises(TheraquantError, match=r"must hold the baseline lesions \['A', 'B'\].*missing \['B'\]"):
        eortc({"A": 5.0, "B": 3.0}, {"A": 4.0})
    with pytest.raises(TheraquantError, match="aggregate must be 'sum' or 'max', got 'mean'"):
        eortc({"A": 5.0}, {"A": 4.0}, aggregate="mean")
    with pytest.raises(TheraquantError, match="baseline_extent_mm and followup_extent_mm go together"):
        eortc(5.0, 4.0, followup_extent_mm=30.0)
    with pytest.raises(TheraquantError, match="baseline_suv must be a finite number > 0 g/mL, got nan"):
        eortc(math.nan, 4.0)


def test_threshold_overrides_are_checked():
    with pytest.raises(TheraquantError, match=r"unknown name\(s\) \['pr'\] for RECIST; allowed:"):
        recist(TWO, {"L1": 1.0, "L2": 1.0}, thresholds={"pr": 0.3})
    with pytest.raises(TheraquantError, match=r"thresholds\['relative_change'\] must be a finite number >= 0"):
        percist(5.0, 4.0, thresholds={"relative_change": -0.3})
    with pytest.raises(TheraquantError, match=r"thresholds\['max_targets'\] must be a positive integer"):
        recist(TWO, {}, thresholds={"max_targets": 2.5})
    with pytest.raises(TheraquantError, match=r"criteria must be one of \['EORTC', 'PERCIST', 'RECIST', 'mRECIST'\]"):
        criteria("WHO")


def test_grade_lesions_rejects_bad_rows():
    t = pd.DataFrame({"baseline": [5.0, np.nan, 4.0], "followup": [4.0, 3.0, 4.0]})
    with pytest.raises(TheraquantError, match=r"column 'baseline' \(baseline\) .* rows \[1\] hold \[nan\]"):
        grade_lesions(t, "PERCIST")
    t = pd.DataFrame({"baseline": [20.0, 30.0], "followup": [-1.0, 3.0]})
    with pytest.raises(TheraquantError, match=r"column 'followup' .* rows \[0\] hold \[-1.0\]"):
        grade_lesions(t, "RECIST")
    t = pd.DataFrame({"baseline": [5.0], "followup": [np.nan]})
    with pytest.raises(TheraquantError, match=r"column 'followup' is NaN in rows \[0\].*'resolved' column"):
        grade_lesions(t, "EORTC")
    with pytest.raises(TheraquantError, match=r"table lacks column\(s\) \['SUV_fu'\]"):
        grade_lesions(t, "EORTC", columns={"followup": "SUV_fu"})
    with pytest.raises(TheraquantError, match=r"unknown canonical name\(s\) \['suv'\]"):
        grade_lesions(t, "EORTC", columns={"suv": "x"})


def test_pandas_series_is_a_lesion_collection():
    base = pd.Series({"A": 9.0, "B": 6.0})
    fu = pd.Series({"A": 5.0, "B": 12.0})
    res = percist(base, fu)
    assert (res.level, res.values["followup_lesion"], res.category) == ("patient", "B", "PMD")
    assert eortc(base, fu).values["baseline_suv"] == 15.0  # sum of the two regions
