"""90Y radioembolization planning: MIRD mono-compartment and partition models, both ways."""

from __future__ import annotations

import math
from typing import Mapping

from ..errors import TheraquantError
from ..quantities import check_quantity
from ..results import Result, records_call

__all__ = ["mird_single_compartment", "partition_model"]


def _positive(name: str, value: float | None) -> float:
    try:
        v = float(value)  # type: ignore[arg-type]  # float(None) raises TypeError: caught
    except (TypeError, ValueError):
        raise TheraquantError(f"{name} must be a positive number, got {value!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise TheraquantError(f"{name} must be a positive number, got {value!r}")
    if name in _QUANTITY:  # masses in g, activity in MBq: the plausibility table
        check_quantity(_QUANTITY[name], v, argument=name)
    return v


_QUANTITY = {"liver_mass_kg": "mass_kg", "tumour_mass_kg": "mass_kg", "normal_liver_mass_kg": "mass_kg",
             "lung_mass_kg": "mass_kg", "activity_gbq": "administered_activity_gbq", "dose_gy": "dose_gy",
             "tumour_dose_gy": "dose_gy"}


def _fraction(name: str, value: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TheraquantError(f"{name} must be a fraction in [0, 1), got {value!r}") from None
    if not (0.0 <= v < 1.0):
        raise TheraquantError(f"{name} must be a fraction in [0, 1), got {value!r}; pass e.g. 0.05 for 5 %")
    return v


def _one_of(a: float | None, b: float | None, na: str, nb: str) -> None:
    if (a is None) == (b is None):
        raise TheraquantError(f"give exactly one of {na} and {nb}, got {na}={a!r}, {nb}={b!r}; "
                              f"{na} gives the doses, {nb} the activity to prescribe")


@records_call("theraquant.dosimetry.mird_single_compartment")
def mird_single_compartment(*, liver_mass_kg: float, activity_gbq: float | None = None,
                            dose_gy: float | None = None, lung_shunt_fraction: float = 0.0,
                            k: float = 49.67) -> Mapping[str, float]:
    """MIRD mono-compartment model of 90Y radioembolization: activity to dose or dose to activity.

    Parameters
    ----------
    liver_mass_kg : float
        Mass of the perfused liver (tumour and normal liver together), kg.
    activity_gbq : float, optional
        Administered activity, GBq (give this or `dose_gy`).
    dose_gy : float, optional
        Prescribed mean dose to the perfused liver, Gy.
    lung_shunt_fraction : float
        Lung shunt fraction, 0-1.
    k : float
        Dose constant, Gy kg/GBq (49.67 for 90Y).

    Returns
    -------
    mapping
        ``activity_GBq`` (GBq), ``dose_Gy`` (Gy), and the inputs ``liver_mass_kg``,
        ``lung_shunt_fraction``, ``k_Gy_kg_per_GBq``.

    Notes
    -----
    D = k A (1 - LSF) / M, A = D M / (k (1 - LSF)).

    References
    ----------
    .. [1] Gulec SA, Mesoloras G, Stabin M. Dosimetric techniques in 90Y-microsphere therapy of
       liver cancer: the MIRD equations for dose calculations. J Nucl Med 2006;47:1209-11.

    Examples
    --------
    >>> r = mird_single_compartment(liver_mass_kg=1.5, dose_gy=120, lung_shunt_fraction=0.05)
    >>> round(r["activity_GBq"], 4)
    3.8147
    """
    m = _positive("liver_mass_kg", liver_mass_kg)
    kk = _positive("k", k)
    lsf = _fraction("lung_shunt_fraction", lung_shunt_fraction)
    _one_of(activity_gbq, dose_gy, "activity_gbq", "dose_gy")
    if activity_gbq is not None:
        a = _positive("activity_gbq", activity_gbq)
        d = kk * a * (1.0 - lsf) / m
    else:
        d = _positive("dose_gy", dose_gy)
        a = d * m / (kk * (1.0 - lsf))
    return Result({"activity_GBq": a, "dose_Gy": d, "liver_mass_kg": m,
                   "lung_shunt_fraction": lsf, "k_Gy_kg_per_GBq": kk},
                  units={"activity_GBq": "GBq", "dose_Gy": "Gy", "liver_mass_kg": "kg", "lung_shunt_fraction": "",
                         "k_Gy_kg_per_GBq": "Gy kg/GBq"}, title="MIRD single-compartment 90Y plan")


@records_call("theraquant.dosimetry.partition_model")
def partition_model(*, tumour_mass_kg: float, normal_liver_mass_kg: float, tn_ratio: float,
                    lung_shunt_fraction: float, lung_mass_kg: float = 1.0, activity_gbq: float | None = None,
                    tumour_dose_gy: float | None = None, k: float = 49.67) -> Mapping[str, float]:
    """Partition model (tumour, normal liver, lung) of 90Y radioembolization, both ways.

    Parameters
    ----------
    tumour_mass_kg, normal_liver_mass_kg, lung_mass_kg : float
        Compartment masses, kg (lung 1.0 kg by convention).
    tn_ratio : float
        Tumour-to-normal-liver activity concentration ratio (e.g. from 99mTc-MAA SPECT).
    lung_shunt_fraction : float
        Fraction of the activity shunted to the lungs, 0-1.
    activity_gbq : float, optional
        Administered activity, GBq (give this or `tumour_dose_gy`).
    tumour_dose_gy : float, optional
        Prescribed mean tumour dose, Gy.
    k : float
        Dose constant, Gy kg/GBq (49.67 for 90Y).

    Returns
    -------
    mapping
        ``activity_GBq``, ``D_tumour_Gy``, ``D_normal_liver_Gy``, ``D_lung_Gy``,
        ``A_tumour_GBq``, ``A_normal_liver_GBq``, ``A_lung_GBq`` and ``k_Gy_kg_per_GBq``.

    Notes
    -----
    A_T = A (1 - LSF) TN M_T / (TN M_T + M_N), A_N = A (1 - LSF) M_N / (TN M_T + M_N),
    A_L = A LSF; D_X = k A_X / M_X. The dose-to-activity direction inverts the first line.

    References
    ----------
    .. [1] Ho S, et al. Partition model for estimating radiation doses from yttrium-90
       microspheres in treating hepatic tumours. Eur J Nucl Med 1996;23:947-52. doi:10.1007/BF01084369

    Examples
    --------
    >>> r = partition_model(tumour_mass_kg=0.3, normal_liver_mass_kg=1.2, tn_ratio=4.0,
    ...                     lung_shunt_fraction=0.05, activity_gbq=2.0)
    >>> round(r["D_tumour_Gy"], 3), round(r["D_normal_liver_Gy"], 3), round(r["D_lung_Gy"], 3)
    (157.288, 39.322, 4.967)
    """
    mt = _positive("tumour_mass_kg", tumour_mass_kg)
    mn = _positive("normal_liver_mass_kg", normal_liver_mass_kg)
    ml = _positive("lung_mass_kg", lung_mass_kg)
    tn = _positive("tn_ratio", tn_ratio)
    kk = _positive("k", k)
    lsf = _fraction("lung_shunt_fraction", lung_shunt_fraction)
    _one_of(activity_gbq, tumour_dose_gy, "activity_gbq", "tumour_dose_gy")
    tumour_share = tn * mt / (tn * mt + mn)
    if activity_gbq is not None:
        a = _positive("activity_gbq", activity_gbq)
    else:
        dt = _positive("tumour_dose_gy", tumour_dose_gy)
        a = dt * mt / (kk * (1.0 - lsf) * tumour_share)
    at = a * (1.0 - lsf) * tumour_share
    an = a * (1.0 - lsf) * (1.0 - tumour_share)
    al = a * lsf
    return Result({
        "activity_GBq": a, "D_tumour_Gy": kk * at / mt, "D_normal_liver_Gy": kk * an / mn,
        "D_lung_Gy": kk * al / ml, "A_tumour_GBq": at, "A_normal_liver_GBq": an, "A_lung_GBq": al,
        "tn_ratio": tn, "lung_shunt_fraction": lsf, "k_Gy_kg_per_GBq": kk},
        units={"activity_GBq": "GBq", "D_tumour_Gy": "Gy", "D_normal_liver_Gy": "Gy", "D_lung_Gy": "Gy",
               "A_tumour_GBq": "GBq", "A_normal_liver_GBq": "GBq", "A_lung_GBq": "GBq", "tn_ratio": "",
               "lung_shunt_fraction": "", "k_Gy_kg_per_GBq": "Gy kg/GBq"}, title="90Y partition model")
