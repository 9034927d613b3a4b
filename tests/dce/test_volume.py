"""The chunked whole-volume driver: chunking, masking, memory maps, non-finite data, errors.

The chunking logic is tested with a trivial closed-form "fit" injected (its exact answer
is known per voxel), then the real driver is checked against a direct call of
theraquant.dce.fit on the same voxels.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from theraquant.dce._volume import _fit_chunked
from theraquant.errors import TheraquantError

T = 12


def _toy_fit(calls: list[int] | None = None):
    """A closed-form stand-in for dce.fit: per-curve mean, first sample, success if mean > 0."""

    def fit_chunk(curves):
        assert curves.dtype == np.float64 and curves.ndim == 2 and curves.shape[1] == T
        if calls is not None:
            calls.append(curves.shape[0])
        mean = curves.mean(axis=1)
        return {"mean": mean, "first": curves[:, 0], "success": mean > 0,
                "cov": np.zeros((curves.shape[0], 2, 2))}  # not a map: ignored

    return fit_chunk


def _volume(shape=(5, 7, 6), seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(1.0, 1.0, size=(*shape, T)).astype(np.float32)


@pytest.mark.parametrize("chunk_voxels", [1, 7, 42, 64, 10_000])
def test_chunking_does_not_change_results(chunk_voxels):
    ct = _volume()
    mask = _volume(seed=1)[..., 0] > 0.8
    calls: list[int] = []
    res = _fit_chunked(ct, T, _toy_fit(calls), mask=mask, chunk_voxels=chunk_voxels)
    # reference: the same closed form computed directly on every voxel, in float64
    mean = ct.astype(np.float64).mean(axis=-1)
    ok = mask & (mean > 0)
    assert_array_equal(res["success"], ok)
    assert res["mean"].dtype == np.float32 and res["mean"].shape == mask.shape
    assert_allclose(res["mean"][ok], mean[ok], rtol=1e-6)  # float32 storage
    assert_array_equal(res["first"][ok], ct[..., 0][ok])
    assert np.all(np.isnan(res["mean"][~ok]))  # outside the mask and failed fits: NaN
    assert "cov" not in res
    # only masked voxels were fitted, in chunks of at most chunk_voxels, all full but the last
    assert sum(calls) == mask.sum() == res.n_voxels == res.n_fitted
    assert max(calls) <= chunk_voxels and all(c == chunk_voxels for c in calls[:-1])
    assert res.n_failed == int(mask.sum() - ok.sum())


def test_no_mask_fits_every_voxel_and_progress_reaches_total():
    ct = _volume((3, 4, 5))
    seen = []
    res = _fit_chunked(ct, T, _toy_fit(), chunk_voxels=8, progress=lambda d, n: seen.append((d, n)))
    assert res.n_voxels == 60
    assert [n for _, n in seen] == [60] * len(seen)
    done = [d for d, _ in seen]
    assert done == sorted(done) and done[-1] == 60 and len(done) == 8  # ceil(60 / 8) chunks


def test_memory_mapped_fortran_order_input(tmp_path):
    """A NIfTI-like layout: (x, y, z, t) in Fortran order on disk, viewed as (z, y, x, t)."""
    ct = _volume((4, 5, 6))
    disk = np.memmap(tmp_path / "ct.dat", dtype=np.float32, mode="w+", shape=(6, 5, 4, T), order="F")
    disk[:] = np.transpose(ct, (2, 1, 0, 3))
    disk.flush()
    view = np.transpose(np.memmap(tmp_path / "ct.dat", dtype=np.float32, mode="r", shape=(6, 5, 4, T),
                                  order="F"), (2, 1, 0, 3))
    res_mm = _fit_chunked(view, T, _toy_fit(), chunk_voxels=13)
    res_np = _fit_chunked(ct, T, _toy_fit(), chunk_voxels=1000)
    for key in ("mean", "first", "success"):
        assert_array_equal(res_mm[key], res_np[key])


def test_transform_gets_the_flat_voxel_index():
    ct = np.broadcast_to(np.arange(T, dtype=np.float32), (2, 3, 4, T))  # a ramp: first sample 0
    mask = np.zeros((2, 3, 4), bool)
    mask[0, 1, 2] = mask[1, 2, 3] = mask[1, 0, 0] = True

    def add_index(curves, index):  # concentration := the voxel's flat index
        return curves + index[:, None]

    res = _fit_chunked(ct, T, _toy_fit(), mask=mask, chunk_voxels=2, transform=add_index)
    expected = np.arange(24, dtype=float).reshape(2, 3, 4)
    assert_array_equal(res["first"][mask], expected[mask])


def test_nonfinite_voxels_are_skipped_and_counted():
    ct = _volume((2, 3, 4))
    ct[0, 0, 0, 5] = np.nan
    ct[1, 2, 3, 0] = np.inf
    calls: list[int] = []
    res = _fit_chunked(ct, T, _toy_fit(calls), chunk_voxels=5)
    assert res.n_nonfinite == 2 and sum(calls) == 22
    assert not res["success"][0, 0, 0] and np.isnan(res["mean"][0, 0, 0])
    assert not res["success"][1, 2, 3]


def test_nan_frame_raises():
    ct = _volume((2, 3, 4))
    ct[1, ..., 7] = np.nan  # one frame lost in the second slab
    with pytest.raises(TheraquantError, match=r"frame 7 \(t = 35 s\) is NaN or infinite in every voxel"):
        _fit_chunked(ct, T, _toy_fit(), chunk_voxels=12, frame_times=np.arange(T) * 5.0)


def test_constant_curves_are_skipped_and_counted():
    ct = _volume((2, 3, 4))
    ct[0, 1, :] = 0.0  # background: no enhancement
    ct[1, 2, 3] = 2.5
    calls: list[int] = []
    res = _fit_chunked(ct, T, _toy_fit(calls), chunk_voxels=7)
    assert res.n_constant == 5 and res.n_nonfinite == 0 and sum(calls) == 19
    assert not res["success"][0, 1].any() and np.isnan(res["mean"][1, 2, 3])


def test_nothing_to_fit_raises():
    ct = np.zeros((2, 3, 4, T))
    ct[0, 0, 0, 3] = np.nan
    with pytest.raises(TheraquantError, match=r"no voxel could be fitted: of 24 selected, 1 have NaN/inf "
                                              r"samples and 23 are constant in time"):
        _fit_chunked(ct, T, _toy_fit())


def test_single_curve_and_one_dimensional_leading_shape():
    curves = _volume((9,))
    res = _fit_chunked(curves, T, _toy_fit(), chunk_voxels=4)
    assert res["mean"].shape == (9,)
    one = _fit_chunked(curves[3], T, _toy_fit())
    assert one["mean"].shape == () and float(one["first"]) == pytest.approx(float(curves[3, 0]))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"ct": np.zeros((4, 5, 6))}, r"ct has shape \(4, 5, 6\) but t has 12 frame times"),
        ({"mask": np.ones((4, 5, 7), bool)},
         r"mask has shape \(4, 5, 7\) but .* leading \(spatial\) shape is \(4, 5, 6\)"),
        ({"mask": np.zeros((4, 5, 6), bool)}, "the mask selects no voxels"),
        ({"chunk_voxels": 0}, "chunk_voxels must be a positive integer, got 0"),
    ],
)
def test_bad_input_raises(kwargs, match):
    args = {"ct": np.ones((4, 5, 6, T)), "mask": None, "chunk_voxels": 100, **kwargs}
    with pytest.raises(TheraquantError, match=match):
        _fit_chunked(args["ct"], T, _toy_fit(), mask=args["mask"], chunk_voxels=args["chunk_voxels"])


# ---------------------------------------------------------------- the real fit
def _etofts_volume(shape=(3, 6, 7), noise_sd=0.01, seed=5):
    from theraquant import dce

    rng = np.random.default_rng(seed)
    t = np.arange(0.0, 240.0, 4.0)
    cp = dce.aif.parker(t, delay=10.0, hct=0.42)
    truth = {"Ktrans": rng.uniform(0.05, 0.5, shape), "ve": rng.uniform(0.1, 0.5, shape),
             "vp": rng.uniform(0.0, 0.1, shape)}
    ct = dce.simulate(t, "etofts", truth, cp=cp) + rng.normal(0.0, noise_sd, (*shape, t.size))
    return t, cp, ct.astype(np.float32), truth


def test_fit_volume_equals_direct_fit_on_the_masked_voxels():
    from theraquant import dce

    t, cp, ct, _ = _etofts_volume()
    mask = np.zeros(ct.shape[:-1], bool)
    mask[0, :3, :] = mask[2, 1:5, 2:6] = True
    res = dce.fit_volume(t, ct, "etofts", cp=cp, mask=mask, chunk_voxels=10)
    direct = dce.fit(t, ct[mask].astype(np.float64), "etofts", cp=cp)  # the same voxels in one call
    for key in ("Ktrans", "ve", "vp", "kep", "r2", "aic", "Ktrans_se"):
        assert res[key].dtype == np.float32
        # float32 storage of the same float64 numbers: equal to float32 rounding
        assert_allclose(res[key][mask], direct[key], rtol=1e-6, atol=0, err_msg=key)
        assert np.all(np.isnan(res[key][~mask]))  # outside the mask: NaN, never fitted
    assert_array_equal(res["success"][mask], direct["success"])
    assert not res["success"][~mask].any() and res.n_voxels == mask.sum() == res.n_fitted
    assert res.units["Ktrans"] == "1/min" and res.settings["model"] == "etofts"


def test_fit_volume_chunk_size_does_not_change_the_maps():
    from theraquant import dce

    t, cp, ct, _ = _etofts_volume(shape=(2, 5, 5))
    small = dce.fit_volume(t, ct, "etofts", cp=cp, chunk_voxels=3)
    large = dce.fit_volume(t, ct, "etofts", cp=cp, chunk_voxels=1000)
    for key in small:
        assert_allclose(small[key], large[key], rtol=1e-6, atol=0, equal_nan=True, err_msg=key)


def test_fit_volume_noiseless_recovers_truth_and_passes_options():
    from theraquant import dce

    t, cp, ct, truth = _etofts_volume(shape=(2, 3, 4), noise_sd=0.0)
    res = dce.fit_volume(t, ct, "etofts", cp=cp, chunk_voxels=7, delay=0.0)
    # noiseless float32 curves: float32 rounding of ct (~1e-7 relative) limits recovery
    for key in ("Ktrans", "ve"):
        assert_allclose(res[key], truth[key], rtol=2e-3, err_msg=key)
    assert_allclose(res["vp"], truth["vp"], atol=1e-4)  # mL/mL


def test_fit_volume_rejects_an_input_function_of_the_wrong_length():
    from theraquant import dce

    t, cp, ct, _ = _etofts_volume(shape=(1, 2, 2))
    with pytest.raises(TheraquantError, match=r"cp has 59 samples but there are 60 frame times"):
        dce.fit_volume(t, ct, "etofts", cp=cp[:-1])
    with pytest.raises(TheraquantError, match=r"ct has shape \(1, 2, 2\) but t has 60 frame times"):
        dce.fit_volume(t, ct[..., 0], "etofts", cp=cp)


def test_fit_volume_takes_t_first_and_the_old_order_warns():
    # issue #9: argument order as in dce.fit(t, ct, ...); fit_volume(ct, t, ...) works one more
    # release with a DeprecationWarning and gives the same maps
    from theraquant import dce

    t = np.arange(0.0, 300.0, 5.0)
    cp = dce.aif.parker(t, hct=0.42)
    ct = dce.simulate(t, "etofts", {"Ktrans": np.full((2, 3), 0.2), "ve": 0.3, "vp": 0.05}, cp=cp)
    new = dce.fit_volume(t, ct, "etofts", cp=cp)
    with pytest.warns(DeprecationWarning, match=r"pass the frame times first, fit_volume\(t, ct"):
        old = dce.fit_volume(ct, t, "etofts", cp=cp)
    assert_array_equal(new["Ktrans"], old["Ktrans"])
    with pytest.warns(DeprecationWarning):  # a single curve: t is the strictly increasing one
        one = dce.fit_volume(ct[0, 0], t, "etofts", cp=cp)
    assert float(one["Ktrans"]) == pytest.approx(0.2, rel=1e-4)


def test_volume_fit_is_a_result_with_the_call_in_its_provenance():
    import pickle

    from theraquant import dce
    from theraquant.results import Result

    t = np.arange(0.0, 300.0, 5.0)
    cp = dce.aif.parker(t, hct=0.42)
    ct = dce.simulate(t, "etofts", {"Ktrans": np.full((2, 3), 0.2), "ve": 0.3, "vp": 0.05}, cp=cp)
    res = dce.fit_volume(t, ct, "etofts", cp=cp)
    assert isinstance(res, Result) and res.Ktrans is res["Ktrans"] and res.units["Ktrans"] == "1/min"
    assert res.maps["Ktrans"] is res["Ktrans"] and not res["Ktrans"].flags.writeable
    assert res.provenance["Command"].startswith("theraquant.dce.fit_volume(t=<array (60,) float64>, "
                                                "ct=<array (2, 3, 60) float64>, model='etofts'")
    back = pickle.loads(pickle.dumps(res))
    assert back == res and back.n_voxels == 6 and back.settings["model"] == "etofts"
