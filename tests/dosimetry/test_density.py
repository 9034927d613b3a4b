"""CT number to mass density, and its use in density-corrected VSV dosimetry."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

from theraquant import dosimetry as dm
from theraquant.errors import TheraquantError


def test_generic_curve_passes_its_points_and_interpolates_linearly():
    # the calibration's own points are reproduced exactly; between them the curve is linear
    assert_allclose(dm.density_from_ct([-1000, 0, 1600]), [0.0012, 1.0, 1.92], rtol=0, atol=1e-12)
    assert dm.density_from_ct(800.0) == pytest.approx((1.0 + 1.92) / 2, rel=1e-12)
    assert dm.density_from_ct(-500.0) == pytest.approx((0.0012 + 1.0) / 2, rel=1e-12)
    # extrapolated beyond the last point along the bone segment, clipped at air below
    assert dm.density_from_ct(2400.0) == pytest.approx(1.92 + 800 * 0.92 / 1600, rel=1e-12)
    assert dm.density_from_ct(-1200.0) == pytest.approx(0.0012)


def test_scanner_calibration_is_used_and_checked():
    cal = [(-1000, 0.001), (0, 1.0), (1200, 1.8)]
    assert dm.density_from_ct(600, calibration=cal) == pytest.approx(1.4)
    with pytest.raises(TheraquantError, match="must increase strictly"):
        dm.density_from_ct(0, calibration=[(0, 1.0), (0, 1.2)])
    with pytest.raises(TheraquantError, match="at least two"):
        dm.density_from_ct(0, calibration=[(0, 1.0)])
    with pytest.raises(TheraquantError, match="NaN or infinite"):
        dm.density_from_ct([0.0, np.nan])


def test_ct_density_scales_vsv_dose_by_kernel_density_over_voxel_density():
    # VSV doses scale by 1.04 / rho voxel by voxel (issue #5): a 40 HU soft-tissue CT
    tia = np.full((9, 9, 9), 1e9)
    rho = dm.density_from_ct(np.full((9, 9, 9), 40.0))
    d_ref = np.asarray(dm.absorbed_dose(tia, (4.0, 4.0, 4.0)))
    d_ct = np.asarray(dm.absorbed_dose(tia, (4.0, 4.0, 4.0), density=rho))
    assert_allclose(d_ct, d_ref * 1.04 / rho, rtol=1e-12)
