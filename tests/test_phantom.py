"""The synthetic liver DCE phantom: geometry, inputs, noise, and truth recovered by fitting it."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

from theraquant import dce
from theraquant.errors import TheraquantError
from theraquant.phantom import LIVER_LABELS, LIVER_TISSUES, liver_dce_phantom

SHAPE = (3, 32, 32)


@pytest.fixture(scope="module")
def phantom():
    return liver_dce_phantom(shape=SHAPE)


def test_layout_labels_and_truth(phantom):
    ph = phantom
    assert ph.image.array.shape == (*SHAPE, 75) and ph.image.units == "mM"
    assert_allclose(ph.image.frame_times_s, np.arange(0.0, 300.0, 4.0))
    assert ph.labels.same_grid(ph.image) and ph.labels.array.dtype == np.int16
    counts = np.bincount(ph.labels.array.ravel(), minlength=7)
    assert all(counts[v] > 0 for v in LIVER_LABELS), counts  # every structure is present
    tissue = np.isin(ph.labels.array, list(LIVER_TISSUES))
    for name in ("Ktrans", "ve", "vp", "fa", "kep"):
        assert np.all(np.isfinite(ph.truth[name][tissue])) and np.all(np.isnan(ph.truth[name][~tissue]))
    assert_allclose(ph.truth["kep"][tissue], ph.truth["Ktrans"][tissue] / ph.truth["ve"][tissue], rtol=1e-12)
    # the truth follows the tissue table, within the +/-15 % gradient for Ktrans and vp
    for value, pars in LIVER_TISSUES.items():
        sel = ph.labels.array == value
        assert_allclose(ph.truth["ve"][sel], pars["ve"], rtol=0)
        assert_allclose(ph.truth["fa"][sel], pars["fa"], rtol=0)
        assert np.all(np.abs(ph.truth["Ktrans"][sel] / pars["Ktrans"] - 1) <= 0.15 + 1e-12)


def test_inputs_and_vessel_curves(phantom):
    ph = phantom
    hct = ph.settings["hct"]
    # reference: the package's own Parker AIF (plasma) and gut-IRF portal input, which the phantom promises
    assert_allclose(ph.cp, dce.aif.parker(ph.t, delay=20.0, hct=hct), rtol=1e-12)
    assert_allclose(ph.cp_portal, dce.aif.portal_venous(ph.t, ph.cp), rtol=1e-12)
    arr = ph.image.array
    aorta = arr[ph.labels.array == 5]
    portal = arr[ph.labels.array == 6]
    # vessels hold blood = plasma x (1 - hct), stored in float32
    assert_allclose(aorta, np.broadcast_to(ph.cp * (1 - hct), aorta.shape), rtol=1e-6, atol=1e-7)
    assert_allclose(portal, np.broadcast_to(ph.cp_portal * (1 - hct), portal.shape), rtol=1e-6, atol=1e-7)
    # measured AIF on the aorta label gives back the plasma input
    assert_allclose(dce.aif.measured(ph.t, aorta, hct=hct), ph.cp, rtol=1e-6, atol=1e-7)


def test_noiseless_phantom_truth_is_recovered_by_fitting(phantom):
    ph = phantom
    tissue = np.isin(ph.labels.array, list(LIVER_TISSUES))
    res = dce.fit_volume(ph.t, ph.image.array, ph.model, cp=ph.cp, cp_portal=ph.cp_portal, mask=tissue)
    assert res["success"][tissue].all()
    # noiseless curves stored in float32 (relative rounding 6e-8): the fit reproduces the truth to
    # float32 precision; 1e-4 relative leaves margin (measured worst case 4e-7)
    for name in ("Ktrans", "ve", "vp", "fa", "kep"):
        assert_allclose(res[name][tissue], ph.truth[name][tissue], rtol=1e-4, err_msg=name)


def test_noise_is_seeded_and_has_the_requested_sd():
    clean = liver_dce_phantom(shape=(2, 24, 24))
    a = liver_dce_phantom(shape=(2, 24, 24), noise_sd=0.05, rng=7)
    b = liver_dce_phantom(shape=(2, 24, 24), noise_sd=0.05, rng=np.random.default_rng(7))
    assert np.array_equal(a.image.array, b.image.array)
    resid = (a.image.array - clean.image.array).astype(np.float64)
    # 86,400 Gaussian draws: the sample SD is within 1 % of 0.05 mM (5 standard errors = 1.2 %)
    assert resid.std() == pytest.approx(0.05, rel=0.012)
    assert abs(resid.mean()) < 5 * 0.05 / np.sqrt(resid.size)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"noise_sd": 0.1}, r"noise_sd > 0 needs rng="),
        ({"shape": (2, 8, 8)}, r"shape \(2, 8, 8\) is too small in-plane"),
        ({"aif": "nope"}, r"unknown population AIF 'nope'"),
        ({"hct": 1.2}, r"hct must be a fraction in \[0, 1\), got 1.2"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(TheraquantError, match=match):
        liver_dce_phantom(**kwargs)


def test_signal_uses_the_t10_of_each_label(phantom):
    from theraquant.phantom import LIVER_T10_S

    sig, t10 = phantom.signal(tr=0.005, flip_angle=20.0, r1=4.0, m0=500.0)
    assert sig.same_grid(phantom.image) and sig.array.shape == phantom.image.array.shape
    assert_allclose(sig.frame_times_s, phantom.t)
    for value, v in LIVER_T10_S.items():
        assert np.all(t10.array[phantom.labels.array == value] == v)
    # reference: the SPGR steady state M0 sin(a) (1 - E1) / (1 - cos(a) E1), E1 = exp(-TR/T10),
    # for the pre-contrast frame of a liver voxel (the spoiled steady state: Ernst RR, Anderson WA.
    # Rev Sci Instrum 1966;37:93-102, doi:10.1063/1.1719961)
    e1 = np.exp(-0.005 / LIVER_T10_S[1])
    a = np.deg2rad(20.0)
    z, y, x = np.argwhere(phantom.labels.array == 1)[0]
    assert sig.array[z, y, x, 0] == pytest.approx(500.0 * np.sin(a) * (1 - e1) / (1 - np.cos(a) * e1), rel=1e-12)
