"""Body-size formulas for SUV normalisation: lean body mass, body surface area, ideal body weight.

Heights are in metres (as DICOM PatientSize (0010,1020) stores them) and weights in kg.
Sex "M" or "F"; "O" (other/unknown, as DICOM allows) is the mean of the male and female
values, the convention the IBSI/oncoray SUV manual uses for the ideal body weight [4]_.

References
----------
.. [1] James WPT. Research on obesity. HMSO, London 1976 (the LBM formula PERCIST 1.0 uses:
   Wahl RL et al. J Nucl Med 2009;50:122S-150S. doi:10.2967/jnumed.108.057307).
.. [2] Janmahasatian S et al. Clin Pharmacokinet 2005;44:1051-65.
   doi:10.2165/00003088-200544100-00004
.. [3] Du Bois D, Du Bois EF. Arch Intern Med 1916;17:863-71.
   doi:10.1001/archinte.1916.00080130010002
.. [4] Devine BJ. Drug Intell Clin Pharm 1974;8:650-5 (IBW); Vacha M. Standardizing SUV
   computation (oncoray/suv_computation, 2026), CC BY 4.0.
"""

from __future__ import annotations

from typing import Literal

from ..errors import TheraquantError

__all__ = ["lean_body_mass", "body_surface_area", "ideal_body_weight"]

Sex = Literal["M", "F", "O"]


def _check(weight_kg: float | None, height_m: float, sex: str | None, *, need_sex: bool = True) -> str:
    if weight_kg is not None and not (weight_kg > 0):
        raise TheraquantError(f"weight_kg must be a positive weight in kg, got {weight_kg!r}")
    if not (0.3 < height_m < 3.0):
        raise TheraquantError(
            f"height_m must be a height in metres (0.3-3), got {height_m!r}; "
            "DICOM PatientSize (0010,1020) is in m (1.75, not 175)")
    if not need_sex:
        return ""
    s = str(sex or "").strip().upper()[:1]
    if s not in ("M", "F", "O"):
        raise TheraquantError(f"sex must be 'M', 'F' or 'O' (other: mean of M and F), got {sex!r}")
    return s


def _by_sex(s: str, male: float, female: float) -> float:
    return male if s == "M" else female if s == "F" else 0.5 * (male + female)


def lean_body_mass(weight_kg: float, height_m: float, sex: str, *,
                   method: Literal["james", "janmahasatian"] = "james") -> float:
    """Lean body mass, kg, by the James (PERCIST) or Janmahasatian formula.

    Parameters
    ----------
    weight_kg : float
        Body weight, kg.
    height_m : float
        Height, m.
    sex : {"M", "F", "O"}
        "O" gives the mean of the male and female values.
    method : {"james", "janmahasatian"}
        James: male 1.10 W - 128 (W/H)^2, female 1.07 W - 148 (W/H)^2 (H in cm) [1]_;
        Janmahasatian: male 9270 W / (6680 + 216 BMI), female 9270 W / (8780 + 244 BMI) [2]_.

    Returns
    -------
    float
        Lean body mass, kg.

    Examples
    --------
    >>> round(lean_body_mass(70.0, 1.75, "M"), 2)   # analytic_checks.json: 56.52 kg
    56.52
    >>> round(lean_body_mass(70.0, 1.75, "F", method="janmahasatian"), 3)
    45.197
    """
    s = _check(weight_kg, height_m, sex)
    h_cm = height_m * 100.0
    if method == "james":
        male = 1.10 * weight_kg - 128.0 * (weight_kg / h_cm) ** 2
        female = 1.07 * weight_kg - 148.0 * (weight_kg / h_cm) ** 2
    elif method == "janmahasatian":
        bmi = weight_kg / height_m**2
        male = 9270.0 * weight_kg / (6680.0 + 216.0 * bmi)
        female = 9270.0 * weight_kg / (8780.0 + 244.0 * bmi)
    else:
        raise TheraquantError(f"method must be 'james' or 'janmahasatian', got {method!r}")
    return float(_by_sex(s, male, female))


def body_surface_area(weight_kg: float, height_m: float) -> float:
    """Body surface area, m^2, by Du Bois and Du Bois: 0.007184 H[cm]^0.725 W[kg]^0.425 [3]_.

    Examples
    --------
    >>> round(body_surface_area(70.0, 1.75), 5)   # analytic_checks.json: 1.84814 m^2
    1.84814
    """
    _check(weight_kg, height_m, None, need_sex=False)
    return float(0.007184 * (height_m * 100.0) ** 0.725 * weight_kg**0.425)


def ideal_body_weight(height_m: float, sex: str) -> float:
    """Ideal body weight, kg (Devine): male 48.0 + 1.06 (H - 152), female 45.5 + 0.91 (H - 152), H in cm.

    Sex "O" gives the mean of the two (the oncoray DRO_2_2 convention) [4]_.

    Examples
    --------
    >>> round(ideal_body_weight(1.75, "M"), 2), round(ideal_body_weight(1.75, "O"), 3)
    (72.38, 69.405)
    """
    s = _check(None, height_m, sex)
    h_cm = height_m * 100.0
    return float(_by_sex(s, 48.0 + 1.06 * (h_cm - 152.0), 45.5 + 0.91 * (h_cm - 152.0)))
