"""Stratified response tables, dose-response D50, bootstrap CIs, the predictor and calibration.

References: tests/data/r_reference/make_reference.R (R 4.2.2: fisher.test, chisq.test,
prop.test(correct = FALSE) for Wilson intervals, MASS::dose.p for D50, geepack for the clustered
D50), plus independent re-computations in the tests.
"""

import json

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from numpy.testing import assert_allclose
from scipy import stats as sps
from sklearn.model_selection import GroupKFold

from theraquant.stats import (ResponsePredictor, calibration_table, cluster_bootstrap, cross_validated_auc,
                              dose_response, fit_predictor, roc, roc_bootstrap, response_table)

RTOL = 1e-9


# ------------------------------------------------------------------ stratified table
def test_response_table_matches_r(lesions, ref):
    t = response_table(lesions, "response", {"tbp": 1.29, "dmean": 89},
                       labels={"tbp": ("non-hypoxic", "hypoxic")}, cluster="patient")
    for c in t.cells.itertuples():
        key = f"strat.{c.tbp}_{c.dmean}"
        assert (c.n, c.responders) == (ref[f"{key}.n"], ref[f"{key}.k"])
        assert_allclose([c.ci_low, c.ci_high], [ref[f"{key}.ci_lo"], ref[f"{key}.ci_hi"]], rtol=1e-9, atol=1e-15)
    assert_allclose(t.fisher.p, ref["strat.fisher.p"], rtol=RTOL)
    assert_allclose([t.chi2.statistic, t.chi2.p], [ref["strat.chi2.stat"], ref["strat.chi2.p"]], rtol=RTOL)
    assert t.test is t.fisher  # expected counts < 5 in the non-hypoxic/low cell -> Fisher reported
    # a 0/7 cell makes the clustered GEE odds ratio infinite: documented, not a crash
    assert t.gee_wald is None and any("GEE test not available" in n for n in t.notes)


def test_response_table_gee_wald_when_estimable(lesions):
    t = response_table(lesions, "response", {"dmean": 89}, cluster="patient")
    assert t.gee_wald is not None and t.gee_wald.df == 1
    # one dummy: the joint Wald test equals the GEE z-test of that coefficient squared
    from theraquant.stats import logistic
    fit = logistic(lesions.assign(hi=(lesions.dmean >= 89).astype(float)), "response", "hi", cluster="patient")
    assert_allclose(t.gee_wald.statistic, fit.z["hi"] ** 2, rtol=1e-8)


def test_response_table_operator_at_the_cut_off():
    # ARTE-MISO: hypoxic is "T/BP > 1.29", so a lesion at exactly 1.29 is non-hypoxic with ">" and
    # hypoxic with the default ">="; the other lesions are far from the cut-off and never move.
    df = pd.DataFrame({"resp": [1, 1, 0, 0, 1, 0], "tbp": [1.29, 1.0, 1.6, 1.7, 1.1, 1.5]})
    strict = response_table(df, "resp", {"tbp": 1.29}, operators={"tbp": ">"})
    loose = response_table(df, "resp", {"tbp": 1.29})
    assert strict.cells["n"].tolist() == [3, 3] and strict.cells["responders"].tolist() == [3, 0]
    assert loose.cells["n"].tolist() == [2, 4] and loose.cells["responders"].tolist() == [2, 1]
    assert "tbp > 1.29" in strict.summary() and "tbp >= 1.29" in loose.summary()
    assert strict.to_dict()["operators"] == {"tbp": ">"}
    with pytest.raises(ValueError, match="operators must map a marker"):
        response_table(df, "resp", {"tbp": 1.29}, operators={"tbp": "<"})


def test_response_table_errors(lesions):
    with pytest.raises(ValueError, match="all 72 lesions fall into one cell"):
        response_table(lesions, "response", {"tbp": -5.0})
    with pytest.raises(ValueError, match="cutoffs must map marker column"):
        response_table(lesions, "response", {})


# ------------------------------------------------------------------ dose-response
def test_d50_matches_mass_dose_p(lesions, ref):
    # Source: MASS::dose.p(glm(response ~ dmean), p = 0.5): D50 and its delta-method SE
    dr = dose_response(lesions.dmean, lesions.response)
    assert_allclose(dr.d50_gy, ref["dose.glm.d50"], rtol=1e-7)
    assert_allclose(dr.d50_se_gy, ref["dose.glm.d50_se"], rtol=1e-7)
    assert_allclose(dr.d50_ci_gy, dr.d50_gy + np.array([-1, 1]) * 1.959963984540054 * dr.d50_se_gy, rtol=1e-12)
    assert_allclose(dr.probability(dr.d50_gy), 0.5, rtol=1e-12)
    assert dr.ci_method == "delta method"
    # Fieller bounds: the Wald statistic of b0 + b1 D = 0 equals z(0.975)^2 exactly there
    for d in dr.d50_ci_fieller_gy:
        g = np.array([1.0, d])
        assert_allclose((dr.b0 + dr.b1 * d) ** 2 / (g @ dr.cov @ g), 1.959963984540054**2, rtol=1e-9)
    lo, hi = dr.d50_ci_fieller_gy
    assert lo < dr.d50_gy < hi


def test_d50_clustered_matches_geepack(lesions, ref):
    # Source: geeglm(response ~ dmean, corstr = "exchangeable") and the delta method in R
    dr = dose_response(lesions.dmean, lesions.response, cluster=lesions.patient)
    assert "GEE" in dr.method and dr.n_clusters == 24
    assert_allclose(dr.d50_gy, ref["dose.gee.d50"], rtol=1e-7)
    assert_allclose(dr.d50_se_gy, ref["dose.gee.d50_se"], rtol=1e-6)


def test_d50_negative_slope_documented():
    dr = dose_response([10, 20, 30, 40, 50, 60, 70, 80], [1, 1, 0, 1, 0, 1, 0, 0])
    assert np.isnan(dr.d50_gy) and "not positive" in dr.notes[-1]


# ------------------------------------------------------------------ bootstrap
def test_stratified_bootstrap_seeded_and_bca_by_hand(asah, ref):
    b1 = roc_bootstrap(asah.outcome01, asah.s100b, n_boot=400, seed=7)
    b2 = roc_bootstrap(asah.outcome01, asah.s100b, n_boot=400, seed=7)
    assert_allclose(b1.auc_boot, b2.auc_boot, rtol=0)  # same seed, same replicates
    assert b1.auc == pytest.approx(ref["roc.s100b.auc"], rel=RTOL)
    # BCa recomputed from the replicates with a brute-force jackknife (Efron 1987, eqs. 6.6-6.8)
    y, s = asah.outcome01.to_numpy(), asah.s100b.to_numpy()
    jack = np.array([roc(np.delete(y, i), np.delete(s, i), direction="<").auc for i in range(len(y))])
    d = jack.mean() - jack
    acc = np.sum(d**3) / (6 * np.sum(d**2) ** 1.5)
    z0 = sps.norm.ppf((np.sum(b1.auc_boot < b1.auc) + 0.5 * np.sum(b1.auc_boot == b1.auc)) / 400)
    za = sps.norm.ppf([0.025, 0.975])
    q = sps.norm.cdf(z0 + (z0 + za) / (1 - acc * (z0 + za)))
    assert_allclose(b1.auc_ci_bca, np.quantile(b1.auc_boot, q), rtol=1e-12)
    # stratified: every replicate keeps the class sizes, so percentile and DeLong CIs are close
    # (Monte Carlo with 400 replicates: endpoints within 0.03)
    assert_allclose(b1.auc_ci_percentile, (ref["roc.s100b.ci_lo"], ref["roc.s100b.ci_hi"]), atol=0.03)


def test_cluster_bootstrap(lesions):
    b = cluster_bootstrap(lesions.response, lesions.tbp, lesions.patient, n_boot=500, seed=11)
    ob = roc(lesions.response, lesions.tbp, cluster=lesions.patient)
    assert b.auc == ob.auc and b.n_valid == 500 and np.isnan(b.auc_ci_bca[0])
    # patient resampling estimates the same clustered variance as Obuchowski (Monte Carlo, 500
    # replicates, 24 patients: SD within 20 %)
    assert np.std(b.auc_boot, ddof=1) == pytest.approx(ob.auc_se, rel=0.2)
    lo, hi = b.threshold_ci_percentile
    assert lo <= b.threshold <= hi and b.threshold == ob.youden_threshold
    b2 = cluster_bootstrap(lesions.response, lesions.tbp, lesions.patient, n_boot=500, seed=11)
    assert_allclose(b.threshold_boot, b2.threshold_boot, rtol=0)


def test_cluster_bootstrap_drops_one_class_replicates():
    # 3 patients with responders among 10: some replicates have none and are dropped, counted
    y = [1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]
    s = np.arange(16.0)
    pid = [0, 0, 1, 1, 2, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 9]
    b = cluster_bootstrap(y, s, pid, n_boot=300, seed=0)
    assert b.n_valid < 300 and b.auc_boot.size == b.n_valid


def test_bootstrap_errors(lesions):
    with pytest.raises(ValueError, match="n_boot must be an integer >= 100"):
        roc_bootstrap(lesions.response, lesions.tbp, n_boot=10)
    with pytest.raises(ValueError, match="cluster must give the patient id"):
        cluster_bootstrap(lesions.response, lesions.tbp, None)


# ------------------------------------------------------------------ predictor
def test_cross_validation_is_patient_grouped_and_reproducible(lesions):
    cv = cross_validated_auc(lesions, "response", ["tbp", "dmean"], cluster="patient")
    # independent re-run: same GroupKFold folds, GEE fitted with statsmodels directly
    oof = np.full(len(lesions), np.nan)
    X = sm.add_constant(lesions[["tbp", "dmean"]]).to_numpy()
    y = lesions.response.to_numpy()
    for tr, te in GroupKFold(n_splits=5).split(X, y, lesions.patient.astype(str)):
        assert not set(lesions.patient.iloc[tr]) & set(lesions.patient.iloc[te])
        m = sm.GEE(y[tr], X[tr], groups=lesions.patient.iloc[tr].to_numpy(), family=sm.families.Binomial(),
                   cov_struct=sm.cov_struct.Exchangeable()).fit(ddof_scale=0, maxiter=500, ctol=1e-12)
        oof[te] = 1 / (1 + np.exp(-X[te] @ m.params))
    assert_allclose(cv.oof_probability, oof, rtol=1e-6)
    assert cv.auc == pytest.approx(roc(y, oof, direction="<").auc, rel=1e-6)
    assert cv.roc.variance_method == "Obuchowski (clustered)"


def test_predictor_round_trip_and_apply(lesions):
    model = fit_predictor(lesions, "response", ["tbp", "dmean"], cluster="patient")
    d = json.loads(model.to_json())
    assert d["format"] == "theraquant.stats.ResponsePredictor" and d["format_version"] == 1
    assert d["software"] == "theraquant" and d["software_version"]
    assert d["training"]["n_lesions"] == 72 and d["training"]["n_patients"] == 24
    assert d["training"]["cv_auc"] < d["training"]["apparent_auc"]  # optimism removed
    again = ResponsePredictor.from_json(model.to_json())
    new = lesions.head(6).copy()
    new.loc[new.index[1], "dmean"] = np.nan
    a, b = model.predict(new), again.predict(new)
    assert_allclose(a.probability, b.probability, rtol=1e-15, equal_nan=True)
    # the probability is the GEE logistic model's
    lp = model.coef["Intercept"] + model.coef["tbp"] * new.tbp + model.coef["dmean"] * new.dmean
    assert_allclose(a.probability, 1 / (1 + np.exp(-lp)), rtol=1e-12, equal_nan=True)
    assert a.status.iloc[1] == "missing marker(s): dmean" and pd.isna(a.predicted_response.iloc[1])
    assert (a.predicted_response.dropna() == (a.probability.dropna() >= model.cutoff)).all()


def test_predictor_errors(lesions):
    model = fit_predictor(lesions, "response", "tbp")
    with pytest.raises(ValueError, match=r"lacks marker column\(s\) \['tbp'\]"):
        model.predict(pd.DataFrame({"TBP": [1.0]}))
    d = model.to_dict()
    d["format_version"] = 99
    with pytest.raises(ValueError, match="format_version 99 is newer"):
        ResponsePredictor.from_json(d)
    with pytest.raises(ValueError, match="not a theraquant response predictor"):
        ResponsePredictor.from_json('{"format": "x"}')


def test_calibration_table_by_hand():
    y = np.array([0, 0, 1, 0, 1, 1, 0, 1, 1, 1, 0, 1])
    p = np.array([.1, .15, .2, .3, .35, .45, .5, .6, .7, .8, .85, .95])
    ct = calibration_table(y, p, n_bins=3)
    assert ct.bins.n.tolist() == [4, 4, 4]
    exp_sum = [p[:4].sum(), p[4:8].sum(), p[8:].sum()]
    obs = [1, 3, 3]
    hl = sum((o - e) ** 2 / (4 * (e / 4) * (1 - e / 4)) for o, e in zip(obs, exp_sum))
    assert_allclose(ct.hosmer_lemeshow, hl, rtol=1e-12)
    assert_allclose(ct.brier, np.mean((p - y) ** 2), rtol=1e-12)
    assert ct.df == 1
