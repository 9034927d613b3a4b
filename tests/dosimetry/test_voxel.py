"""Voxel dosimetry inputs: calibration, provenance and every bad-input error."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from theraquant import dosimetry as dm
from theraquant.errors import TheraquantError
from theraquant.results import Result


def test_calibration_to_administered_activity():
    counts = np.zeros((4, 4, 4))
    counts[1:3, 1:3, 1:3] = 7.0
    counts[0, 0, 0] = 100.0  # outside the liver mask: dropped
    mask = np.zeros(counts.shape, bool)
    mask[1:3, 1:3, 1:3] = True
    a = dm.calibrate_activity(counts, administered_bq=2e9, residual_fraction=0.02, lung_shunt_fraction=0.05,
                              mask=mask)
    assert a.sum() == pytest.approx(2e9 * 0.98 * 0.95, rel=1e-12)  # A (1 - residual)(1 - LSF)
    assert a[0, 0, 0] == 0.0 and a[1, 1, 1] == pytest.approx(2e9 * 0.98 * 0.95 / 8, rel=1e-12)


def test_scanner_quantitative_values():
    conc = np.full((2, 2, 2), 1e5)  # Bq/mL
    a = dm.activity_from_concentration(conc, (3.0, 4.07, 4.07))
    assert a[0, 0, 0] == pytest.approx(1e5 * 3.0 * 4.07 * 4.07 * 1e-3, rel=1e-12)


def test_dose_map_is_a_result_holding_a_gy_array_with_provenance():
    tia = np.zeros((5, 5, 5))
    tia[2, 2, 2] = 1e6
    d = dm.absorbed_dose(tia, (4.42, 4.42, 4.42))
    assert isinstance(d, Result) and not isinstance(d, np.ndarray)
    assert d.dtype == np.float64 and d.unit == "Gy" and d.units["dose_gy"] == "Gy" and d.shape == (5, 5, 5)
    assert np.asarray(d) is d.dose_gy and not d.dose_gy.flags.writeable  # frozen
    assert (d.method, d.nuclide, d.spacing_mm) == ("vsv", "Y-90", (4.42, 4.42, 4.42))
    assert d.provenance["Command"].startswith("theraquant.dosimetry.absorbed_dose(tia_bq_s=<array (5, 5, 5) float64>")
    c = d.provenance["Constants"]
    assert c["nuclide"] == "Y-90" and c["half_life_h"] == 64.05
    assert c["kernel"] == "Lanconelli 2012 90Y soft" and c["kernel_density_g_ml"] == 1.04
    assert d.provenance["Units"]["dose"] == "Gy"
    assert float(d[2, 2, 2]) == pytest.approx(0.689e-3, rel=1e-12)
    # arithmetic and slices are plain arrays: the record does not describe them
    assert type(d * 2) is np.ndarray and type(d[1:4]) is np.ndarray
    assert float((d * 2)[2, 2, 2]) == pytest.approx(2 * 0.689e-3, rel=1e-12)
    assert pickle.loads(pickle.dumps(d)).provenance == d.provenance


def test_ldm_default_density_is_soft_tissue():
    tia = np.full((1, 1, 1), float(dm.permanent_implant_tia(1e6)))
    d = dm.absorbed_dose(tia, (4.0, 4.0, 4.0), method="ldm")
    assert float(d[0, 0, 0]) == pytest.approx(776.094 / 1.04, rel=1e-6)  # analytic example at 1.04 g/mL


def test_lu177_vsv_and_ldm():
    tia = np.zeros((11, 11, 11))
    tia[5, 5, 5] = 1e6
    d = dm.absorbed_dose(tia, (4.8, 4.8, 4.8), nuclide="Lu-177")
    assert float(d[5, 5, 5]) * 1e3 == pytest.approx(0.178, rel=1e-12)  # README section 3: Lanconelli 177Lu 4.8 mm
    ldm = dm.absorbed_dose(tia, (4.8, 4.8, 4.8), nuclide="Lu-177", method="ldm")
    # electron-only LDM at 1.04 g/mL = 0.20603 mGy/(MBq s) (kernel_summary.csv)
    assert float(ldm[5, 5, 5]) * 1e3 == pytest.approx(0.20603, rel=1e-4)
    assert ldm.provenance["Constants"]["k_Gy_kg_per_GBq"] is None


@pytest.mark.parametrize(("spacing", "match"), [
    ((0.9, 4.0, 4.0), "voxel edge outside 1-12 mm"),
    ((4.0, 4.0, 12.5), "voxel edge outside 1-12 mm"),
    ((4.0, -4.0, 4.0), "3 positive voxel sizes"),
    ((4.0, 4.0), "3 positive voxel sizes"),
])
def test_bad_spacing(spacing, match):
    with pytest.raises(TheraquantError, match=match):
        dm.absorbed_dose(np.ones((3, 3, 3)), spacing)


def test_ldm_accepts_any_positive_spacing():
    d = dm.absorbed_dose(np.ones((2, 2, 2)), (0.5, 0.5, 20.0), method="ldm")
    assert np.all(d > 0)


@pytest.mark.parametrize(("value", "match"), [(-1.0, "1 negative voxel"), (np.nan, "1 NaN or infinite"),
                                              (np.inf, "1 NaN or infinite")])
def test_bad_activity(value, match):
    tia = np.ones((4, 4, 4))
    tia[1, 2, 3] = value
    with pytest.raises(TheraquantError, match=match):
        dm.absorbed_dose(tia, (4.0, 4.0, 4.0))
    with pytest.raises(TheraquantError, match=match):
        dm.permanent_implant_tia(tia)


def test_unknown_nuclide_and_method():
    with pytest.raises(TheraquantError, match="unknown nuclide 'Tc-99m'"):
        dm.absorbed_dose(np.ones((3, 3, 3)), (4.0, 4.0, 4.0), nuclide="Tc-99m")
    with pytest.raises(TheraquantError, match="unknown nuclide"):
        dm.permanent_implant_tia(1.0, nuclide="Ho-166")
    with pytest.raises(TheraquantError, match="method must be 'vsv' or 'ldm'"):
        dm.absorbed_dose(np.ones((3, 3, 3)), (4.0, 4.0, 4.0), method="mc")


def test_density_and_mask_on_other_grids():
    with pytest.raises(TheraquantError, match=r"density map shape \(3, 3, 4\) differs"):
        dm.absorbed_dose(np.ones((3, 3, 3)), (4.0, 4.0, 4.0), density=np.ones((3, 3, 4)))
    with pytest.raises(TheraquantError, match="density must be a positive"):
        dm.absorbed_dose(np.ones((3, 3, 3)), (4.0, 4.0, 4.0), density=0.0)
    with pytest.raises(TheraquantError, match=r"mask has shape \(2, 2, 2\) but the image has \(3, 3, 3\); resample the mask"):
        dm.calibrate_activity(np.ones((3, 3, 3)), administered_bq=1e9, mask=np.ones((2, 2, 2), bool))


def test_not_a_volume():
    with pytest.raises(TheraquantError, match="3-D array"):
        dm.absorbed_dose(np.ones((3, 3)), (4.0, 4.0, 4.0))


def test_planning_bad_input():
    with pytest.raises(TheraquantError, match="give exactly one of activity_gbq and dose_gy"):
        dm.mird_single_compartment(liver_mass_kg=1.5)
    with pytest.raises(TheraquantError, match="lung_shunt_fraction must be a fraction"):
        dm.partition_model(tumour_mass_kg=0.3, normal_liver_mass_kg=1.2, tn_ratio=4, lung_shunt_fraction=5,
                           activity_gbq=2.0)
    with pytest.raises(TheraquantError, match="tumour_mass_kg must be a positive number"):
        dm.partition_model(tumour_mass_kg=0, normal_liver_mass_kg=1.2, tn_ratio=4, lung_shunt_fraction=0.05,
                           activity_gbq=2.0)
