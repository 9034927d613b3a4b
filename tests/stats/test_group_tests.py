"""Group comparisons against R's stats package (wilcox.test, kruskal.test, chisq.test, fisher.test).

Source: tests/data/r_reference/make_reference.R (R 4.2.2). Tolerance rtol 1e-9: the same
closed forms in double precision (observed ~1e-13); the Fisher r x c p-value is a sum of up to
4e4 table probabilities (observed 3e-14).
"""

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from theraquant.stats import chi2_test, fisher_test, kruskal_wallis, mann_whitney, wilcoxon_signed_rank

RTOL = 1e-9
X1 = [1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30]  # R ?wilcox.test example data
Y1 = [0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29]


def test_mann_whitney_normal_approx(asah, ref):
    r = mann_whitney(asah.s100b[asah.outcome01 == 1], asah.s100b[asah.outcome01 == 0])
    assert r.method == "normal approximation with continuity correction"  # ties -> as R
    assert r.statistic == ref["mw.s100b.W"]
    assert_allclose(r.p, ref["mw.s100b.p"], rtol=RTOL)
    # W / (n1 n0) is the AUC (pROC value)
    assert_allclose(r.details["auc"], ref["roc.s100b.auc"], rtol=RTOL)


def test_mann_whitney_exact(ref):
    r = mann_whitney(X1, [0.80, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46])
    assert r.method == "exact" and r.statistic == ref["mw.exact.W"]
    assert_allclose(r.p, ref["mw.exact.p"], rtol=RTOL)


@pytest.mark.parametrize("table,value,group,key", [("asah", "s100b", "wfns", "s100b_wfns"),
                                                   ("lesions", "tbp", "recist", "tbp_recist")])
def test_kruskal_wallis(request, ref, table, value, group, key):
    df = request.getfixturevalue(table)
    r = kruskal_wallis(df[value], df[group])
    assert_allclose(r.statistic, ref[f"kw.{key}.H"], rtol=RTOL)
    assert_allclose(r.p, ref[f"kw.{key}.p"], rtol=RTOL)
    if group == "recist":
        assert set(r.details) == {"CR", "PR", "SD", "PD"} and r.df == 3


def test_signed_rank_normal_approx(lesions, ref):
    r = wilcoxon_signed_rank(lesions.suv_base, lesions.suv_fu)
    assert r.statistic == ref["wsr.suv.V"] and "normal approximation" in r.method
    assert_allclose(r.p, ref["wsr.suv.p"], rtol=RTOL)


def test_signed_rank_exact(ref):
    r = wilcoxon_signed_rank(Y1, X1)  # R: wilcox.test(x, y, paired = TRUE) -> d = x - y
    assert r.method == "exact" and r.statistic == ref["wsr.exact.V"]
    assert_allclose(r.p, ref["wsr.exact.p"], rtol=RTOL)


def test_chi2_with_and_without_yates(ref_dir, ref):
    t = pd.read_csv(ref_dir / "table_gender_outcome.csv", index_col=0).to_numpy()
    yates, plain = chi2_test(t), chi2_test(t, correction=False)
    assert "Yates" in yates.method and "no continuity" in plain.method
    assert_allclose([yates.statistic, yates.p], [ref["chi2.gender.yates.stat"], ref["chi2.gender.yates.p"]], rtol=RTOL)
    assert_allclose([plain.statistic, plain.p], [ref["chi2.gender.plain.stat"], ref["chi2.gender.plain.p"]], rtol=RTOL)


def test_chi2_rxc_and_sparse_note(ref_dir, ref):
    t = pd.read_csv(ref_dir / "table_outcome_wfns.csv", index_col=0).to_numpy()
    r = chi2_test(t)
    assert r.df == ref["chi2.wfns.df"] and "no continuity" in r.method  # Yates only for 2x2
    assert_allclose([r.statistic, r.p], [ref["chi2.wfns.stat"], ref["chi2.wfns.p"]], rtol=RTOL)
    assert "expected count below 5" in r.notes[0]


def test_fisher_2x2(ref_dir, ref):
    t = pd.read_csv(ref_dir / "table_gender_outcome.csv", index_col=0).to_numpy()
    r = fisher_test(t)
    assert_allclose(r.p, ref["fisher.gender.p"], rtol=RTOL)
    # R's conditional MLE comes from uniroot (tolerance ~1e-4 on the log scale): 2e-6 observed
    assert_allclose(r.statistic, ref["fisher.gender.or_cond"], rtol=1e-5)


@pytest.mark.parametrize("name,key", [("table_outcome_wfns.csv", "fisher.wfns.p"),
                                      ("table_recist_tbp.csv", "fisher.recist_tbp.p"), (None, "fisher.t34.p")])
def test_fisher_rxc_exact(ref_dir, ref, name, key):
    t = ([[3, 1, 0, 2], [4, 1, 1, 2], [5, 0, 1, 3]] if name is None
         else pd.read_csv(ref_dir / name, index_col=0).to_numpy())
    r = fisher_test(t)
    assert r.method.startswith("exact (enumeration")
    assert_allclose(r.p, ref[key], rtol=RTOL)
    assert_allclose(fisher_test(np.asarray(t).T).p, ref[key], rtol=RTOL)  # orientation-free


def test_fisher_rxc_too_large_message():
    with pytest.raises(ValueError, match="needs more than 1000 tables; use chi2_test"):
        fisher_test([[20, 30, 25, 10], [15, 20, 30, 40], [10, 12, 14, 16]], max_tables=1000)


def test_table_errors():
    with pytest.raises(ValueError, match="empty row or column"):
        chi2_test([[0, 0], [3, 4]])
    with pytest.raises(ValueError, match="non-negative whole counts"):
        fisher_test([[1.5, 2], [3, 4]])
    with pytest.raises(ValueError, match="at least 2 rows and 2 columns"):
        chi2_test([[1, 2, 3]])


def test_degenerate_group_inputs():
    with pytest.raises(ValueError, match="all paired differences are zero"):
        wilcoxon_signed_rank([1, 2, 3], [1, 2, 3])
    with pytest.raises(ValueError, match="all values are tied"):
        kruskal_wallis([1, 1, 1, 1], ["a", "a", "b", "b"])
    with pytest.raises(ValueError, match="x has 1 missing value"):
        mann_whitney([1, np.nan], [2, 3])
    r = wilcoxon_signed_rank([1, 2, 3, 4, 5, 6], [1, 3, 5, 7, 9, 11])
    assert r.notes == ("1 zero difference(s) dropped",) and "normal" in r.method  # zeros -> as R
