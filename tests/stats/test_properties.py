"""Property tests (hypothesis) and degenerate input for the statistics layer."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose
from scipy import stats as sps

from theraquant.stats import analyze, compare_roc, fisher_test, mann_whitney, roc

labels_scores = st.integers(4, 40).flatmap(lambda n: st.tuples(
    st.lists(st.integers(0, 1), min_size=n, max_size=n),
    st.lists(st.integers(0, 6), min_size=n, max_size=n)))  # small integer scores: many ties


@settings(max_examples=60, deadline=None)
@given(labels_scores)
def test_auc_is_mann_whitney_u_and_loop_delong(data):
    y, s = map(np.asarray, data)
    if y.sum() < 2 or (1 - y).sum() < 2:
        return
    res = roc(y, s, direction="<")
    X, Y = s[y == 1], s[y == 0]
    psi = (X[:, None] > Y[None, :]) + 0.5 * (X[:, None] == Y[None, :])
    assert_allclose(res.auc, psi.mean(), rtol=1e-12)
    assert_allclose(res.auc, sps.mannwhitneyu(X, Y).statistic / (X.size * Y.size), rtol=1e-12)
    # DeLong (1988) by its defining double sums
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    assert_allclose(res.auc_var, np.var(v10, ddof=1) / X.size + np.var(v01, ddof=1) / Y.size, rtol=1e-9, atol=1e-15)
    # one lesion per patient: Obuchowski == DeLong
    assert_allclose(roc(y, s, direction="<", cluster=np.arange(y.size)).auc_var, res.auc_var, rtol=1e-9, atol=1e-15)
    # a monotone transform changes nothing; reversing the direction mirrors the AUC
    assert_allclose(roc(y, np.exp(s), direction="<").auc, res.auc, rtol=1e-12)
    assert_allclose(roc(y, s, direction=">").auc, 1 - res.auc, rtol=1e-12, atol=1e-15)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 6), min_size=4, max_size=4))
def test_fisher_rxc_2x2_agrees_with_hypergeometric(cells):
    t = np.array(cells).reshape(2, 2)
    if (t.sum(0) == 0).any() or (t.sum(1) == 0).any():
        return
    from theraquant.stats._tests import _fisher_rxc
    assert_allclose(_fisher_rxc(t, 10**6)[0], fisher_test(t).p, rtol=1e-9)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000))
def test_compare_roc_antisymmetric(seed):
    rng = np.random.default_rng(seed)
    y = np.r_[np.ones(8), np.zeros(9)]
    a, b = rng.normal(size=17) + y, rng.normal(size=17)
    ab, ba = compare_roc(y, a, b, direction="<"), compare_roc(y, b, a, direction="<")
    assert_allclose(ab.z, -ba.z, rtol=1e-12)
    assert_allclose(ab.p, ba.p, rtol=1e-12)


def test_analyze_degenerate_marker_is_noted_not_crashing(lesions):
    df = lesions.assign(flat=3.0)
    df.loc[df.index[:3], "tbp"] = np.nan
    rep = analyze(df, "response", ["tbp", "flat"], n_boot=0)
    assert rep.roc["flat"].auc == 0.5 and "tied" in rep.roc["flat"].notes[0]
    assert "flat" not in rep.univariable
    assert any("flat: logistic model skipped: predictor 'flat' is constant" in n for n in rep.notes)
    assert any("tbp: 3 lesion(s) with a missing value left out" in n for n in rep.notes)
    assert rep.roc["tbp"].n_pos + rep.roc["tbp"].n_neg == 69
    text = rep.summary()
    assert "note:" in text and "Obuchowski" in text


def test_analyze_one_lesion_per_patient(asah):
    rep = analyze(asah.assign(patient=np.arange(len(asah))), "outcome01", ["s100b"], n_boot=0)
    assert rep.cluster == "patient" and "independence" in rep.univariable["s100b"].method
    assert_allclose(rep.roc["s100b"].auc_var, roc(asah.outcome01, asah.s100b).auc_var, rtol=1e-12)


def test_analyze_too_small_or_one_class():
    df = pd.DataFrame({"r": [0, 1, 0, 1], "x": [1.0, 2, 3, 4]})
    with pytest.raises(ValueError, match="4 usable lesions; cohort statistics need at least 5"):
        analyze(df, "r", "x")
    df = pd.DataFrame({"r": [0] * 6, "x": np.arange(6.0)})
    with pytest.raises(ValueError, match="one class only \\(0 responders of 6 lesions\\)"):
        analyze(df, "r", "x")


def test_analyze_small_but_valid_table_notes_skips():
    # 6 lesions, 3 patients: runs, and what cannot be estimated is explained
    df = pd.DataFrame({"patient": [1, 1, 2, 2, 3, 3], "r": [1, 0, 1, 0, 0, 1], "x": [2.0, 1, 3, 1.5, 2.5, 2.2]})
    rep = analyze(df, "r", "x", n_boot=100)
    assert rep.roc["x"].variance_method == "Obuchowski (clustered)"
    assert isinstance(rep.notes, tuple)
    assert mann_whitney([1, 2, 3], [4, 5, 6]).method == "exact"
