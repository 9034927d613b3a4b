"""The `theraquant stats` command: table in, JSON and a screen table out, one-line errors."""

import json

import pytest
from numpy.testing import assert_allclose
from typer.testing import CliRunner

from theraquant.cli import app
from theraquant.stats import ResponsePredictor, logistic, roc

runner = CliRunner()


def test_stats_command_json_matches_library(tmp_path, ref_dir, lesions, ref):
    out, model = tmp_path / "res.json", tmp_path / "model.json"
    res = runner.invoke(app, ["stats", str(ref_dir / "clustered_lesions.csv"), "--outcome", "response",
                              "--markers", "tbp,dmean", "--json", str(out), "--n-boot", "200",
                              "--dose", "dmean", "--strata", "tbp:1.29,dmean:89", "--group", "recist",
                              "--paired", "suv_base,suv_fu", "--save-model", str(model)])
    assert res.exit_code == 0, res.output
    assert "Obuchowski" in res.output and "tbp" in res.output
    d = json.loads(out.read_text())
    assert d["Software"] == "theraquant" and d["Inputs"][0]["sha256"]
    r = d["Results"]
    assert r["cluster"] == "patient" and r["cluster_source"] == "detected"  # GEE by default
    assert_allclose(r["roc"]["tbp"]["auc_var"], ref["cl.obuchowski.tbp.var"], rtol=1e-9)
    assert_allclose(r["multivariable"]["coef"]["tbp"], ref["gee.tbp+dmean.tbp.coef"], rtol=1e-7)
    assert "GEE" in r["multivariable"]["method"]
    assert_allclose(r["dose_response"]["d50_gy"], ref["dose.gee.d50"], rtol=1e-7)
    assert_allclose(r["stratified_table"]["fisher"]["p"], ref["strat.fisher.p"], rtol=1e-9)
    assert_allclose(r["group_tests"]["tbp"]["p"], ref["kw.tbp_recist.p"], rtol=1e-9)
    assert_allclose(r["group_tests"]["suv_base -> suv_fu (all lesions)"]["p"], ref["wsr.suv.p"], rtol=1e-9)
    assert ResponsePredictor.from_json(model.read_text()).markers == ("tbp", "dmean")
    # refuses to overwrite without --overwrite
    again = runner.invoke(app, ["stats", str(ref_dir / "clustered_lesions.csv"), "--outcome", "response",
                                "--markers", "tbp", "--json", str(out)])
    assert again.exit_code == 1 and "pass --overwrite" in again.output


def test_stats_command_parquet_and_no_cluster(tmp_path, lesions):
    pq = tmp_path / "lesions.parquet"
    lesions.to_parquet(pq)
    out = tmp_path / "r.json"
    res = runner.invoke(app, ["stats", str(pq), "--outcome", "response", "--markers", "tbp", "--no-cluster",
                              "--n-boot", "0", "--json", str(out)])
    assert res.exit_code == 0, res.output
    r = json.loads(out.read_text())["Results"]
    assert r["cluster"] is None and "lesion-level" in r["analysis"]
    assert_allclose(r["roc"]["tbp"]["auc_var"], roc(lesions.response, lesions.tbp).auc_var, rtol=1e-12)
    assert_allclose(r["univariable"]["tbp"]["coef"]["tbp"], logistic(lesions, "response", "tbp").coef["tbp"],
                    rtol=1e-12)


@pytest.mark.parametrize("args,msg", [
    (["--markers", "nope"], "column(s) ['nope'] not in the table"),
    (["--markers", "tbp", "--strata", "tbp=1"], "--strata must look like"),
    (["--markers", "tbp", "--cluster", "patient", "--no-cluster"], "not both"),
])
def test_stats_command_errors_are_one_line(ref_dir, args, msg):
    res = runner.invoke(app, ["stats", str(ref_dir / "clustered_lesions.csv"), "--outcome", "response", *args])
    assert res.exit_code == 1
    assert msg in res.output and "Traceback" not in res.output


def test_stats_command_responder_values(tmp_path, ref_dir, lesions):
    out = tmp_path / "r.json"
    res = runner.invoke(app, ["stats", str(ref_dir / "clustered_lesions.csv"), "--outcome", "recist",
                              "--responder", "CR,PR", "--markers", "tbp", "--n-boot", "0", "--json", str(out)])
    assert res.exit_code == 0, res.output
    r = json.loads(out.read_text())["Results"]
    y = lesions.recist.isin(["CR", "PR"]).astype(int)
    assert r["n_responders"] == int(y.sum())
    assert_allclose(r["roc"]["tbp"]["auc"], roc(y, lesions.tbp).auc, rtol=1e-12)
    bad = runner.invoke(app, ["stats", str(ref_dir / "clustered_lesions.csv"), "--outcome", "recist",
                              "--responder", "CMR", "--markers", "tbp"])
    assert bad.exit_code == 1 and "never occur in 'recist'" in bad.output


def test_stats_command_one_class_outcome(tmp_path, lesions):
    p = tmp_path / "t.csv"
    lesions.assign(response=1).to_csv(p, index=False)
    res = runner.invoke(app, ["stats", str(p), "--outcome", "response", "--markers", "tbp"])
    assert res.exit_code == 1 and "one class only (72 responders of 72 lesions)" in res.output
