"""SUV tag logic (theraquant.pet.suv_factor) on plain header mappings: formulas, rules, errors.

References: tests/data/nm/analytic/analytic_checks.json (worked examples computed from the formulas
quoted there: James/Janmahasatian LBM, Du Bois BSA, Devine IBW, SUVbw/SUL example), and the decay
rules of the oncoray SUV manual (Vacha 2026, CC BY 4.0) as summarised in tests/data/nm/README.md.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose

from theraquant.errors import DicomError, TheraquantError
from theraquant.pet import (body_surface_area, ideal_body_weight, lean_body_mass, read_suv,
                            suv_factor)

ANALYTIC = json.loads((Path(__file__).resolve().parents[1] / "data" / "nm" / "analytic" /
                       "analytic_checks.json").read_text())
EX = ANALYTIC["worked_examples"]
F18 = 6586.2  # s, the value scanners write (analytic_checks.json)

BASE = {
    "Units": "BQML", "DecayCorrection": "START", "PatientWeight": 70.0, "PatientSize": 1.75,
    "PatientSex": "M", "SeriesDate": "20250101", "SeriesTime": "110000", "AcquisitionDate": "20250101",
    "AcquisitionTime": "110000", "RadionuclideTotalDose": 370e6, "RadionuclideHalfLife": F18,
    "RadiopharmaceuticalStartDateTime": "20250101100000", "ActualFrameDuration": 300000,
    "FrameReferenceTime": 150000.0,
}


def hdr(**changes):
    h = dict(BASE)
    for k, v in changes.items():
        if v is None:
            h.pop(k, None)
        else:
            h[k] = v
    return h


# ---------------------------------------------------------------------------- analytic examples
def test_suvbw_and_sul_worked_example():
    ex = EX["suv_bw_example"]
    c = ex["inputs"]["voxel_Bq_per_ml"]
    conv = suv_factor(hdr(RadionuclideTotalDose=ex["inputs"]["injected_Bq"]))
    assert conv.constants["decay_factor"] == pytest.approx(ex["expected"]["decay_factor"], abs=1e-6)
    assert c * conv.factors[0] == pytest.approx(ex["expected"]["SUVbw"], abs=1e-5)
    sul = suv_factor(hdr(RadionuclideTotalDose=ex["inputs"]["injected_Bq"]), normalization="lbm-james")
    assert c * sul.factors[0] == pytest.approx(ex["expected"]["SUL_James_male"], abs=1e-5)
    assert sul.units == "g/mL" and sul.constants["body_size_g"] == pytest.approx(56520.0, abs=1.0)


@pytest.mark.parametrize(("key", "func"), [
    ("LBM_James_male_kg", lambda w, h: lean_body_mass(w, h, "M")),
    ("LBM_James_female_kg", lambda w, h: lean_body_mass(w, h, "F")),
    ("LBM_Janmahasatian_male_kg", lambda w, h: lean_body_mass(w, h, "M", method="janmahasatian")),
    ("LBM_Janmahasatian_female_kg", lambda w, h: lean_body_mass(w, h, "F", method="janmahasatian")),
    ("BSA_DuBois_m2", body_surface_area),
    ("IBW_male_kg", lambda w, h: ideal_body_weight(h, "M")),
    ("IBW_female_kg", lambda w, h: ideal_body_weight(h, "F")),
])
def test_body_size_formulas(key, func):
    inp = EX["body_size"]["inputs"]
    # the JSON gives 4-6 significant figures: compare at 5e-5 relative
    assert func(inp["weight_kg"], inp["height_cm"] / 100.0) == pytest.approx(
        EX["body_size"]["expected"][key], rel=5e-5)


def test_sex_other_is_mean_of_male_and_female():
    # oncoray DRO_2_2 / README: IBW for sex "O" = mean of male and female (69.41 kg)
    assert ideal_body_weight(1.75, "O") == pytest.approx(69.405, abs=1e-9)
    assert lean_body_mass(70, 1.75, "O") == pytest.approx((56.52 + 51.22) / 2, abs=2e-3)


@pytest.mark.parametrize(("norm", "size", "unit"), [
    ("bw", 70000.0, "g/mL"),
    ("lbm-james", 56520.0, "g/mL"),
    ("lbm-janmahasatian", 55857.1, "g/mL"),
    ("bsa", 18481.4, "cm2/mL"),
    ("ibw", 72380.0, "g/mL"),
])
def test_normalisations_scale_by_body_size(norm, size, unit):
    bw = suv_factor(hdr())
    conv = suv_factor(hdr(), normalization=norm)
    assert conv.units == unit
    # SUV_X = C X / D_ref: the ratio to SUVbw is X / weight (analytic_checks.json body sizes)
    assert conv.factors[0] / bw.factors[0] == pytest.approx(size / 70000.0, rel=5e-5)


# ---------------------------------------------------------------------------- stored-SUV units
@pytest.mark.parametrize("stored", ["BW", "LBMJAMES128", "LBMJANMA", "IBW", "BSA"])
@pytest.mark.parametrize("target", ["bw", "lbm-james", "bsa", "ibw"])
def test_stored_suv_converts_to_any_normalisation(stored, target):
    """C -> SUV_stored (BQML path) -> GML/CM2ML path -> SUV_target equals C -> SUV_target directly."""
    to_norm = {"BW": "bw", "LBMJAMES128": "lbm-james", "LBMJANMA": "lbm-janmahasatian", "IBW": "ibw",
               "BSA": "bsa"}[stored]
    c = 5000.0
    suv_stored = c * suv_factor(hdr(), normalization=to_norm).factors[0]
    units = "CM2ML" if stored == "BSA" else "GML"
    g = suv_factor(hdr(Units=units, SUVType=stored, RadionuclideTotalDose=None), normalization=target)
    direct = c * suv_factor(hdr(), normalization=target).factors[0]
    assert suv_stored * g.factors[0] == pytest.approx(direct, rel=1e-12)
    assert g.constants["stored_suv_type"] == stored


def test_gml_without_suvtype_is_bw_and_recorded():
    conv = suv_factor(hdr(Units="GML"))
    assert conv.factors[0] == 1.0
    assert any("without SUVType" in d for d in conv.decisions)


def test_cm2ml_contradicting_suvtype_names_both_tags():
    with pytest.raises(DicomError, match=r"header\[0\]: Units \(0054,1001\) CM2ML contradicts SUVType \(0054,1006\)"):
        suv_factor(hdr(Units="CM2ML", SUVType="BW"))


def test_philips_cnts_factors():
    # (7053,1000): stored x factor is SUVbw; (7053,1009): stored x factor is Bq/mL (oncoray DRO_2_4/2_5)
    suv = suv_factor([hdr(Units="CNTS", **{"(7053,1000)": 0.0005})] * 2)
    assert_allclose(suv.factors, 0.0005)
    act = suv_factor(hdr(Units="CNTS", **{"(7053,1009)": 0.5}))
    assert act.factors[0] == pytest.approx(0.5 * suv_factor(hdr()).factors[0], rel=1e-12)


def test_cnts_without_philips_factor_is_an_error():
    with pytest.raises(DicomError, match=r"Units \(0054,1001\) is CNTS but the Philips scale factors"):
        suv_factor(hdr(Units="CNTS"))


@pytest.mark.parametrize(("units", "match"), [
    (None, r"header\[0\]: Units \(0054,1001\) is missing"),
    ("PROPCNTS", r"Units \(0054,1001\) is 'PROPCNTS'; supported are BQML"),
])
def test_missing_or_unsupported_units(units, match):
    with pytest.raises(DicomError, match=match):
        suv_factor(hdr(Units=units))


# ---------------------------------------------------------------------------- decay rules
def test_admin_does_not_decay():
    conv = suv_factor(hdr(DecayCorrection="ADMIN", SeriesTime="150000", AcquisitionTime="150000"))
    assert conv.factors[0] == pytest.approx(70000.0 / 370e6, rel=1e-12)


def test_none_decay_corrects_each_frame():
    frames = [hdr(DecayCorrection="NONE", AcquisitionTime="110000", ActualFrameDuration=603000),
              hdr(DecayCorrection="NONE", AcquisitionTime="110500", ActualFrameDuration=300000)]
    conv = suv_factor(frames)
    lam = math.log(2) / F18
    for f, t, dur in zip(conv.factors, (3600.0, 3900.0), (603.0, 300.0)):
        # oncoray README: SUV = P W lam T / (D (1 - e^-lam T)) e^(lam (t_acq - t_inj))
        want = 70000.0 / 370e6 * lam * dur / (1 - math.exp(-lam * dur)) * math.exp(lam * t)
        assert f == pytest.approx(want, rel=1e-12)


def test_start_back_computes_reference_when_series_time_is_late():
    # SeriesTime 11:30 after AcquisitionTime 11:02:30 (oncoray DRO_3_2)
    h = hdr(SeriesTime="113000", AcquisitionTime="110230", FrameReferenceTime=450000.0,
            ActualFrameDuration=603000)
    conv = suv_factor(h)
    lam = math.log(2) / F18
    t_ave = math.log(lam * 603 / (1 - math.exp(-lam * 603))) / lam
    uptake = 3600 + 150 + t_ave - 450
    assert conv.constants["uptake_time_s"] == pytest.approx(uptake, abs=1e-6)
    assert conv.factors[0] == pytest.approx(70000 / (370e6 * math.exp(-lam * uptake)), rel=1e-12)


def test_ge_private_scan_datetime_wins():
    h = hdr(AcquisitionTime="113000", **{"(0009,100D)": "20250101110000.000000"})
    conv = suv_factor(h)
    assert conv.constants["uptake_time_s"] == pytest.approx(3600.0)
    assert any("(0009,100D)" in d for d in conv.decisions)


def test_dose_in_mbq_detected_by_magnitude():
    a = suv_factor(hdr(RadionuclideTotalDose=370.0))
    assert a.factors[0] == pytest.approx(suv_factor(hdr()).factors[0], rel=1e-12)
    assert a.constants["injected_dose_Bq"] == 370e6 and any("MBq" in d for d in a.decisions)


def test_midnight_crossing_with_start_time_only():
    h = hdr(RadiopharmaceuticalStartDateTime=None, RadiopharmaceuticalStartTime="233000",
            SeriesDate="20250102", SeriesTime="003000", AcquisitionDate="20250102", AcquisitionTime="003000")
    conv = suv_factor(h)
    assert conv.constants["uptake_time_s"] == pytest.approx(3600.0)
    assert conv.constants["injection_datetime"] == "2025-01-01T23:30:00"


def test_y90_pet_days_after_administration_uses_dates():
    # 90Y PET 3 days after the implant: T1/2 64.05 h (analytic_checks.json); 72 h of decay
    t_half = 64.05 * 3600
    h = hdr(RadionuclideHalfLife=t_half, RadionuclideTotalDose=2.0e9, SeriesDate="20250104",
            AcquisitionDate="20250104", SeriesTime="100000", AcquisitionTime="100000")
    conv = suv_factor(h)
    assert conv.constants["uptake_time_s"] == pytest.approx(72 * 3600.0)
    assert conv.constants["decay_factor"] == pytest.approx(2 ** (-72 / 64.05), rel=1e-12)
    # a start time without date cannot know the day: the explicit override restores it, recorded
    h2 = dict(h, RadiopharmaceuticalStartTime="100000")
    del h2["RadiopharmaceuticalStartDateTime"]
    assert suv_factor(h2).constants["uptake_time_s"] == 0.0
    ov = suv_factor(h2, injection_time="2025-01-01T10:00:00")
    assert ov.constants["decay_factor"] == pytest.approx(2 ** (-72 / 64.05), rel=1e-12)
    assert ov.overrides["injection_time"]["header_value"] == "100000"


# ---------------------------------------------------------------------------- errors and overrides
def test_no_dose_information_is_an_error_unless_overridden():
    h = hdr(RadionuclideTotalDose=None)
    with pytest.raises(DicomError, match=r"header\[0\]: RadionuclideTotalDose \(0018,1074\) is missing.*"
                                         r"injected_dose_bq="):
        suv_factor(h)
    conv = suv_factor(h, injected_dose_bq=370e6)
    assert conv.factors[0] == pytest.approx(suv_factor(hdr()).factors[0], rel=1e-12)
    assert conv.overrides["injected_dose_bq"] == {"value": 370e6, "replaces": "RadionuclideTotalDose (0018,1074)",
                                                  "header_value": None}


def test_missing_weight_names_tag_and_file():
    with pytest.raises(DicomError, match=r"IM7.dcm: PatientWeight \(0010,1030\) is missing.*weight_kg="):
        suv_factor(hdr(PatientWeight=None), names=["IM7.dcm"])
    assert suv_factor(hdr(PatientWeight=None), weight_kg=70).factors[0] == suv_factor(hdr()).factors[0]


def test_missing_injection_time_and_half_life():
    with pytest.raises(DicomError, match=r"RadiopharmaceuticalStartDateTime \(0018,1078\) and "
                                         r"RadiopharmaceuticalStartTime \(0018,1072\) are missing"):
        suv_factor(hdr(RadiopharmaceuticalStartDateTime=None))
    with pytest.raises(DicomError, match=r"RadionuclideHalfLife \(0018,1075\) is missing.*half_life_s="):
        suv_factor(hdr(RadionuclideHalfLife=None))


def test_mixed_units_in_a_series():
    with pytest.raises(DicomError, match=r"b.dcm: Units \(0054,1001\) is 'GML' but a.dcm has 'BQML'"):
        suv_factor([hdr(), hdr(Units="GML")], names=["a.dcm", "b.dcm"])


def test_contradictory_weight_between_slices():
    with pytest.raises(DicomError, match=r"PatientWeight \(0010,1030\) is 80.0 but"):
        suv_factor([hdr(), hdr(PatientWeight=80.0)])


def test_start_datetime_and_start_time_disagree():
    with pytest.raises(DicomError, match=r"RadiopharmaceuticalStartDateTime \(0018,1078\) 20250101100000 and "
                                         r"RadiopharmaceuticalStartTime \(0018,1072\) 093000 disagree"):
        suv_factor(hdr(RadiopharmaceuticalStartTime="093000"))


def test_scan_before_injection_is_contradictory():
    with pytest.raises(DicomError, match="before the injection"):
        suv_factor(hdr(RadiopharmaceuticalStartDateTime="20250101120000"))


def test_height_in_centimetres_is_rejected_for_lbm():
    with pytest.raises(DicomError, match=r"PatientSize \(0010,1020\) is 175.0.*metres.*height_m=1.75"):
        suv_factor(hdr(PatientSize=175.0), normalization="lbm-james")
    # bw needs no height: the wrong tag does not stop it
    assert suv_factor(hdr(PatientSize=175.0)).factors[0] > 0


def test_bad_arguments():
    with pytest.raises(TheraquantError, match=r"unknown override\(s\) \['weight'\]"):
        suv_factor(hdr(), weight=70)
    with pytest.raises(TheraquantError, match="normalization must be one of"):
        suv_factor(hdr(), normalization="lbm")


def test_mixed_units_in_a_dicom_series_names_the_file(dro_root, tmp_path):
    import pydicom

    series = tmp_path / "PT"
    shutil.copytree(dro_root / "DRO_0_0" / "PT", series)
    f = series / "pet_dro_0_0_slice_005.dcm"
    ds = pydicom.dcmread(f)
    ds.Units = "GML"
    ds.save_as(f)
    with pytest.raises(DicomError, match=r"pet_dro_0_0_slice_005.dcm: Units \(0054,1001\) is 'GML' but "
                                         r"pet_dro_0_0_slice_000.dcm has 'BQML'"):
        read_suv(series)


def test_read_suv_records_overrides(dro_root):
    img = read_suv(dro_root / "DRO_0_0" / "PT", weight_kg=80.0)
    ref = read_suv(dro_root / "DRO_0_0" / "PT")
    assert_allclose(img.array, ref.array * 80.0 / 70.0, rtol=1e-12)
    assert img.units == "g/mL"
    assert img.meta["suv"]["Overrides"]["weight_kg"]["header_value"] == 70.0


def test_corrected_image_contradicting_decay_correction_is_noted():
    conv = suv_factor(hdr(CorrectedImage=["ATTN", "SCAT"]))
    assert any("CorrectedImage (0028,0051)" in d and "lacks DECY" in d for d in conv.decisions)
    assert not any("DECY" in d for d in suv_factor(hdr(CorrectedImage="ATTN\\DECY")).decisions)
    # DecayCorrection is followed: the factor is the START factor
    assert conv.factors[0] == suv_factor(hdr()).factors[0]


def test_check_battery_reports_every_problem_at_once():
    from theraquant.pet import check_suv_headers

    h = hdr(PatientWeight=None, RadionuclideTotalDose=None, RadionuclideHalfLife=None, PatientSex=None)
    found = check_suv_headers(h, normalization="lbm-james", names=["IM1.dcm"])
    assert [f.check for f in found] == ["pet.weight", "pet.sex", "pet.dose", "pet.half_life"]
    assert all(f.level == 40 and f.message.startswith("IM1.dcm: ") for f in found)
    assert "RadionuclideTotalDose (0018,1074) is missing" in found[2].message
    assert found[2].fix == "pass injected_dose_bq="
    # once the inputs are there, the timing rules run too
    late = check_suv_headers(hdr(RadiopharmaceuticalStartDateTime="20250101120000"))
    assert [f.check for f in late] == ["pet.times"] and "before the injection" in late[0].message
    warn = check_suv_headers(hdr(CorrectedImage=["ATTN"]))
    assert [(f.level, f.check) for f in warn] == [(30, "pet.consistency")]
    assert check_suv_headers(hdr()) == ()


def test_dynamic_series_gets_one_factor_per_frame(dro_root, tmp_path):
    """Two frames per slice (11:00 and 11:10, 5 min each) read as 4-D; DecayCorrection NONE decays each
    frame from its own AcquisitionTime, so frame 2 is scaled by the ratio of the two frame factors."""
    import pydicom

    series = tmp_path / "PT"
    series.mkdir()
    for f in sorted((dro_root / "DRO_0_0" / "PT").glob("*.dcm")):
        for k, acq in enumerate(("110000", "111000")):
            ds = pydicom.dcmread(f)
            ds.DecayCorrection = "NONE"
            ds.AcquisitionTime = acq
            ds.TemporalPositionIdentifier = k + 1
            ds.SOPInstanceUID = ds.SOPInstanceUID + f".{k + 1}"
            ds.save_as(series / f"{f.stem}_{k}.dcm")
    img = read_suv(series)
    assert img.array.shape == (20, 256, 256, 2)
    assert_allclose(img.frame_times_s, [0.0, 600.0])
    lam = math.log(2) / F18

    def frame_factor(t_s):  # oncoray README, DecayCorrection NONE, T = 300 s
        return 70000.0 / 368.08e6 * lam * 300 / (1 - math.exp(-lam * 300)) * math.exp(lam * t_s)

    bq = read_suv(dro_root / "DRO_0_0" / "PT").array / suv_factor(
        hdr(RadionuclideTotalDose=368.08e6)).factors[0]  # stored Bq/mL
    assert_allclose(img.array[..., 0], bq * frame_factor(3600.0), rtol=1e-9)
    assert_allclose(img.array[..., 1], bq * frame_factor(4200.0), rtol=1e-9)


def test_conversion_summary_lists_constants_overrides_and_decisions():
    text = suv_factor(hdr(), weight_kg=80.0).summary()
    assert text.splitlines()[0].startswith("SUVbw (g/mL); factor ")
    assert "half_life_s              6586.2" in text
    assert "override weight_kg       80.0 (header: 70.0)" in text
    assert "- injection datetime from RadiopharmaceuticalStartDateTime" in text


def test_suv_image_is_pure_headers_and_pixels():
    # the engine side of read_suv: an image of Bq/mL and one header per slice, no file opened
    from theraquant.image import Image
    from theraquant.pet import suv_image

    arr = np.stack([np.full((2, 3), 1000.0), np.full((2, 3), 2000.0)])  # Bq/mL, 2 slices
    img = Image(arr, np.eye(4))
    heads = [hdr(InstanceNumber=1), hdr(InstanceNumber=2)]
    suv = suv_image(img, heads, names=["a.dcm", "b.dcm"])
    f = suv_factor(heads).factors
    np.testing.assert_allclose(suv.array[:, 0, 0], [1000.0 * f[0], 2000.0 * f[1]], rtol=1e-15)
    assert suv.units == "g/mL" and suv.meta["suv"]["Normalization"] == "bw"
    with pytest.raises(TheraquantError, match=r"headers: 3 headers do not match an image of shape \(2, 2, 3\)"):
        suv_image(img, heads + [hdr()])
