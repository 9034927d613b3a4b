"""PET quantification: SUV, lesion metrics, SUVpeak, FMISO hypoxia."""

from ._bodysize import body_surface_area, ideal_body_weight, lean_body_mass
from ._suv import NORMALIZATIONS, OVERRIDES, SuvConversion, read_suv, suv_factor

__all__ = ["NORMALIZATIONS", "OVERRIDES", "SuvConversion", "body_surface_area", "ideal_body_weight",
           "lean_body_mass", "read_suv", "suv_factor"]
