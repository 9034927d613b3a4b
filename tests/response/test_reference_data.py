"""Thresholds are data: the package's criteria.json against the shared reference files.

Sources: tests/data/nm/analytic/response_criteria_percist_eortc.json (PERCIST 1.0 from
Wahl 2009 and O, Lodge & Wahl 2016; EORTC from Young 1999) and the PERCIST worked
examples in tests/data/nm/analytic/analytic_checks.json (computed from the formulas
quoted there). See tests/data/nm/README.md for provenance.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from theraquant.response import criteria, eortc, percist, recist, Lesion

DATA = Path(__file__).parents[1] / "data" / "nm" / "analytic"
REF = json.loads((DATA / "response_criteria_percist_eortc.json").read_text())
EXAMPLES = json.loads((DATA / "analytic_checks.json").read_text())["worked_examples"]["percist_examples"]


def test_percist_thresholds_match_reference_file():
    got = criteria("PERCIST")["thresholds"]
    ref = REF["PERCIST_1.0"]
    assert got["relative_change"] == ref["thresholds"]["relative_change"]
    assert got["absolute_change_SUL"] == ref["thresholds"]["absolute_change_SUL"]
    assert got["TLG_increase_for_PMD"] == ref["thresholds"]["TLG_increase_for_PMD"]
    assert got["reference_change_max_fraction"] == ref["comparability_checks"]["liver_SULmean_change_max_fraction"]
    assert got["reference_change_max_abs_SUL"] == ref["comparability_checks"]["liver_SULmean_change_max_abs_SUL"]
    # "1.5 x liver SULmean + 2 x SD" and "2.0 x blood-pool SULmean + 2 x SD"
    assert (got["liver_factor"], got["liver_sd_factor"]) == (1.5, 2.0)
    assert (got["blood_pool_factor"], got["blood_pool_sd_factor"]) == (2.0, 2.0)
    assert "1.5 x liver SULmean + 2 x SD" in ref["reference_region"]["liver"]["measurability_threshold"]


def test_eortc_thresholds_match_reference_file():
    got = criteria("EORTC")["thresholds"]
    ref = REF["EORTC_1999"]["thresholds"]
    assert got["PMR_after_1_cycle"] == ref["PMR_after_1_cycle"][0]
    assert got["PMR_after_more_cycles"] == ref["PMR_after_more_cycles"]
    assert got["PMD_increase"] == ref["PMD_increase"]
    assert got["extent_increase_longest_dimension"] == ref["extent_increase_longest_dimension"]


def test_recist_thresholds_are_the_papers():
    # Eisenhauer 2009: >= 10 mm (nodes >= 15 mm short axis), nodes < 10 mm normal,
    # 5 targets / 2 per organ, PR -30 %, PD +20 % and +5 mm; Lencioni & Llovet 2010: no 5 mm rule.
    r = criteria("recist")["thresholds"]
    assert (r["lesion_measurable_mm"], r["node_measurable_mm"], r["node_normal_mm"]) == (10.0, 15.0, 10.0)
    assert (r["max_targets"], r["max_targets_per_organ"]) == (5, 2)
    assert (r["pr_decrease"], r["pd_increase"], r["pd_absolute_mm"]) == (0.3, 0.2, 5.0)
    assert criteria("mRECIST")["thresholds"]["pd_absolute_mm"] == 0.0
    assert criteria("mRECIST")["doi"] == "10.1055/s-0030-1247132"


GRADED = [e for e in EXAMPLES if "expected" in e]


@pytest.mark.parametrize("ex", GRADED, ids=[e["why"] for e in GRADED])
def test_percist_worked_examples(ex):
    res = percist(ex["baseline_SULpeak"], ex["followup_SULpeak"], new_lesions=ex["new_lesions"])
    assert res.category == ex["expected"]


def test_percist_measurability_examples():
    liver = next(e for e in EXAMPLES if "liver_SULmean" in e)
    blood = next(e for e in EXAMPLES if "bloodpool_SULmean" in e)
    r = percist(5.0, 5.0, reference_mean=liver["liver_SULmean"], reference_sd=liver["liver_SD"])
    assert r.values["measurability_threshold_sul"] == pytest.approx(
        liver["expected_measurability_threshold"], abs=1e-12)
    r = percist(5.0, 5.0, reference_mean=blood["bloodpool_SULmean"], reference_sd=blood["bloodpool_SD"],
                reference="blood_pool")
    assert r.values["measurability_threshold_sul"] == pytest.approx(
        blood["expected_measurability_threshold"], abs=1e-12)


def test_threshold_override_changes_the_decision():
    # 2.0 -> 1.3 is SMD with the 0.8 SUL rule (worked example) and PMR with a 0.5 SUL rule
    assert percist(2.0, 1.3).category == "SMD"
    res = percist(2.0, 1.3, thresholds={"absolute_change_SUL": 0.5})
    assert res.category == "PMR"
    assert res.thresholds["absolute_change_SUL"] == 0.5
    assert "0.5 SUL" in res.rule.text
    # -21 %: SMD by EORTC's "greater than 25 %", PMR with a 20 % rule
    assert eortc(10.0, 7.9).category == "SMD"
    assert eortc(10.0, 7.9, thresholds={"PMR_after_more_cycles": 0.2}).category == "PMR"


def test_result_is_frozen_and_records_its_making():
    base = [Lesion("L1", "liver", 40.0)]
    res = recist(base, {"L1": 20.0})
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.category = "CR"
    with pytest.raises(TypeError):
        res.values["baseline_sum_mm"] = 1.0
    d = res.as_dict()
    json.dumps(d)  # plain JSON
    assert (d["criteria"], d["version"], d["reference"]) == ("RECIST", "1.1", "10.1016/j.ejca.2008.10.026")
    assert d["thresholds"]["pd_absolute_mm"] == 5.0
    text = res.summary()
    assert "recist.target.pr" in text and "baseline_sum_mm" in text and "category: PR" in text
    pet = percist(10.0, 6.0)
    assert pet.reference.startswith("10.2967/jnumed.108.057307")
    assert [f.check for f in pet.findings] == ["percist.measurability"]  # info: not checked


def test_each_rule_has_its_sources_operator_and_quote():
    # PERCIST 1.0: PMR ">= 30 % and >= 0.8 SUL", PMD "> 30 % and > 0.8 SUL" (reference file wording)
    ref = REF["PERCIST_1.0"]["categories"]
    c = criteria("PERCIST")
    assert ">= 30 %" in ref["PMR"] and "> 30 %" in ref["PMD"]
    assert dict(c["operators"]) == {"pmr_relative": ">=", "pmr_absolute": ">=", "pmd_relative": ">",
                                    "pmd_absolute": ">", "pmd_tlg": ">"}
    assert "a minimum of 30%" in c["quotes"]["pmr"] and ">30% increase" in c["quotes"]["pmd"]
    # EORTC 1999: PMD "> 25 %", PMR "> 25 % after more than one cycle", ">= 15 %" after one
    assert "> 25 %" in REF["EORTC_1999"]["categories"]["PMD"]
    assert dict(criteria("EORTC")["operators"]) == {"pmr_after_1_cycle": ">=", "pmr_after_more_cycles": ">",
                                                    "pmd_increase": ">", "pmd_extent": ">"}
    # RECIST 1.1 / mRECIST: "at least" for PR and PD
    assert set(criteria("RECIST")["operators"].values()) == {">="} == set(criteria("mRECIST")["operators"].values())
    # the rule sentences say the comparison
    assert percist(10.0, 14.0).rule.text.startswith("SULpeak increased by more than 30 % and more than 0.8 SUL")
    assert percist(10.0, 6.0).rule.text.startswith("SULpeak decreased by at least 30 % and at least 0.8 SUL")


def test_relative_change_at_the_boundary_uses_the_stated_tolerance():
    # 13.0 / 10.0 - 1 = 0.30000000000000004 in float64: exactly +30 %, hence not "> 30 %"
    assert 13.0 / 10.0 - 1 > 0.3
    assert percist(10.0, 13.0).category == "SMD"
    assert percist(10.0, 7.0).category == "PMR"          # -30 %, -3 SUL: "a minimum of 30 %"
    assert percist(10.0, 13.0 + 2e-8).category == "PMD"  # +30 % + 2e-9: beyond the 1e-9 tolerance


def test_global_inclusive_switch_is_gone():
    import pytest as _pt
    from theraquant.errors import TheraquantError
    with _pt.raises(TheraquantError, match=r"thresholds\['inclusive'\] is gone: each rule of PERCIST has its own"):
        percist(10.0, 13.0, thresholds={"inclusive": False})
