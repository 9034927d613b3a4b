"""SUV conversion from PET DICOM headers: a pure function of tag values, and a thin reader.

:func:`suv_factor` reads nothing from disk: it takes the headers (pydicom datasets or plain
mappings of tag keyword to value), decides how the stored values become SUV and returns one
multiplicative factor per slice, with every constant it used and every decision it took.
:func:`read_suv` is the thin wrapper that reads a series and applies the factors.

The decay rules follow the IBSI-affiliated SUV manual and its 17 digital reference objects
(Vacha, oncoray/suv_computation, 2026, CC BY 4.0) and QIBA's SUV pseudo-code:

* ``DecayCorrection`` ADMIN: the image is already decay-corrected to the administration time,
  so the dose is not decayed.
* NONE: each frame is corrected on its own, from its acquisition start ``t_acq`` and duration
  ``T``: ``SUV = C X / D * lambda T / (1 - exp(-lambda T)) * exp(lambda (t_acq - t_inj))``.
* START: the dose is decayed to the decay-correction reference time, taken from the GE private
  scan datetime (0009,100D) when present, else SeriesDate/SeriesTime when that is not after
  the earliest acquisition, else back-computed per frame as
  ``t_acq + T_ave - FrameReferenceTime`` with ``T_ave = ln(lambda T / (1 - exp(-lambda T))) / lambda``.

References
----------
.. [1] Boellaard R, et al. FDG PET/CT: EANM procedure guidelines for tumour imaging: version 2.0.
   Eur J Nucl Med Mol Imaging 2015;42:328-54. doi:10.1007/s00259-014-2961-x
.. [2] QIBA FDG-PET/CT Profile, SUV calculation pseudo-code (Kinahan P, Clunie D, 2014).
.. [3] Vacha M. Standardizing SUV computation: manual and DROs (github.com/oncoray/suv_computation,
   2026), CC BY 4.0.
.. [4] Kinahan PE, Fletcher JW. PET/CT standardized uptake values (SUVs) in clinical practice and
   assessing response to therapy. Semin Ultrasound CT MR 2010;31:496-505.
   doi:10.1053/j.sult.2010.10.001
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterable, Literal, Mapping, Sequence

import numpy as np
from numpy.typing import NDArray

from ..errors import DicomError, Finding, TheraquantError
from ..quantities import check_quantity
from ._bodysize import body_surface_area, ideal_body_weight, lean_body_mass

__all__ = ["SuvConversion", "Finding", "suv_factor", "check_suv_headers", "read_suv", "NORMALIZATIONS",
           "OVERRIDES"]

Normalization = Literal["bw", "lbm-james", "lbm-janmahasatian", "bsa", "ibw"]

#: SUV normalisations and the unit of the SUV they give.
NORMALIZATIONS: Mapping[str, str] = MappingProxyType({
    "bw": "g/mL", "lbm-james": "g/mL", "lbm-janmahasatian": "g/mL", "bsa": "cm2/mL", "ibw": "g/mL"})

#: Explicit values a user may pass instead of (or to replace) a header tag, and the tag each replaces.
OVERRIDES: Mapping[str, str] = MappingProxyType({
    "weight_kg": "PatientWeight (0010,1030)",
    "height_m": "PatientSize (0010,1020)",
    "sex": "PatientSex (0010,0040)",
    "injected_dose_bq": "RadionuclideTotalDose (0018,1074)",
    "injection_time": "RadiopharmaceuticalStartDateTime (0018,1078)",
    "half_life_s": "RadionuclideHalfLife (0018,1075)",
    "scan_time": "decay-correction reference time (SeriesDate/SeriesTime (0008,0021)/(0008,0031))",
    "decay_correction": "DecayCorrection (0054,1102)",
})

_TAGS = {
    "Units": "(0054,1001)", "DecayCorrection": "(0054,1102)", "PatientWeight": "(0010,1030)",
    "PatientSize": "(0010,1020)", "PatientSex": "(0010,0040)", "RadionuclideTotalDose": "(0018,1074)",
    "RadionuclideHalfLife": "(0018,1075)", "RadiopharmaceuticalStartDateTime": "(0018,1078)",
    "RadiopharmaceuticalStartTime": "(0018,1072)", "SeriesDate": "(0008,0021)", "SeriesTime": "(0008,0031)",
    "AcquisitionDate": "(0008,0022)", "AcquisitionTime": "(0008,0032)", "AcquisitionDateTime": "(0008,002A)",
    "FrameReferenceTime": "(0054,1300)", "ActualFrameDuration": "(0018,1242)", "SUVType": "(0054,1006)",
    "StudyDate": "(0008,0020)",
}
_RADIOPHARM = {"RadionuclideTotalDose", "RadionuclideHalfLife", "RadiopharmaceuticalStartDateTime",
               "RadiopharmaceuticalStartTime"}
_GE_SCAN_DATETIME = (0x0009, 0x100D)
_PHILIPS_SUV_FACTOR = (0x7053, 0x1000)
_PHILIPS_BQML_FACTOR = (0x7053, 0x1009)
_SUVTYPE_NORM = {"BW": "bw", "LBM": "lbm-james", "LBMJAMES128": "lbm-james", "LBMJANMA": "lbm-janmahasatian",
                 "BSA": "bsa", "IBW": "ibw"}
#: RadionuclideTotalDose values below this are taken as MBq (no PET injection is under 0.1 MBq).
MBQ_DETECTION_LIMIT = 1.0e5
#: PatientWeight (0010,1030) above this is not a weight in kg (DICOM PS3.3 C.7.1.3 stores kg) but a
#: unit error (g, lb). Set below the heaviest recorded human (635 kg, J. B. Minnoch; Guinness World
#: Records) and above the patient-table load of PET/CT scanners (about 200-300 kg, vendor data sheets).
MAX_WEIGHT_KG = 400.0
#: PatientSize (0010,1020) above this is not a height in m (DICOM PS3.3 C.7.1.3 stores metres) but
#: centimetres: the tallest recorded human was 2.72 m (R. Wadlow; Guinness World Records).
MAX_HEIGHT_M = 3.0


def _tagstr(t: tuple[int, int]) -> str:
    return f"({t[0]:04X},{t[1]:04X})"


# ---------------------------------------------------------------------------- header access
class _Header:
    """Uniform, read-only access to a pydicom Dataset or a mapping of tag keyword -> value."""

    def __init__(self, src: Any, name: str):
        self.src = src
        self.name = name
        self.is_dataset = hasattr(src, "data_element")

    def _raw(self, key: str | tuple[int, int]) -> Any:
        src = self.src
        if isinstance(key, tuple):
            if self.is_dataset:
                elem = src.get(key)
                return None if elem is None else elem.value
            for k in (key, _tagstr(key), _tagstr(key)[1:-1], f"{key[0]:04X}{key[1]:04X}",
                      (key[0] << 16) | key[1]):
                if k in src:
                    return src[k]
            return None
        val = src.get(key) if hasattr(src, "get") else None
        if val in (None, "") and key in _RADIOPHARM:
            seq = src.get("RadiopharmaceuticalInformationSequence")
            if seq:
                item = seq[0]
                val = item.get(key) if hasattr(item, "get") else None
        return val

    def get(self, key: str | tuple[int, int]) -> Any:
        val = self._raw(key)
        if isinstance(val, bytes):
            val = val.decode("ascii", "replace").strip("\x00 ")
        if isinstance(val, str):
            val = val.strip()
        if val is None or (isinstance(val, str) and val == ""):
            return None
        return val

    def label(self, key: str | tuple[int, int]) -> str:
        if isinstance(key, tuple):
            return f"private tag {_tagstr(key)}"
        return f"{key} {_TAGS.get(key, '')}".rstrip()

    def float(self, key: str | tuple[int, int]) -> float | None:
        val = self.get(key)
        if val is None:
            return None
        try:
            out = float(val)
        except (TypeError, ValueError) as exc:
            raise DicomError(f"{self.name}: {self.label(key)} is {val!r}, not a number") from exc
        if not math.isfinite(out):
            raise DicomError(f"{self.name}: {self.label(key)} is {val!r}, not a finite number")
        return out


def _header_name(src: Any, i: int, names: Sequence[str] | None) -> str:
    if names is not None:
        return str(names[i])
    fn = getattr(src, "filename", None)
    if isinstance(fn, (str, Path)) and str(fn):
        return Path(fn).name
    if isinstance(src, Mapping) and src.get("filename"):
        return Path(str(src["filename"])).name
    return f"header[{i}]"


# ---------------------------------------------------------------------------- date/time parsing
def _parse_date(v: Any) -> date | None:
    if v is None:
        return None
    if isinstance(v, datetime):
        return v.date()
    if isinstance(v, date):
        return v
    s = str(v).strip().replace("-", "").replace(".", "")
    if len(s) != 8 or not s.isdigit():
        raise ValueError(f"DA {v!r} is not YYYYMMDD")
    return date(int(s[:4]), int(s[4:6]), int(s[6:8]))


def _parse_time(v: Any) -> timedelta | None:
    """A DICOM TM (HHMMSS.FFFFFF, or HH:MM:SS) as the time since midnight."""
    if v is None:
        return None
    if isinstance(v, datetime):
        v = v.time()
    if isinstance(v, time):
        return timedelta(hours=v.hour, minutes=v.minute, seconds=v.second, microseconds=v.microsecond)
    s = str(v).strip().replace(":", "")
    if not s or not s.split(".")[0].isdigit() or len(s.split(".")[0]) not in (2, 4, 6):
        raise ValueError(f"TM {v!r} is not HHMMSS.FFFFFF")
    hh = int(s[0:2])
    mm = int(s[2:4]) if len(s) >= 4 else 0
    ss = float(s[4:]) if len(s) > 4 else 0.0
    if hh > 23 or mm > 59 or ss >= 61:
        raise ValueError(f"TM {v!r} is out of range")
    return timedelta(hours=hh, minutes=mm, seconds=ss)


def _parse_datetime(v: Any) -> datetime | None:
    """A DICOM DT (YYYYMMDDHHMMSS.FFFFFF[&ZZXX]) or an ISO datetime; the UTC offset is dropped."""
    if v is None:
        return None
    if isinstance(v, datetime):
        return v.replace(tzinfo=None)
    s = str(v).strip()
    if "T" in s or "-" in s[:8] or " " in s:
        try:
            return datetime.fromisoformat(s).replace(tzinfo=None)
        except ValueError:
            pass
    for sign in ("+", "-"):
        if sign in s[8:]:
            s = s[: 8 + s[8:].index(sign)]
    if len(s) < 8 or not s[:8].isdigit():
        raise ValueError(f"DT {v!r} is not YYYYMMDDHHMMSS.FFFFFF")
    d = _parse_date(s[:8])
    t = _parse_time(s[8:]) if len(s) > 8 else timedelta(0)
    return datetime.combine(d, time()) + t


# ---------------------------------------------------------------------------- result
@dataclass(frozen=True)
class SuvConversion:
    """How a PET series' stored values become SUV.

    Attributes
    ----------
    factors : (N,) ndarray of float64
        One factor per header (slice or frame): ``SUV = factor * (stored * RescaleSlope +
        RescaleIntercept)``; unit ``units`` per unit of the stored quantity.
    units : str
        Unit of the SUV: ``"g/mL"`` (bw, lbm, ibw) or ``"cm2/mL"`` (bsa).
    normalization : str
        ``"bw"``, ``"lbm-james"``, ``"lbm-janmahasatian"``, ``"bsa"`` or ``"ibw"``.
    constants : mapping
        Every constant used, with its unit in the key: ``injected_dose_Bq``, ``half_life_s``,
        ``weight_kg``, ``height_m``, ``sex``, ``body_size`` (g, or cm^2 for bsa),
        ``injection_datetime``, ``reference_datetime``, ``uptake_time_s``, ``decay_factor``...
    decisions : tuple of str
        Each choice the rules made (e.g. which tag gave the decay reference time).
    overrides : mapping
        The user's explicit values and the header value each replaced.
    """

    factors: NDArray[np.float64]
    units: str
    normalization: str
    constants: Mapping[str, Any] = field(default_factory=dict)
    decisions: tuple[str, ...] = ()
    overrides: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        f = np.asarray(self.factors, dtype=np.float64)
        f.setflags(write=False)
        object.__setattr__(self, "factors", f)
        object.__setattr__(self, "constants", MappingProxyType(dict(self.constants)))
        object.__setattr__(self, "overrides", MappingProxyType(dict(self.overrides)))
        object.__setattr__(self, "decisions", tuple(self.decisions))

    def summary(self) -> str:
        """Fixed-width text: the constants, overrides and decisions of the conversion."""
        lines = [f"SUV{self.normalization} ({self.units}); factor {self.factors.min():.6g}"
                 + ("" if self.factors.min() == self.factors.max() else f" - {self.factors.max():.6g}")]
        lines += [f"  {k:<24} {v}" for k, v in self.constants.items()]
        lines += [f"  override {k:<15} {v['value']} (header: {v['header_value']})" for k, v in self.overrides.items()]
        lines += [f"  - {d}" for d in self.decisions]
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        """Plain-dict form for JSON sidecars (factors summarised as min/max)."""
        return {"Normalization": self.normalization, "Units": self.units,
                "Constants": dict(self.constants), "Decisions": list(self.decisions),
                "Overrides": dict(self.overrides),
                "SUVFactorRange": [float(self.factors.min()), float(self.factors.max())]}


# ---------------------------------------------------------------------------- the rules
class _Rules:
    """Holds the headers, the overrides and the record of what was used."""

    def __init__(self, headers: list[_Header], overrides: Mapping[str, Any]):
        self.h = headers
        self.ov = dict(overrides)
        self.constants: dict[str, Any] = {}
        self.decisions: list[str] = []
        self.used_overrides: dict[str, Any] = {}

    # -- consistency of a tag over the series
    def common(self, key: str | tuple[int, int], *, kind: str = "str") -> tuple[Any, _Header]:
        """The one value of ``key`` across headers; contradictory values raise."""
        vals = []
        for hd in self.h:
            v = hd.float(key) if kind == "float" else hd.get(key)
            if kind == "str" and v is not None:
                v = str(v).upper()
            vals.append(v)
        first = next((i for i, v in enumerate(vals) if v is not None), None)
        if first is None:
            return None, self.h[0]
        ref = vals[first]
        for i, v in enumerate(vals):
            if v is None:
                raise DicomError(f"{self.h[i].name}: {self.h[i].label(key)} is missing but "
                                 f"{self.h[first].name} has {ref!r}; the series is inconsistent")
            same = math.isclose(v, ref, rel_tol=1e-6) if kind == "float" else v == ref
            if not same:
                raise DicomError(
                    f"{self.h[i].name}: {self.h[i].label(key)} is {v!r} but {self.h[first].name} has "
                    f"{ref!r}; one series must hold one value (mixed series?): split it, or pass the "
                    "value as an override")
        return ref, self.h[first]

    def override(self, name: str, header_value: Any) -> Any:
        if name in self.ov and self.ov[name] is not None:
            self.used_overrides[name] = {"value": self.ov[name], "replaces": OVERRIDES[name],
                                         "header_value": header_value}
            return self.ov[name]
        return None

    def missing(self, key: str, override: str, why: str, example: str) -> DicomError:
        hd = self.h[0]
        return DicomError(f"{hd.name}: {hd.label(key)} is missing; it is needed {why}; "
                          f"correct the header or pass {override}={example}")

    # -- patient
    def weight_kg(self) -> float:
        if "weight_kg" in self.constants:
            return self.constants["weight_kg"]
        w, hd = self.common("PatientWeight", kind="float")
        ov = self.override("weight_kg", w)
        if ov is not None:  # g, lb (ratio to the header), impossible values: checked against the table
            w = float(check_quantity("weight_kg", ov, argument="weight_kg", reference=w))
            if not w > 0:
                raise TheraquantError(f"weight_kg must be a positive weight in kg, got {ov!r}")
        elif w is None or w <= 0:
            if w is not None:
                raise DicomError(f"{hd.name}: PatientWeight (0010,1030) is {w!r} kg; a positive weight "
                                 "is needed for the SUV; pass weight_kg=70.0")
            raise self.missing("PatientWeight", "weight_kg", "for the SUV", "70.0")
        elif w > MAX_WEIGHT_KG:
            raise DicomError(f"{hd.name}: PatientWeight (0010,1030) is {w} kg, not a body weight in kg "
                             "(grams?); correct the header or pass weight_kg=")
        if ov is None:
            check_quantity("weight_kg", w, argument=f"{hd.name}: PatientWeight (0010,1030)")
        self.constants["weight_kg"] = w
        return w

    def height_m(self) -> float:
        if "height_m" in self.constants:
            return self.constants["height_m"]
        h, hd = self.common("PatientSize", kind="float")
        ov = self.override("height_m", h)
        if ov is not None:
            h = float(check_quantity("height_m", ov, argument="height_m", reference=h))
        elif h is None or h <= 0:
            raise self.missing("PatientSize", "height_m", "for lean body mass, body surface area and "
                               "ideal body weight", "1.75")
        elif h > MAX_HEIGHT_M:
            raise DicomError(f"{hd.name}: PatientSize (0010,1020) is {h}, but DICOM stores the height in "
                             f"metres; correct the header or pass height_m={h / 100:g}")
        self.constants["height_m"] = h
        return h

    def sex(self) -> str:
        if "sex" in self.constants:
            return self.constants["sex"]
        s, hd = self.common("PatientSex")
        ov = self.override("sex", s)
        if ov is not None:
            s = str(ov).upper()
        if s is None:
            raise self.missing("PatientSex", "sex", "for lean body mass and ideal body weight", "'M'")
        if s not in ("M", "F", "O"):
            raise DicomError(f"{hd.name}: PatientSex (0010,0040) is {s!r}; needed 'M', 'F' or 'O'; "
                             "pass sex='M' or 'F'")
        if s == "O":
            self.decisions.append("PatientSex 'O': body size is the mean of the male and female formulas")
        self.constants["sex"] = s
        return s

    def body_size(self, norm: str) -> float:
        """Normalising body size: g for bw/lbm/ibw, cm^2 for bsa."""
        if norm == "bw":
            return self.weight_kg() * 1000.0
        if norm in ("lbm-james", "lbm-janmahasatian"):
            return lean_body_mass(self.weight_kg(), self.height_m(), self.sex(),
                                  method=norm.split("-")[1]) * 1000.0  # type: ignore[arg-type]
        if norm == "bsa":
            return body_surface_area(self.weight_kg(), self.height_m()) * 1.0e4
        if norm == "ibw":
            return ideal_body_weight(self.height_m(), self.sex()) * 1000.0
        raise TheraquantError(f"normalization must be one of {sorted(NORMALIZATIONS)}, got {norm!r}")

    # -- radiopharmaceutical
    def dose_bq(self) -> float:
        d, hd = self.common("RadionuclideTotalDose", kind="float")
        ov = self.override("injected_dose_bq", d)
        if ov is not None:
            d = float(check_quantity("injected_activity_bq", ov, argument="injected_dose_bq",
                                     reference=None if d is None or d < MBQ_DETECTION_LIMIT else d))
            if not d > 0:
                raise TheraquantError(f"injected_dose_bq must be a positive activity in Bq, got {ov!r}")
        elif d is None:
            raise self.missing("RadionuclideTotalDose", "injected_dose_bq", "to convert Bq/mL to SUV "
                               "(no dose information in the series)", "370e6")
        elif d <= 0:
            raise DicomError(f"{hd.name}: RadionuclideTotalDose (0018,1074) is {d!r}; a positive injected "
                             "activity in Bq is needed; pass injected_dose_bq=370e6")
        elif d < MBQ_DETECTION_LIMIT:
            self.decisions.append(f"note: {hd.name}: RadionuclideTotalDose (0018,1074) is {d:g}, below "
                                  f"{MBQ_DETECTION_LIMIT:g} Bq: read as MBq ({d * 1e6:g} Bq); correct the "
                                  "header or pass injected_dose_bq= to confirm")
            d *= 1.0e6
        if ov is None:
            check_quantity("injected_activity_bq", d, argument=f"{hd.name}: RadionuclideTotalDose (0018,1074)")
        self.constants["injected_dose_Bq"] = d
        return d

    def half_life_s(self) -> float:
        if "half_life_s" in self.constants:
            return self.constants["half_life_s"]
        t, hd = self.common("RadionuclideHalfLife", kind="float")
        ov = self.override("half_life_s", t)
        if ov is not None:  # minutes / hours of a known nuclide, or the header ratio: a warning
            t = float(check_quantity("half_life_s", ov, argument="half_life_s", reference=t))
            if not t > 0:
                raise TheraquantError(f"half_life_s must be positive, s, got {ov!r}")
        elif t is None or t <= 0:
            if t is not None:
                raise DicomError(f"{hd.name}: RadionuclideHalfLife (0018,1075) is {t!r} s; pass half_life_s=")
            raise self.missing("RadionuclideHalfLife", "half_life_s", "to decay-correct the dose",
                               "6586.2 (18F)")
        if ov is None:
            check_quantity("half_life_s", t, argument=f"{hd.name}: RadionuclideHalfLife (0018,1075)")
        self.constants["half_life_s"] = t
        return t

    # -- times
    def acquisition_datetimes(self, *, required: bool) -> list[datetime | None]:
        out: list[datetime | None] = []
        for hd in self.h:
            try:
                adt = _parse_datetime(hd.get("AcquisitionDateTime"))
                if adt is None:
                    t = _parse_time(hd.get("AcquisitionTime"))
                    d = _parse_date(hd.get("AcquisitionDate") or hd.get("SeriesDate") or hd.get("StudyDate"))
                    adt = None if t is None or d is None else datetime.combine(d, time()) + t
            except ValueError as exc:
                raise DicomError(f"{hd.name}: AcquisitionDate/Time (0008,0022)/(0008,0032): {exc}") from exc
            if adt is None and required:
                raise DicomError(f"{hd.name}: AcquisitionTime (0008,0032) (or its date) is missing; it is "
                                 "needed for the frame's decay correction; pass scan_time=")
            out.append(adt)
        return out

    def series_datetime(self) -> datetime | None:
        hd = self.h[0]
        try:
            t = _parse_time(hd.get("SeriesTime"))
            d = _parse_date(hd.get("SeriesDate") or hd.get("AcquisitionDate") or hd.get("StudyDate"))
        except ValueError as exc:
            raise DicomError(f"{hd.name}: SeriesDate/SeriesTime (0008,0021)/(0008,0031): {exc}") from exc
        return None if t is None or d is None else datetime.combine(d, time()) + t

    def injection_datetime(self, scan: datetime | None) -> datetime:
        """Injection datetime; a time without date takes the scan's date (previous day if later)."""
        ov_raw = self.ov.get("injection_time")
        hd = self.h[0]
        dt_val, _ = self.common("RadiopharmaceuticalStartDateTime")
        tm_val, _ = self.common("RadiopharmaceuticalStartTime")
        if ov_raw is not None:
            self.override("injection_time", dt_val or tm_val)
            dt, tod = _parse_user_time(ov_raw, "injection_time")
            src = "override injection_time"
        else:
            try:
                dt = _parse_datetime(dt_val)
                tod = _parse_time(tm_val)
            except ValueError as exc:
                raise DicomError(f"{hd.name}: RadiopharmaceuticalStartDateTime/StartTime "
                                 f"(0018,1078)/(0018,1072): {exc}; pass injection_time=") from exc
            if dt is not None and tod is not None:
                dt_tod = dt - datetime.combine(dt.date(), time())
                if abs((dt_tod - tod).total_seconds()) > 1.0:
                    raise DicomError(
                        f"{hd.name}: RadiopharmaceuticalStartDateTime (0018,1078) {dt_val} and "
                        f"RadiopharmaceuticalStartTime (0018,1072) {tm_val} disagree; correct the header "
                        "or pass injection_time='YYYY-MM-DDTHH:MM:SS'")
            src = "RadiopharmaceuticalStartDateTime" if dt is not None else "RadiopharmaceuticalStartTime"
        if dt is not None:
            self.decisions.append(f"injection datetime from {src}")
            return dt
        if tod is None:
            raise DicomError(
                f"{hd.name}: RadiopharmaceuticalStartDateTime (0018,1078) and RadiopharmaceuticalStartTime "
                "(0018,1072) are missing (no injection time); pass injection_time='YYYY-MM-DDTHH:MM:SS'")
        if scan is None:
            raise DicomError(f"{hd.name}: SeriesDate (0008,0021) is missing, so the injection time "
                             f"{tm_val} has no date; pass injection_time='YYYY-MM-DDTHH:MM:SS'")
        inj = datetime.combine(scan.date(), time()) + tod
        if inj > scan:
            inj -= timedelta(days=1)
            self.decisions.append(f"injection time {src} has no date and is after the scan time of day: "
                                  "injected the day before (midnight crossing)")
        else:
            self.decisions.append(f"injection time from {src}, date taken from the scan date")
        return inj


def _parse_user_time(v: Any, name: str) -> tuple[datetime | None, timedelta | None]:
    """An override time: a datetime, an ISO or DICOM datetime string, or a time of day."""
    if isinstance(v, datetime):
        return v.replace(tzinfo=None), None
    if isinstance(v, time):
        return None, _parse_time(v)
    s = str(v).strip()
    try:
        if len(s.replace(":", "").split(".")[0]) in (2, 4, 6) and "-" not in s and "T" not in s:
            return None, _parse_time(s)
        return _parse_datetime(s), None
    except ValueError as exc:
        raise TheraquantError(f"{name} must be a datetime, 'YYYY-MM-DDTHH:MM:SS' or a time 'HH:MM:SS', "
                              f"got {v!r}") from exc


def _frame_average_offset_s(lam: float, duration_s: float) -> float:
    """Time after frame start at which the activity equals its frame average, s."""
    if lam * duration_s < 1e-9:
        return duration_s / 2.0
    return math.log(lam * duration_s / -math.expm1(-lam * duration_s)) / lam


def _prepare(headers: Any, normalization: str, names: Sequence[str] | None,
             overrides: Mapping[str, Any]) -> tuple[str, list[_Header], _Rules]:
    """Check the arguments; wrap the headers."""
    unknown = sorted(set(overrides) - set(OVERRIDES))
    if unknown:
        raise TheraquantError(f"unknown override(s) {unknown}; allowed: {sorted(OVERRIDES)}")
    norm = str(normalization).lower()
    if norm not in NORMALIZATIONS:
        raise TheraquantError(f"normalization must be one of {list(NORMALIZATIONS)}, got {normalization!r}")
    if isinstance(headers, Mapping) or hasattr(headers, "data_element"):
        headers = [headers]
    headers = list(headers)
    if not headers:
        raise TheraquantError("headers is empty; give one DICOM header (Dataset or mapping) per slice")
    if names is not None and len(names) != len(headers):
        raise TheraquantError(f"names has {len(names)} entries for {len(headers)} headers")
    hs = [_Header(src, _header_name(src, i, names)) for i, src in enumerate(headers)]
    r = _Rules(hs, overrides)
    return norm, hs, r


def _stored_values(r: _Rules) -> tuple[NDArray[np.float64], str | None]:
    """Per-header scale to Bq/mL (stored type None) or to the stored SUV type, from Units and private tags."""
    hs = r.h
    units, hd0 = r.common("Units")
    if units is None:
        raise DicomError(f"{hd0.name}: Units (0054,1001) is missing; needed BQML, CNTS (Philips), GML or "
                         "CM2ML; the stored values cannot be interpreted")
    n = len(hs)
    scale = np.ones(n)
    stored_type: str | None = None  # None: activity concentration (Bq/mL); else the SUV type stored
    if units == "BQML":
        pass
    elif units == "CNTS":
        has_act = [hd.float(_PHILIPS_BQML_FACTOR) for hd in hs]
        has_suv = [hd.float(_PHILIPS_SUV_FACTOR) for hd in hs]
        if all(v is not None and v > 0 for v in has_act):
            scale = np.asarray(has_act, dtype=float)
            r.decisions.append("Units CNTS: Philips activity-concentration factor (7053,1009) -> Bq/mL")
            r.constants["philips_bqml_factor"] = _range(scale)
        elif all(v is not None and v > 0 for v in has_suv):
            scale = np.asarray(has_suv, dtype=float)
            stored_type = "BW"
            r.decisions.append("Units CNTS: Philips SUV scale factor (7053,1000) -> SUVbw")
            r.constants["philips_suv_factor"] = _range(scale)
        else:
            bad = next((hd for hd, a, s in zip(hs, has_act, has_suv) if not ((a or 0) > 0 or (s or 0) > 0)), hs[0])
            mixed = any(v is not None for v in has_act + has_suv)
            raise DicomError(
                f"{bad.name}: Units (0054,1001) is CNTS but the Philips scale factors (7053,1009) and "
                f"(7053,1000) are {'not given on every slice' if mixed else 'missing'}; counts cannot "
                "be converted to Bq/mL; export the series in BQML")
    elif units in ("GML", "CM2ML"):
        st, hdst = r.common("SUVType")
        if units == "CM2ML":
            if st is not None and st != "BSA":
                raise DicomError(f"{hdst.name}: Units (0054,1001) CM2ML contradicts SUVType (0054,1006) "
                                 f"{st!r}; cm2/mL is only SUVbsa; correct the header")
            stored_type = "BSA"
        else:
            if st is None:
                st = "BW"
                r.decisions.append("Units GML without SUVType (0054,1006): taken as SUVbw")
            elif st not in _SUVTYPE_NORM or st == "BSA":
                raise DicomError(f"{hdst.name}: SUVType (0054,1006) is {st!r} with Units GML; needed one "
                                 f"of BW, LBM, LBMJAMES128, LBMJANMA, IBW")
            stored_type = st
        r.decisions.append(f"Units {units}: the image stores SUV ({stored_type})")
    else:
        raise DicomError(f"{hd0.name}: Units (0054,1001) is {units!r}; supported are BQML, CNTS (Philips), "
                         "GML and CM2ML; convert the series to Bq/mL (BQML)")
    r.constants["source_units"] = units
    return scale, stored_type


def _decay_correction(r: _Rules) -> str:
    """DecayCorrection (START, ADMIN, NONE), from the header or the override; notes CorrectedImage."""
    dc_val, hddc = r.common("DecayCorrection")
    dc_ov = r.override("decay_correction", dc_val)
    dc = str(dc_ov).upper() if dc_ov is not None else dc_val
    if dc is None:
        raise r.missing("DecayCorrection", "decay_correction", "to know the image's decay reference",
                        "'START'")
    if dc not in ("START", "ADMIN", "NONE"):
        raise DicomError(f"{hddc.name}: DecayCorrection (0054,1102) is {dc!r}; needed START, ADMIN or NONE")
    r.constants["decay_correction"] = dc
    corrected = hddc.get("CorrectedImage")
    if corrected is not None:
        items = list(corrected) if isinstance(corrected, (list, tuple)) or type(corrected).__name__ == "MultiValue" else [corrected]
        flags = {f.strip().upper() for c in items for f in str(c).split("\\")}
        if (dc != "NONE") != ("DECY" in flags):
            r.decisions.append(f"note: CorrectedImage (0028,0051) {sorted(flags)} "
                               f"{'lacks' if dc != 'NONE' else 'has'} DECY while DecayCorrection is {dc}; "
                               "DecayCorrection (0054,1102) was followed")
    return dc


def suv_factor(headers: Any, *, normalization: Normalization = "bw",
               names: Sequence[str] | None = None, **overrides: Any) -> SuvConversion:
    """Per-slice factors turning rescaled PET values into SUV, from the DICOM header values.

    A pure function: it reads no file. Every header must be of one series (Units, DecayCorrection,
    dose, injection time, half-life and patient must agree; a contradiction raises).

    Parameters
    ----------
    headers : pydicom Dataset, mapping, or sequence of them
        One per slice (or frame), in the order of the image. A mapping holds tag keywords
        (``"Units"``, ``"RadionuclideTotalDose"``...; radiopharmaceutical tags flat or inside
        ``"RadiopharmaceuticalInformationSequence"``) and private tags as ``(0x7053, 0x1000)`` or
        ``"(7053,1000)"``.
    normalization : {"bw", "lbm-james", "lbm-janmahasatian", "bsa", "ibw"}
        Body weight, lean body mass (James / Janmahasatian: SUL), body surface area (Du Bois),
        ideal body weight.
    names : sequence of str, optional
        File names for messages; by default each Dataset's ``filename``.
    **overrides
        Explicit values replacing (or supplying) header tags, recorded in the result:
        ``weight_kg`` (kg), ``height_m`` (m), ``sex`` ("M", "F", "O"), ``injected_dose_bq`` (Bq),
        ``injection_time`` (datetime, "YYYY-MM-DDTHH:MM:SS", or a time of day), ``half_life_s`` (s),
        ``scan_time`` (decay-correction reference time; for DecayCorrection NONE, the acquisition
        start of every frame), ``decay_correction`` ("START", "ADMIN", "NONE").

    Returns
    -------
    SuvConversion
        ``factors`` (one per header), ``units``, ``constants``, ``decisions``, ``overrides``.

    Raises
    ------
    DicomError
        A missing or contradictory tag; the message starts with the file name and names the tag.

    Notes
    -----
    ``SUV = C[Bq/mL] * X / D_ref``, with ``X`` the body size (weight, LBM or IBW in g, or BSA in
    cm^2) and ``D_ref`` the injected dose decayed to the reference time (see the module
    docstring for the decay rules). Units GML and CM2ML hold an SUV already; it is converted
    to SUVbw with its SUVType's body size and then to ``normalization``. Philips CNTS images
    are scaled by (7053,1009) to Bq/mL, or by (7053,1000) to SUVbw.

    References
    ----------
    .. [1] Vacha M. Standardizing SUV computation (oncoray/suv_computation, 2026), CC BY 4.0.
    .. [2] Kinahan PE, Fletcher JW. Semin Ultrasound CT MR 2010;31:496-505. doi:10.1053/j.sult.2010.10.001

    Examples
    --------
    >>> hdr = {"Units": "BQML", "DecayCorrection": "START", "PatientWeight": 70.0,
    ...        "SeriesDate": "20250101", "SeriesTime": "110000", "AcquisitionTime": "110000",
    ...        "RadionuclideTotalDose": 370e6, "RadionuclideHalfLife": 6586.2,
    ...        "RadiopharmaceuticalStartDateTime": "20250101100000"}
    >>> conv = suv_factor(hdr)
    >>> round(float(conv.factors[0]) * 5000.0, 5)   # 5000 Bq/mL -> SUVbw (analytic_checks.json 1.38168)
    1.38168
    >>> conv.units, round(conv.constants["decay_factor"], 6)
    ('g/mL', 0.684633)
    """
    norm, hs, r = _prepare(headers, normalization, names, overrides)

    scale, stored_type = _stored_values(r)
    n = len(hs)

    x_norm = r.body_size(norm)
    r.constants["body_size_" + ("cm2" if norm == "bsa" else "g")] = x_norm

    if stored_type is not None:
        stored_norm = _SUVTYPE_NORM[stored_type]
        x_stored = r.body_size(stored_norm)
        r.constants["stored_suv_type"] = stored_type
        r.constants["stored_body_size_" + ("cm2" if stored_norm == "bsa" else "g")] = x_stored
        factors = scale * (x_norm / x_stored)
        return _result(factors, norm, r)

    # ---- activity concentration: decay-correct the dose
    dose = r.dose_bq()
    dc = _decay_correction(r)

    if dc == "ADMIN":
        r.decisions.append("DecayCorrection ADMIN: image decay-corrected to the administration time; "
                           "dose not decayed")
        r.constants["decay_factor"] = 1.0
        return _result(scale * x_norm / dose, norm, r)

    lam = math.log(2.0) / r.half_life_s()
    scan_ov = overrides.get("scan_time")
    if dc == "NONE":
        if scan_ov is not None:
            r.override("scan_time", None)
            sdt, stod = _parse_user_time(scan_ov, "scan_time")
            ser = r.series_datetime()
            if sdt is None:
                if ser is None:
                    raise TheraquantError("scan_time is a time of day but the series has no SeriesDate; "
                                          "pass scan_time='YYYY-MM-DDTHH:MM:SS'")
                sdt = datetime.combine(ser.date(), time()) + stod
            acq = [sdt] * n
        else:
            acq = r.acquisition_datetimes(required=True)
        inj = r.injection_datetime(min(acq))  # type: ignore[type-var]
        factors = np.empty(n)
        decay = np.empty(n)
        for i, (hd, t) in enumerate(zip(hs, acq)):
            dur_ms = hd.float("ActualFrameDuration")
            if dur_ms is None or dur_ms <= 0:
                raise DicomError(f"{hd.name}: ActualFrameDuration (0018,1242) is {'missing' if dur_ms is None else dur_ms}; "
                                 "DecayCorrection NONE needs each frame's duration (ms)")
            dur = dur_ms / 1000.0
            dt = (t - inj).total_seconds()  # type: ignore[operator]
            _check_uptake(hd, dt)
            check_quantity("uptake_half_lives", dt * lam / math.log(2.0))  # injection days before?
            # D_ref = D exp(-lam dt) (1 - exp(-lam T)) / (lam T): the dose matching the frame's counts
            decay[i] = math.exp(-lam * dt) * (-math.expm1(-lam * dur)) / (lam * dur)
            factors[i] = scale[i] * x_norm / (dose * decay[i])
        r.decisions.append("DecayCorrection NONE: each frame decay-corrected from its AcquisitionTime "
                           "over its ActualFrameDuration")
        r.constants["injection_datetime"] = inj.isoformat()
        r.constants["acquisition_datetime"] = _range([a.isoformat() for a in acq])  # type: ignore[union-attr]
        r.constants["decay_factor"] = _range(decay)
        return _result(factors, norm, r)

    # START
    ref: list[datetime]
    if scan_ov is not None:
        r.override("scan_time", None)
        sdt, stod = _parse_user_time(scan_ov, "scan_time")
        if sdt is None:
            ser = r.series_datetime()
            if ser is None:
                raise TheraquantError("scan_time is a time of day but the series has no SeriesDate; "
                                      "pass scan_time='YYYY-MM-DDTHH:MM:SS'")
            sdt = datetime.combine(ser.date(), time()) + stod
        ref = [sdt] * n
        r.decisions.append("decay reference time from the scan_time override")
    else:
        ge, hdge = r.common(_GE_SCAN_DATETIME)
        if ge is not None:
            try:
                ge_dt = _parse_datetime(ge)
            except ValueError as exc:
                raise DicomError(f"{hdge.name}: GE private scan datetime (0009,100D) {ge!r}: {exc}") from exc
            ref = [ge_dt] * n  # type: ignore[list-item]
            r.decisions.append("decay reference time from the GE private scan datetime (0009,100D)")
        else:
            series = r.series_datetime()
            acq = r.acquisition_datetimes(required=series is None)
            acq_known = [a for a in acq if a is not None]
            earliest = min(acq_known) if acq_known else None
            if series is not None and (earliest is None or series <= earliest):
                ref = [series] * n
                r.decisions.append("decay reference time from SeriesDate/SeriesTime (not after the "
                                   "earliest AcquisitionTime)")
            else:
                ref = []
                for hd, a in zip(hs, acq):
                    frt = hd.float("FrameReferenceTime")
                    dur_ms = hd.float("ActualFrameDuration")
                    if frt is None or dur_ms is None or a is None:
                        tag = "FrameReferenceTime" if frt is None else ("ActualFrameDuration" if dur_ms is None
                                                                        else "AcquisitionTime")
                        raise DicomError(
                            f"{hd.name}: SeriesTime (0008,0031) is after the earliest AcquisitionTime "
                            f"(0008,0032) (or missing), and {hd.label(tag)} is missing, so the decay "
                            "reference time cannot be back-computed; pass scan_time='YYYY-MM-DDTHH:MM:SS'")
                    t_ave = _frame_average_offset_s(lam, dur_ms / 1000.0)
                    ref.append(a + timedelta(seconds=t_ave - frt / 1000.0))
                r.decisions.append("SeriesTime after the earliest AcquisitionTime (or missing): decay "
                                   "reference back-computed per frame as AcquisitionTime + T_ave - "
                                   "FrameReferenceTime")
    inj = r.injection_datetime(min(ref))
    dts = np.asarray([(t - inj).total_seconds() for t in ref])
    for hd, dt in zip(hs, dts):
        _check_uptake(hd, dt)
    decay = np.exp(-lam * dts)
    r.constants["injection_datetime"] = inj.isoformat()
    r.constants["reference_datetime"] = _range([t.isoformat() for t in ref])
    r.constants["uptake_time_s"] = _range(dts)
    check_quantity("uptake_half_lives", float(dts.max()) * lam / math.log(2.0))  # injection days before?
    r.constants["decay_factor"] = _range(decay)
    return _result(scale * x_norm / (dose * decay), norm, r)


def check_suv_headers(headers: Any, *, normalization: Normalization = "bw", names: Sequence[str] | None = None,
                      **overrides: Any) -> tuple[Finding, ...]:
    """Run every SUV check on a series' headers and return all problems at once.

    :func:`suv_factor` stops at the first problem; this check battery runs the checks of the
    units, patient, dose, half-life and decay correction independently, so that a series can be
    fixed in one pass, then (when those pass) the timing rules through :func:`suv_factor` itself.

    Parameters
    ----------
    headers, normalization, names, **overrides
        As for :func:`suv_factor`.

    Returns
    -------
    tuple of Finding
        Errors (level 40) and warnings (level 30); empty when the SUV can be computed cleanly.

    Examples
    --------
    >>> bad = {"Units": "BQML", "DecayCorrection": "START", "SeriesDate": "20250101",
    ...        "SeriesTime": "110000", "RadiopharmaceuticalStartDateTime": "20250101100000"}
    >>> [f.check for f in check_suv_headers(bad)]
    ['pet.weight', 'pet.dose', 'pet.half_life']
    """
    norm, hs, r = _prepare(headers, normalization, names, overrides)
    findings: list[Finding] = []

    def run(check: str, fn: Any, fix: str) -> tuple[Any, bool]:
        try:
            return fn(), True
        except DicomError as exc:
            findings.append(Finding(40, check, str(exc), fix))
            return None, False

    kind, units_ok = run("pet.units", lambda: _stored_values(r), "export the series in Bq/mL (Units BQML)")
    stored_type = kind[1] if units_ok else None
    needs = {norm} | ({_SUVTYPE_NORM[stored_type]} if stored_type else set())
    if needs != {"ibw"}:
        run("pet.weight", r.weight_kg, "pass weight_kg=")
    if needs - {"bw"}:
        run("pet.height", r.height_m, "pass height_m=")
    if needs & {"lbm-james", "lbm-janmahasatian", "ibw"}:
        run("pet.sex", r.sex, "pass sex=")
    notes = list(r.decisions)
    if units_ok and stored_type is None:
        run("pet.dose", r.dose_bq, "pass injected_dose_bq=")
        dc, _ = run("pet.decay_correction", lambda: _decay_correction(r), "pass decay_correction=")
        notes = list(r.decisions)
        if dc != "ADMIN":
            run("pet.half_life", r.half_life_s, "pass half_life_s=")
    if not findings:
        conv, ok = run("pet.times", lambda: suv_factor(headers, normalization=norm, names=names, **overrides),
                       "pass injection_time= or scan_time=")
        if ok:
            notes = list(conv.decisions)
    findings += [Finding(30, "pet.consistency", d[len("note: "):]) for d in notes if d.startswith("note: ")]
    return tuple(findings)


def _check_uptake(hd: _Header, dt: float) -> None:
    if dt < 0:
        raise DicomError(
            f"{hd.name}: the scan reference time is {-dt:.0f} s before the injection "
            "(RadiopharmaceuticalStartDateTime (0018,1078) vs SeriesTime/AcquisitionTime); the times "
            "contradict each other; pass injection_time= or scan_time=")


def _range(v: Iterable[Any]) -> Any:
    """One value if all equal, else [min, max] (floats) or [first, last] (strings)."""
    vals = list(v)
    if all(x == vals[0] for x in vals):
        x = vals[0]
        return float(x) if isinstance(x, (float, np.floating, int)) else x
    if isinstance(vals[0], str):
        return [min(vals), max(vals)]
    return [float(np.min(vals)), float(np.max(vals))]


def _result(factors: NDArray, norm: str, r: _Rules) -> SuvConversion:
    return SuvConversion(factors=np.asarray(factors, dtype=np.float64), units=NORMALIZATIONS[norm],
                         normalization=norm, constants=r.constants, decisions=tuple(r.decisions),
                         overrides=r.used_overrides)


def suv_image(image: Any, headers: Sequence[Any], *, names: Sequence[str] | None = None,
              normalization: Normalization = "bw", **overrides: Any) -> Any:
    """An SUV image from a PET image and its headers (pure: no file is opened).

    Parameters
    ----------
    image : Image
        Rescaled stored values (Bq/mL, or counts with a Philips factor), (z, y, x[, t]), as
        :func:`theraquant.io.read_pet_series` gives them.
    headers : sequence of pydicom.Dataset or mapping
        One per slice (and frame) in image order: z first, then t.
    names : sequence of str, optional
        File name of each header, for messages.
    normalization : {"bw", "lbm-james", "lbm-janmahasatian", "bsa", "ibw"}
        SUV normalisation (see :func:`suv_factor`).
    **overrides
        Explicit header values (see :data:`OVERRIDES`), recorded.

    Returns
    -------
    Image
        SUV, float64, ``units`` ``"g/mL"`` (``"cm2/mL"`` for bsa); ``meta["suv"]`` the
        conversion as a dict, ``meta["suv_conversion"]`` the :class:`SuvConversion`.
    """
    conv = suv_factor(list(headers), normalization=normalization, names=None if names is None else list(names),
                      **overrides)
    arr_in = image.array
    per_slice = arr_in.shape[-1] if arr_in.ndim == 4 else 1
    if conv.factors.size != arr_in.shape[0] * per_slice:
        raise TheraquantError(f"headers: {len(headers)} headers do not match an image of shape {arr_in.shape}; "
                              "give one header per slice (and frame), z first", argument="headers")
    factors = conv.factors.reshape(arr_in.shape[0], -1)
    arr = arr_in * (factors[:, None, None, :] if arr_in.ndim == 4 else factors[:, :1, None])
    meta = dict(image.meta)
    meta["suv"] = conv.as_dict()
    meta["suv_conversion"] = conv
    return image.with_array(arr, units=conv.units, frame_times_s=image.frame_times_s, meta=meta)


def read_suv(series_dir: str | Path, *, normalization: Normalization = "bw", series_uid: str | None = None,
             **overrides: Any):
    """Read a PET DICOM series and return it as an SUV image.

    A thin wrapper: :func:`theraquant.io.read_pet_series` reads the slices (each scaled by its
    own RescaleSlope/Intercept) and their headers, :func:`suv_image` applies the SUV rules
    (:func:`suv_factor`) to them. This is the one place an engine calls :mod:`theraquant.io`
    (a documented exception in the import-linter contracts).

    Parameters
    ----------
    series_dir : str or Path
        Folder holding one PET series (other modalities beside it are ignored).
    normalization : {"bw", "lbm-james", "lbm-janmahasatian", "bsa", "ibw"}
        SUV normalisation (see :func:`suv_factor`).
    series_uid : str, optional
        Which series when the folder holds several PET series.
    **overrides
        Explicit header values (see :data:`OVERRIDES` and :func:`suv_factor`), recorded.

    Returns
    -------
    Image
        SUV, float64, in ``units`` ``"g/mL"`` (``"cm2/mL"`` for bsa), LPS affine. ``meta`` holds
        ``suv`` (the :class:`SuvConversion` as a dict: constants, decisions, overrides), the
        headers and file names.

    Raises
    ------
    DicomError
        A missing or contradictory tag, naming the file and the tag.
    """
    from ..io import read_pet_series

    series = read_pet_series(series_dir, series_uid=series_uid)
    return suv_image(series.image, series.headers, names=series.names, normalization=normalization, **overrides)
