"""Voxel S-value convolution against the Lanconelli 2012 tables and energy balance.

Sources: tests/data/nm/vsv_lanconelli2012 (Lanconelli et al. Phys Med Biol 2012;57:517, via
mghro/MIRDCalculation, MIT licence): upstream .txt tables, kernel_summary.csv and
vsv_crosscheck_values.csv (DPM Monte Carlo 4 x 4 x 3 mm value).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import fftconvolve

from theraquant import dosimetry as dm
from theraquant.dosimetry._kernels import _loglog
from theraquant.errors import TheraquantError

MEV_J = 1.602176634e-13
SIZES = (2.21, 2.33, 2.4, 3.0, 3.59, 3.9, 4.0, 4.42, 4.8, 5.0, 6.0, 6.8, 9.28)


def _point_source(shape, mbq_s=1.0):
    tia = np.zeros(shape)
    tia[tuple(n // 2 for n in shape)] = mbq_s * 1e6  # Bq s
    return tia


@pytest.mark.parametrize("nuclide", ["Y-90", "Lu-177"])
@pytest.mark.parametrize("h", SIZES)
def test_point_source_reproduces_table(original_table, nuclide, h):
    # 1 MBq s in one voxel -> the table in mGy, exactly (README section 2)
    dose = dm.absorbed_dose(_point_source((13, 13, 13)), (h, h, h), nuclide=nuclide)
    ref = original_table(nuclide, h)
    np.testing.assert_allclose(np.asarray(dose[1:12, 1:12, 1:12]) * 1e3, ref, rtol=1e-9, atol=1e-15)
    assert dose.provenance["Constants"]["kernel_method"] == "table"


def test_point_source_bone_kernel(original_table):
    dose = dm.absorbed_dose(_point_source((11, 11, 11)), (4.42,) * 3, tissue="bone")
    np.testing.assert_allclose(np.asarray(dose) * 1e3, original_table("Y-90", 4.42, "bone"), rtol=1e-9)


def test_lanconelli_s000_4p42_is_0p689():
    # README: S(0,0,0) = 0.689 mGy for 90Y 4.42 mm soft tissue
    assert dm.lanconelli_table("Y-90", 4.42)[5, 5, 5] == 0.689
    assert dm.lanconelli_table("Y-90", spacing_mm=(4.42, 4.42, 4.42))[5, 5, 5] == 0.689
    with pytest.raises(TheraquantError, match=r"cubic voxels: spacing_mm must be one edge or three equal"):
        dm.lanconelli_table("Y-90", (4.42, 4.42, 3.0))


@pytest.mark.parametrize("nuclide", ["Y-90", "Lu-177"])
def test_uniform_interior_equals_activity_times_kernel_sum(kernel_summary, nuclide):
    h = 4.42
    row = kernel_summary[(kernel_summary.nuclide == ("90Y" if nuclide == "Y-90" else "177Lu"))
                         & (kernel_summary.tissue == "soft") & np.isclose(kernel_summary.voxel_mm, h)].iloc[0]
    tia = np.zeros((26, 26, 26))
    tia[2:24, 2:24, 2:24] = 1e6  # 1 MBq s per voxel
    dose = dm.absorbed_dose(tia, (h,) * 3, nuclide=nuclide)
    # voxels >= 5 voxels from the edge of the uniform block receive A x sum(K); file gives 5 decimals
    assert float(dose[13, 13, 13]) * 1e3 == pytest.approx(row.kernel_sum_11x11x11, abs=1e-5)
    assert float(dose[7:19, 7:19, 7:19].std()) < 1e-12


def test_uniform_interior_is_ldm_times_kernel_ratio(kernel_summary, analytic):
    # 90Y: interior VSV dose / electron-only LDM (0.9267 MeV, rho 1.04) = sum_over_LDM (1.0075-1.010)
    nuc = analytic["nuclides"]["Y-90"]
    k_derived = nuc["electron_energy_per_decay_MeV"] * MEV_J * nuc["half_life_h"] * 3600 / math.log(2) * 1e9
    for h in (3.0, 4.42, 6.0):
        row = kernel_summary[(kernel_summary.nuclide == "90Y") & (kernel_summary.tissue == "soft")
                             & np.isclose(kernel_summary.voxel_mm, h)].iloc[0]
        tia = np.zeros((24, 24, 24))
        tia[1:23, 1:23, 1:23] = dm.permanent_implant_tia(1e5)
        vsv = dm.absorbed_dose(tia, (h,) * 3)
        ldm = dm.absorbed_dose(tia, (h,) * 3, method="ldm", k=k_derived)
        ratio = float(vsv[12, 12, 12] / ldm[12, 12, 12])
        assert ratio == pytest.approx(row.sum_over_LDM, abs=2e-4)  # file: 4 decimals
        assert 1.007 <= ratio <= 1.0105  # "about 1 % above LDM"


def test_flat_boundary_falls_to_half():
    # half-space of uniform activity (z < 20); kernel symmetry makes the mean of the two voxels
    # on either side of the boundary plane exactly half the interior dose
    tia = np.zeros((40, 24, 24))
    tia[:20] = 1e6
    dose = np.asarray(dm.absorbed_dose(tia, (4.0, 4.0, 4.0)))
    interior = dose[10, 12, 12]
    assert (dose[19, 12, 12] + dose[20, 12, 12]) / 2 / interior == pytest.approx(0.5, rel=1e-9)
    assert 0.5 < dose[19, 12, 12] / interior < 0.95  # last active layer (0.84 at 4 mm)
    assert 0.05 < dose[20, 12, 12] / interior < 0.5  # first inactive layer (0.16)
    assert dose[30, 12, 12] / interior < 1e-3  # 90Y beta range ~11 mm: bremsstrahlung tail only


def test_linear_not_circular():
    # activity at one face must not wrap around to the opposite face
    tia = np.zeros((12, 12, 12))
    tia[0, 6, 6] = 1e6
    dose = np.asarray(dm.absorbed_dose(tia, (4.42,) * 3))
    assert dose[-1, 6, 6] == pytest.approx(0.0, abs=1e-15)
    assert dose[0, 6, 6] * 1e3 == pytest.approx(0.689, rel=1e-9)


def test_matches_scipy_fftconvolve_random_map():
    rng = np.random.default_rng(7)
    tia = rng.random((30, 25, 21)) * 1e6
    for sp in [(4.42, 4.42, 4.42), (3.0, 4.07, 4.07)]:
        k = dm.voxel_kernel(sp).values
        ref = fftconvolve(tia * 1e-6, k, mode="same") * 1e-3
        got = np.asarray(dm.absorbed_dose(tia, sp))
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12 * ref.max())


@pytest.mark.parametrize("spacing", [(3.0, 4.07, 4.07), (4.0, 4.0, 3.0), (1.5, 1.5, 3.0), (1.0, 1.0, 1.0),
                                     (2.0, 2.0, 2.0), (3.3, 3.3, 3.3), (10.0, 10.0, 12.0), (12.0, 12.0, 12.0)])
def test_any_voxel_size_conserves_energy(spacing, analytic):
    # energy deposited / electron energy emitted = kernel normalisation of the tables (1.0075-1.0100
    # between 2.21 and 9.28 mm; 1.0073 at 12 mm, log-log extrapolated from 6.8 and 9.28 mm)
    nuc = analytic["nuclides"]["Y-90"]
    e_j = nuc["electron_energy_per_decay_MeV"] * MEV_J
    k = dm.voxel_kernel(spacing)
    pad = [n // 2 + 1 for n in k.values.shape]
    rng = np.random.default_rng(3)
    tia = np.zeros(tuple(2 * p + 6 for p in pad))
    tia[pad[0]:-pad[0], pad[1]:-pad[1], pad[2]:-pad[2]] = rng.random((6, 6, 6)) * 1e9
    dose = dm.absorbed_dose(tia, spacing)
    mass_kg = 1.04 * np.prod(spacing) * 1e-6
    ratio = float(dose.sum() * mass_kg / (tia.sum() * e_j))
    assert 1.0070 <= ratio <= 1.0100 + 1e-4


def test_anisotropic_4x4x3_against_dpm(analytic):
    # vsv_crosscheck_values.csv: DPM Monte Carlo 90Y 4 x 4 x 3 mm S(0,0,0) = 1.013 mGy/(MBq s);
    # DPM is 0.6 % below Lanconelli at 3 mm. Measured here: 1.0436 (+3.0 %); tolerance 5 %.
    dose = dm.absorbed_dose(_point_source((9, 11, 11)), (3.0, 4.0, 4.0))
    s000 = float(dose[4, 5, 5]) * 1e3
    assert s000 == pytest.approx(1.013, rel=0.05)
    assert dose.provenance["Constants"]["kernel_method"] == "log-log+radial"
    # axis order matters: the neighbour along the 3 mm axis gets more than along a 4 mm axis
    assert dose[5, 5, 5] > dose[4, 6, 5]


def test_isotropic_between_tables_is_loglog(original_table):
    h = 4.07
    lo, hi = original_table("Y-90", 4.0), original_table("Y-90", 4.42)
    w = math.log(h / 4.0) / math.log(4.42 / 4.0)
    expect_s000 = math.exp((1 - w) * math.log(lo[5, 5, 5]) + w * math.log(hi[5, 5, 5]))
    dose = dm.absorbed_dose(_point_source((11, 11, 11)), (h,) * 3)
    assert float(dose[5, 5, 5]) * 1e3 == pytest.approx(expect_s000, rel=1e-9)
    assert dose.provenance["Constants"]["kernel_method"] == "log-log"


def test_loglog_beats_linear_leave_one_out(original_table):
    # predict each inner table's S(0,0,0) from its two neighbours: log-log within 2 %,
    # linear interpolation in voxel size worse (up to several %)
    worst_log, worst_lin = 0.0, 0.0
    for i in range(1, len(SIZES) - 1):
        hs = np.array([SIZES[i - 1], SIZES[i + 1]])
        s = np.array([original_table("Y-90", h)[5, 5, 5] for h in hs])
        truth = original_table("Y-90", SIZES[i])[5, 5, 5]
        log_pred = float(_loglog(SIZES[i], hs, s))
        lin_pred = float(np.interp(SIZES[i], hs, s))
        worst_log = max(worst_log, abs(log_pred / truth - 1))
        worst_lin = max(worst_lin, abs(lin_pred / truth - 1))
    assert worst_log < 0.02
    assert worst_lin > 2 * worst_log


def test_density_scaling_scalar_and_map():
    tia = _point_source((11, 11, 11))
    base = np.asarray(dm.absorbed_dose(tia, (4.42,) * 3))
    same = np.asarray(dm.absorbed_dose(tia, (4.42,) * 3, density=1.04))
    np.testing.assert_allclose(same, base, rtol=1e-12)
    dense = np.asarray(dm.absorbed_dose(tia, (4.42,) * 3, density=2.08))
    np.testing.assert_allclose(dense, base / 2, rtol=1e-12)
    rho = np.full(tia.shape, 1.04)
    rho[5, 5, 5] = 0.52
    mapped = np.asarray(dm.absorbed_dose(tia, (4.42,) * 3, density=rho))
    assert mapped[5, 5, 5] == pytest.approx(2 * base[5, 5, 5], rel=1e-12)
    assert mapped[5, 5, 6] == pytest.approx(base[5, 5, 6], rel=1e-12)


def test_bounding_box_path_matches_full_convolution():
    # activity in a sub-box (as after masking to the liver): the cropped transform must equal
    # scipy's full-size linear convolution everywhere, including the box's surroundings
    rng = np.random.default_rng(2)
    tia = np.zeros((40, 36, 30))
    tia[3:20, 10:31, 25:30] = rng.random((17, 21, 5)) * 1e6
    for sp in [(4.42, 4.42, 4.42), (3.0, 4.07, 4.07)]:
        k = dm.voxel_kernel(sp).values
        ref = fftconvolve(tia * 1e-6, k, mode="same") * 1e-3
        got = np.asarray(dm.absorbed_dose(tia, sp))
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12 * ref.max())
    assert not np.any(dm.absorbed_dose(np.zeros((5, 5, 5)), (4.0, 4.0, 4.0)))


@pytest.mark.parametrize(("spacing", "h_table"), [((4.42, 4.42, 4.43), 4.42), ((2.2, 2.2, 2.2), 2.21),
                                                  ((3.0, 3.0, 2.99), 3.0)])
def test_kernel_continuous_across_method_switch(original_table, spacing, h_table):
    # nearly-table voxels handled by the anisotropic / below-2.21 mm path give nearly the table:
    # centre and face neighbours within 1.5 % (the size itself differs by <= 0.5 %)
    k = dm.voxel_kernel(spacing).values
    ref = original_table("Y-90", h_table)
    c = tuple(n // 2 for n in k.shape)
    assert k[c] == pytest.approx(ref[5, 5, 5], rel=0.015)
    assert k[c[0] + 1, c[1], c[2]] == pytest.approx(ref[6, 5, 5], rel=0.015)
    assert k[c[0], c[1], c[2] + 1] == pytest.approx(ref[5, 5, 6], rel=0.015)


def test_pytheranostics_lu177_kernel_reproduces_readme_numbers():
    # README section 3 (PyTheranostics 0.1 kernel, Apache-2.0): centre 0.2066, first neighbour
    # 0.00226, whole-kernel sum 0.2400 mGy/(MBq s); the shipped copy is symmetrised (<= 3e-5 of max)
    raw = np.fromfile(Path(__file__).resolve().parents[1] / "data" / "nm" / "dvk_pytheranostics_lu177"
                      / "DK_softtissueICRP_mGyperMBqs.img", dtype="<f4").reshape(51, 51, 51)
    tia = np.zeros((51, 51, 51))
    tia[25, 25, 25] = 1e6
    dose = np.asarray(dm.absorbed_dose(tia, (4.7952,) * 3, nuclide="Lu-177", kernel="pytheranostics")) * 1e3
    assert dose[25, 25, 25] == pytest.approx(0.2066, abs=5e-5)
    assert dose[25, 25, 26] == pytest.approx(0.00226, abs=5e-6)
    assert dose.sum() == pytest.approx(0.2400, abs=5e-5)
    np.testing.assert_allclose(dose, raw, rtol=0, atol=3.1e-5 * raw.max())
    with pytest.raises(TheraquantError, match="4.7952 mm cubic voxels only"):
        dm.absorbed_dose(tia, (4.42,) * 3, nuclide="Lu-177", kernel="pytheranostics")
    with pytest.raises(TheraquantError, match="Lu-177 in soft tissue only"):
        dm.absorbed_dose(tia, (4.7952,) * 3, kernel="pytheranostics")


def test_single_precision_fft_agrees_with_double_to_1e6_of_max():
    # a noisy liver-like 90Y map: single-precision transforms round off at ~3e-7 of the maximum
    # dose (measured 2.9e-7 on the 256^3 benchmark map); 1e-6 is the bar, 1e-5 the issue's.
    rng = np.random.default_rng(5)
    tia = dm.permanent_implant_tia(rng.gamma(4.0, 2.5e4, (40, 48, 44)))
    d64 = dm.absorbed_dose(tia, (3.0, 4.07, 4.07))
    d32 = dm.absorbed_dose(tia, (3.0, 4.07, 4.07), precision="single")
    assert float(np.max(np.abs(d32 - d64))) <= 1e-6 * float(d64.max())
    assert float(np.max(np.abs(d32 - d64))) > 0  # it really ran in single precision
    assert d32.provenance["Settings"]["fft_precision"] == "single"
    with pytest.raises(TheraquantError, match="precision must be 'double' or 'single'"):
        dm.absorbed_dose(tia, (3.0, 4.07, 4.07), precision="half")
