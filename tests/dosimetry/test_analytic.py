"""Every dosimetry worked example of tests/data/nm/analytic/analytic_checks.json reproduces.

Source: analytic_checks.json (compiled for theraquant from the formulas it quotes; project data).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from theraquant import dosimetry as dm


def test_y90_ldm_voxel_776_gy(analytic):
    ex = analytic["worked_examples"]["y90_ldm_voxel"]
    inp = ex["inputs"]
    tia = np.zeros((3, 3, 3))
    tia[1, 1, 1] = dm.permanent_implant_tia(inp["activity_MBq_at_implant"] * 1e6, "Y-90")
    dose = dm.absorbed_dose(tia, tuple(inp["voxel_mm"]), method="ldm", k=inp["k_J_per_GBq"],
                            density=inp["density_g_per_ml"])
    # the file gives 3 decimals: 776.094 Gy
    assert float(dose[1, 1, 1]) == pytest.approx(ex["expected_dose_Gy"], abs=5e-4)
    assert float(dose.sum()) == pytest.approx(ex["expected_dose_Gy"], abs=5e-4)  # nothing leaves the voxel
    assert dose.provenance["Constants"]["half_life_h"] == analytic["nuclides"]["Y-90"]["half_life_h"]
    assert dose.provenance["Constants"]["k_Gy_kg_per_GBq"] == 49.67


def test_y90_tia_per_bq_is_mean_life(analytic):
    # README: A0 x T1/2 / ln 2 = A0 x 332,657 s for T1/2 = 64.05 h
    t_half_s = analytic["nuclides"]["Y-90"]["half_life_h"] * 3600
    assert float(dm.permanent_implant_tia(1.0)) == pytest.approx(t_half_s / math.log(2), rel=1e-12)
    assert float(dm.permanent_implant_tia(1.0)) == pytest.approx(332657, abs=0.5)


def test_y90_uniform_large_sphere_ldm(analytic):
    ex = analytic["worked_examples"]["y90_uniform_large_sphere"]
    inp = ex["inputs"]
    # one voxel holding the whole 10 cm sphere (density 1.0): mean LDM dose = k A / m
    vol_ml = math.pi / 6 * inp["diameter_cm"] ** 3
    edge = vol_ml ** (1 / 3) * 10.0
    tia = np.full((1, 1, 1), float(dm.permanent_implant_tia(inp["activity_GBq"] * 1e9)))
    dose = dm.absorbed_dose(tia, (edge,) * 3, method="ldm", density=inp["density"], k=inp["k"])
    assert float(dose[0, 0, 0]) == pytest.approx(ex["expected_mean_dose_Gy_interior_LDM"], abs=5e-4)


def test_mird_monocompartment_both_ways(analytic):
    ex = analytic["worked_examples"]["y90_mird_monocompartment"]
    inp = ex["inputs"]
    r = dm.mird_single_compartment(liver_mass_kg=inp["perfused_liver_mass_kg"], dose_gy=inp["target_dose_Gy"],
                                   lung_shunt_fraction=inp["lung_shunt_fraction"], k=inp["k"])
    assert r["activity_GBq"] == pytest.approx(ex["expected_activity_GBq"], abs=1e-4)  # 4 decimals in the file
    back = dm.mird_single_compartment(liver_mass_kg=inp["perfused_liver_mass_kg"], activity_gbq=r["activity_GBq"],
                                      lung_shunt_fraction=inp["lung_shunt_fraction"], k=inp["k"])
    assert back["dose_Gy"] == pytest.approx(inp["target_dose_Gy"], rel=1e-12)


def test_partition_model_both_ways(analytic):
    ex = analytic["worked_examples"]["y90_partition_model"]
    inp, exp = ex["inputs"], ex["expected"]
    kw = dict(tumour_mass_kg=inp["tumour_mass_kg"], normal_liver_mass_kg=inp["normal_liver_mass_kg"],
              tn_ratio=inp["T_to_N"], lung_shunt_fraction=inp["LSF"], lung_mass_kg=inp["lung_mass_kg"], k=inp["k"])
    r = dm.partition_model(activity_gbq=inp["administered_GBq"], **kw)
    # file values have 3 decimals
    assert r["D_tumour_Gy"] == pytest.approx(exp["D_tumour_Gy"], abs=5e-4)
    assert r["D_normal_liver_Gy"] == pytest.approx(exp["D_normal_liver_Gy"], abs=5e-4)
    assert r["D_lung_Gy"] == pytest.approx(exp["D_lung_Gy"], abs=5e-4)
    assert r["A_tumour_GBq"] == pytest.approx(exp["A_tumour_GBq"], abs=1e-12)
    assert r["A_normal_liver_GBq"] == pytest.approx(exp["A_normal_GBq"], abs=1e-12)
    # prescribed tumour dose -> activity gives back the administered activity and the other doses
    back = dm.partition_model(tumour_dose_gy=r["D_tumour_Gy"], **kw)
    assert back["activity_GBq"] == pytest.approx(inp["administered_GBq"], rel=1e-12)
    assert back["D_normal_liver_Gy"] == pytest.approx(exp["D_normal_liver_Gy"], abs=5e-4)


def test_lu177_monoexp_tia_and_dose(analytic):
    ex = analytic["worked_examples"]["lu177_monoexp_tia_and_dose"]
    inp, exp = ex["inputs"], ex["expected"]
    t = np.array([4.0, 24.0, 72.0, 168.0])
    lam = math.log(2) / inp["T_eff_h"]
    fit = dm.fit_tac(t, inp["A0_MBq"] * np.exp(-lam * t), nuclide="Lu-177")
    assert str(fit.model) == "mono"
    assert float(fit.tia_mbq_h) == pytest.approx(exp["TIA_MBq_h"], abs=0.01)  # 2 decimals in the file
    assert float(fit.effective_half_life_h) == pytest.approx(inp["T_eff_h"], rel=1e-6)
    # self-dose by LDM in one voxel of 100 mL at 1.0 g/mL (= 0.1 kg)
    edge = (inp["mass_kg"] * 1e6) ** (1 / 3)
    tia_bq_s = np.full((1, 1, 1), float(fit.tia_mbq_h) * 1e6 * 3600.0)
    dose = dm.absorbed_dose(tia_bq_s, (edge,) * 3, nuclide="Lu-177", method="ldm", density=1.0)
    # the file's delta_e 0.08532 is rounded; 0.1479 MeV gives 0.085297 (-0.03 %)
    assert float(dose[0, 0, 0]) == pytest.approx(exp["dose_Gy_electrons_LDM"], rel=5e-4)
    assert dose.provenance["Constants"]["half_life_h"] == pytest.approx(6.647 * 24)


@pytest.mark.parametrize("i", range(4))
def test_hanscheid_single_time_point(analytic, i):
    ex = analytic["worked_examples"]["lu177_hanscheid2018_stp"]
    est = ex["estimates"][i]
    d = dm.hanscheid_dose(est["A_t_MBq"], est["t_h"], s_mgy_per_mbq_h=ex["inputs"]["S_mGy_per_MBq_h"])
    assert float(d) == pytest.approx(est["D_hanscheid_Gy"], abs=5e-5)  # 4-5 decimals in the file


def test_hanscheid_exact_at_t_eff_and_plus_6pc_at_mean_life(analytic):
    ex = analytic["worked_examples"]["lu177_hanscheid2018_stp"]
    a0, t_eff, s = ex["inputs"]["A0_MBq"], ex["inputs"]["T_eff_h"], ex["inputs"]["S_mGy_per_MBq_h"]
    lam = math.log(2) / t_eff
    true = a0 / lam * s * 1e-3  # exact mono-exponential dose, Gy
    assert true == pytest.approx(ex["true_dose_Gy_monoexp"], abs=1e-5)
    d_teff = dm.hanscheid_dose(a0 * math.exp(-lam * t_eff), t_eff, s_mgy_per_mbq_h=s)
    d_tau = dm.hanscheid_dose(a0 * math.exp(-1.0), 1 / lam, s_mgy_per_mbq_h=s)
    assert float(d_teff) == pytest.approx(true, rel=1e-12)
    assert float(d_tau) / true - 1 == pytest.approx(2 * math.exp(-1) / math.log(2) - 1, rel=1e-9)  # +6.2 %
