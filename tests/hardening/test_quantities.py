"""The plausibility table itself: typical values pass silently; every listed unit slip of a typical value is
caught and named, except the three a range cannot tell (documented below); references catch the rest."""

from __future__ import annotations

import warnings

import pytest

from theraquant import TheraquantError
from theraquant.quantities import QUANTITIES, PlausibilityWarning, check_quantity, probable_units

#: Slips that give a plausible number and so cannot be seen by a range: a weight in lb (154 "kg" is a
#: possible patient: caught only against the header's weight, test below), a voxel in cm (0.3 "mm" is a
#: preclinical voxel) and a TAC activity in kBq (1e5 "MBq" sits on the 100 GBq bound).
UNDETECTABLE = {("weight_kg", "lb"), ("voxel_size_mm", "cm"), ("tac_activity_mbq", "kBq")}

SLIPS = [(name, unit, factor) for name, q in QUANTITIES.items() for unit, factor in q.mistakes]


@pytest.mark.parametrize("name", sorted(QUANTITIES))
def test_typical_values_pass_silently(name):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_quantity(name, QUANTITIES[name].typical) == QUANTITIES[name].typical


@pytest.mark.parametrize(("name", "unit", "factor"), SLIPS, ids=[f"{n}-{u}" for n, u, _ in SLIPS])
def test_each_unit_slip_of_a_typical_value_is_caught_and_named(name, unit, factor):
    typed = QUANTITIES[name].typical / factor  # the number a user working in `unit` would type
    with warnings.catch_warnings():
        warnings.simplefilter("error", PlausibilityWarning)
        try:
            check_quantity(name, typed, argument="x")
            caught, message = False, ""
        except (PlausibilityWarning, TheraquantError) as exc:
            caught, message = True, str(exc)
    if (name, unit) in UNDETECTABLE:
        assert not caught
        return
    assert caught, f"{typed} {unit} passed as {name}"
    assert f"probably in {unit} (" in message  # the slip's unit is the first one proposed
    assert probable_units(name, typed)[0][0] == unit


def test_a_weight_in_pounds_is_caught_against_the_header():
    with pytest.warns(PlausibilityWarning, match=r"probably in lb .*the header says 80 kg"):
        check_quantity("weight_kg", 176.4, argument="weight_kg", reference=80.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_quantity("weight_kg", 81.0, argument="weight_kg", reference=80.0)  # a re-weighed patient


@pytest.mark.parametrize("half_life_s", [6586.2, 574300.8, 230580.0, 4062.6, 45720.0])
def test_known_half_lives_in_seconds_pass(half_life_s):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_quantity("half_life_s", half_life_s)


def test_arrays_are_judged_by_their_extremes():
    with pytest.raises(TheraquantError, match=r"x=-0.5 \(of values -0.5 to 3\) is impossible"):
        check_quantity("dose_gy", [0.0, 3.0, -0.5], argument="x")
    with pytest.raises(TheraquantError, match=r"x holds nan"):
        check_quantity("dose_gy", [0.0, float("nan")], argument="x")


def test_strict_must_be_warn_or_raise():
    with pytest.raises(TheraquantError, match=r"strict must be 'warn' or 'raise', got 'error'"):
        check_quantity("dose_gy", 1.0, strict="error")  # type: ignore[arg-type]


def test_a_header_dose_read_as_mbq_is_a_finding():
    from theraquant.pet import check_suv_headers

    h = {"Units": "BQML", "DecayCorrection": "START", "PatientWeight": 70.0, "SeriesDate": "20250101",
         "SeriesTime": "110000", "AcquisitionDate": "20250101", "AcquisitionTime": "110000",
         "RadionuclideTotalDose": 370.0, "RadionuclideHalfLife": 6586.2,
         "RadiopharmaceuticalStartDateTime": "20250101100000"}
    findings = check_suv_headers([h], names=["IM1.dcm"])
    assert [(f.level, f.check) for f in findings] == [(30, "pet.consistency")]
    assert "IM1.dcm: RadionuclideTotalDose (0018,1074) is 370, below 100000 Bq: read as MBq (3.7e+08 Bq)" \
        in findings[0].message
