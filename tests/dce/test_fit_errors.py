"""Bad input to dce.fit / dce.simulate: a clear TheraquantError (a ValueError) naming the problem.

Issue #4 "Validation - bad input": NaN frames, non-monotonic times, mismatched shapes, a constant
curve, an AIF of the wrong length, a wrong model name. A curve that merely fails (one NaN voxel
in a volume) is success=False with NaN parameters, never an exception.
"""

from __future__ import annotations

import numpy as np
import pytest

from theraquant import dce
from theraquant.errors import TheraquantError

T = np.arange(0.0, 300.0, 5.0)
CP = 5.0 * (T / 30.0) * np.exp(1.0 - T / 30.0)
CT = dce.simulate(T, "tofts", {"Ktrans": 0.2, "ve": 0.3}, cp=CP)


def test_wrong_model_name_lists_choices():
    with pytest.raises(TheraquantError, match=r"model must be one of 'tofts', 'etofts'.*got 'toft'"):
        dce.fit(T, CT, "toft", cp=CP)
    with pytest.raises(TheraquantError, match="model must be one of"):
        dce.simulate(T, "extended_tofts", {"Ktrans": 0.1}, cp=CP)


def test_errors_are_value_errors():
    with pytest.raises(ValueError):
        dce.fit(T, CT, "nope", cp=CP)


def test_non_monotonic_times():
    t = T.copy()
    t[[3, 4]] = t[[4, 3]]
    with pytest.raises(TheraquantError, match=r"t must be strictly increasing.*t\[3\] = 20 and t\[4\] = 15"):
        dce.fit(t, CT, "tofts", cp=CP)
    t = T.copy()
    t[5] = t[4]
    with pytest.raises(TheraquantError, match="strictly increasing"):
        dce.simulate(t, "tofts", {"Ktrans": 0.1, "ve": 0.2}, cp=CP)


def test_nan_times():
    t = T.copy()
    t[2] = np.nan
    with pytest.raises(TheraquantError, match=r"t holds NaN or infinite frame times at index \[2\]"):
        dce.fit(t, CT, "tofts", cp=CP)


def test_time_not_1d():
    with pytest.raises(TheraquantError, match=r"t must be a 1-D array .* got shape \(2, 30\)"):
        dce.fit(T.reshape(2, 30), CT, "tofts", cp=CP)


def test_nan_frame_in_every_curve():
    ct = np.stack([CT, 2 * CT])
    ct[:, 4] = np.nan
    with pytest.raises(TheraquantError, match=r"ct is NaN or infinite in every curve at frame\(s\) \[4\] \(t = \[20.0\] s\)"):
        dce.fit(T, ct, "tofts", cp=CP)


def test_infinite_frame_or_every_curve_non_finite():
    ct = np.stack([CT, 2 * CT])
    ct[:, 7] = np.inf  # was misreported as "constant in every curve"
    with pytest.raises(TheraquantError, match=r"NaN or infinite in every curve at frame\(s\) \[7\]"):
        dce.fit(T, ct, "tofts", cp=CP)
    ct = np.stack([CT, 2 * CT])
    ct[0, 3] = np.nan
    ct[1, 9] = -np.inf
    with pytest.raises(TheraquantError, match=r"every curve of ct \(2\) holds NaN or infinite samples"):
        dce.fit(T, ct, "tofts", cp=CP)


def test_nan_in_one_curve_fails_that_curve_only():
    ct = np.stack([CT, CT, CT])
    ct[1, 10] = np.nan
    res = dce.fit(T, ct, "tofts", cp=CP)
    assert res["success"].tolist() == [True, False, True]
    assert np.isnan(res["Ktrans"][1]) and np.isnan(res["r2"][1])
    assert res["Ktrans"][0] == pytest.approx(0.2, rel=1e-4)


def test_mismatched_curve_length():
    with pytest.raises(TheraquantError, match=r"ct must have time on its last axis with 60 frames .* got shape \(59,\)"):
        dce.fit(T, CT[:-1], "tofts", cp=CP)
    with pytest.raises(TheraquantError, match=r"got shape \(60, 4\)"):
        dce.fit(T, np.tile(CT[:, None], (1, 4)), "tofts", cp=CP)


def test_aif_of_wrong_length():
    with pytest.raises(TheraquantError, match=r"cp must be a 1-D plasma concentration curve .* \(60 frames, like t\), got shape \(59,\)"):
        dce.fit(T, CT, "tofts", cp=CP[:-1])
    with pytest.raises(TheraquantError, match=r"cp_portal must be .* got shape \(61,\)"):
        dce.fit(T, CT, "dual_input_1c", cp=CP, cp_portal=np.append(CP, 0.0))
    with pytest.raises(TheraquantError, match="cp must be a 1-D"):
        dce.simulate(T, "tofts", {"Ktrans": 0.1, "ve": 0.2}, cp=CP[:10])


def test_nan_or_constant_aif():
    cp = CP.copy()
    cp[3] = np.nan
    with pytest.raises(TheraquantError, match=r"cp holds NaN or infinite values at frame\(s\) \[3\]"):
        dce.fit(T, CT, "tofts", cp=cp)
    with pytest.raises(TheraquantError, match=r"cp is constant \(0 mM at every frame\)"):
        dce.fit(T, CT, "tofts", cp=np.zeros_like(CP))


def test_missing_portal_input():
    with pytest.raises(TheraquantError, match="'dual_input_1c' is dual-input: it needs cp_portal"):
        dce.fit(T, CT, "dual_input_1c", cp=CP)


def test_constant_curve():
    with pytest.raises(TheraquantError, match=r"ct is constant in time in every curve \(1 curve\(s\)\)"):
        dce.fit(T, np.full(T.size, 0.3), "tofts", cp=CP)
    with pytest.raises(TheraquantError, match=r"ct is constant in time in every curve \(6 curve\(s\)\)"):
        dce.fit(T, np.zeros((2, 3, T.size)), "etofts", cp=CP)


def test_constant_curve_among_others_fails_alone_without_error():
    ct = np.stack([CT, np.zeros(T.size)])
    res = dce.fit(T, ct, "tofts", cp=CP)
    assert res["success"].tolist() == [True, False]  # ve is unidentifiable when nothing enhances
    assert np.isnan(res["r2"][1]) and np.isnan(res["ve"][1]) and np.isnan(res["Ktrans"][1])


def test_unknown_option_and_method():
    # options are explicit keyword-only parameters: a misspelt one is Python's TypeError
    with pytest.raises(TypeError, match="unexpected keyword argument 'delay_s'"):
        dce.fit(T, CT, "tofts", cp=CP, delay_s=3.0)
    with pytest.raises(TheraquantError, match="method must be 'nlls' or 'linear', got 'lm'"):
        dce.fit(T, CT, "tofts", cp=CP, method="lm")


def test_bad_delay_options():
    with pytest.raises(TheraquantError, match="delay must be a number of seconds, an array of the leading shape or 'fit', got 'auto'"):
        dce.fit(T, CT, "tofts", cp=CP, delay="auto")
    with pytest.raises(TheraquantError, match=r"delay array of shape \(3,\) does not match the curves' leading shape \(2,\)"):
        dce.fit(T, np.stack([CT, CT]), "tofts", cp=CP, delay=[1.0, 2.0, 3.0])
    with pytest.raises(TheraquantError, match=r"delay_bounds must be \(low, high\) in s with low < high"):
        dce.fit(T, CT, "tofts", cp=CP, delay="fit", delay_bounds=(5, -5))
    with pytest.raises(TheraquantError, match="delay_refine must be 'lm' or 'golden', got 'grid'"):
        dce.fit(T, CT, "tofts", cp=CP, delay="fit", delay_refine="grid")


def test_bad_bounds_and_p0():
    with pytest.raises(TheraquantError, match=r"bounds name\(s\) \['vp'\] are not free parameters of 'tofts'"):
        dce.fit(T, CT, "tofts", cp=CP, bounds={"vp": (0, 1)})
    with pytest.raises(TheraquantError, match="bounds must have low < high"):
        dce.fit(T, CT, "tofts", cp=CP, bounds={"ve": (0.5, 0.1)})
    with pytest.raises(TheraquantError, match="multistart must be True, False or 'auto', got 'yes'"):
        dce.fit(T, CT, "tofts", cp=CP, multistart="yes")
    with pytest.raises(TheraquantError, match=r"p0 lacks \['ve'\]"):
        dce.fit(T, CT, "tofts", cp=CP, p0={"Ktrans": 0.1})


def test_simulate_params_problems():
    with pytest.raises(TheraquantError, match=r"params for model 'etofts' lack \['vp'\]; it needs \['Ktrans', 've', 'vp'\]"):
        dce.simulate(T, "etofts", {"Ktrans": 0.1, "ve": 0.2}, cp=CP)
    with pytest.raises(TheraquantError, match=r"unknown name\(s\) \['Ktrns'\]"):
        dce.simulate(T, "tofts", {"Ktrns": 0.1, "Ktrans": 0.1, "ve": 0.2}, cp=CP)
    with pytest.raises(TheraquantError, match="must broadcast to one shape"):
        dce.simulate(T, "tofts", {"Ktrans": [0.1, 0.2], "ve": [0.1, 0.2, 0.3]}, cp=CP)
    with pytest.raises(TheraquantError, match="params must be a mapping"):
        dce.simulate(T, "tofts", [0.1, 0.2], cp=CP)
