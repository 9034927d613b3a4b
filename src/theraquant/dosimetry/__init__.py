"""Radionuclide dosimetry: voxel S values, local deposition, planning models, TAC fits, DVH."""
