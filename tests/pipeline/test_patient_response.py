"""Response composition (pipeline._lesion_response.grade): per lesion and per patient."""

import numpy as np
import pytest

from theraquant.pipeline._lesion_response import grade


def test_percist_per_lesion_with_liver_reference():
    base = {"1": 8.0, "2": 5.0, "3": 4.0, "4": 6.0}
    fu = {"1": 3.0, "2": 7.0, "3": np.nan, "4": 1.5}
    rows, patient = grade("percist", base, fu, reference={"mean": 2.0, "sd": 0.2, "followup_mean": 2.0})
    # 8 -> 3: -62.5 % and -5 SUL: PMR; 5 -> 7: +40 %, +2 SUL: PMD; 6 -> 1.5 <= liver mean: CMR
    assert rows["1"]["response"] == "PMR" and rows["1"]["responder"] == 1.0
    assert rows["2"]["response"] == "PMD" and rows["2"]["responder"] == 0.0
    assert rows["4"]["response"] == "CMR" and rows["4"]["responder"] == 1.0
    assert rows["3"]["response"] == "NE" and np.isnan(rows["3"]["responder"]) and "NE" in rows["3"]["_notes"][0]
    assert rows["1"]["response_change_pct"] == pytest.approx(-62.5)
    assert rows["1"]["response_criteria"] == "PERCIST 1.0" and rows["1"]["response_measure"] == "SULpeak"
    # patient level: hottest baseline 8.0 vs hottest follow-up 7.0 (another lesion): -12.5 %: SMD
    assert patient["response"] == "SMD" and patient["response_rule"]


def test_recist_and_mrecist_lesions_below_10mm_are_ne():
    rows, patient = grade("recist", {"a": 40.0, "b": 8.0}, {"a": 20.0, "b": 4.0})
    assert rows["a"]["response"] == "PR" and rows["b"]["response"] == "NE"
    assert patient["response"] == "PR"   # targets chosen by the engine: the measurable lesion only
    rows, _ = grade("mrecist", {"a": 40.0}, {"a": 0.0})
    assert rows["a"]["response"] == "CR" and rows["a"]["response_criteria"] == "mRECIST"


def test_eortc_on_suvmax():
    # EORTC 1999 after therapy: -25 % or more PMR, +25 % or more PMD (SUVmax, g/mL)
    rows, patient = grade("eortc", {"1": 10.0, "2": 8.0}, {"1": 6.0, "2": 10.4})
    assert rows["1"]["response"] == "PMR" and rows["2"]["response"] == "PMD"
    assert rows["1"]["response_measure"] == "SUVmax" and rows["1"]["response_criteria"] == "EORTC 1999"
    assert patient["response"] == "SMD"   # patient: sum of SUVmax 18 -> 16.4 (-8.9 %)


def test_new_lesion_makes_the_patient_progress():
    rows, patient = grade("recist", {"a": 40.0}, {"a": 20.0}, new_lesions=True)
    assert rows["a"]["response"] == "PR" and patient["response"] == "PD"
    rows, patient = grade("percist", {"1": 8.0}, {"1": 3.0}, reference={"mean": 2.0, "sd": 0.2},
                          new_lesions=True)
    assert rows["1"]["response"] == "PMR" and patient["response"] == "PMD"
