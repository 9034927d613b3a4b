"""Organ-level MIRD dosimetry with OpenDose 177Lu S values and patient mass scaling."""

from __future__ import annotations

import functools
import json
import math
from importlib import resources
from typing import Any, Mapping

import numpy as np
from numpy.typing import ArrayLike

from ..errors import TheraquantError
from ..results import Result, records_call
from ._nuclides import MEV_TO_J, get_nuclide

__all__ = ["organ_s_value", "organ_dose", "OPENDOSE_SOURCES", "OPENDOSE_PHANTOMS"]

OPENDOSE_PHANTOMS = ("ICRP_110_AM", "ICRP_110_AF")
#: Source organ -> (file stem, self target name).
OPENDOSE_SOURCES = {"liver": ("liver", "Liver"), "spleen": ("spleen", "Spleen"),
                    "left_kidney": ("left_kidney_cmp", "Left kidney C+M+P"),
                    "right_kidney": ("right_kidney_cmp", "Right kidney C+M+P")}
_REF = ("OpenDose: Chauvin M, et al. J Nucl Med 2020;61:1514-19. doi:10.2967/jnumed.119.240366 "
        "(via dsarrut/rpt_dosi, LGPL-3.0)")


@functools.cache
def _table(phantom: str, stem: str) -> dict[str, tuple[float, float, float]]:
    path = resources.files("theraquant.dosimetry") / "data" / "opendose" / phantom / f"lu-177_{stem}.json"
    rows = json.loads(path.read_text())
    return {r[0]: (float(r[1]), float(r[2]), float(r[3])) for r in rows}


@records_call("theraquant.dosimetry.organ_s_value")
def organ_s_value(source: str, target: str | None = None, *, phantom: str = "ICRP_110_AM",
                  nuclide: str = "Lu-177") -> Mapping[str, float]:
    """OpenDose S value of a source organ to a target region (the organ itself by default).

    Parameters
    ----------
    source : {"liver", "spleen", "left_kidney", "right_kidney"}
        Source organ.
    target : str, optional
        Target region as named in OpenDose (e.g. ``"Liver"``, ``"Spleen"``, ``"RKidney + LKidney"``);
        None: the source organ itself (self-dose).
    phantom : {"ICRP_110_AM", "ICRP_110_AF"}
        ICRP 110 adult male or female voxel phantom.
    nuclide : str
        Only ``"Lu-177"`` is shipped.

    Returns
    -------
    mapping
        ``S_mGy_per_MBq_s`` (mGy/(MBq s)), ``S_rel_uncertainty`` (standard error / S),
        ``target_mass_g`` (g), ``source``, ``target``, ``phantom``.

    References
    ----------
    .. [1] Chauvin M, et al. OpenDose: open-access resource for nuclear medicine dosimetry.
       J Nucl Med 2020;61:1514-19. doi:10.2967/jnumed.119.240366

    Examples
    --------
    >>> s = organ_s_value("liver")
    >>> s["S_mGy_per_MBq_s"], s["target_mass_g"]
    (1.3713e-05, 1799.776)
    """
    nuc = get_nuclide(nuclide)
    if nuc.name != "Lu-177":
        raise TheraquantError(f"organ S values are shipped for Lu-177 only, got nuclide={nuclide!r}; use "
                              "voxel dosimetry (absorbed_dose) for other nuclides")
    if phantom not in OPENDOSE_PHANTOMS:
        raise TheraquantError(f"unknown phantom {phantom!r}; choose one of {OPENDOSE_PHANTOMS}")
    if source not in OPENDOSE_SOURCES:
        raise TheraquantError(f"no OpenDose table for source organ {source!r}; shipped sources are "
                              f"{sorted(OPENDOSE_SOURCES)}")
    stem, self_name = OPENDOSE_SOURCES[source]
    table = _table(phantom, stem)
    name = self_name if target is None else target
    if name not in table:
        close = [t for t in table if name.lower().split(",")[0].split()[0] in t.lower()][:8]
        raise TheraquantError(f"target {name!r} is not in the OpenDose {phantom} table of {source}; "
                              f"names are as in OpenDose, e.g. {close or sorted(table)[:8]}")
    s, se, m = table[name]
    return Result({"S_mGy_per_MBq_s": s, "S_rel_uncertainty": se / s if s > 0 else math.nan,
                   "target_mass_g": m, "source": source, "target": name, "phantom": phantom},
                  units={"S_mGy_per_MBq_s": "mGy/(MBq s)", "target_mass_g": "g"}, title="OpenDose S value")


@records_call("theraquant.dosimetry.organ_dose")
def organ_dose(tia_mbq_h: ArrayLike, *, source: str, target: str | None = None,
               phantom: str = "ICRP_110_AM", organ_mass_g: float | None = None,
               nuclide: str = "Lu-177") -> Mapping[str, Any]:
    """Organ absorbed dose D = TIA x S (MIRD) with OpenDose S values, Gy.

    Parameters
    ----------
    tia_mbq_h : float or array_like
        Time-integrated activity in the source organ, MBq h.
    source : str
        Source organ (see :func:`organ_s_value`).
    target : str, optional
        Target region; None for the self-dose.
    phantom : {"ICRP_110_AM", "ICRP_110_AF"}
        Reference phantom.
    organ_mass_g : float, optional
        The patient's organ mass (e.g. from CT), g; scales the self S value (target = source only).
    nuclide : str
        ``"Lu-177"``.

    Returns
    -------
    mapping
        ``D_Gy`` (Gy), ``S_mGy_per_MBq_s`` used, ``S_reference_mGy_per_MBq_s``,
        ``reference_mass_g``, ``organ_mass_g``, ``source``, ``target``, ``phantom``, ``S_source``.

    Notes
    -----
    Mass scaling of the self S value (MIRD Pamphlet 11; Stabin OLINDA/EXM): the electron part
    S_e = E_e / m_ref (all electron energy absorbed, E_e = 0.1479 MeV for 177Lu) scales as
    m_ref/m; the photon remainder S - S_e as (m_ref/m)^(2/3) (self-absorbed fraction ~ m^(1/3)).

    References
    ----------
    .. [1] Bolch WE, et al. MIRD Pamphlet No. 21. J Nucl Med 2009;50:477-84. doi:10.2967/jnumed.108.056036
    .. [2] Chauvin M, et al. J Nucl Med 2020;61:1514-19. doi:10.2967/jnumed.119.240366

    Examples
    --------
    >>> r = organ_dose(1000.0, source="liver")  # 1000 MBq h in the reference liver
    >>> round(r["D_Gy"], 5)  # 1000 x 3600 x 1.3713e-5 mGy
    0.04937
    """
    sv = organ_s_value(source, target, phantom=phantom, nuclide=nuclide)
    tia = np.asarray(tia_mbq_h, dtype=np.float64)
    if not np.all(np.isfinite(tia)) or np.any(tia < 0):
        raise TheraquantError(f"tia_mbq_h must be finite and >= 0 (MBq h), got {tia_mbq_h!r}")
    s_ref = sv["S_mGy_per_MBq_s"]
    m_ref = sv["target_mass_g"]
    s = s_ref
    self_dose = sv["target"] == OPENDOSE_SOURCES[source][1]
    if organ_mass_g is not None:
        if not (math.isfinite(organ_mass_g) and organ_mass_g > 0):
            raise TheraquantError(f"organ_mass_g must be a positive mass in g, got {organ_mass_g!r}")
        if not self_dose:
            raise TheraquantError("organ_mass_g scales the self S value only; leave target=None (or the "
                                  f"source organ) to use it, got target={target!r}")
        nuc = get_nuclide(nuclide)
        s_e = min(nuc.electron_energy_mev * MEV_TO_J * 1e6 * 1e3 / (m_ref * 1e-3), s_ref)  # mGy/(MBq s)
        s = s_e * (m_ref / organ_mass_g) + (s_ref - s_e) * (m_ref / organ_mass_g) ** (2.0 / 3.0)
    dose = tia * 3600.0 * s * 1e-3
    return Result({
        "D_Gy": float(dose) if dose.ndim == 0 else dose, "S_mGy_per_MBq_s": s, "S_reference_mGy_per_MBq_s": s_ref,
        "reference_mass_g": m_ref, "organ_mass_g": organ_mass_g if organ_mass_g is not None else m_ref,
        "source": source, "target": sv["target"], "phantom": phantom, "S_source": _REF},
        units={"D_Gy": "Gy", "S_mGy_per_MBq_s": "mGy/(MBq s)", "S_reference_mGy_per_MBq_s": "mGy/(MBq s)",
               "reference_mass_g": "g", "organ_mass_g": "g"}, title="organ dose (MIRD, OpenDose S values)")
