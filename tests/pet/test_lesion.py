"""SUVpeak, lesion metrics and the PERCIST liver reference.

References: the 1 mL PERCIST sphere (radius 6.2035 mm) and the PERCIST thresholds from
tests/data/nm/analytic/analytic_checks.json (Wahl et al. J Nucl Med 2009;50:122S; O et al.
Radiology 2016;280:576); SUVpeak checked against a test-only brute-force loop with an independent
overlap computation, and against analytic cases (uniform sphere, linear ramp, single hot voxel).
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from theraquant.errors import TheraquantError
from theraquant.pet import (lesion_metrics, liver_reference, percist_threshold, sphere_kernel,
                            sphere_radius_mm, suv_peak, suv_peak_location)

EX = json.loads((Path(__file__).resolve().parents[1] / "data" / "nm" / "analytic" /
                 "analytic_checks.json").read_text())["worked_examples"]


def test_sulpeak_sphere_size():
    s = EX["sulpeak_sphere"]
    r = sphere_radius_mm(s["volume_ml"])
    assert r == pytest.approx(s["radius_mm"], abs=5e-5)
    assert 2 * r == pytest.approx(s["diameter_mm"], abs=5e-4)


@pytest.mark.parametrize("spacing", [(2.0, 2.0, 2.0), (3.0, 4.07, 4.07), (5.0, 2.0, 3.0), (1.0, 1.0, 1.0)])
def test_sphere_kernel_holds_one_millilitre(spacing):
    k = sphere_kernel(spacing)
    # partial-voxel weights: the kernel's volume is the sphere's; 32x32 sub-samples per edge voxel
    # with the exact chord along x leave < 2e-4 relative error (measured <= 1e-4)
    assert k.sum() * np.prod(spacing) / 1000.0 == pytest.approx(1.0, rel=2e-4)
    assert np.all((k >= 0) & (k <= 1))
    assert_allclose(k, k[::-1, ::-1, ::-1])  # symmetric about the centre voxel


def _overlap_bruteforce(offset_mm, spacing, r, n=12):
    """Fraction of a voxel (centre offset_mm from the sphere centre) inside the sphere: n^3 sub-samples."""
    u = (np.arange(n) + 0.5) / n - 0.5
    pts = np.stack(np.meshgrid(*[o + u * s for o, s in zip(offset_mm, spacing)], indexing="ij"), -1)
    return float(np.mean(np.sum(pts**2, axis=-1) <= r * r))


def _peak_bruteforce(values, mask, spacing, sphere_ml=1.0):
    """Test-only reference: loop over mask voxels and over every voxel near the sphere."""
    r = sphere_radius_mm(sphere_ml)
    sp = np.asarray(spacing, float)
    h = np.ceil(r / sp + 0.5).astype(int)
    weights = {}
    for off in itertools.product(*[range(-n, n + 1) for n in h]):
        w = _overlap_bruteforce(np.asarray(off) * sp, sp, r)
        if w > 0:
            weights[off] = w
    best, where = -np.inf, None
    for c in zip(*np.nonzero(mask)):
        num = den = 0.0
        for off, w in weights.items():
            p = tuple(int(a + b) for a, b in zip(c, off))
            if all(0 <= q < s for q, s in zip(p, values.shape)):
                num += w * values[p]
                den += w
        if num / den > best:
            best, where = num / den, c
    return best, tuple(int(i) for i in where)


@pytest.mark.parametrize("spacing", [(2.0, 2.0, 2.0), (3.0, 4.07, 4.07), (4.0, 2.0, 2.5)])
def test_suv_peak_matches_bruteforce_loop(spacing):
    rng = np.random.default_rng(7)
    values = rng.gamma(2.0, 1.0, size=(14, 15, 16))
    mask = np.zeros(values.shape, bool)
    mask[3:9, 2:8, 9:16] = True  # touches the image edge in x: the sphere is partly outside
    got, where = suv_peak_location(values, mask, spacing)
    want, want_where = _peak_bruteforce(values, mask, spacing)
    # two overlap estimates (exact chord + 32^2 vs 12^3 sub-samples) differ by ~1e-3 per edge voxel
    assert got == pytest.approx(want, rel=1e-3)
    assert where == want_where


def test_suv_peak_uniform_hot_sphere_anisotropic():
    spacing = (3.0, 4.07, 4.07)
    z, y, x = np.meshgrid(*[(np.arange(n) - n // 2) * s for n, s in zip((40, 30, 30), spacing)], indexing="ij")
    hot = z**2 + y**2 + x**2 <= 25.0**2
    img = np.where(hot, 4.0, 1.0)
    # a 1 mL sphere centred anywhere deeper than 25 - 6.2 - voxel diagonal sees only SUV 4
    assert suv_peak(img, hot, spacing) == pytest.approx(4.0, abs=1e-12)


def test_suv_peak_linear_ramp_equals_centre_value():
    spacing = (3.0, 2.0, 4.07)
    z = np.arange(30)[:, None, None] * spacing[0]
    img = np.broadcast_to(1.0 + 0.05 * z, (30, 12, 12)).copy()
    mask = np.zeros(img.shape, bool)
    mask[5:20, 4:8, 4:8] = True
    # the kernel is symmetric, so a sphere's mean of a linear field is its centre's value
    peak, where = suv_peak_location(img, mask, spacing)
    assert peak == pytest.approx(1.0 + 0.05 * 19 * 3.0, rel=1e-12)
    assert where[0] == 19


def test_suv_peak_single_hot_voxel():
    img = np.ones((15, 15, 15))
    img[7, 7, 7] = 4.0
    mask = img > 2
    # the hot voxel lies wholly inside the sphere: mean = 1 + 3 x (8 mm^3 / 1000 mm^3)
    assert suv_peak(img, mask, 2.0) == pytest.approx(1.024, rel=2e-4)


def test_suv_peak_sphere_leaving_the_image_averages_its_inside_part():
    img = np.full((6, 6, 6), 2.5)
    mask = np.zeros(img.shape, bool)
    mask[0, 0, 0] = True
    assert suv_peak(img, mask, 2.0) == pytest.approx(2.5, rel=1e-12)


def test_lesion_metrics_values_and_mtv_rules():
    rng = np.random.default_rng(3)
    img = rng.uniform(0.5, 1.5, (20, 20, 20))
    img[6:14, 6:14, 6:14] = np.linspace(2.0, 8.0, 512).reshape(8, 8, 8)
    mask = np.zeros(img.shape, bool)
    mask[5:15, 5:15, 5:15] = True
    sp = (2.0, 2.0, 2.0)
    vals = img[mask]
    res = lesion_metrics(img, mask, sp)
    assert res["SUVmax"] == pytest.approx(8.0) and res["SUVmean"] == pytest.approx(vals.mean())
    assert res["volume_mL"] == pytest.approx(1000 * 8e-3) and res["MTV_mL"] == res["volume_mL"]
    assert res["TLG"] == pytest.approx(vals.mean() * 8.0)
    assert res["SUVpeak"] == pytest.approx(suv_peak(img, mask, sp))
    assert res.units["TLG"] == "g" and res.units["SUVpeak"] == "g/mL"
    fixed = lesion_metrics(img, mask, sp, mtv_threshold=2.5)
    n = np.count_nonzero(vals >= 2.5)
    assert fixed["MTV_mL"] == pytest.approx(n * 8e-3)
    assert fixed["TLG"] == pytest.approx(vals[vals >= 2.5].mean() * n * 8e-3)
    pct = lesion_metrics(img, mask, sp, mtv_threshold="41%")
    assert pct["MTV_threshold"] == pytest.approx(0.41 * 8.0)
    assert pct["MTV_mL"] == pytest.approx(np.count_nonzero(vals >= 3.28) * 8e-3)
    liver = {"mean": 2.0, "sd": 0.3}  # PERCIST example: threshold 3.6
    per = lesion_metrics(img, mask, sp, mtv_threshold="percist", liver=liver)
    assert per["MTV_threshold"] == pytest.approx(3.6)
    assert per["MTV_mL"] == pytest.approx(np.count_nonzero(vals >= 3.6) * 8e-3)
    assert "SUVpeak" in res.summary()


@pytest.mark.parametrize("case", [c for c in EX["percist_examples"] if "expected_measurability_threshold" in c])
def test_percist_thresholds(case):
    if "liver_SULmean" in case:
        got = percist_threshold(case["liver_SULmean"], case["liver_SD"])
    else:
        got = percist_threshold(case["bloodpool_SULmean"], case["bloodpool_SD"], reference="blood_pool")
    assert got == pytest.approx(case["expected_measurability_threshold"], abs=1e-12)


def test_liver_reference_sphere():
    rng = np.random.default_rng(11)
    sp = (3.0, 2.5, 2.5)
    img = rng.normal(2.0, 0.3, (40, 60, 60))
    liver = np.zeros(img.shape, bool)
    liver[5:35, 10:50, 10:50] = True
    ref = liver_reference(img, sp, liver_mask=liver)
    c = ref["centre_index"]
    zz, yy, xx = np.meshgrid(*[(np.arange(n) - ci) * s for n, ci, s in zip(img.shape, c, sp)], indexing="ij")
    ball = zz**2 + yy**2 + xx**2 <= 15.0**2
    assert np.all(liver[ball])  # the automatic sphere lies wholly in the liver
    assert ref["mean"] == pytest.approx(img[ball].mean(), rel=1e-12)
    assert ref["sd"] == pytest.approx(img[ball].std(ddof=1), rel=1e-12)
    # 3 cm sphere = 14.14 mL; voxel-centre counting on 15.6 uL voxels is within 2 %
    assert ref["volume_mL"] == pytest.approx(4 / 3 * np.pi * 1.5**3, rel=0.02)
    assert ref["percist_threshold"] == pytest.approx(1.5 * ref["mean"] + 2 * ref["sd"])
    manual = liver_reference(img, sp, centre_index=(20, 30, 30))
    assert manual["centre_index"] == (20, 30, 30)


def test_liver_too_small_for_the_sphere():
    liver = np.zeros((20, 20, 20), bool)
    liver[5:10, 5:10, 5:10] = True
    with pytest.raises(TheraquantError, match="liver_mask cannot hold a 30 mm sphere"):
        liver_reference(np.ones((20, 20, 20)), 2.0, liver_mask=liver)


@pytest.mark.parametrize(("values", "mask", "match"), [
    (np.full((5, 5, 5), np.nan), np.ones((5, 5, 5), bool), "NaN or infinite"),
    (np.ones((5, 5, 5)), np.ones((5, 5, 4), bool), r"values and mask must be on the same grid: shapes \(5, 5, 5\)"),
    (np.ones((5, 5, 5)), np.zeros((5, 5, 5), bool), "mask is empty"),
    (np.ones((5, 5, 5)), np.full((5, 5, 5), 3), r"mask is a label image \(values \[3\]\), not a mask; make one mask per label, e.g. mask == 3"),
    (np.ones((5, 5)), np.ones((5, 5), bool), "values must be a 3-D array"),
])
def test_bad_input(values, mask, match):
    with pytest.raises(TheraquantError, match=match):
        lesion_metrics(values, mask, 2.0)


def test_bad_options():
    img, mask = np.ones((5, 5, 5)), np.ones((5, 5, 5), bool)
    with pytest.raises(TheraquantError, match="needs liver="):
        lesion_metrics(img, mask, 2.0, mtv_threshold="percist")
    with pytest.raises(TheraquantError, match="percentage must be in"):
        lesion_metrics(img, mask, 2.0, mtv_threshold="140%")
    with pytest.raises(TheraquantError, match=r"spacing_mm must hold 3 positive voxel sizes"):
        suv_peak(img, mask, (2.0, -1.0, 2.0))

_sp = st.floats(0.8, 6.0, allow_nan=False)


@settings(max_examples=25, deadline=None)
@given(dz=_sp, dy=_sp, dx=_sp, ml=st.floats(0.2, 3.0))
@example(dz=6.0, dy=5.78125, dx=5.78125, ml=0.201171875)  # sphere ~ one voxel: 1.1e-3 off with 32 sub-samples
@example(dz=6.0, dy=4.90625, dx=1.0, ml=0.275390625)  # coarse z sub-sampled: 1.0e-3 off before the axis sort
def test_kernel_volume_any_grid(dz, dy, dx, ml):
    # partial-voxel weighting keeps the sphere volume on any anisotropic grid (measured < 5e-5 over 300 random grids)
    k = sphere_kernel((dz, dy, dx), sphere_ml=ml)
    assert k.sum() * dz * dy * dx / 1000.0 == pytest.approx(ml, rel=1e-3)


@settings(max_examples=15, deadline=None)
@given(dz=_sp, dx=_sp, c=st.floats(0.1, 50.0), a=st.floats(-0.2, 0.2))
def test_suv_peak_of_a_linear_field_is_the_best_centre_value(dz, dx, c, a):
    # symmetric kernel: the sphere mean of c + a*z equals its centre's value, wherever it lies inside
    img = c + a * np.arange(24)[:, None, None] * dz * np.ones((24, 9, 9))
    mask = np.zeros(img.shape, bool)
    mask[8:16, 4, 4] = True
    want = img[8:16, 4, 4].max()
    assert suv_peak(img, mask, (dz, 2.0, dx)) == pytest.approx(want, rel=1e-9, abs=1e-12)


def test_result_is_read_only_with_units_and_html():
    res = lesion_metrics(np.full((6, 6, 6), 2.0), np.ones((6, 6, 6), bool), 2.0)
    with pytest.raises(TypeError):
        res["SUVmax"] = 3.0  # type: ignore[index]
    html = res._repr_html_()
    assert "<td>SUVpeak</td><td>2</td><td>g/mL</td>" in html and "<td>TLG</td>" in html
