"""Plausible ranges of physical quantities, and the unit slips that land outside them.

One table (:data:`QUANTITIES`) says, for each physical quantity an entry point takes (frame times,
body weight and height, injected activity, half-life, voxel size, density, dose, TAC times and
activities...), in which unit theraquant expects it, which values are **impossible** (an error),
which are **implausible** (a warning) and which mistaken units typically produce them (a weight in
g or lb, an activity in MBq or mCi, frame times in ms or minutes...). Every entry point, API and
command line alike, calls :func:`check_quantity` with the value it received:

* impossible -> :class:`~theraquant.errors.TheraquantError` naming the argument, the value, the
  expected unit and, when one fits, the probable unit and the converted value;
* implausible -> a :class:`PlausibilityWarning` with the same content (``strict="raise"``
  makes it an error); the command line prints each on one line.

The ranges are deliberately wide: a warning must mean "almost certainly a unit slip", not "unusual
patient". Their sources are given beside each entry.

Examples
--------
>>> import warnings
>>> with warnings.catch_warnings(record=True) as w:
...     warnings.simplefilter("always")
...     _ = check_quantity("frame_interval_s", 5000.0, argument="--dt")
>>> print(w[0].message)  # doctest: +NORMALIZE_WHITESPACE
--dt 5000 is implausible for a frame interval in s (expected 0.1 to 600): probably in ms
(5000 ms = 5 s); convert it to s
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, Mapping

import numpy as np

from .errors import TheraquantError

__all__ = ["Quantity", "QUANTITIES", "PlausibilityWarning", "check_quantity", "check_frame_times",
           "check_tia_total", "probable_units", "HALF_LIVES_S"]


class PlausibilityWarning(UserWarning):
    """A value that is possible but almost certainly given in the wrong unit (or wrong).

    Attributes
    ----------
    quantity : str
        Key in :data:`QUANTITIES`.
    value : float
        The value received (the offending extreme for arrays).
    argument : str or None
        The API keyword (``"weight_kg"``) or command-line option (``"--dt"``) that received it.
    probable_unit : str or None
        The unit the value was most probably given in.
    """

    def __init__(self, message: str, *, quantity: str = "", value: float = math.nan,
                 argument: str | None = None, probable_unit: str | None = None):
        super().__init__(message)
        self.quantity = quantity
        self.value = value
        self.argument = argument
        self.probable_unit = probable_unit


@dataclass(frozen=True)
class Quantity:
    """One physical quantity: its unit, its possible and plausible ranges, the usual unit slips.

    Attributes
    ----------
    description : str
        What it is, for messages ("patient body weight").
    unit : str
        The unit theraquant expects.
    possible : (float, float)
        Values outside are impossible (error); ``lower_open`` excludes the lower bound itself.
    plausible : (float, float)
        Values outside (but possible) are implausible (warning).
    mistakes : tuple of (str, float)
        Mistaken units and the factor that converts a value in that unit into ``unit``
        (grams -> kg: 1e-3). A unit is proposed when the converted value is plausible.
    typical : float
        A typical value in ``unit``: of several fitting mistaken units, the one whose converted value
        is nearest (in log) is proposed first.
    known : mapping of str to float
        Exact values that are always fine (nuclide half-lives); a value that equals one of them
        only after a mistaken unit's conversion is implausible even inside ``plausible``.
    hint : str
        Advice when no unit explains an implausible value.
    source : str
        Where the ranges come from.
    """

    description: str
    unit: str
    possible: tuple[float, float]
    plausible: tuple[float, float]
    mistakes: tuple[tuple[str, float], ...] = ()
    typical: float = 1.0
    lower_open: bool = True
    known: Mapping[str, float] = field(default_factory=dict)
    hint: str = ""
    source: str = ""


_MCI = 3.7e7  # Bq per mCi (exact by definition of the curie)
_LB = 0.45359237  # kg per pound (exact, international avoirdupois pound)
_INCH = 0.0254  # m per inch (exact)

#: Physical half-lives of the nuclides met in nuclear-medicine imaging and therapy, s
#: (NUBASE2020 / ENSDF, rounded to 5 significant figures; Y-90 and Lu-177 as in theraquant.dosimetry).
HALF_LIVES_S: Mapping[str, float] = MappingProxyType({
    "O-15": 122.24, "N-13": 597.9, "C-11": 1221.8, "Ga-68": 4062.6, "F-18": 6586.2, "Rb-82": 76.38,
    "Tc-99m": 21624.0, "Cu-64": 45720.0, "In-111": 242290.0, "Y-90": 64.05 * 3600, "Zr-89": 282276.0,
    "I-124": 360806.0, "Lu-177": 6.647 * 86400, "I-131": 692928.0, "Ho-166": 96588.0,
})

#: The table used by every entry point (see :class:`Quantity`).
QUANTITIES: Mapping[str, Quantity] = MappingProxyType({
    "frame_interval_s": Quantity(
        "frame interval", "s", (0.0, 86400.0), (0.1, 600.0), (("ms", 1e-3), ("min", 60.0)), typical=5.0,
        source="DCE-MRI 1-30 s (QIBA DCE-MRI profile 2020: <= 10 s for Ktrans); dynamic PET frames up to "
               "10 min"),
    "frame_duration_s": Quantity(
        "acquisition span (last minus first frame time)", "s", (0.0, 7 * 86400.0),
        (20.0, 14400.0), (("ms", 1e-3), ("min", 60.0), ("h", 3600.0)), typical=300.0,
        source="DCE-MRI 3-10 min (QIBA 2020); dynamic PET up to 2 h (FMISO, FDG kinetics); x2 margin"),
    "weight_kg": Quantity(
        "patient body weight", "kg", (0.0, 700.0), (2.0, 300.0), (("g", 1e-3), ("lb", _LB)), typical=70.0,
        source="heaviest recorded person 635 kg (possible); PET/CT tables carry 200-300 kg (plausible)"),
    "height_m": Quantity(
        "patient height", "m", (0.0, 3.0), (0.4, 2.3), (("cm", 0.01), ("mm", 1e-3), ("in", _INCH),
                                                        ("ft", 0.3048)), typical=1.7,
        source="tallest recorded person 2.72 m; DICOM PatientSize (0010,1020) is in m"),
    "injected_activity_bq": Quantity(
        "injected activity", "Bq", (0.0, 1e12), (1e6, 3e10),
        (("MBq", 1e6), ("mCi", _MCI), ("GBq", 1e9), ("kBq", 1e3), ("Ci", 1e3 * _MCI)), typical=3.7e8,
        source="diagnostic PET 37-740 MBq (EANM FDG guideline 2015); therapy up to ~11 GBq (131I), 7.4 GBq "
               "177Lu, 0.5-5 GBq 90Y; DICOM RadionuclideTotalDose (0018,1074) is in Bq"),
    "half_life_s": Quantity(
        "radionuclide half-life", "s", (0.0, 1e17), (10.0, 2e7), (("min", 60.0), ("h", 3600.0), ("d", 86400.0)),
        typical=6586.2, known=HALF_LIVES_S,
        source="imaging/therapy nuclides 76 s (Rb-82) to 8 d (I-131); DICOM RadionuclideHalfLife "
               "(0018,1075) is in s"),
    "uptake_half_lives": Quantity(
        "uptake time (injection to scan)", "half-lives", (0.0, 64.0),
        (0.0, 10.0), (), typical=0.5, lower_open=False,
        hint="the activity would have decayed more than 1000-fold: the injection date or time "
             "(RadiopharmaceuticalStartDateTime (0018,1078)) or the half-life is probably wrong; pass "
             "injection_time= or half_life_s=",
        source="10 half-lives leave < 0.1 % of the activity, no protocol scans that late; after 64 not one "
               "atom of a 1 TBq 18F injection (2^53 atoms) is left"),
    "voxel_size_mm": Quantity(
        "voxel size", "mm", (0.0, 1000.0), (0.05, 30.0), (("m", 1000.0), ("cm", 10.0), ("um", 1e-3)),
        typical=3.0, source="clinical CT/MR/PET/SPECT voxels 0.3-12 mm; preclinical down to 0.05 mm"),
    "density_g_ml": Quantity(
        "tissue density", "g/mL", (0.0, 25.0), (5e-4, 3.0), (("kg/m3", 1e-3),), typical=1.04,
        source="air 0.0012, lung 0.26, soft tissue 1.04, cortical bone 1.92 g/mL (ICRU 44); densest "
               "element 22.6 g/mL"),
    "dose_gy": Quantity(
        "absorbed dose", "Gy", (0.0, 1e6), (0.0, 5000.0), (("mGy", 1e-3), ("cGy", 1e-2)), typical=100.0,
        lower_open=False,
        source="90Y radiation segmentectomy reaches 1000-2000 Gy (Salem 2011 / Gabr 2021); 5000 Gy margin"),
    "tac_time_h": Quantity(
        "time after administration of the last time-activity sample", "h", (0.0, 1e6), (12.0, 2000.0),
        (("d", 24.0), ("s", 1 / 3600.0), ("min", 1 / 60.0)), typical=96.0, lower_open=False,
        source="177Lu/90Y dosimetry samples to 4-7 d (EANM 177Lu dosimetry recommendations 2022)"),
    "tac_activity_mbq": Quantity(
        "activity of a time-activity curve", "MBq", (0.0, 1e9), (0.0, 1e5),
        (("Bq", 1e-6), ("kBq", 1e-3)), typical=100.0, lower_open=False,
        source="therapies administer at most ~11 GBq (1.1e4 MBq); 10x margin"),
    "tia_total_bq_s": Quantity(
        "total time-integrated activity of the image", "Bq s", (0.0, math.inf), (5e10, math.inf), (),
        typical=1e14, lower_open=False,
        hint="this looks like an activity (Bq), not a time-integrated activity (Bq s): integrate over "
             "time first (permanent_implant_tia for 90Y microspheres, fit_tac for 177Lu)",
        source="activity images total <= 3e10 Bq (30 GBq); a therapy TIA is activity x mean life "
               "(90Y 3.3e5 s, 177Lu 8.3e5 s): >= 1e12 Bq s even for a 1 % lesion share"),
    "mass_kg": Quantity(
        "tissue mass (tumour, liver, lung)", "kg", (0.0, 100.0), (1e-5, 10.0), (("g", 1e-3), ("mg", 1e-6)),
        typical=1.0, source="a 10 mg lesion to a 5 kg liver (hepatomegaly); the whole body is < 700 kg"),
    "administered_activity_gbq": Quantity(
        "administered activity", "GBq", (0.0, 1000.0), (0.01, 30.0), (("MBq", 1e-3), ("mCi", 0.037),
                                                                     ("Bq", 1e-9)), typical=2.0,
        source="90Y radioembolization 0.3-5 GBq, 177Lu 7.4 GBq per cycle; 30 GBq margin"),
    "suv_threshold": Quantity(
        "absolute SUV threshold", "g/mL", (0.0, 1000.0), (0.1, 25.0), (), typical=2.5, lower_open=False,
        hint="a threshold relative to SUVmax is written as a percentage: '41%'",
        source="fixed MTV thresholds SUV 2.5-4 (Boellaard 2015); tumour SUVmax rarely > 25"),
    "percent": Quantity(
        "percentage", "%", (0.0, 100.0), (0.0, 100.0), (), typical=41.0, source="a percentage"),
    "repetition_time_s": Quantity(
        "repetition time", "s", (0.0, 30.0), (5e-4, 0.1), (("ms", 1e-3),), typical=0.004,
        source="3-D spoiled gradient echo for DCE: TR 2-10 ms (QIBA 2020)"),
    "flip_angle_deg": Quantity(
        "flip angle", "degrees", (0.0, 180.0), (1.0, 90.0), (("rad", 180.0 / math.pi),), typical=15.0,
        source="SPGR DCE/VFA flip angles 2-35 degrees"),
})


def _fmt(v: float) -> str:
    return f"{v:.6g}"


def _subject(argument: str | None, label: str | None, shown: str, unit: str) -> str:
    """'weight_kg=72500', '--dt 5000', 'PatientWeight (0010,1030): 72500 kg', '72500 kg'."""
    if label:
        return f"{label}: {shown} {unit}"
    if not argument:
        return f"{shown} {unit}"
    if argument.startswith("-"):
        return f"{argument} {shown}"
    if argument.isidentifier():
        return f"{argument}={shown}"
    return f"{argument}: {shown} {unit}"


def probable_units(name: str, value: float, *, reference: float | None = None) -> list[tuple[str, float]]:
    """Mistaken units that would make ``value`` plausible, best first, with the converted value.

    Parameters
    ----------
    name : str
        Key of :data:`QUANTITIES`.
    value : float
        The value as received.
    reference : float, optional
        A second source of the same quantity (the header's weight when an override is given):
        a unit whose factor explains the ratio ``value / reference`` comes first.

    Examples
    --------
    >>> probable_units("weight_kg", 70000.0)
    [('g', 70.0)]
    >>> [(u, round(v, 2)) for u, v in probable_units("weight_kg", 154.3, reference=70.0)]
    [('lb', 69.99)]
    """
    q = QUANTITIES[name]
    out: list[tuple[float, str, float]] = []
    lo, hi = q.plausible
    for unit, factor in q.mistakes:
        conv = value * factor
        if reference is not None and reference > 0 and math.isclose(conv, reference, rel_tol=0.03):
            out.append((-1.0, unit, conv))
        elif lo <= conv <= hi and conv != 0:
            rank = abs(math.log(abs(conv) / q.typical)) if q.typical > 0 else 0.0
            out.append((rank, unit, conv))
    if q.known:
        for unit, factor in q.mistakes:
            conv = value * factor
            if any(math.isclose(conv, k, rel_tol=0.005) for k in q.known.values()):
                out.append((-2.0, unit, conv))
    if any(rank == -2.0 for rank, _, _ in out):  # a nuclide's half-life in another unit: that is the one
        out = [o for o in out if o[0] == -2.0]
    best: dict[str, tuple[float, float]] = {}
    for rank, unit, conv in sorted(out):
        best.setdefault(unit, (rank, conv))
    return [(u, c) for u, (_, c) in sorted(best.items(), key=lambda kv: kv[1][0])]


def _assess(name: str, value: Any, argument: str | None, reference: float | None, label: str | None = None
            ) -> tuple[str, str, float, str | None]:
    """('ok' | 'implausible' | 'impossible', message, offending value, probable unit)."""
    if name not in QUANTITIES:
        raise TheraquantError(f"unknown quantity {name!r}; known: {', '.join(QUANTITIES)}")
    q = QUANTITIES[name]
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return ("impossible", f"{argument or name} must be a number in {q.unit} ({q.description}), got "
                f"{type(value).__name__} {str(value)[:40]!r}", math.nan, None)
    if arr.size == 0:
        return "ok", "", math.nan, None
    if not np.all(np.isfinite(arr)):
        bad = arr[~np.isfinite(arr)].ravel()[0]
        return ("impossible", f"{argument or name} holds {bad} ({q.description} must be a finite number "
                f"in {q.unit})", float(bad), None)
    lo_v, hi_v = float(arr.min()), float(arr.max())
    p_lo, p_hi = q.possible
    below = lo_v < p_lo or (q.lower_open and lo_v <= p_lo)
    if below or hi_v > p_hi:
        v = lo_v if below else hi_v
        kind = "impossible"
        bound = f"{'more than' if q.lower_open else 'at least'} {_fmt(p_lo)}" if below else f"at most {_fmt(p_hi)}"
        expected = f"must be {bound}"
    else:
        v = None
        lo, hi = q.plausible
        if lo_v < lo or hi_v > hi:
            v = lo_v if lo_v < lo else hi_v
        elif q.known and arr.size == 1 and not any(math.isclose(v0, lo_v, rel_tol=0.005) for v0 in q.known.values()):
            if any(u for u, c in probable_units(name, lo_v) if any(math.isclose(c, k, rel_tol=0.005)
                                                                    for k in q.known.values())):
                v = lo_v
        if v is None and reference is not None and arr.size == 1 and reference > 0 and not math.isclose(
                lo_v, reference, rel_tol=0.03):
            if any(math.isclose(lo_v * f, reference, rel_tol=0.03) for _, f in q.mistakes):
                v = lo_v
        if v is None:
            return "ok", "", lo_v, None
        kind = "implausible"
        lo, hi = q.plausible
        expected = (f"expected at least {_fmt(lo)}" if math.isinf(hi) else
                    f"expected at most {_fmt(hi)}" if lo == 0 else f"expected {_fmt(lo)} to {_fmt(hi)}")
    units = probable_units(name, v, reference=reference)
    below_possible = kind == "impossible" and below
    shown = _fmt(v) if lo_v == hi_v else f"{_fmt(v)} (of values {_fmt(lo_v)} to {_fmt(hi_v)})"
    article = "an" if q.description[0] in "aeiou" else "a"
    msg = f"{_subject(argument, label, shown, q.unit)} is {kind} for {article} {q.description} in {q.unit} ({expected})"
    probable = None
    if units:
        probable = units[0][0]
        alts = " or ".join(f"{u} ({_fmt(v)} {u} = {_fmt(c)} {q.unit})" for u, c in units[:3])
        known = [n for n, k in q.known.items() if math.isclose(units[0][1], k, rel_tol=0.005)]
        msg += f": probably in {alts}" + (f", the half-life of {known[0]}" if known else "")
        if reference is not None and math.isclose(units[0][1], reference, rel_tol=0.03):
            msg += f"; the header says {_fmt(reference)} {q.unit}"
        msg += f"; convert it to {q.unit}"
    elif q.hint and not below_possible:
        msg += f": {q.hint}"
    else:
        msg += f"; check the value and give it in {q.unit}"
    return kind, msg, v, probable


def check_quantity(name: str, value: Any, *, argument: str | None = None,
                   strict: Literal["warn", "raise"] = "warn", reference: float | None = None) -> Any:
    """Check a physical quantity against :data:`QUANTITIES`; return ``value`` unchanged.

    Parameters
    ----------
    name : str
        Key of :data:`QUANTITIES` (``"weight_kg"``, ``"frame_interval_s"``...).
    value : float or array_like
        The value, in the quantity's unit; for arrays the smallest and largest finite values are
        checked.
    argument : str, optional
        Where the value came from, for the message: an API keyword (``"weight_kg"``, shown as
        ``weight_kg=``) or a command-line option (``"--weight-kg"``) or a header tag.
    strict : {"warn", "raise"}
        ``"raise"`` turns an implausible value into a :class:`TheraquantError`.
    reference : float, optional
        Another source of the same value (the header's, when an override replaces it): a ratio
        that is a unit factor (2.2046 for lb) is implausible.

    Returns
    -------
    The ``value`` received.

    Raises
    ------
    TheraquantError
        Impossible values (negative weight, 70000 kg), non-numbers, and with ``strict="raise"``
        implausible ones.

    Warns
    -----
    PlausibilityWarning
        Implausible values: naming the quantity, the value and the probable unit.

    Examples
    --------
    >>> check_quantity("weight_kg", 72.5)
    72.5
    >>> check_quantity("weight_kg", 72500.0, argument="weight_kg")
    Traceback (most recent call last):
    ...
    theraquant.errors.TheraquantError: weight_kg=72500 is impossible for a patient body weight in kg (must be at most 700): probably in g (72500 g = 72.5 kg); convert it to kg
    """
    return _check(name, value, argument=argument, strict=strict, reference=reference, label=None)


def _check(name: str, value: Any, *, argument: str | None, strict: str, reference: float | None,
           label: str | None, stacklevel: int = 3) -> Any:
    if strict not in ("warn", "raise"):
        raise TheraquantError(f"strict must be 'warn' or 'raise', got {strict!r}")
    kind, msg, v, unit = _assess(name, value, argument, reference, label)
    if kind == "impossible" or (kind == "implausible" and strict == "raise"):
        raise _error(msg, argument)
    if kind == "implausible":
        warnings.warn(PlausibilityWarning(msg, quantity=name, value=v, argument=argument, probable_unit=unit),
                      stacklevel=stacklevel)
    return value


def check_frame_times(t: Any, *, argument: str | None = "t", strict: Literal["warn", "raise"] = "warn") -> None:
    """Check frame times (s) for a unit slip: the acquisition's span, then the median frame interval.

    One finding at most: frame times in minutes make the span implausible (5 "s" for 5 min), frame
    times in ms make both implausible; the span is reported as it is the more telling figure.

    Examples
    --------
    >>> import numpy as np
    >>> check_frame_times(np.arange(60) * 5.0)  # 5-s frames over 5 min: fine
    >>> check_frame_times(np.arange(60) * 5.0 / 60, strict="raise")  # the same in minutes
    Traceback (most recent call last):
    ...
    theraquant.errors.TheraquantError: frame times t, span: 4.91667 s is implausible for an acquisition span (last minus first frame time) in s (expected 20 to 14400): probably in min (4.91667 min = 295 s); convert it to s
    """
    arr = np.asarray(t, dtype=np.float64).ravel()
    if arr.size < 2 or not np.all(np.isfinite(arr)):
        return
    span = float(arr[-1] - arr[0])
    steps = np.diff(arr)
    if span <= 0 or np.any(steps <= 0):
        return  # ordering errors are the caller's (they say which frames)
    who = f"frame times {argument}" if argument else "frame times"
    kind, _, _, _ = _assess("frame_duration_s", span, argument, None)
    if kind != "ok":
        _check("frame_duration_s", span, argument=argument, strict=strict, reference=None,
               label=f"{who}, span", stacklevel=4)
        return
    _check("frame_interval_s", float(np.median(steps)), argument=argument, strict=strict, reference=None,
           label=f"{who}, median interval", stacklevel=4)


def check_tia_total(tia_bq_s: Any, *, argument: str | None = "tia_bq_s",
                    strict: Literal["warn", "raise"] = "warn") -> None:
    """Warn when an image given as time-integrated activity (Bq s) holds an activity (Bq).

    A therapy activity image (90Y, 177Lu: 0.3-11 GBq administered, most of it in the field of
    view) totals 1e8-3e10 Bq; its time-integrated activity is that times a mean life of days
    (90Y 3.3e5 s, 177Lu 8.3e5 s), >= 5e10 Bq s even for a small lesion share. A total in
    [1e8, 5e10) is therefore an activity; smaller totals (1 MBq s point sources for S values,
    unit tests) are not judged.

    Examples
    --------
    >>> import numpy as np
    >>> check_tia_total(np.full((4, 4, 4), 3e12 / 64))  # 3e12 Bq s: fine
    >>> check_tia_total(np.full((4, 4, 4), 2e9 / 64), strict="raise")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    theraquant.errors.TheraquantError: tia_bq_s (sum): 2e+09 Bq s is implausible ... not a time-integrated activity ...
    """
    total = float(np.sum(np.asarray(tia_bq_s, dtype=np.float64)))
    if 1e8 <= total < 5e10:
        _check("tia_total_bq_s", total, argument=argument, strict=strict, reference=None,
               label=f"{argument} (sum)" if argument else "sum", stacklevel=4)


def _error(message: str, argument: str | None) -> TheraquantError:
    keyword = argument if argument and not argument.startswith("-") and argument.isidentifier() else None
    return TheraquantError(message, argument=keyword)
