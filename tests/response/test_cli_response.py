"""`theraquant response` on the example tables the project ships (examples/data/response)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from theraquant.cli import app

runner = CliRunner()
EX = Path(__file__).resolve().parents[2] / "examples" / "data" / "response"


def _run(*args):
    return runner.invoke(app, ["response", *map(str, args)])


def test_recist_lesions_and_patients(tmp_path):
    out = tmp_path / "graded.csv"
    res = _run(EX / "recist_lesions.csv", "--criteria", "recist", "--out", out)
    assert res.exit_code == 0, res.output
    g = pd.read_csv(out)
    # 42 -> 27 mm -35.7 % PR; 25 -> 18 -28 % SD; 30 -> 36 +20 % and +6 mm PD; 12 -> 15 +25 % but +3 mm SD
    assert g["category"].tolist() == ["PR", "SD", "PD", "SD", "SD"]
    res = _run(EX / "recist_lesions.csv", "--criteria", "recist", "--level", "patient", "--out", tmp_path / "p.csv")
    assert res.exit_code == 0, res.output
    p = pd.read_csv(tmp_path / "p.csv").set_index("patient")
    # P01 sums 67 -> 45 mm (-32.8 %) PR; P02 42 -> 51 mm (+21.4 %, +9 mm) PD
    assert p["category"].to_dict() == {"P01": "PR", "P02": "PD", "P03": "SD"}


def test_percist_patient_at_exactly_plus_30_percent_is_smd(tmp_path):
    # P02: SULpeak 8.0 -> 10.4 is +30 % exactly; PERCIST PMD needs "> 30 %" (Wahl 2009)
    res = _run(EX / "percist_lesions.csv", "--criteria", "percist", "--level", "patient", "--out", tmp_path / "g.csv")
    assert res.exit_code == 0, res.output
    g = pd.read_csv(tmp_path / "g.csv").set_index("patient")
    assert g.loc["P02", "category"] == "SMD" and g.loc["P01", "category"] == "PMR"


def test_column_renaming(tmp_path):
    t = pd.read_csv(EX / "recist_lesions.csv").rename(columns={"baseline": "ld_bl", "followup": "ld_fu"})
    t.to_csv(tmp_path / "mine.csv", index=False)
    res = _run(tmp_path / "mine.csv", "--criteria", "recist", "--column", "baseline=ld_bl", "--column",
               "followup=ld_fu")
    assert res.exit_code == 0, res.output
    assert "recist.target.pr" in res.output


@pytest.mark.parametrize(("args", "line"), [
    (["--criteria", "who"], "error: --criteria: must be one of recist, mrecist, percist, eortc, got 'who'"),
    (["--criteria", "recist", "--level", "cohort"], "error: --level: must be one of lesion, patient"),
    (["--criteria", "recist", "--column", "baseline"], "error: --column: must be CANONICAL=YOURS"),
    ([], "error: theraquant response: Missing option '--criteria'"),
])
def test_errors_are_one_line_naming_the_flag(args, line):
    res = _run(EX / "recist_lesions.csv", *args)
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert res.exit_code == 1 and len(lines) == 1, res.output
    assert lines[0].startswith(line), lines[0]
