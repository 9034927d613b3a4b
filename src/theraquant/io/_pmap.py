"""Parametric Map (highdicom) and RT Dose (pydicom) writers for theraquant's voxel maps.

Coded quantities
----------------
Each map's quantity is coded (QuantityDefinitionSequence of its Real World Value Mapping) with the
DICOM code where DICOM defines one:

============  ==================================  =====================  ================
quantity      code                                unit (UCUM)            theraquant unit
============  ==================================  =====================  ================
ktrans        DCM 126312 "Ktrans" (CID 4107)      ``/min``               1/min
kep           DCM 126313 "kep" (CID 4107)         ``/min``               1/min
ve            DCM 126314 "ve" (CID 4107)          ``{ratio}``            mL/mL
vp            DCM 126331 "vp" (CID 4107)          ``{ratio}``            mL/mL
fa            99TQ TQ001 "Arterial flow fraction"  ``{ratio}``            1
iaugc60       DCM 126321 "IAUC60" (CID 4109)      ``mmol/L.s``           mM s
t10           DCM 113063 "T1" (CID 7180)          ``s``                  s
suv_bw        DCM 126401 "SUVbw" (CID 7180)       ``g/mL``               g/mL
suv_lbm       DCM 126402 "SUVlbm" (CID 7180)      ``g/mL``               g/mL
suv_lbm_james DCM 126406 "SUVlbm(James128)"       ``g/mL``               g/mL
suv_lbm_janma DCM 126405 "SUVlbm(Janma)"          ``g/mL``               g/mL
suv_ibw       DCM 126404 "SUVibw" (CID 7180)      ``g/mL``               g/mL
suv_bsa       DCM 126403 "SUVbsa" (CID 7180)      ``cm2/mL``             cm2/mL
fmiso_tbp     99TQ TQ002 "Tissue to blood pool    ``{ratio}``            1
              SUV ratio"
hypoxic       99TQ TQ003 "Hypoxic voxel"          ``1``                  1
dose_gy       DCM 128513 "Absorbed Dose"          ``Gy``                 Gy
                (CID 7180)
============  ==================================  =====================  ================

Private coding scheme
---------------------
Where DICOM defines no code, theraquant uses the local coding scheme designator **99TQ**
("theraquant quantities", responsible organisation: the theraquant developers; local designators
start with "99" per DICOM PS3.16 Section 8). It is declared in each object's
CodingSchemeIdentificationSequence. Its codes:

* ``TQ001`` Arterial flow fraction: fraction of the dual-input (hepatic artery + portal vein)
  tissue inflow that is arterial (Materne et al., Clin Sci 2000;99:517).
* ``TQ002`` Tissue to blood pool SUV ratio: voxel FMISO SUV divided by the blood-pool SUVmean
  (T/B; Rasey et al., IJROBP 1996;36:417).
* ``TQ003`` Hypoxic voxel: 1 where the T/B ratio exceeds the hypoxia threshold (default 1.29),
  else 0.

RT Dose
-------
:func:`write_rt_dose` writes absorbed dose as 16-bit unsigned integers with DoseGridScaling
(Gy per stored unit; dciodvfy crashes on 32-bit RT Dose pixel data), DoseUnits GY, DoseType
PHYSICAL, in the frame of reference of the activity image it was computed from, with frames
ascending along the slice normal (GridFrameOffsetVector from 0).

DoseSummationType is a Defined Term. Every term the standard lists needs a reference theraquant
cannot give: PLAN, MULTI_PLAN, FRACTION, BEAM, BRACHY, the *_SESSION terms and CONTROL_POINT a
ReferencedRTPlanSequence, RECORD a ReferencedTreatmentRecordSequence (dciodvfy reports their
absence as errors). The dose of a radionuclide therapy computed from post-therapy imaging has no
plan or treatment record, so theraquant writes the site-defined term **RADIONUCLIDE** (dciodvfy:
a warning "unrecognized defined term", no error).

Reading back
------------
:func:`read_parametric_map` returns the map as an :class:`~theraquant.image.Image` (highdicom,
Real World Value Mapping applied); :func:`read_rt_dose` returns the dose in Gy (pydicom,
DoseGridScaling applied).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import DicomError, TheraquantError
from ..image import Image
from ._dicom_out import (MANUFACTURER, MODEL_NAME, apply_identifiers, flatten_source, highdicom_sources,
                         new_result_dataset, new_uid, restore_source_classes, save_dataset, software_version,
                         sop_reference)
from ._seg import _lps_ascending

__all__ = ["PARAMETRIC_QUANTITIES", "ParametricQuantity", "write_parametric_map", "write_rt_dose",
           "read_parametric_map", "read_rt_dose", "PRIVATE_SCHEME"]

RT_DOSE_STORAGE = "1.2.840.10008.5.1.4.1.1.481.2"
"""SOP class of the RT Dose objects :func:`write_rt_dose` writes."""

PRIVATE_SCHEME = "99TQ"
"""Local coding scheme designator of theraquant's own quantity codes (see the module docstring)."""


@dataclass(frozen=True)
class ParametricQuantity:
    """A quantity theraquant writes as a Parametric Map: its code, UCUM unit and accepted units."""

    name: str
    code: tuple[str, str, str]          # (value, scheme designator, meaning)
    ucum: tuple[str, str]               # (UCUM code, meaning)
    units: tuple[str, ...]              # theraquant unit spellings accepted for the map's values
    label: str                          # ContentLabel / LUTLabel (DICOM CS, at most 16 characters)
    description: str


_Q = ParametricQuantity
PARAMETRIC_QUANTITIES: Mapping[str, ParametricQuantity] = {q.name: q for q in (
    _Q("ktrans", ("126312", "DCM", "Ktrans"), ("/min", "per minute"), ("1/min", "/min", "min-1"),
       "KTRANS", "Ktrans, volume transfer constant"),
    _Q("kep", ("126313", "DCM", "kep"), ("/min", "per minute"), ("1/min", "/min", "min-1"),
       "KEP", "kep, rate constant EES to plasma"),
    _Q("ve", ("126314", "DCM", "ve"), ("{ratio}", "ratio"), ("mL/mL", "1", "", "{ratio}", "fraction"),
       "VE", "ve, extravascular extracellular volume fraction"),
    _Q("vp", ("126331", "DCM", "vp"), ("{ratio}", "ratio"), ("mL/mL", "1", "", "{ratio}", "fraction"),
       "VP", "vp, plasma volume fraction"),
    _Q("fa", ("TQ001", PRIVATE_SCHEME, "Arterial flow fraction"), ("{ratio}", "ratio"),
       ("1", "", "{ratio}", "fraction"), "FA", "arterial flow fraction (dual input)"),
    _Q("iaugc60", ("126321", "DCM", "IAUC60"), ("mmol/L.s", "millimole per liter second"),
       ("mM s", "mM*s", "mM.s", "mmol/L.s", "mmol/L*s"), "IAUGC60", "initial area under the Gd curve, 60 s"),
    _Q("t10", ("113063", "DCM", "T1"), ("s", "second"), ("s",), "T10", "pre-contrast T1"),
    _Q("suv_bw", ("126401", "DCM", "SUVbw"), ("g/mL", "gram per milliliter"), ("g/mL", "g/ml"),
       "SUVBW", "SUV normalised to body weight"),
    _Q("suv_lbm", ("126402", "DCM", "SUVlbm"), ("g/mL", "gram per milliliter"), ("g/mL", "g/ml"),
       "SUVLBM", "SUV normalised to lean body mass (SUL)"),
    _Q("suv_lbm_james", ("126406", "DCM", "SUVlbm(James128)"), ("g/mL", "gram per milliliter"), ("g/mL", "g/ml"),
       "SUVLBM JAMES", "SUL, lean body mass of James (128 multiplier)"),
    _Q("suv_lbm_janma", ("126405", "DCM", "SUVlbm(Janma)"), ("g/mL", "gram per milliliter"), ("g/mL", "g/ml"),
       "SUVLBM JANMA", "SUL, lean body mass of Janmahasatian"),
    _Q("suv_ibw", ("126404", "DCM", "SUVibw"), ("g/mL", "gram per milliliter"), ("g/mL", "g/ml"),
       "SUVIBW", "SUV normalised to ideal body weight"),
    _Q("suv_bsa", ("126403", "DCM", "SUVbsa"), ("cm2/mL", "square centimeter per milliliter"),
       ("cm2/mL", "cm^2/mL"), "SUVBSA", "SUV normalised to body surface area"),
    _Q("fmiso_tbp", ("TQ002", PRIVATE_SCHEME, "Tissue to blood pool SUV ratio"), ("{ratio}", "ratio"),
       ("1", "", "{ratio}"), "FMISO TBP", "FMISO tissue to blood pool ratio"),
    _Q("hypoxic", ("TQ003", PRIVATE_SCHEME, "Hypoxic voxel"), ("1", "no units"), ("1", "", "{ratio}"),
       "HYPOXIC", "hypoxic voxel mask (T/B above threshold)"),
    _Q("dose_gy", ("128513", "DCM", "Absorbed Dose"), ("Gy", "Gray"), ("Gy",), "DOSE", "absorbed dose"),
)}


def _code(value: str, scheme: str, meaning: str):
    from highdicom.sr import CodedConcept

    return CodedConcept(value=value, scheme_designator=scheme, meaning=meaning)


def _coding_scheme_item():
    import pydicom

    item = pydicom.Dataset()
    item.CodingSchemeDesignator = PRIVATE_SCHEME
    item.CodingSchemeName = "theraquant quantities"
    item.CodingSchemeResponsibleOrganization = "theraquant developers"
    return item


def _frame_anatomy():
    """FrameAnatomySequence item: the abdomen (SCT 818981001), FrameLaterality U (unpaired)."""
    import pydicom
    from pydicom.sequence import Sequence as DSequence

    region = pydicom.Dataset()
    region.CodeValue = "818981001"
    region.CodingSchemeDesignator = "SCT"
    region.CodeMeaning = "Abdomen"
    fa = pydicom.Dataset()
    fa.AnatomicRegionSequence = DSequence([region])
    fa.FrameLaterality = "U"
    return fa


def quantity_for(quantity: str) -> ParametricQuantity:
    """Look a quantity up in :data:`PARAMETRIC_QUANTITIES` (error naming the choices)."""
    q = PARAMETRIC_QUANTITIES.get(str(quantity))
    if q is None:
        raise TheraquantError(
            f"quantity {quantity!r} is not one theraquant writes as a Parametric Map; use one of "
            f"{sorted(PARAMETRIC_QUANTITIES)}"
        )
    return q


def _check_units(q: ParametricQuantity, units: str | None, argument: str) -> None:
    if units is None:
        return
    if str(units).strip() not in q.units:
        raise TheraquantError(
            f"{argument}: a {q.name} map must be in {q.units[0]!r} (UCUM {q.ucum[0]!r}), got units {units!r}; "
            "convert the map or pass the right quantity"
        )


def write_parametric_map(image: Image, source: Sequence[Any], path: str | Path, *, quantity: str,
                         units: str | None = None, series_description: str | None = None,
                         identifiers: Mapping[str, str] | None = None, series_number: int = 910) -> Path:
    """Write a 3-D voxel map as a DICOM Parametric Map (float32 pixel data) with highdicom.

    Parameters
    ----------
    image : Image
        The map (3-D), on a grid in the source series' frame of reference (normally its own grid).
        NaN voxels (no fit, outside the body) are kept as NaN.
    source : sequence of pydicom.Dataset
        Datasets (headers suffice) of the series the map was computed from, e.g.
        ``image.meta["headers"]`` of :func:`read_dicom_series`; the map references it and shares
        its FrameOfReferenceUID.
    path : str or Path
        Output file (atomic, DICOM Part 10).
    quantity : str
        A key of :data:`PARAMETRIC_QUANTITIES` (``"ktrans"``, ``"suv_bw"``, ``"dose_gy"`` ...): sets
        the coded quantity, the UCUM unit of the Real World Value Mapping and the labels.
    units : str, optional
        The map's unit in theraquant's spelling (``image.units`` when None and not empty); it must be
        the quantity's unit (e.g. ``"1/min"`` for Ktrans), else :class:`TheraquantError`.
    series_description : str, optional
        SeriesDescription (default: the quantity's description).
    identifiers : Mapping[str, str], optional
        Pseudonymise (see :mod:`theraquant.io._dicom_out`); None keeps the source's identity.
    series_number : int
        SeriesNumber.

    Returns
    -------
    Path
    """
    import highdicom as hd
    from pydicom.sequence import Sequence as DSequence

    q = quantity_for(quantity)
    if not isinstance(image, Image) or image.array.ndim != 3:
        raise TheraquantError(f"image must be a 3-D Image (one map), got {image!r}")
    _check_units(q, units if units is not None else (image.units or None), "units")
    src = flatten_source(source)
    hd_src, restore = highdicom_sources(src)
    arr, aff = _lps_ascending(np.asarray(image.array, dtype=np.float32), image.affine)
    finite = arr[np.isfinite(arr)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    if hi <= lo:
        hi = lo + 1.0
    vol = hd.Volume(np.ascontiguousarray(arr), aff, coordinate_system="PATIENT",
                    frame_of_reference_uid=str(src[0].FrameOfReferenceUID))
    mapping = hd.pm.RealWorldValueMapping(
        lut_label=q.label, lut_explanation=q.description[:64], unit=_code(q.ucum[0], "UCUM", q.ucum[1]),
        value_range=(lo, hi), slope=1.0, intercept=0.0, quantity_definition=_code(*q.code))
    try:
        pm = hd.pm.ParametricMap(
            source_images=hd_src, pixel_array=vol, series_instance_uid=new_uid(), series_number=int(series_number),
            sop_instance_uid=new_uid(), instance_number=1, manufacturer=MANUFACTURER,
            manufacturer_model_name=MODEL_NAME, software_versions=software_version(), device_serial_number="0",
            contains_recognizable_visual_features=False, real_world_value_mappings=[mapping],
            voi_lut_transformations=[hd.VOILUTTransformation(
                window_center=(lo + hi) / 2.0, window_width=hi - lo, voi_lut_function="LINEAR_EXACT")],
            content_label=q.label.replace(" ", "_"),
            content_description=(series_description or q.description)[:64])
    except ValueError as exc:
        raise TheraquantError(f"write_parametric_map: highdicom refused the {q.name} map for {path} ({exc})") from exc
    pm.SeriesDescription = (series_description or q.description)[:64]
    pm.SharedFunctionalGroupsSequence[0].FrameAnatomySequence = DSequence([_frame_anatomy()])
    if "BodyPartExamined" in src[0] and src[0].BodyPartExamined:
        pm.BodyPartExamined = src[0].BodyPartExamined
    if q.code[1] == PRIVATE_SCHEME:
        pm.CodingSchemeIdentificationSequence = DSequence([_coding_scheme_item()])
    restore_source_classes(pm, restore)
    apply_identifiers(pm, identifiers)
    return save_dataset(pm, path)


def write_rt_dose(image: Image, source: Sequence[Any], path: str | Path, *,
                  series_description: str = "theraquant absorbed dose",
                  identifiers: Mapping[str, str] | None = None, series_number: int = 920,
                  summation_type: str = "RADIONUCLIDE") -> Path:
    """Write an absorbed-dose map (Gy) as a DICOM RT Dose (16-bit with DoseGridScaling).

    Parameters
    ----------
    image : Image
        Absorbed dose, Gy (3-D), normally on the activity image's grid. Negative values and NaN are
        written as 0 Gy. The dose is quantised to ``max / 65535`` Gy (DoseGridScaling), i.e. a
        relative error below 8e-6 of the maximum dose.
    source : sequence of pydicom.Dataset
        Datasets (headers suffice) of the activity image (e.g. the 90Y PET) the dose was computed
        from: the RT Dose shares its study and FrameOfReferenceUID and references its slices.
    path : str or Path
        Output file (atomic, DICOM Part 10).
    series_description : str
        SeriesDescription of the RT Dose.
    identifiers : Mapping[str, str], optional
        Pseudonymise (see :mod:`theraquant.io._dicom_out`); None keeps the source's identity.
    series_number : int
        SeriesNumber of the RT Dose.
    summation_type : str
        DoseSummationType (a Defined Term, at most 16 characters): ``"RADIONUCLIDE"`` by default,
        see the module docstring. PLAN, MULTI_PLAN, FRACTION, BEAM, BRACHY, the *_SESSION terms
        and CONTROL_POINT need an RT Plan reference, RECORD a treatment record; they are refused.

    Returns
    -------
    Path
    """
    from pydicom.sequence import Sequence as DSequence
    from pydicom.tag import Tag
    from pydicom.valuerep import DSfloat

    if not isinstance(image, Image) or image.array.ndim != 3:
        raise TheraquantError(f"image must be a 3-D Image of absorbed dose (Gy), got {image!r}")
    if image.units and image.units != "Gy":
        raise TheraquantError(f"image: an RT Dose is written from absorbed dose in Gy, got units {image.units!r}; "
                              "convert to Gy first")
    if summation_type in ("PLAN", "MULTI_PLAN", "FRACTION", "BEAM", "BRACHY", "CONTROL_POINT",
                          "FRACTION_SESSION", "BEAM_SESSION", "BRACHY_SESSION", "RECORD"):
        raise TheraquantError(
            f"summation_type {summation_type!r} needs a ReferencedRTPlanSequence or "
            "ReferencedTreatmentRecordSequence, which theraquant does not write; use 'RADIONUCLIDE'"
        )
    if not summation_type or len(summation_type) > 16:
        raise TheraquantError(f"summation_type must be 1 to 16 characters (DICOM CS), got {summation_type!r}")
    src = flatten_source(source)
    s0 = src[0]
    arr, aff = _lps_ascending(np.asarray(image.array, dtype=np.float64), image.affine)
    arr = np.where(np.isfinite(arr) & (arr > 0), arr, 0.0)
    dmax = float(arr.max())
    scaling = dmax / 65535.0 if dmax > 0 else 1.0
    # DS text has 16 characters: store the scaling rounded to that, and quantise with the stored value
    scaling = float(DSfloat(scaling, auto_format=True))
    pix = np.clip(np.round(arr / scaling), 0, 65535).astype(np.uint16)
    sp = (float(np.linalg.norm(aff[:3, 0])), float(np.linalg.norm(aff[:3, 1])), float(np.linalg.norm(aff[:3, 2])))
    row_dir = aff[:3, 2] / sp[2]
    col_dir = aff[:3, 1] / sp[1]

    def ds_list(values) -> list:
        return [DSfloat(float(v), auto_format=True) for v in values]

    ds = new_result_dataset(RT_DOSE_STORAGE, "RTDOSE", s0, series_description=series_description,
                            series_number=series_number)
    ds.ContentDate = ds.InstanceCreationDate
    ds.ContentTime = ds.InstanceCreationTime
    ds.ImagePositionPatient = ds_list(aff[:3, 3])
    ds.ImageOrientationPatient = ds_list(np.r_[row_dir, col_dir])
    ds.PixelSpacing = ds_list([sp[1], sp[2]])
    ds.SliceThickness = ds_list([sp[0]])[0]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = int(pix.shape[1]), int(pix.shape[2])
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.NumberOfFrames = int(pix.shape[0])
    ds.FrameIncrementPointer = Tag(0x3004, 0x000C)
    ds.GridFrameOffsetVector = ds_list(np.arange(pix.shape[0]) * sp[0])
    ds.DoseUnits = "GY"
    ds.DoseType = "PHYSICAL"
    ds.DoseSummationType = summation_type
    ds.DoseGridScaling = DSfloat(scaling, auto_format=True)
    ds.DoseComment = "absorbed dose from the activity image (theraquant)"[:64]
    ds.ReferencedImageSequence = DSequence([sop_reference(d) for d in src])
    ds.PixelData = pix.tobytes()
    apply_identifiers(ds, identifiers)
    return save_dataset(ds, path)


def read_parametric_map(path: str | Path) -> Image:
    """Read a Parametric Map as an Image (values through the Real World Value Mapping, float64).

    The slice axis runs along row x column as in :func:`read_dicom_series`; ``units`` is the UCUM
    unit of the mapping and ``meta["quantity"]`` the coded quantity's meaning.
    """
    import highdicom as hd
    import pydicom

    path = Path(path)
    try:
        ds = pydicom.dcmread(str(path))
        pm = hd.pm.ParametricMap.from_dataset(ds)
        vol = pm.get_volume(apply_real_world_transform=True, dtype=np.float64)
    except Exception as exc:
        raise DicomError(f"{path.name}: not a readable Parametric Map with a regular 3-D volume ({exc})") from exc
    arr, aff = _lps_ascending(np.asarray(vol.array), vol.affine)
    if arr.ndim == 4:
        arr = arr[..., 0]
    rwvm = ds.SharedFunctionalGroupsSequence[0].RealWorldValueMappingSequence[0]
    unit = str(rwvm.MeasurementUnitsCodeSequence[0].CodeValue)
    quantity = ""
    for item in rwvm.get("QuantityDefinitionSequence", []):
        if "ConceptCodeSequence" in item:
            quantity = str(item.ConceptCodeSequence[0].CodeMeaning)
    return Image(arr, aff, units=unit, meta={"source": str(path), "quantity": quantity,
                                             "series_uid": str(ds.SeriesInstanceUID)})


def read_rt_dose(path: str | Path) -> Image:
    """Read an RT Dose (single-frame set or multi-frame grid) as an Image in Gy (DoseGridScaling applied)."""
    import pydicom

    path = Path(path)
    try:
        ds = pydicom.dcmread(str(path))
        pix = np.asarray(ds.pixel_array, dtype=np.float64)
    except Exception as exc:
        raise DicomError(f"{path.name}: not a readable RT Dose ({exc})") from exc
    if str(ds.get("Modality", "")) != "RTDOSE":
        raise DicomError(f"{path.name}: Modality (0008,0060) is {ds.get('Modality', '')!r}, not RTDOSE")
    if pix.ndim == 2:
        pix = pix[None]
    scale = float(ds.get("DoseGridScaling", 1.0) or 1.0)
    iop = np.asarray(ds.ImageOrientationPatient, float)
    ps = np.asarray(ds.PixelSpacing, float)
    offs = np.asarray(ds.get("GridFrameOffsetVector", [0.0]), float)
    dz = float(offs[1] - offs[0]) if len(offs) > 1 else float(ds.get("SliceThickness", 1.0) or 1.0)
    aff = np.eye(4)
    aff[:3, 2] = iop[:3] * ps[1]
    aff[:3, 1] = iop[3:] * ps[0]
    aff[:3, 0] = np.cross(iop[:3], iop[3:]) * dz
    aff[:3, 3] = np.asarray(ds.ImagePositionPatient, float) + np.cross(iop[:3], iop[3:]) * offs[0]
    if len(offs) > 2 and np.max(np.abs(np.diff(offs) - dz)) > 1e-3 * abs(dz):
        raise DicomError(f"{path.name}: GridFrameOffsetVector (3004,000C) is not uniform; theraquant reads "
                         "dose grids with equally spaced frames only")
    units = "Gy" if str(ds.get("DoseUnits", "GY")).upper() == "GY" else str(ds.DoseUnits)
    return Image(pix * scale, aff, units=units, meta={"source": str(path), "series_uid": str(ds.SeriesInstanceUID)})
