"""Radionuclide dosimetry: voxel S values, local deposition, planning models, TAC fits, DVH.

Units follow MIRD: activity in Bq (MBq, GBq where named), time-integrated activity in Bq s
(MBq h where named), absorbed dose in Gy, masses in kg (g where named). Arrays are indexed
(z, y, x) and ``spacing_mm`` is (z, y, x) in mm.
"""

from ._density import GENERIC_CT_CALIBRATION, density_from_ct
from ._dvh import DoseVolumeResult, bed_permanent_implant, dose_volume
from ._kernels import TABLE_SIZES_MM, VoxelKernel, lanconelli_table, voxel_kernel
from ._nuclides import NUCLIDES, Nuclide, get_nuclide
from ._organ import organ_dose, organ_s_value
from ._planning import mird_single_compartment, partition_model
from ._tac import TacFit, fit_tac, hanscheid_dose, hanscheid_tia
from ._voxel import DoseMap, absorbed_dose, activity_from_concentration, calibrate_activity, permanent_implant_tia

__all__ = [
    "DoseMap",
    "GENERIC_CT_CALIBRATION",
    "DoseVolumeResult",
    "NUCLIDES",
    "Nuclide",
    "TABLE_SIZES_MM",
    "TacFit",
    "VoxelKernel",
    "absorbed_dose",
    "activity_from_concentration",
    "bed_permanent_implant",
    "calibrate_activity",
    "density_from_ct",
    "dose_volume",
    "fit_tac",
    "get_nuclide",
    "hanscheid_dose",
    "hanscheid_tia",
    "lanconelli_table",
    "mird_single_compartment",
    "organ_dose",
    "organ_s_value",
    "partition_model",
    "permanent_implant_tia",
    "voxel_kernel",
]
