"""Per-label summary table against numpy/scipy computed directly on the same voxels."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import stats

from theraquant.dce import summarize_maps
from theraquant.dce._summary import SUMMARY_COLUMNS
from theraquant.errors import TheraquantError


def _maps(seed=3):
    rng = np.random.default_rng(seed)
    shape = (6, 20, 30)
    labels = np.zeros(shape, np.int16)
    labels[:, 2:18, 3:27] = 1
    labels[2:5, 5:10, 5:12] = 2
    labels[1:3, 12:16, 20:25] = 7
    ktrans = rng.gamma(2.0, 0.05, size=shape)
    ve = rng.beta(2.0, 5.0, size=shape)
    success = rng.random(shape) > 0.1
    ve[0, 3, 4] = np.nan  # a NaN in a "successful" voxel is also left out
    return {"Ktrans": ktrans, "ve": ve, "success": success}, labels


def test_statistics_match_numpy_and_scipy():
    maps, labels = _maps()
    tab = summarize_maps(maps, labels, label_names={1: "liver", 2: "lesion"})
    assert list(tab.columns) == list(SUMMARY_COLUMNS)
    assert tab["label"].tolist() == [1, 1, 2, 2, 7, 7]
    assert tab["name"].tolist() == ["liver", "liver", "lesion", "lesion", "label 7", "label 7"]
    for row in tab.itertuples():
        inside = labels == row.label
        v = maps[row.parameter][inside & maps["success"]]
        v = v[np.isfinite(v)]
        assert row.n_voxels == inside.sum() and row.n_valid == v.size
        assert row.failed_fraction == pytest.approx(1 - v.size / inside.sum(), rel=1e-12)
        p10, p25, p50, p75, p90 = np.percentile(v, [10, 25, 50, 75, 90])
        # reference: numpy.percentile (linear) and scipy.stats skew/kurtosis (biased, Fisher)
        assert_allclose([row.p10, row.p25, row.median, row.p75, row.p90], [p10, p25, p50, p75, p90],
                        rtol=1e-12)
        assert row.iqr == pytest.approx(p75 - p25, rel=1e-12)
        assert row.mean == pytest.approx(v.mean(), rel=1e-12)
        assert row.sd == pytest.approx(v.std(ddof=1), rel=1e-12)
        assert row.skewness == pytest.approx(stats.skew(v), rel=1e-9)
        assert row.kurtosis == pytest.approx(stats.kurtosis(v), rel=1e-9)


def test_gamma_sample_shape_statistics_are_the_theoretical_ones():
    # A gamma(k=2) sample has skewness 2/sqrt(k) = 1.414 and excess kurtosis 6/k = 3
    # (textbook values); 400,000 draws put the estimates within a few per cent.
    rng = np.random.default_rng(11)
    vals = rng.gamma(2.0, 0.1, size=(400, 1000))
    tab = summarize_maps({"Ktrans": vals}, np.ones(vals.shape, bool))
    assert tab.loc[0, "skewness"] == pytest.approx(2 / np.sqrt(2), rel=0.03)
    assert tab.loc[0, "kurtosis"] == pytest.approx(3.0, rel=0.08)
    assert tab.loc[0, "median"] == pytest.approx(stats.gamma(2.0, scale=0.1).median(), rel=0.01)


def test_failed_fraction_and_empty_or_constant_labels():
    labels = np.array([1, 1, 1, 1, 2, 2, 3])
    maps = {"ve": np.array([0.2, 0.2, 0.2, np.nan, 0.5, 0.5, 0.4]),
            "success": np.array([True, True, True, False, False, False, True])}
    tab = summarize_maps(maps, labels).set_index("label")
    assert tab.loc[1, "failed_fraction"] == pytest.approx(0.25)
    assert tab.loc[1, "median"] == pytest.approx(0.2) and np.isnan(tab.loc[1, "skewness"])  # no spread
    assert tab.loc[2, "failed_fraction"] == 1.0 and tab.loc[2, "n_valid"] == 0 and np.isnan(tab.loc[2, "median"])
    assert tab.loc[3, "n_valid"] == 1 and np.isnan(tab.loc[3, "sd"])


def test_success_map_is_not_summarised_unless_asked_and_order_follows_parameters():
    maps, labels = _maps()
    tab = summarize_maps(maps, labels, parameters=["ve"])
    assert set(tab["parameter"]) == {"ve"}


@pytest.mark.parametrize(
    "maps, labels, kwargs, match",
    [
        ({"ve": np.zeros((3, 4))}, np.ones((3, 5), int), {},
         r"map 've' has shape \(3, 4\) but labels have shape \(3, 5\)"),
        ({"ve": np.zeros(3)}, np.ones(3, int), {"parameters": ["Ktrans"]},
         r"parameter 'Ktrans' is not among the maps \['ve'\]"),
        ({"ve": np.zeros(3)}, np.array([0.5, 1.0, 2.0]), {}, "labels must be an integer"),
    ],
)
def test_bad_input(maps, labels, kwargs, match):
    with pytest.raises(TheraquantError, match=match):
        summarize_maps(maps, labels, **kwargs)
