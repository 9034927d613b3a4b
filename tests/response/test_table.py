"""grade_lesions: the vectorised lesion-table grader against the scalar functions (the oracle)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from theraquant.response import Lesion, eortc, grade_lesions, mrecist, percist, recist


def test_recist_lesion_table():
    # Eisenhauer 2009 thresholds applied to single lesions (lesion-level use)
    t = pd.DataFrame({
        "baseline": [50.0, 50.0, 25.0, 24.5, 20.0, 8.0, 20.0, 40.0],
        "followup": [35.0, 35.1, 30.0, 29.4, 9.9, 3.0, 30.0, 20.0],
        "is_node": [False, False, False, False, True, False, False, False],
        "new_lesions": [False, False, False, False, False, False, True, True],
    })
    out = grade_lesions(t, "recist")
    assert out["rule_id"].tolist() == [
        "recist.target.pr",            # -30 % exactly
        "recist.target.sd",            # -29.8 %
        "recist.target.pd",            # +20 %, +5 mm
        "recist.target.sd",            # +20 %, +4.9 mm
        "recist.target.cr",            # node 9.9 mm
        "recist.lesion.not_measurable",  # 8 mm at baseline
        "recist.target.pd",            # +50 %/+10 mm: target PD reported before the new lesion
        "recist.new_lesion",           # PR lesion but new lesions
    ]
    assert out["category"].tolist() == ["PR", "SD", "PD", "SD", "CR", "NE", "PD", "PD"]
    assert out["change_abs"].iloc[2] == pytest.approx(5.0, abs=1e-12)  # mm
    assert out.attrs["criteria"] == "RECIST" and out.attrs["thresholds"]["pd_absolute_mm"] == 5.0
    assert list(t.columns) == ["baseline", "followup", "is_node", "new_lesions"]  # input untouched


def test_mrecist_lesion_table_nadir_and_no_5mm_rule():
    t = pd.DataFrame({"viable_bl": [20.0, 50.0], "viable_fu": [24.0, 30.0], "nadir": [20.0, 25.0]})
    out = grade_lesions(t, "mRECIST", columns={"baseline": "viable_bl", "followup": "viable_fu",
                                               "nadir_mm": "nadir"})
    assert out["category"].tolist() == ["PD", "PD"]  # +4 mm is PD in mRECIST; 25 -> 30 over nadir
    assert grade_lesions(t, "RECIST", columns={"baseline": "viable_bl", "followup": "viable_fu",
                                               "nadir_mm": "nadir"})["category"].tolist() == ["SD", "PD"]


def test_percist_table_reference_columns():
    t = pd.DataFrame({
        "baseline": [3.5, 3.6, 8.0, 10.0],
        "followup": [1.0, 2.5, 1.8, 6.0],
        "reference_mean": [2.0, 2.0, 2.0, 2.0],
        "reference_sd": [0.3, 0.3, 0.3, 0.3],
        "followup_reference_mean": [2.0, 2.1, 2.1, 2.3],
    })
    out = grade_lesions(t, "PERCIST")
    assert out["category"].tolist() == ["NE", "PMR", "CMR", "PMR"]
    np.testing.assert_allclose(out["measurability_threshold"], 3.6, atol=1e-12)  # 1.5 x 2 + 2 x 0.3
    assert out["reference_unstable"].tolist() == [False, False, False, True]  # 0.3 SUL change


def test_eortc_table_one_cycle():
    # -15 %, -25 %, -26.25 %: after one cycle PMR is ">= 15 %"; after more, "greater than 25 %"
    t = pd.DataFrame({"baseline": [8.0, 8.0, 8.0], "followup": [6.8, 6.0, 5.9]})
    assert grade_lesions(t, "EORTC", after_one_cycle=True)["category"].tolist() == ["PMR", "PMR", "PMR"]
    assert grade_lesions(t, "EORTC")["category"].tolist() == ["SMD", "SMD", "PMR"]


def _grid(rng, n, lo, hi, step):
    return np.round(rng.uniform(lo, hi, n) / step) * step


def test_vectorised_equals_scalar_on_a_random_cohort():
    """500 lesions on a 0.1 grid (so many land exactly on a boundary): table == scalar calls."""
    rng = np.random.default_rng(20261125)
    n = 500
    b = _grid(rng, n, 1.0, 12.0, 0.1)
    f = _grid(rng, n, 0.0, 16.0, 0.1)
    new = rng.random(n) < 0.05
    t = pd.DataFrame({"baseline": b, "followup": f, "new_lesions": new,
                      "reference_mean": 1.0, "reference_sd": 0.1, "followup_reference_mean": 1.05})
    out = grade_lesions(t, "PERCIST")
    want = [percist(bi, fi, reference_mean=1.0, reference_sd=0.1, followup_reference_mean=1.05,
                    new_lesions=bool(ni)).rule.id for bi, fi, ni in zip(b, f, new)]
    assert out["rule_id"].tolist() == want
    assert len(set(want)) >= 5  # the cohort exercises most rules

    out = grade_lesions(t[["baseline", "followup", "new_lesions"]], "EORTC")
    want = [eortc(bi, fi, new_lesions=bool(ni)).rule.id for bi, fi, ni in zip(b, f, new)]
    assert out["rule_id"].tolist() == want

    d0 = _grid(rng, n, 10.0, 60.0, 0.5)
    d1 = _grid(rng, n, 0.0, 80.0, 0.5)
    t = pd.DataFrame({"baseline": d0, "followup": d1})
    for name, fn in (("RECIST", recist), ("mRECIST", mrecist)):
        out = grade_lesions(t, name)
        want = [fn([Lesion("L", "liver", x0)], {"L": x1}).rule.id for x0, x1 in zip(d0, d1)]
        assert out["rule_id"].tolist() == want, name
