"""theraquant.results.Result (the one result type) and TheraquantError(argument=, fix=)."""

from __future__ import annotations

import json
import math
import pickle
from dataclasses import dataclass, field
from typing import ClassVar, Mapping

import numpy as np
import pytest

from theraquant.errors import DicomError, TheraquantError
from theraquant.results import Result, describe_call, records_call


def test_mapping_attributes_units_and_read_only():
    arr = np.arange(4.0)
    r = Result({"SUVmax": 4.0, "map": arr, "nan": math.nan}, units={"SUVmax": "g/mL"}, title="lesion")
    assert r["SUVmax"] == r.SUVmax == 4.0 and list(r) == ["SUVmax", "map", "nan"] and len(r) == 3
    assert dict(r.units) == {"SUVmax": "g/mL", "map": "", "nan": ""}
    with pytest.raises(TypeError):
        r["SUVmax"] = 5.0  # type: ignore[index]
    with pytest.raises(AttributeError, match="Result is read-only: SUVmax cannot be set"):
        r.SUVmax = 5.0
    with pytest.raises(AttributeError, match="no field 'SUVmean'; fields: SUVmax, map, nan"):
        r.SUVmean  # noqa: B018
    assert not r.map.flags.writeable and arr.flags.writeable  # the caller's array is not frozen
    with pytest.raises(ValueError, match="read-only"):
        r.map[0] = 1.0


def test_summary_html_dict_json():
    r = Result({"T/BP": 1.6, "hypoxic": True, "map": np.zeros((2, 3)), "nan": math.nan},
               units={"T/BP": "ratio"}, title="FMISO")
    assert r.summary().splitlines() == ["FMISO", "  T/BP     1.6                    ratio",
                                        "  hypoxic  True", "  map      <array (2, 3) float64>", "  nan      nan"]
    assert "<tr><td>T/BP</td><td>1.6</td><td>ratio</td></tr>" in r._repr_html_()
    d = r.to_dict()
    assert d == {"T/BP": 1.6, "hypoxic": True, "map": [[0.0] * 3] * 2, "nan": None}
    doc = json.loads(r.to_json())  # no NaN in the text: strict JSON
    assert doc["fields"] == d and doc["units"]["T/BP"] == "ratio" and doc["title"] == "FMISO"


def test_provenance_records_the_python_call():
    @records_call("theraquant.example.f")
    def f(values, *, threshold="arte-miso"):
        return Result({"n": int(np.size(values))})

    r = f(np.zeros((64, 64, 32)))
    assert r.provenance["Command"] == "theraquant.example.f(values=<array (64, 64, 32) float64>, threshold='arte-miso')"
    assert r.provenance["Settings"] == {"values": "<array (64, 64, 32) float64>", "threshold": "arte-miso"}
    assert describe_call("g", {"x": [1, 2]}) == "g(x=[1, 2])"


@dataclass(frozen=True)
class _Fit(Result):
    _UNITS: ClassVar[Mapping[str, str]] = {"auc": "", "curve": "1/min"}
    _TITLE: ClassVar[str] = "fit"
    auc: float
    curve: np.ndarray = field(default_factory=lambda: np.ones(3))


def test_dataclass_subclass_and_pickle():
    r = _Fit(0.8)
    assert list(r) == ["auc", "curve"] and r["auc"] == 0.8 and r.units["curve"] == "1/min"
    assert not r.curve.flags.writeable and r.title == "fit"
    back = pickle.loads(pickle.dumps(r))
    assert back.auc == 0.8 and np.array_equal(back.curve, r.curve)
    plain = Result({"a": np.ones(2)}, units={"a": "Gy"}, provenance={"Command": "x()"})
    again = pickle.loads(pickle.dumps(plain))
    assert again == plain and again.units["a"] == "Gy" and again.provenance == {"Command": "x()"}


def test_error_argument_fix_and_pickle():
    e = TheraquantError("threshold=-1 must be > 0", argument="threshold", fix="pass e.g. 1.29")
    assert str(e) == "threshold=-1 must be > 0; fix: pass e.g. 1.29" and e.argument == "threshold"
    assert isinstance(e, ValueError) and TheraquantError("plain").argument is None
    assert TheraquantError("missing; pass weight_kg=70.0").argument == "weight_kg"  # the fix names it
    d = pickle.loads(pickle.dumps(DicomError("a.dcm: tag", argument="series_uid", fix="pick one")))
    assert type(d) is DicomError and d.argument == "series_uid" and d.fix == "pick one"


def test_arrays_described_instead_of_listed():
    r = Result({"dose_gy": np.array([[1.0, np.nan], [3.0, 5.0]]), "n": 3})
    assert r.to_dict(arrays="describe") == {
        "dose_gy": {"shape": [2, 2], "dtype": "float64", "n_finite": 3, "min": 1.0, "mean": 3.0, "max": 5.0}, "n": 3}
    assert json.loads(r.to_json(arrays="describe"))["fields"]["dose_gy"]["max"] == 5.0
    with pytest.raises(TheraquantError, match="arrays must be 'list' or 'describe'"):
        r.to_dict(arrays="table")

