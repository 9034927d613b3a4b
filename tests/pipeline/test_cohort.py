"""cohort_analysis: the cohort statistics files on synthetic lesion tables."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from theraquant import stats
from theraquant.pipeline import StudyConfig
from theraquant.pipeline._cohort import cohort_analysis


def _table(n_patients=24, seed=3):
    rng = np.random.default_rng(seed)
    pid = np.repeat([f"P{i:03d}" for i in range(n_patients)], 3)
    n = pid.size
    t_bp = rng.normal(1.3, 0.2, n)
    dmean = rng.gamma(6.0, 16.0, n)
    ktrans = rng.normal(0.2, 0.05, n)
    lp = 0.3 - 3.0 * (t_bp - 1.3) + 0.03 * (dmean - 90.0)          # dose helps, hypoxia hurts
    resp = (rng.random(n) < 1 / (1 + np.exp(-lp))).astype(float)
    return pd.DataFrame({"patient": pid, "lesion": ["1", "2", "3"] * n_patients, "t_bp": t_bp, "dmean_gy": dmean,
                         "ktrans": ktrans, "responder": resp,
                         "response": np.where(resp == 1, "PMR", "SMD")})


def test_cohort_files_and_numbers(tmp_path):
    df = _table()
    df.loc[0, "responder"] = np.nan                                   # one NE lesion: left out, noted
    cfg = StudyConfig.model_validate({"therapy": {"type": "tare"}})
    res = cohort_analysis(df, cfg, tmp_path)
    on_disk = json.loads((tmp_path / "cohort.json").read_text())
    assert on_disk["markers"] == ["t_bp", "dmean_gy", "ktrans"] and on_disk["clustered"] is True
    assert on_disk["n_lesions"] == 71 and on_disk["n_patients"] == 24
    assert any("1 of 72 lesions" in n for n in on_disk["notes"])
    used = df.dropna(subset=["responder"])
    # ROC equals the engine's clustered ROC on the same lesions
    ref = stats.roc(used["responder"], used["dmean_gy"], cluster=used["patient"])
    assert on_disk["roc"]["dmean_gy"]["auc"] == pytest.approx(ref.auc, abs=1e-12)
    assert on_disk["roc"]["dmean_gy"]["variance"] == "Obuchowski" and on_disk["roc"]["dmean_gy"]["auc"] > 0.6
    assert on_disk["regression"]["method"] == "GEE"
    assert [r["term"] for r in on_disk["regression"]["rows"]] == ["Intercept", "t_bp", "dmean_gy", "ktrans"]
    # stratified table: counts by hand at T/BP 1.29 and Dmean 89 Gy, Wilson intervals
    rows = {r["stratum"]: r for r in on_disk["stratified"]["rows"]}
    sel = used[(used.t_bp >= 1.29) & (used.dmean_gy < 89.0)]
    cell = rows["hypoxic / low dose"]
    assert cell["n"] == len(sel) and cell["responders"] == int(sel.responder.sum())
    lo, hi = stats.wilson(cell["responders"], cell["n"])
    assert (cell["ci_low"], cell["ci_high"]) == pytest.approx((lo, hi))
    assert on_disk["stratified"]["cutoffs"] == {"t_bp": 1.29, "dmean_gy": 89.0}
    assert sum(r["n"] for r in rows.values()) == 71
    # dose-response: D50 within the observed range, a rising curve
    dr = on_disk["dose_response"]
    assert min(used.dmean_gy) < dr["d50_gy"] < max(used.dmean_gy) and np.all(np.diff(dr["curve"]["p"]) > 0)
    # model.json: the engine's predictor, patient-grouped CV AUC reproduced
    model = stats.ResponsePredictor.from_json((tmp_path / "model.json").read_text())
    cv = stats.cross_validated_auc(used, "responder", ["t_bp", "dmean_gy", "ktrans"], cluster="patient")
    assert on_disk["predictor"]["cv_auc"] == pytest.approx(cv.auc, abs=1e-9)
    assert model.markers == ("t_bp", "dmean_gy", "ktrans")
    assert len(on_disk["predictor"]["calibration"]["n"]) >= 2
    assert "hypoxic / low dose" in (tmp_path / "cohort.txt").read_text()
    assert res["n_responders"] == on_disk["n_responders"]


@pytest.mark.parametrize("case", ["one_class", "too_few", "no_markers"])
def test_degenerate_cohorts_are_skipped_with_a_note(tmp_path, case):
    df = _table(n_patients=4)
    if case == "one_class":
        df["responder"] = 1.0
    elif case == "too_few":
        df = df.head(4)
    else:
        df = df.drop(columns=["t_bp", "dmean_gy", "ktrans"])
    (tmp_path / "model.json").write_text("{}")                        # a stale model from an earlier run
    res = cohort_analysis(df, StudyConfig.model_validate({}), tmp_path)
    assert res["analysis"] == "skipped" and res["predictor"] is None
    assert any("skipped" in n for n in res["notes"])
    assert not (tmp_path / "model.json").exists()
    assert json.loads((tmp_path / "cohort.json").read_text())["roc"] == {}


def test_markers_auto_by_therapy_type_and_explicit(tmp_path):
    df = _table()
    df["vp"] = np.random.default_rng(0).normal(0.05, 0.01, len(df))
    res = cohort_analysis(df, StudyConfig.model_validate({"therapy": {"type": "prrt"}}), tmp_path)
    assert res["markers"] == ["ktrans", "vp", "dmean_gy"]
    res = cohort_analysis(df, StudyConfig.model_validate({"predictor": {"markers": ["t_bp", "nope"]}}), tmp_path)
    assert res["markers"] == ["t_bp"] and any("'nope' is not a lesions.csv column" in n for n in res["notes"])


@pytest.mark.demo
def test_demo_cohort_rediscovers_the_tare_study(demo_results):
    """On the TARE phantom (12 patients) the statistics find what the study found: higher Dmean ->
    response, higher T/BP (hypoxia) -> resistance; the files follow docs/results-layout.md."""
    res = demo_results["tare"]
    c = json.loads((res / "cohort.json").read_text())
    assert c["clustered"] is True and c["markers"] == ["t_bp", "dmean_gy", "ktrans"]
    assert c["roc"]["dmean_gy"]["direction"] == "<" and c["roc"]["dmean_gy"]["auc"] > 0.6
    assert c["roc"]["t_bp"]["direction"] == ">" and c["roc"]["t_bp"]["auc"] > 0.6
    assert c["regression"]["method"] == "GEE"
    assert sum(r["n"] for r in c["stratified"]["rows"]) == c["n_lesions"]
    assert c["dose_response"]["d50_gy"] > 0
    model = stats.ResponsePredictor.from_json((res / "model.json").read_text())
    assert model.training["cv_grouped_by"] == "patient" and 0.5 < c["predictor"]["cv_auc"] <= 1.0
    assert "Cohort statistics" in (res / "cohort.txt").read_text()


@pytest.mark.demo
def test_demo_tables_have_the_contract_columns(demo_results):
    from theraquant.pipeline._patient import LESION_COLUMNS, PATIENT_COLUMNS

    for key in ("tare", "prrt"):
        les = pd.read_csv(demo_results[key] / "lesions.csv", dtype={"lesion": str})
        assert set(LESION_COLUMNS) | {"notes"} <= set(les.columns), key
        pts = pd.read_csv(demo_results[key] / "patients.csv")
        assert set(PATIENT_COLUMNS) <= set(pts.columns), key
        assert les["responder"].dropna().isin([0, 1]).all()


def test_prrt_cohort_pairs_ktrans_change_and_has_no_hypoxia_table(tmp_path):
    df = _table().drop(columns=["t_bp"])
    rng = np.random.default_rng(1)
    df["vp"] = rng.normal(0.05, 0.01, len(df))
    df["ktrans_followup"] = df["ktrans"] * np.where(df["responder"] == 1, 0.6, 1.0) + rng.normal(0, 0.005, len(df))
    res = cohort_analysis(df, StudyConfig.model_validate({"therapy": {"type": "prrt"}}), tmp_path)
    assert res["stratified"] is None
    paired = res["full"]["group_tests"]["ktrans -> ktrans_followup (all lesions)"]
    ref = stats.wilcoxon_signed_rank(df["ktrans"], df["ktrans_followup"])
    assert paired["test"] == "Wilcoxon signed-rank" and paired["p"] == pytest.approx(ref.p, rel=1e-12)
    assert paired["statistic"] == ref.statistic and paired["n"] == 72
