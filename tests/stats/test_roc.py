"""ROC, DeLong, Obuchowski and cut-off metrics against R (pROC 1.18.0) and independent formulas.

References: tests/data/r_reference/make_reference.R and its output (reference_values.csv).
Tolerance: rtol 1e-9 where R and theraquant compute the same closed form in double precision
(observed agreement ~1e-14); the contract asks for 6 significant digits.
"""

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from theraquant.errors import TheraquantError
from theraquant.stats import compare_roc, roc, threshold_metrics, wilson

RTOL = 1e-9  # same closed form as pROC; far tighter than the 6-significant-digit contract

MARKERS = [("s100b", "s100b"), ("ndka", "ndka"), ("wfns", "wfns_num")]


@pytest.mark.parametrize("col,key", MARKERS)
def test_auc_delong_matches_proc(asah, ref, col, key):
    # Source: pROC auc(), var(method="delong"), ci.auc(method="delong") on aSAH
    res = roc(asah.outcome01, asah[col], name=col)
    assert res.direction == "<" and res.direction_detected  # pROC's auto direction was "<" too
    assert_allclose(res.auc, ref[f"roc.{key}.auc"], rtol=RTOL)
    assert_allclose(res.auc_var, ref[f"roc.{key}.var_delong"], rtol=RTOL)
    assert_allclose(res.ci, (ref[f"roc.{key}.ci_lo"], ref[f"roc.{key}.ci_hi"]), rtol=RTOL)
    assert res.variance_method == "DeLong" and not res.ci_clipped


@pytest.mark.parametrize("col,key", MARKERS)
def test_youden_and_topleft_match_proc(asah, ref, col, key):
    # Source: pROC coords(best.method="youden" / "closest.topleft"); pROC reports the midpoint
    # between adjacent observed values, theraquant the observed value just above it.
    res = roc(asah.outcome01, asah[col], direction="<")
    x = np.sort(asah[col].unique())
    for kind, thr in (("youden", res.youden_threshold), ("topleft", res.topleft_threshold)):
        mid = ref[f"roc.{key}.{kind}_threshold_midpoint"]
        assert thr == x[x > mid][0]
    assert_allclose(res.sensitivity, ref[f"roc.{key}.youden_sens"], rtol=RTOL)
    assert_allclose(res.specificity, ref[f"roc.{key}.youden_spec"], rtol=RTOL)
    assert_allclose(res.topleft_sensitivity, ref[f"roc.{key}.topleft_sens"], rtol=RTOL)
    assert_allclose(res.topleft_specificity, ref[f"roc.{key}.topleft_spec"], rtol=RTOL)


@pytest.mark.parametrize("col,key", MARKERS)
def test_curve_points_match_proc(asah, ref_dir, col, key):
    # Source: pROC coords(roc, "all") written to roc_points_<marker>.csv
    pts = pd.read_csv(ref_dir / f"roc_points_{key}.csv")
    res = roc(asah.outcome01, asah[col], direction="<")
    ours = sorted(zip(np.round(1 - res.fpr, 12), np.round(res.tpr, 12)))
    theirs = sorted(zip(np.round(pts.specificity, 12), np.round(pts.sensitivity, 12)))
    assert ours == theirs


def test_direction_reversed_marker(asah, ref):
    # a marker that is lower in responders: -s100b must give the same AUC with direction ">"
    res = roc(asah.outcome01, -asah.s100b)
    assert res.direction == ">" and res.direction_detected
    assert_allclose(res.auc, ref["roc.s100b.auc"], rtol=RTOL)
    assert res.youden_threshold == -0.22  # observed value; positive when score <= threshold
    forced = roc(asah.outcome01, asah.s100b, direction=">")
    assert_allclose(forced.auc, 1 - ref["roc.s100b.auc"], rtol=RTOL)
    assert not forced.direction_detected


@pytest.mark.parametrize("a,b,key", [("s100b", "ndka", "s100b_ndka"), ("s100b", "wfns", "s100b_wfns")])
def test_paired_delong_matches_proc_roc_test(asah, ref, a, b, key):
    # Source: pROC roc.test(method="delong", paired=TRUE)
    cmp = compare_roc(asah.outcome01, asah[a], asah[b])
    assert_allclose(cmp.z, ref[f"roctest.{key}.z"], rtol=RTOL)
    assert_allclose(cmp.p, ref[f"roctest.{key}.p"], rtol=RTOL)


def test_threshold_metrics_match_proc_coords(asah, ref):
    # Source: pROC coords(r, 0.205, input="threshold", ret=c("sensitivity", ..., "tp", ...))
    tm = threshold_metrics(asah.outcome01, asah.s100b, 0.205)
    for k in ("sensitivity", "specificity", "ppv", "npv", "accuracy"):
        assert_allclose(getattr(tm, k), ref[f"thr.s100b_0.205.{k}"], rtol=RTOL)
    assert (tm.tp, tm.fp, tm.tn, tm.fn) == tuple(int(ref[f"thr.s100b_0.205.{k}"]) for k in ("tp", "fp", "tn", "fn"))
    # LR+ = sens / (1 - spec); log-method CI (Simel 1991) computed by hand here
    assert_allclose(tm.lr_pos, (26 / 41) / (14 / 72), rtol=1e-12)
    se = np.sqrt(1 / 26 - 1 / 41 + 1 / 14 - 1 / 72)
    assert_allclose(tm.ci["lr_pos"], tm.lr_pos * np.exp([-1.959963984540054 * se, 1.959963984540054 * se]), rtol=1e-12)
    assert_allclose(tm.ci["sensitivity"], wilson(26, 41), rtol=1e-12)


def test_wilson_interval_textbook():
    # Newcombe (1998) Stat Med 17:857, Table I: 81/263 -> 0.2553 to 0.3662
    assert_allclose(wilson(81, 263), (0.2553, 0.3662), atol=5e-5)
    # 0/10: Newcombe Table I gives 0 to 0.2775
    assert_allclose(wilson(0, 10), (0.0, 0.2775), atol=5e-5)


# ------------------------------------------------------------------ Obuchowski (clustered)
def _obuchowski_loop(y, s, pid):
    """Obuchowski (1997) eq. by explicit loops over patients: the test oracle."""
    y, s, pid = map(np.asarray, (y, s, pid))
    X, Y = s[y == 1], s[y == 0]
    M, N = X.size, Y.size
    psi = lambda a, b: 1.0 if a > b else (0.5 if a == b else 0.0)  # noqa: E731
    theta = sum(psi(a, b) for a in X for b in Y) / (M * N)
    pats = sorted(set(pid.tolist()))
    V10, V01, m, n = {}, {}, {}, {}
    for p in pats:
        xs = s[(pid == p) & (y == 1)]
        ys = s[(pid == p) & (y == 0)]
        V10[p] = sum(sum(psi(a, b) for b in Y) / N for a in xs)
        V01[p] = sum(sum(psi(a, b) for a in X) / M for b in ys)
        m[p], n[p] = xs.size, ys.size
    I10 = sum(1 for p in pats if m[p] > 0)
    I01 = sum(1 for p in pats if n[p] > 0)
    I = len(pats)
    S10 = I10 / ((I10 - 1) * M) * sum((V10[p] - m[p] * theta) ** 2 for p in pats)
    S01 = I01 / ((I01 - 1) * N) * sum((V01[p] - n[p] * theta) ** 2 for p in pats)
    S11 = I / (I - 1) * sum((V10[p] - m[p] * theta) * (V01[p] - n[p] * theta) for p in pats)
    return theta, S10 / M + S01 / N + 2 * S11 / (M * N)


def test_obuchowski_matches_r_and_loop_oracle(lesions, ref):
    # Source: R function obuchowski() in make_reference.R, and the loop oracle above
    res = roc(lesions.response, lesions.tbp, cluster=lesions.patient)
    assert res.variance_method == "Obuchowski (clustered)" and res.n_clusters == 24
    assert_allclose(res.auc, ref["cl.obuchowski.tbp.auc"], rtol=RTOL)
    assert_allclose(res.auc_var, ref["cl.obuchowski.tbp.var"], rtol=RTOL)
    theta, var = _obuchowski_loop(lesions.response, lesions.tbp, lesions.patient)
    assert_allclose((res.auc, res.auc_var), (theta, var), rtol=1e-12)
    # pooled lesion-level AUC: identical to the unclustered AUC; clustering widens the variance here
    plain = roc(lesions.response, lesions.tbp)
    assert_allclose(plain.auc_var, ref["cl.roc.tbp.var_delong"], rtol=RTOL)
    assert res.auc == plain.auc and res.auc_var > plain.auc_var


def test_obuchowski_one_lesion_per_patient_equals_delong(asah, ref):
    # identity: with one lesion per patient Obuchowski's variance is DeLong's (also checked in R)
    res = roc(asah.outcome01, asah.s100b, cluster=[f"p{i}" for i in range(len(asah))])
    assert_allclose(res.auc_var, ref["roc.s100b.var_delong"], rtol=RTOL)
    assert_allclose(res.auc_var, ref["asah.obuchowski_one_per_patient.s100b.var"], rtol=RTOL)
    assert any("one lesion per patient" in n for n in res.notes)


def test_clustered_compare_roc_matches_r(lesions, ref):
    # Source: R function obuchowski2() in make_reference.R (clustered covariance of two AUCs)
    cmp = compare_roc(lesions.response, lesions.tbp, lesions.dmean, cluster=lesions.patient)
    assert cmp.variance_method == "Obuchowski (clustered)"
    assert_allclose([cmp.z, cmp.p], [ref["cl.obuchowski.tbp_dmean.z"], ref["cl.obuchowski.tbp_dmean.p"]], rtol=RTOL)


def test_clustered_compare_roc_reduces_to_variance(lesions):
    # comparing a marker with itself plus noise: the clustered covariance of (a, a) must equal
    # the Obuchowski variance, so var(diff) of two identical markers is 0 -> clear error
    with pytest.raises(TheraquantError, match="zero variance"):
        compare_roc(lesions.response, lesions.tbp, lesions.tbp, cluster=lesions.patient)
    cmp = compare_roc(lesions.response, lesions.tbp, lesions.dmean, cluster=lesions.patient)
    ra = roc(lesions.response, lesions.tbp, cluster=lesions.patient)
    rb = roc(lesions.response, lesions.dmean, cluster=lesions.patient)
    assert_allclose((cmp.auc_a, cmp.auc_b), (ra.auc, rb.auc), rtol=1e-12)
    # var(diff) = var_a + var_b - 2 cov, with |corr| <= 1
    assert -1 <= cmp.correlation <= 1
    assert_allclose(cmp.se**2, ra.auc_var + rb.auc_var - 2 * cmp.correlation * ra.auc_se * rb.auc_se, rtol=1e-10)


# ------------------------------------------------------------------ degenerate input
def test_cluster_errors():
    y = [1, 1, 0, 0, 1, 0]
    s = [3, 2, 1, 0, 2.5, 1.5]
    with pytest.raises(ValueError, match=r"one patient id per lesion \(6 lesions\), got shape \(5,\)"):
        roc(y, s, cluster=[1, 1, 2, 2, 3])
    # responders only in patient 1 -> 1 patient with a responder
    with pytest.raises(ValueError, match="at least 2 patients with a responding lesion .*got 1 and 3"):
        roc(y, s, cluster=["a", "a", "b", "c", "a", "d"])


def test_one_class_and_small_n_errors():
    with pytest.raises(ValueError, match="got 0 responder\\(s\\) and 6 non-responder\\(s\\)"):
        roc([0] * 6, np.arange(6.0))
    with pytest.raises(ValueError, match="got 1 responder\\(s\\) and 3"):
        roc([0, 1, 0, 0], [1, 2, 3, 4])


def test_missing_values_error():
    with pytest.raises(ValueError, match="score has 1 missing or infinite value\\(s\\) \\(first at index 2\\)"):
        roc([0, 1, 0, 1], [1.0, 2.0, np.nan, 3.0])
    with pytest.raises(ValueError, match="y has 1 missing value"):
        roc([0, 1, np.nan, 1], [1.0, 2.0, 2.5, 3.0])
    with pytest.raises(ValueError, match="must hold only 0 and 1"):
        roc([0, 1, 2, 1], [1.0, 2.0, 2.5, 3.0])


def test_all_tied_marker_documented():
    res = roc([0, 1, 0, 1, 0, 1], [2.0] * 6)
    assert res.auc == 0.5 and res.auc_var == 0.0 and res.ci == (0.5, 0.5)
    assert "all marker values are tied" in res.notes[0]


def test_perfect_separation_documented():
    res = roc([0, 0, 0, 1, 1, 1], [1, 2, 3, 4, 5, 6])
    assert res.auc == 1.0 and res.auc_var == 0.0 and res.youden_threshold == 4
    assert res.sensitivity == 1.0 and res.specificity == 1.0
    assert "complete separation" in res.notes[0]


def test_ci_clipping_flag():
    # small sample with high AUC: the Wald interval passes 1 and is clipped
    res = roc([0, 0, 0, 1, 1, 1, 0, 1], [1, 2, 3, 4, 5, 6, 4.5, 3.5])
    assert res.ci_clipped and res.ci[1] == 1.0
    assert res.auc + 1.959963984540054 * res.auc_se > 1


def test_threshold_metrics_undefined_documented():
    tm = threshold_metrics([0, 0, 1, 1], [1, 2, 3, 4], 10, direction="<")  # nothing positive
    assert np.isnan(tm.ppv) and tm.sensitivity == 0.0
    assert any("ppv undefined" in n for n in tm.notes)
    tm = threshold_metrics([0, 0, 1, 1], [1, 2, 3, 4], 3, direction="<")
    assert tm.lr_pos == np.inf and tm.lr_neg == 0.0
    assert any("0.5 added" in n for n in tm.notes)


def test_summary_is_fixed_width_text(lesions):
    txt = roc(lesions.response, lesions.tbp, cluster=lesions.patient, name="T/BP").summary()
    assert "Obuchowski" in txt and "T/BP >= 1.57" in txt and "24 patients" in txt
