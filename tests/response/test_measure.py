"""longest_axial_diameter: analytic shapes."""

import numpy as np
import pytest

from theraquant.errors import TheraquantError
from theraquant.response import longest_axial_diameter


def test_rectangle_diagonal_and_largest_slice():
    m = np.zeros((4, 20, 20), bool)
    m[1, 2:5, 2:6] = True          # 3 x 4 pixels -> 6 mm x 8 mm footprint, diagonal 10 mm
    m[2, 2:12, 2:4] = True         # 10 x 2 pixels -> hypot(20, 4) mm
    assert longest_axial_diameter(m, (5.0, 2.0, 2.0)) == pytest.approx(np.hypot(20.0, 4.0), abs=1e-12)


def test_disc_within_one_pixel_and_empty():
    yy, xx = np.mgrid[:64, :64]
    m = ((yy - 31.5) ** 2 + (xx - 31.5) ** 2 <= 20.0 ** 2)[None]   # disc of diameter 40 px of 1 mm
    d = longest_axial_diameter(m, (3.0, 1.0, 1.0))
    assert 40.0 <= d <= 40.0 + np.sqrt(2)   # edge-to-edge of pixel squares: at most one pixel diagonal more
    assert longest_axial_diameter(np.zeros((2, 3, 3), bool), 1.0) == 0.0
    with pytest.raises(TheraquantError, match="mask must be 3-D"):
        longest_axial_diameter(np.zeros((3, 3), bool), 1.0)
