"""Nuclide constants used by the dosimetry engine (one place, recorded with every result)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..errors import TheraquantError

__all__ = ["Nuclide", "NUCLIDES", "get_nuclide"]

MEV_TO_J = 1.602176634e-13  # J per MeV (CODATA 2018, exact)


@dataclass(frozen=True, slots=True)
class Nuclide:
    """Physical constants of one therapy radionuclide.

    Attributes
    ----------
    name : str
        Canonical name, e.g. ``"Y-90"``.
    half_life_h : float
        Physical half-life, h.
    electron_energy_mev : float
        Mean electron (beta + conversion + Auger) energy emitted per decay, MeV;
        the energy deposited locally in local-deposition dosimetry.
    photon_energy_mev : float
        Mean photon energy emitted per decay, MeV (not deposited locally).
    kernel_name : str
        Name of the nuclide in the Lanconelli 2012 voxel S-value tables.
    source : str
        Where the constants come from.
    """

    name: str
    half_life_h: float
    electron_energy_mev: float
    photon_energy_mev: float
    kernel_name: str
    source: str

    @property
    def half_life_s(self) -> float:
        """Physical half-life, s."""
        return self.half_life_h * 3600.0

    @property
    def decay_constant_per_s(self) -> float:
        """Physical decay constant lambda = ln 2 / T1/2, 1/s."""
        return math.log(2.0) / self.half_life_s

    @property
    def decay_constant_per_h(self) -> float:
        """Physical decay constant lambda = ln 2 / T1/2, 1/h."""
        return math.log(2.0) / self.half_life_h

    @property
    def mean_life_s(self) -> float:
        """Mean life tau = T1/2 / ln 2, s (TIA of a permanent implant per Bq)."""
        return self.half_life_s / math.log(2.0)

    def as_dict(self) -> dict[str, Any]:
        """The constants as a plain dict (for provenance records)."""
        return {
            "nuclide": self.name,
            "half_life_h": self.half_life_h,
            "electron_energy_per_decay_MeV": self.electron_energy_mev,
            "photon_energy_per_decay_MeV": self.photon_energy_mev,
            "nuclide_constants_source": self.source,
        }


# Values as in tests/data/nm/analytic/analytic_checks.json (ICRP Publication 107, ENSDF).
NUCLIDES: dict[str, Nuclide] = {
    "Y-90": Nuclide("Y-90", 64.05, 0.9267, 0.0, "90Y",
                    "ICRP Publication 107 (mean beta 0.9267 MeV); ENSDF/NUBASE half-life 64.05 h"),
    "Lu-177": Nuclide("Lu-177", 6.647 * 24.0, 0.1479, 0.0353, "177Lu",
                      "ICRP Publication 107 (electrons 0.1479 MeV, photons 0.0353 MeV per decay); "
                      "ENSDF half-life 6.647 d"),
}

_ALIASES = {
    "y90": "Y-90", "y-90": "Y-90", "90y": "Y-90", "yttrium-90": "Y-90",
    "lu177": "Lu-177", "lu-177": "Lu-177", "177lu": "Lu-177", "lutetium-177": "Lu-177",
}


def get_nuclide(nuclide: str | Nuclide) -> Nuclide:
    """Look up a nuclide by name (``"Y-90"``, ``"90Y"``, ``"Lu-177"``, ``"177Lu"``, any case)."""
    if isinstance(nuclide, Nuclide):
        return nuclide
    key = _ALIASES.get(str(nuclide).strip().lower().replace("_", "-").replace(" ", ""))
    if key is None:
        raise TheraquantError(
            f"unknown nuclide {nuclide!r}; theraquant.dosimetry knows {sorted(NUCLIDES)}; "
            "pass one of these names (e.g. nuclide='Y-90')")
    return NUCLIDES[key]
