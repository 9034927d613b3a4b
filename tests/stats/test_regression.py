"""Logistic regression and GEE against R's glm and geepack::geeglm, and statsmodels.

Source: tests/data/r_reference/make_reference.R: glm(..., control = glm.control(epsilon = 1e-15))
and geeglm(..., corstr = "exchangeable", control = geese.control(epsilon = 1e-12)); both tightened
so that the reference itself is converged beyond 6 digits. Tolerance rtol 1e-7 (contract: 6
significant digits; observed agreement ~1e-11 for GEE, ~1e-13 for glm).
"""

import numpy as np
import pytest
import statsmodels.api as sm
from numpy.testing import assert_allclose

from theraquant.stats import logistic

RTOL = 1e-7


@pytest.mark.parametrize("key,preds", [("g1", ["s100b"]), ("g2", ["s100b", "age", "male"])])
def test_glm_matches_r(asah, ref, key, preds):
    r = logistic(asah, "outcome01", preds)
    assert r.method == "logistic regression (maximum likelihood)" and not r.is_gee
    assert list(r.coef) == ["Intercept", *preds]
    for nm in r.coef:
        base = f"glm.{key}.{nm}"
        assert_allclose([r.coef[nm], r.se[nm], r.z[nm], r.p[nm]],
                        [ref[f"{base}.{f}"] for f in ("coef", "se", "z", "p")], rtol=RTOL)
        # confint.default: Wald interval of the coefficient
        assert_allclose(r.coef_ci[nm], [ref[f"{base}.ci_lo"], ref[f"{base}.ci_hi"]], rtol=RTOL)
        assert_allclose(r.ci[nm], np.exp([ref[f"{base}.ci_lo"], ref[f"{base}.ci_hi"]]), rtol=RTOL)
        assert_allclose(r.odds_ratio[nm], np.exp(ref[f"{base}.coef"]), rtol=RTOL)


@pytest.mark.parametrize("key,preds", [("tbp", ["tbp"]), ("tbp+dmean", ["tbp", "dmean"])])
def test_gee_matches_geepack(lesions, ref, key, preds):
    r = logistic(lesions, "response", preds, cluster="patient")
    assert r.is_gee and "exchangeable" in r.method and "robust" in r.method and r.n_clusters == 24
    for nm in r.coef:
        for f, v in (("coef", r.coef[nm]), ("se", r.se[nm]), ("p", r.p[nm])):
            assert_allclose(v, ref[f"gee.{key}.{nm}.{f}"], rtol=RTOL)
    assert_allclose(r.alpha, ref[f"gee.{key}.alpha"], rtol=1e-6)  # the correlation converges slowest
    assert_allclose(r.scale, ref[f"gee.{key}.scale"], rtol=1e-6)


def test_gee_matches_statsmodels_ddof0(lesions):
    # the contract's statsmodels equivalent, fitted independently here
    X = sm.add_constant(lesions[["tbp", "dmean"]]).rename(columns={"const": "Intercept"})
    m = sm.GEE(lesions.response, X, groups=lesions.patient, family=sm.families.Binomial(),
               cov_struct=sm.cov_struct.Exchangeable())
    f = m.fit(ddof_scale=0, maxiter=500, ctol=1e-12)
    r = logistic(lesions, "response", ["tbp", "dmean"], cluster="patient")
    assert_allclose([r.coef[k] for k in X.columns], f.params, rtol=RTOL)
    assert_allclose([r.se[k] for k in X.columns], f.bse, rtol=RTOL)


def test_gee_row_order_does_not_matter(lesions, ref):
    # patients need not be contiguous rows: a shuffled table gives geepack's answer too
    shuffled = lesions.sample(frac=1.0, random_state=3)
    r = logistic(shuffled, "response", ["tbp"], cluster="patient")
    assert_allclose([r.coef["tbp"], r.se["tbp"]], [ref["gee.tbp.tbp.coef"], ref["gee.tbp.tbp.se"]], rtol=RTOL)


def test_gee_one_lesion_per_patient_is_documented(asah, ref):
    df = asah.assign(pid=np.arange(len(asah)))
    r = logistic(df, "outcome01", "s100b", cluster="pid")
    assert "independence" in r.method and any("one lesion per patient" in n for n in r.notes)
    # coefficients are the ML ones; only the errors become robust
    assert_allclose(r.coef["s100b"], ref["glm.g1.s100b.coef"], rtol=1e-6)
    assert r.se["s100b"] != pytest.approx(ref["glm.g1.s100b.se"], rel=1e-3)


def test_categorical_predictor_dummies(lesions):
    r = logistic(lesions.assign(big=np.where(lesions.dmean > 100, "yes", "no")), "response", ["tbp", "big"])
    assert list(r.coef) == ["Intercept", "tbp", "big[T.yes]"]


def test_missing_rows_dropped_and_counted(lesions):
    df = lesions.copy()
    df.loc[[0, 5], "tbp"] = np.nan
    r = logistic(df, "response", "tbp", cluster="patient")
    assert r.n_obs == 70 and r.n_dropped == 2 and "2 lesion(s) with a missing value dropped" in r.notes


def test_regression_errors(lesions):
    with pytest.raises(ValueError, match=r"column\(s\) \['nope'\] not in the table"):
        logistic(lesions, "response", "nope")
    with pytest.raises(ValueError, match="one class only"):
        logistic(lesions.assign(r1=1), "r1", "tbp")
    with pytest.raises(ValueError, match="at least 5 lesions, got 4"):
        logistic(lesions.head(4), "response", "tbp")
    with pytest.raises(ValueError, match="'c' is constant"):
        logistic(lesions.assign(c=2.0), "response", ["tbp", "c"])
    with pytest.raises(ValueError, match="separate responders from non-responders"):
        logistic(lesions.assign(sep=lesions.response * 10.0 + 1), "response", "sep")
    with pytest.raises(ValueError, match="'recist' must be 0/1 or bool .*got values like \\['PR'"):
        logistic(lesions, "recist", "tbp")


def test_cluster_means_the_patient_everywhere():
    """cluster: a column name where a table is given, or the patient ids themselves (as roc takes)."""
    import numpy as np
    import pandas as pd

    from theraquant import stats
    from theraquant.errors import TheraquantError

    rng = np.random.default_rng(4)
    x = rng.normal(1.4, 0.3, 40)
    df = pd.DataFrame({"patient": np.repeat(np.arange(10), 4), "tbp": x,
                       "response": (x + rng.normal(0, 0.3, 40) > 1.4).astype(int)})
    by_name = stats.logistic(df, "response", "tbp", cluster="patient")
    by_ids = stats.logistic(df, "response", "tbp", cluster=df["patient"].to_numpy())
    assert by_ids.method.startswith("GEE, exchangeable correlation within 'cluster'")
    assert by_ids.coef["tbp"] == by_name.coef["tbp"] and by_ids.se["tbp"] == by_name.se["tbp"]  # same GEE
    rep_name = stats.analyze(df, "response", ["tbp"], cluster="patient", n_boot=0)
    rep_ids = stats.analyze(df, "response", ["tbp"], cluster=df["patient"], n_boot=0)
    assert rep_ids.roc["tbp"].auc_var == rep_name.roc["tbp"].auc_var  # Obuchowski with the same patients
    assert rep_ids.roc["tbp"].variance_method == "Obuchowski (clustered)"
    cv = stats.cross_validated_auc(df, "response", "tbp", cluster=df["patient"].to_numpy())
    assert cv.auc == stats.cross_validated_auc(df, "response", "tbp", cluster="patient").auc
    with pytest.raises(TheraquantError, match=r"cluster='patient' is a column name, but this function takes arrays"):
        stats.roc(df["response"], df["tbp"], cluster="patient")
    with pytest.raises(TheraquantError, match=r"cluster must be a column name or one patient id per row \(40 rows\)"):
        stats.logistic(df, "response", "tbp", cluster=[1, 2, 3])
