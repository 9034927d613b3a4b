"""grade_patients: patient-level grading of a lesion table, against the scalar functions as oracle.

The scalar functions are validated case by case in test_cases.py (papers cited there); here a
seeded random cohort, with values on a coarse grid so that many changes land exactly on a
threshold, must give the same rule id for every patient.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from theraquant.errors import TheraquantError
from theraquant.response import Lesion, eortc, grade_patients, mrecist, percist, recist

RNG_SEED = 6


def _pet_cohort(rng, n_pat=150):
    rows = []
    for p in range(n_pat):
        ref = float(rng.choice([0.8, 1.0, 2.0]))
        fref = ref + float(rng.choice([0.0, 0.1, 0.3]))
        new = bool(rng.random() < 0.05)
        ntp = bool(rng.random() < 0.05)
        for j in range(int(rng.integers(1, 5))):
            resolved = bool(rng.random() < 0.15)
            rows.append({"patient": f"p{p}", "lesion": f"L{j}",
                         "baseline": round(float(rng.uniform(1.0, 10.0)), 1),
                         "followup": np.nan if resolved else round(float(rng.uniform(0.0, 13.0)), 1),
                         "resolved": resolved, "new_lesions": new, "non_target_progression": ntp,
                         "reference_mean": ref, "reference_sd": 0.1, "followup_reference_mean": fref})
    return pd.DataFrame(rows)


def test_percist_patients_equal_scalar():
    t = _pet_cohort(np.random.default_rng(RNG_SEED))
    out = grade_patients(t, "PERCIST")
    for pid, grp in t.groupby("patient", sort=False):
        base = dict(zip(grp["lesion"], grp["baseline"]))
        fu = {k: v for k, v, r in zip(grp["lesion"], grp["followup"], grp["resolved"]) if not r}
        r0 = grp.iloc[0]
        res = percist(base, fu, reference_mean=r0["reference_mean"], reference_sd=0.1,
                      followup_reference_mean=r0["followup_reference_mean"],
                      new_lesions=bool(r0["new_lesions"]),
                      non_target_progression=bool(r0["non_target_progression"]), strict="ignore")
        row = out.loc[pid]
        f_id = None if pd.isna(row["followup_lesion"]) else row["followup_lesion"]  # none left
        assert (row["rule_id"], row["baseline_lesion"], f_id) == (
            res.rule.id, res.values["baseline_lesion"], res.values["followup_lesion"]), pid
    assert out["category"].nunique() >= 4
    assert (~out["same_lesion"]).any()  # the hottest lesion changes in some patients


@pytest.mark.parametrize("aggregate", ["sum", "max"])
def test_eortc_patients_equal_scalar(aggregate):
    t = _pet_cohort(np.random.default_rng(RNG_SEED + 1))
    if aggregate == "sum":  # sum needs every lesion's follow-up SUV
        t["resolved"] = False
        t["followup"] = t["followup"].fillna(1.0)
    t = t.drop(columns="non_target_progression")  # a PERCIST column
    out = grade_patients(t, "EORTC", aggregate=aggregate, after_one_cycle=True)
    for pid, grp in t.groupby("patient", sort=False):
        fu = {k: v for k, v, r in zip(grp["lesion"], grp["followup"], grp["resolved"]) if not r}
        res = eortc(dict(zip(grp["lesion"], grp["baseline"])), fu or None, aggregate=aggregate,
                    after_one_cycle=True, new_lesions=bool(grp["new_lesions"].iloc[0]))
        assert out.loc[pid, "rule_id"] == res.rule.id, pid
        assert out.loc[pid, "baseline"] == pytest.approx(res.values["baseline_suv"], abs=1e-12)


@pytest.mark.parametrize("fn", [recist, mrecist], ids=["RECIST", "mRECIST"])
def test_recist_patients_equal_scalar(fn):
    rng = np.random.default_rng(RNG_SEED + 2)
    rows, extra = [], {}
    organs = ["liver", "lung", "bone", "lymph node"]
    for p in range(200):
        n = int(rng.integers(1, 6))
        chosen = [organs[i % 4] for i in range(n)]  # at most 2 per organ
        nadir_frac = float(rng.choice([1.0, 0.8, 0.5, 0.0]))
        nt = rng.choice(np.array(["", "CR", "non-CR/non-PD", "PD", "NE"], dtype=object))
        extra[f"p{p}"] = (nadir_frac, nt or None, bool(rng.random() < 0.05))
        for j, organ in enumerate(chosen):
            node = organ == "lymph node"
            b = float(rng.choice([15.0, 20.0, 25.0, 30.0])) if node else float(rng.choice([10.0, 12.5, 20.0, 40.0]))
            fu = float(rng.choice([0.0, 5.0, 9.5, 10.0, b * 0.7, b, b * 1.2, b * 1.5]))
            if rng.random() < 0.05:
                fu = np.nan  # not assessed
            rows.append({"patient": f"p{p}", "lesion": f"L{j}", "organ": organ, "is_node": node,
                         "baseline": b, "followup": fu})
    t = pd.DataFrame(rows)
    sums = t.groupby("patient", sort=False)["baseline"].sum()
    t["nadir_mm"] = t["patient"].map({p: sums[p] * v[0] for p, v in extra.items()})
    t["non_target"] = t["patient"].map({p: v[1] for p, v in extra.items()})
    t["new_lesions"] = t["patient"].map({p: v[2] for p, v in extra.items()})
    out = grade_patients(t, fn.__name__)
    for pid, grp in t.groupby("patient", sort=False):
        base = [Lesion(r.lesion, r.organ, r.baseline, r.is_node) for r in grp.itertuples()]
        fu = {r.lesion: r.followup for r in grp.itertuples() if not np.isnan(r.followup)}
        res = fn(base, fu, nadir_mm=grp["nadir_mm"].iloc[0], non_target=extra[pid][1],
                 new_lesions=extra[pid][2])
        assert (out.loc[pid, "rule_id"], out.loc[pid, "category"]) == (res.rule.id, res.category), pid
        assert out.loc[pid, "followup"] == pytest.approx(res.values["followup_sum_mm"], abs=1e-9)
    assert out["category"].nunique() >= 4


def test_patient_table_errors():
    t = pd.DataFrame({"patient": ["a", "a", "b"], "baseline": [5.0, 4.0, 3.0], "followup": [4.0, 4.0, 2.0],
                      "reference_mean": [1.0, 1.1, 1.0], "reference_sd": [0.1, 0.1, 0.1]})
    with pytest.raises(TheraquantError, match=r"'reference_mean' must hold one value per patient, .*\['a'\]"):
        grade_patients(t, "PERCIST")
    t = pd.DataFrame({"patient": ["a"] * 6, "baseline": [20.0] * 6, "followup": [20.0] * 6})
    with pytest.raises(TheraquantError, match=r"patients \['a'\] have more than 5 target lesions"):
        grade_patients(t, "RECIST")
    t = pd.DataFrame({"patient": ["a"] * 3, "organ": ["liver"] * 3, "baseline": [20.0] * 3,
                      "followup": [20.0] * 3})
    with pytest.raises(TheraquantError, match=r"patients \['a'\] have more than 2 targets in one organ"):
        grade_patients(t, "mRECIST")
    t = pd.DataFrame({"patient": ["a", "a"], "lesion": ["x", "y"], "baseline": [5.0, 3.0],
                      "followup": [np.nan, 2.0], "resolved": [True, False]})
    with pytest.raises(TheraquantError, match=r"aggregate='sum' needs every lesion's follow-up SUV.*\['a'\]"):
        grade_patients(t, "EORTC")
    assert grade_patients(t, "EORTC", aggregate="max")["followup_lesion"].tolist() == ["y"]
    t = pd.DataFrame({"patient": ["a", "a"], "lesion": ["x", "x"], "baseline": [5.0, 3.0], "followup": [4.0, 2.0]})
    with pytest.raises(TheraquantError, match=r"lesion ids repeat within a patient in rows \[1\]"):
        grade_patients(t, "PERCIST")
    with pytest.raises(TheraquantError, match=r"table lacks column\(s\) \['patient'\]"):
        grade_patients(t.drop(columns="patient"), "PERCIST")
