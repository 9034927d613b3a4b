"""DICOM headers of the phantom's series: PET vendors' SUV conventions, tracers, timing.

Three vendor conventions are written (all read by :func:`theraquant.pet.read_suv`):

* ``"siemens"``: Units BQML, DecayCorrection START, decay reference SeriesDate/SeriesTime = scan start.
* ``"ge"``: Units BQML, DecayCorrection START, the decay reference in GE's private scan datetime
  (0009,100D) while SeriesTime is the (later) reconstruction time, as GE scanners write it.
* ``"ge_admin"``: Units BQML, DecayCorrection ADMIN: values decay-corrected to the administration time.
* ``"philips"``: Units CNTS with Philips' SUV scale factor (7053,1000) (counts x factor = SUVbw).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any, Mapping

import numpy as np
from numpy.typing import NDArray

from ..errors import TheraquantError

__all__ = ["TRACERS", "VENDORS", "pet_headers", "dt_str", "da", "tm"]

#: Tracers: radiopharmaceutical text, radionuclide, half-life (s), code of the radionuclide.
TRACERS: Mapping[str, Mapping[str, Any]] = {
    "fmiso": {"Radiopharmaceutical": "Fluoromisonidazole F^18^ (FMISO)", "half_life_s": 6586.2,
              "code": ("77004003", "SCT", "^18^Fluorine")},
    "fdg": {"Radiopharmaceutical": "Fluorodeoxyglucose F^18^ (FDG)", "half_life_s": 6586.2,
            "code": ("77004003", "SCT", "^18^Fluorine")},
    "y90": {"Radiopharmaceutical": "Yttrium-90 microspheres (90Y)", "half_life_s": 230580.0,
            "code": ("Y-90", "99THERAQUANT", "^90^Yttrium")},
    "lu177": {"Radiopharmaceutical": "Lu-177 DOTATATE", "half_life_s": 574300.8,
              "code": ("Lu-177", "99THERAQUANT", "^177^Lutetium")},
}

VENDORS = ("siemens", "ge", "ge_admin", "philips")

#: Bq/mL per stored count in the Philips CNTS images (arbitrary calibration of the phantom scanner).
PHILIPS_BQML_PER_COUNT = 5.0


def da(t: datetime) -> str:
    """DICOM DA."""
    return t.strftime("%Y%m%d")


def tm(t: datetime) -> str:
    """DICOM TM with microseconds."""
    return t.strftime("%H%M%S.%f")


def dt_str(t: datetime) -> str:
    """DICOM DT (no time zone)."""
    return t.strftime("%Y%m%d%H%M%S.%f")


def pet_headers(vendor: str, tracer: str, *, injected_bq: float, injection: datetime, scan_start: datetime,
                weight_kg: float, height_m: float, frame_duration_s: float = 600.0,
                modality: str = "PT") -> tuple[dict[Any, Any], float]:
    """Headers of a PET (or NM) series and the factor from activity at scan start to stored values.

    Parameters
    ----------
    vendor : {"siemens", "ge", "ge_admin", "philips"}
        SUV convention (module docstring).
    tracer : {"fmiso", "fdg", "y90", "lu177"}
        Radiopharmaceutical.
    injected_bq : float
        Administered activity at ``injection``, Bq.
    injection, scan_start : datetime
        Administration and acquisition start.
    weight_kg, height_m : float
        PatientWeight (kg) and PatientSize (m).
    frame_duration_s : float
        ActualFrameDuration, s.
    modality : {"PT", "NM"}
        NM (quantitative SPECT) is written like the Siemens convention (BQML, START).

    Returns
    -------
    (dict, float)
        Headers for :func:`theraquant.io.write_dicom_series` and ``scale``: stored value =
        ``scale`` x activity concentration at scan start (Bq/mL).
    """
    if vendor not in VENDORS:
        raise TheraquantError(f"vendor must be one of {VENDORS}, got {vendor!r}", argument="vendor")
    if tracer not in TRACERS:
        raise TheraquantError(f"tracer must be one of {sorted(TRACERS)}, got {tracer!r}", argument="tracer")
    tr = TRACERS[tracer]
    lam = math.log(2.0) / tr["half_life_s"]
    uptake_s = (scan_start - injection).total_seconds()
    code = tr["code"]
    h: dict[Any, Any] = {
        "SeriesDate": da(scan_start), "SeriesTime": tm(scan_start),
        "AcquisitionDate": da(scan_start), "AcquisitionTime": tm(scan_start),
        "PatientWeight": round(float(weight_kg), 2), "PatientSize": round(float(height_m), 3),
        "ActualFrameDuration": int(round(frame_duration_s * 1000)), "FrameReferenceTime": 0.0,
        "DecayCorrection": "START", "Units": "BQML",
        "RadiopharmaceuticalInformationSequence": [{
            "Radiopharmaceutical": tr["Radiopharmaceutical"],
            "RadiopharmaceuticalStartTime": tm(injection),
            "RadiopharmaceuticalStartDateTime": dt_str(injection),
            "RadionuclideTotalDose": f"{injected_bq:.6g}",
            "RadionuclideHalfLife": f"{tr['half_life_s']:.6g}",
            "RadionuclideCodeSequence": [{"CodeValue": code[0], "CodingSchemeDesignator": code[1],
                                          "CodeMeaning": code[2]}],
        }],
    }
    if modality == "PT":
        h["DecayFactor"] = 1.0
        h["SeriesType"] = ["STATIC", "IMAGE"]
        h["CountsSource"] = "EMISSION"
    scale = 1.0
    if modality == "NM" or vendor == "siemens":
        h["Manufacturer"] = "SIEMENS"
    elif vendor == "ge":
        h["Manufacturer"] = "GE MEDICAL SYSTEMS"
        h["SeriesTime"] = tm(scan_start + timedelta(minutes=35))  # reconstruction time, after the scan
        h[(0x0009, 0x0010)] = ("LO", "GEMS_PETD_01")
        h[(0x0009, 0x100D)] = ("DT", dt_str(scan_start).split(".")[0])
    elif vendor == "ge_admin":
        h["Manufacturer"] = "GE MEDICAL SYSTEMS"
        h["DecayCorrection"] = "ADMIN"
        scale = math.exp(lam * uptake_s)
        h["DecayFactor"] = round(scale, 6)
    elif vendor == "philips":
        h["Manufacturer"] = "Philips Medical Systems"
        h["Units"] = "CNTS"
        scale = 1.0 / PHILIPS_BQML_PER_COUNT
        decayed = injected_bq * math.exp(-lam * uptake_s)
        suv_factor = PHILIPS_BQML_PER_COUNT * weight_kg * 1000.0 / decayed
        h[(0x7053, 0x0010)] = ("LO", "Philips PET Private Group")
        h[(0x7053, 0x1000)] = ("DS", f"{suv_factor:.10g}"[:16])
    return h, scale


def suv_bw(bq_ml_at_scan: NDArray[np.float64] | float, *, tracer: str, injected_bq: float, uptake_s: float,
           weight_kg: float) -> Any:
    """SUVbw (g/mL) of an activity concentration at scan start (the reference of the writer's tests)."""
    lam = math.log(2.0) / TRACERS[tracer]["half_life_s"]
    return np.asarray(bq_ml_at_scan) * weight_kg * 1000.0 / (injected_bq * math.exp(-lam * uptake_s))
