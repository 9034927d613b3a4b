"""run_predict: a saved predictor applied to a new patient's DICOM (tests/pipeline/_patient_study.py)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from theraquant import stats
from theraquant.errors import TheraquantError
from theraquant.pipeline._predict import PREDICTION_COLUMNS, run_predict


def _study_module():
    name = "_theraquant_patient_study"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("_patient_study.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="module")
def model_and_patient(tmp_path_factory):
    root = tmp_path_factory.mktemp("newpatient")
    _study_module().write_study(root)
    rng = np.random.default_rng(5)
    n = 60
    df = pd.DataFrame({"patient": np.repeat(np.arange(20), 3), "t_bp": rng.normal(1.3, 0.2, n),
                       "dmean_gy": rng.gamma(6.0, 16.0, n), "ktrans": rng.normal(0.2, 0.05, n)})
    lp = 0.3 - 3.0 * (df.t_bp - 1.3) + 0.03 * (df.dmean_gy - 90.0)
    df["responder"] = (rng.random(n) < 1 / (1 + np.exp(-lp))).astype(int)
    model = stats.fit_predictor(df, "responder", ["t_bp", "dmean_gy", "ktrans"], cluster="patient")
    mpath = tmp_path_factory.mktemp("model") / "model.json"
    mpath.write_text(model.to_json())
    return mpath, root, model


def test_predictions_follow_the_model(model_and_patient, tmp_path):
    mpath, root, model = model_and_patient
    res = run_predict(mpath, root, tmp_path / "out")
    p = pd.read_csv(tmp_path / "out" / "predictions.csv", dtype={"lesion": str})
    assert list(p.columns) == [*PREDICTION_COLUMNS, "t_bp", "dmean_gy", "ktrans"]
    assert p["lesion"].tolist() == ["1", "2"] and (p["status"] == "ok").all()
    # the probability is the saved logistic model at the measured markers (t_bp ~1.5/1.1, Dmean ~119/48 Gy)
    c = model.coef
    lin = c["Intercept"] + sum(c[m] * p[m] for m in ("t_bp", "dmean_gy", "ktrans"))
    np.testing.assert_allclose(p["probability"], 1 / (1 + np.exp(-lin)), rtol=1e-9)
    assert p["t_bp"].tolist() == pytest.approx([1.5, 1.1], rel=1e-3)
    assert (p["predicted_response"] == (p["probability"] >= model.cutoff)).all()
    prov = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert prov["model"]["markers"] == ["t_bp", "dmean_gy", "ktrans"] and prov["model"]["cutoff"] == model.cutoff
    assert "SECRET-ID-7" not in (tmp_path / "out" / "predictions.json").read_text()
    assert res.failures == ()


def test_errors_name_the_file(model_and_patient, tmp_path):
    mpath, root, _ = model_and_patient
    with pytest.raises(TheraquantError, match="no such model file"):
        run_predict(tmp_path / "missing.json", root, tmp_path / "o1")
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "something else"}')
    with pytest.raises(TheraquantError, match="bad.json: not a theraquant predictor"):
        run_predict(bad, root, tmp_path / "o2")
    (tmp_path / "o3").mkdir()
    (tmp_path / "o3" / "x.txt").write_text("keep")
    with pytest.raises(TheraquantError, match="not empty"):
        run_predict(mpath, root, tmp_path / "o3")


@pytest.mark.demo
def test_demo_model_predicts_a_phantom_patient(demo_results, tmp_path):
    study = demo_results["tare"].parent / "study"
    patient_dir = sorted(p for p in study.iterdir() if p.is_dir() and p.name.upper().startswith("TARE"))[0]
    res = run_predict(demo_results["tare"] / "model.json", patient_dir, tmp_path / "pred")
    p = res.predictions
    assert len(p) >= 1 and p["probability"].between(0, 1).all() and (p["status"] == "ok").all()
