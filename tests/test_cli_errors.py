"""The command line's error handler: one line, exit 1, the --flag named from the error's .argument."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import theraquant.pipeline
from theraquant.cli import app
from theraquant.errors import DicomError, TheraquantError

runner = CliRunner()
TABLE = Path(__file__).resolve().parents[1] / "examples" / "data" / "response" / "recist_lesions.csv"


def _lines(res):
    return [ln for ln in res.output.splitlines() if ln.strip()]


@pytest.mark.parametrize(("exc", "line"), [
    (TheraquantError("level must be X", argument="level"), "error: --level: level must be X"),
    (TheraquantError("no argument here"), "error: no argument here"),
    (TheraquantError("unknown keyword", argument="not_an_option"), "error: unknown keyword"),
    (DicomError("a.dcm: Units (0054,1001) is 'CNTS'; pass reference=...", fix="use BQML"),
     "error: --reference: a.dcm: Units (0054,1001) is 'CNTS'; pass reference=...; fix: use BQML"),
    (FileNotFoundError(2, "No such file or directory", "x.csv"), "error: x.csv: No such file or directory"),
    (PermissionError(13, "Permission denied", "/out"), "error: /out: Permission denied"),
    (RuntimeError("boom\nsecond line"), "internal error: RuntimeError: boom - this is a bug in theraquant"),
    (ValueError("a numpy complaint"), "internal error: ValueError: a numpy complaint"),
])
def test_one_line_exit_1(monkeypatch, exc, line):
    def fail(*a, **k):
        raise exc

    monkeypatch.setattr(theraquant.pipeline, "run_response", fail)
    res = runner.invoke(app, ["response", str(TABLE), "--criteria", "recist"])
    assert res.exit_code == 1 and len(_lines(res)) == 1, res.output
    assert _lines(res)[0].startswith(line), _lines(res)[0]


def test_internal_error_says_how_to_report_and_debug_shows_the_traceback(monkeypatch):
    def fail(*a, **k):
        raise RuntimeError("boom")

    monkeypatch.setattr(theraquant.pipeline, "run_response", fail)
    res = runner.invoke(app, ["response", str(TABLE), "--criteria", "recist"])
    assert "please report it with the command and the output of 'theraquant --debug ...'" in res.output
    dbg = runner.invoke(app, ["--debug", "response", str(TABLE), "--criteria", "recist"])
    assert isinstance(dbg.exception, RuntimeError)  # re-raised: the traceback is shown


@pytest.mark.parametrize(("args", "line"), [
    (["response"], "error: theraquant response: Missing argument 'TABLE'. (see --help)"),
    (["dose", "x.nii"], "error: theraquant dose: Missing option '--out'. (see --help)"),
    (["no-such-command"], "error: theraquant: No such command 'no-such-command'"),
    (["response", str(TABLE), "--criteria"], "error: Option '--criteria' requires an argument"),
])
def test_usage_errors_exit_1_with_one_line(args, line):
    res = runner.invoke(app, args)
    assert res.exit_code == 1 and len(_lines(res)) == 1, res.output
    assert _lines(res)[0].startswith(line), _lines(res)[0]


def test_help_and_version_exit_0():
    assert runner.invoke(app, ["--help"]).exit_code == 0
    assert runner.invoke(app, ["--version"]).exit_code == 0
    assert runner.invoke(app, ["response", "--help"]).exit_code == 0


def _help_text(*cmd):
    res = runner.invoke(app, [*cmd, "--help"], terminal_width=200)
    assert res.exit_code == 0
    return " ".join(res.output.replace("│", " ").split())  # rich panels: drop the box edges


@pytest.mark.parametrize(("cmd", "choices"), [
    (("dce", "fit"), ["tofts, etofts, patlak, 2cxm", "parker, orton, weinmann", "nlls", "linear",
                      "'concentration'", "'signal'"]),
    (("dce", "demo"), ["tofts, etofts, patlak"]),
    (("pet", "suv"), ["bw, lbm-james, lbm-janmahasatian, bsa, ibw", "START, ADMIN or NONE", "M, F or O"]),
    (("dose",), ["Y-90, Lu-177", "vsv", "ldm", "activity", "tia"]),
    (("response",), ["recist, mrecist, percist, eortc", "lesion, patient", "liver, blood_pool"]),
])
def test_help_lists_the_choices(cmd, choices):
    text = _help_text(*cmd)
    for c in choices:
        assert c in text, (cmd, c)
