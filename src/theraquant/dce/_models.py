"""Tracer-kinetic model registry: names, free parameters, units, bounds and references.

Parameter names and units follow OSIPI CAPLEX (Dickie et al. 2024, doi:10.1002/mrm.29840):
time in s, concentration in mM, Ktrans and kep in 1/min, Fp, Fa, Fv and PS in mL/100 mL/min,
ve, vp and fa as fractions (mL/mL), MTT in s, delay in s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["ModelName", "ModelSpec", "MODELS", "UNITS", "get_model"]

#: The tracer-kinetic models by name (the public boundary; kernel codes stay internal).
ModelName = Literal["tofts", "etofts", "patlak", "2cxm", "2cum", "dual_input_1c", "dual_input_etofts"]

from ..errors import TheraquantError

#: Unit of every parameter name a fit can report.
UNITS: dict[str, str] = {
    "Ktrans": "1/min",
    "kep": "1/min",
    "ve": "mL/mL",
    "vp": "mL/mL",
    "Fp": "mL/100mL/min",
    "PS": "mL/100mL/min",
    "Fa": "mL/100mL/min",
    "Fv": "mL/100mL/min",
    "fa": "fraction",
    "MTT": "s",
    "delay": "s",
    "r2": "1",
    "aic": "1",
    "sse": "mM^2",
    "success": "bool",
    "status": "code",
}

# Default bounds, public units. Ktrans/PS, ve, vp, Fp follow OSIPI's recommended fit settings
# (DCE-DSC-MRI_CodeCollection test/DCEmodels/DCEmodels_data.py; tests/data/osipi/tolerances.json):
# Ktrans in [0, 5] 1/min, PS in [0, 5] 1/min = [0, 500] mL/100mL/min, ve and vp in [0, 1],
# Fp in [0, 200] mL/100mL/min. Volumes that divide a rate (ve in Tofts, vp in the 2CXM) get a
# small positive floor instead of 0 so that the rate stays finite.
_BOUNDS: dict[str, tuple[float, float]] = {
    "Ktrans": (0.0, 5.0),
    "ve": (1e-4, 1.0),
    "vp": (0.0, 1.0),
    "Fp": (0.0, 200.0),
    "PS": (0.0, 500.0),
    "fa": (0.0, 1.0),
}
_START: dict[str, float] = {"Ktrans": 0.6, "ve": 0.2, "vp": 0.01, "Fp": 20.0, "PS": 15.0, "fa": 0.5}
_SCALE: dict[str, float] = {"Fp": 0.01, "PS": 0.01}  # public (mL/100mL/min) -> kernel (1/min)


@dataclass(frozen=True)
class ModelSpec:
    """One tracer-kinetic model: its kernel code, free and derived parameters, reference."""

    name: str                       # public name, e.g. "etofts"
    code: int                       # kernel code in ._convolve
    free: tuple[str, ...]           # free parameters (order of the kernel)
    derived: tuple[str, ...]        # parameters computed from the free ones
    n_inputs: int                   # 1: arterial only; 2: arterial + portal-venous
    caplex: str                     # OSIPI CAPLEX model code
    reference: str                  # paper with DOI

    def bounds(self, overrides=None) -> tuple[list[float], list[float]]:
        """Lower and upper bounds of the free parameters (public units)."""
        lo, hi = [], []
        for name in self.free:
            b = _BOUNDS[name]
            if name == "vp" and self.code in (3, 4):
                b = (1e-4, b[1])
            if name == "Fp" and self.code == 5:
                # whole-liver plasma flow (arterial + portal) often exceeds OSIPI's 200 (a tumour /
                # brain setting): Materne et al. 2000 report total liver perfusion of ~100-300
                b = (b[0], 500.0)
            if overrides is not None and name in overrides:
                b = overrides[name]
            lo.append(float(b[0]))
            hi.append(float(b[1]))
        return lo, hi

    def start(self) -> list[float]:
        """OSIPI's recommended starting values (public units), used when no linear fit exists."""
        return [_START[name] for name in self.free]

    def scale(self) -> list[float]:
        """Multipliers from public units to the kernel's (Fp, PS: 1/100)."""
        return [_SCALE.get(name, 1.0) for name in self.free]


MODELS: dict[str, ModelSpec] = {
    "tofts": ModelSpec(
        "tofts", 0, ("Ktrans", "ve"), ("kep",), 1, "M.IC1.004",
        "Tofts PS, et al. JMRI 1999;10:223-32. doi:10.1002/(SICI)1522-2586(199909)10:3<223::AID-JMRI2>3.0.CO;2-S"),
    "etofts": ModelSpec(
        "etofts", 1, ("Ktrans", "ve", "vp"), ("kep",), 1, "M.IC1.005",
        "Tofts PS, et al. JMRI 1999;10:223-32. doi:10.1002/(SICI)1522-2586(199909)10:3<223::AID-JMRI2>3.0.CO;2-S"),
    "patlak": ModelSpec(
        "patlak", 2, ("Ktrans", "vp"), (), 1, "M.IC1.006",
        "Patlak CS, Blasberg RG, Fenstermacher JD. J Cereb Blood Flow Metab 1983;3:1-7. doi:10.1038/jcbfm.1983.1"),
    "2cxm": ModelSpec(
        "2cxm", 3, ("Fp", "PS", "ve", "vp"), (), 1, "M.IC1.009",
        "Brix G, et al. Magn Reson Med 2004;52:420-9. doi:10.1002/mrm.20161; "
        "Sourbron SP, Buckley DL. Phys Med Biol 2012;57:R1-33. doi:10.1088/0031-9155/57/2/R1"),
    "2cum": ModelSpec(
        "2cum", 4, ("Fp", "PS", "vp"), (), 1, "M.IC1.007",
        "Sourbron SP, et al. Magn Reson Med 2009;62:205-17. doi:10.1002/mrm.22005"),
    "dual_input_1c": ModelSpec(
        "dual_input_1c", 5, ("Fp", "fa", "ve"), ("Fa", "Fv", "MTT"), 2, "M.IC1.012",
        "Materne R, et al. Clin Sci 2000;99:517-25. doi:10.1042/cs0990517"),
    "dual_input_etofts": ModelSpec(
        "dual_input_etofts", 6, ("Ktrans", "ve", "vp", "fa"), ("kep",), 2, "M.IC1.005 (dual inlet)",
        "Berks M, et al. Madym: a C++ toolkit for quantitative DCE-MRI analysis. JOSS 2021;6:3523. "
        "doi:10.21105/joss.03523"),
}


def get_model(model: ModelName) -> ModelSpec:
    """The :class:`ModelSpec` of ``model``, or a :class:`TheraquantError` listing the choices."""
    if not isinstance(model, str) or model not in MODELS:
        raise TheraquantError(
            f"model must be one of {', '.join(repr(m) for m in MODELS)}, got {model!r}; "
            "pick the tracer-kinetic model by its name")
    return MODELS[model]


assert set(MODELS) == set(ModelName.__args__)  # one list of names
