"""PET quantification: SUV from DICOM, lesion metrics, SUVpeak, PERCIST liver reference, FMISO hypoxia.

Engines take plain arrays indexed (z, y, x) and ``spacing_mm`` (z, y, x); only :func:`read_suv`
reads files (through :mod:`theraquant.io`).
"""

from ._bodysize import body_surface_area, ideal_body_weight, lean_body_mass
from ._hypoxia import HYPOXIA_THRESHOLDS, HypoxiaThreshold, hypoxia
from ._lesion import (lesion_metrics, liver_reference, percist_threshold, sphere_kernel, sphere_radius_mm,
                      suv_peak, suv_peak_location, SuvPeak)
from ..results import Result
from ._suv import (NORMALIZATIONS, OVERRIDES, Finding, SuvConversion, check_suv_headers, read_suv, suv_factor,
                   suv_image)

__all__ = ["HYPOXIA_THRESHOLDS", "HypoxiaThreshold", "NORMALIZATIONS", "OVERRIDES", "Finding", "Result", "SuvConversion",
           "body_surface_area", "check_suv_headers", "hypoxia", "ideal_body_weight", "lean_body_mass", "lesion_metrics",
           "liver_reference", "percist_threshold", "read_suv", "sphere_kernel", "sphere_radius_mm",
           "suv_factor", "suv_image", "suv_peak", "suv_peak_location", "SuvPeak"]
