"""DICOM Segmentation (SEG) in and out, with highdicom; the :class:`Segmentation` mask container.

Segment labels are the study's own (``lesion 3``, ``liver``, ``blood pool`` ...) and are kept
exactly as written. Each written segment gets the SNOMED CT (SCT) property category and type of
its kind (:func:`segment_property_codes`): ``lesion``/``tumour`` -> Neoplasm (108369006, category
Morphologically Abnormal Structure 49755003), ``liver`` -> Liver (10200004), ``muscle`` ->
Skeletal muscle (127954009, category Tissue 85756007), ``blood pool`` -> Blood (87612001, category
Body Substance 91720002), ``aorta`` -> Aorta (15825003), ``portal vein`` -> Portal vein
(32764006); anatomical structures have category Anatomical Structure (91723000).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import DicomError, TheraquantError
from ..image import Image
from ._dicom_out import (MANUFACTURER, MODEL_NAME, apply_identifiers, flatten_source, highdicom_sources,
                         new_uid, restore_source_classes, save_dataset, software_version)

__all__ = ["Segmentation", "read_seg", "write_seg", "segment_property_codes", "segment_kind",
           "parse_segment_label"]


@dataclass(frozen=True)
class Segmentation:
    """Masks read from a DICOM SEG or RTSTRUCT.

    Attributes
    ----------
    masks : Mapping[str, Image]
        Segment label (SEG) or ROI name (RTSTRUCT), exactly as written -> boolean mask in LPS, on
        the SEG's own frames' geometry (or the ``reference`` grid when one was given) or, for
        RTSTRUCT, on the referenced image grid.
    referenced_series_uids : tuple of str
        SeriesInstanceUIDs of the images the masks were drawn on.
    frame_of_reference_uid : str
        FrameOfReferenceUID shared with those images.
    series_uid, study_uid : str
        The SEG's / RTSTRUCT's own SeriesInstanceUID and StudyInstanceUID.
    path : Path
        The file read.
    """

    masks: Mapping[str, Image]
    referenced_series_uids: tuple[str, ...]
    frame_of_reference_uid: str
    series_uid: str
    study_uid: str
    path: Path
    labels: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "masks", MappingProxyType(dict(self.masks)))
        object.__setattr__(self, "labels", tuple(self.masks))
        object.__setattr__(self, "referenced_series_uids", tuple(self.referenced_series_uids))
        object.__setattr__(self, "path", Path(self.path))

    def __repr__(self) -> str:
        return (f"Segmentation({self.path.name!r}, labels={list(self.masks)}, "
                f"referenced_series_uids={list(self.referenced_series_uids)})")


# ---------------------------------------------------------------------------------------- codes
#: The study's segment / ROI vocabulary (issue #10), case-insensitive, spaces, "_" and "-" alike:
#: ``lesion <id>`` (also tumour / tumor / GTV / metastasis), liver, muscle, blood pool, aorta, portal vein.
_LABEL_KINDS = (
    ("lesion", re.compile(r"^(?:lesion|tumou?r|gtv|metastas[ie]s|met)(?![a-z])\s*[#:]?\s*(\S.*)?$")),
    ("liver", re.compile(r"^(?:whole |normal )?liver$")),
    ("muscle", re.compile(r"^(?:skeletal )?muscle(?: reference)?$")),
    ("blood_pool", re.compile(r"^blood ?pool$")),
    ("aorta", re.compile(r"^(?:descending |abdominal )?aorta$")),
    ("portal_vein", re.compile(r"^portal ?vein$")),
)


def parse_segment_label(label: str) -> tuple[str, str | None]:
    """What a SEG segment label / RTSTRUCT ROI name stands for: its kind and, for lesions, the id.

    The one place the study's label vocabulary lives (discovery, the per-patient step, the DICOM
    writers' property codes and the report all read labels through it).

    Parameters
    ----------
    label : str
        The label as written, e.g. ``"Lesion 3"``, ``"tumour_2"``, ``"Blood pool"``, ``"Portal vein"``.

    Returns
    -------
    tuple (kind, lesion_id)
        ``kind`` is one of ``"lesion"``, ``"liver"``, ``"muscle"``, ``"blood_pool"``, ``"aorta"``,
        ``"portal_vein"``, ``"other"``; ``lesion_id`` is the ``<id>`` text of a lesion (the same
        ``<id>`` in different sessions is the same lesion; None when the label has no id), else None.

    Examples
    --------
    >>> parse_segment_label("Lesion 3"), parse_segment_label("TUMOR-12"), parse_segment_label("tumour A")
    (('lesion', '3'), ('lesion', '12'), ('lesion', 'A'))
    >>> parse_segment_label("Liver"), parse_segment_label("blood_pool"), parse_segment_label("Portal Vein")
    (('liver', None), ('blood_pool', None), ('portal_vein', None))
    >>> parse_segment_label("aorta"), parse_segment_label("Muscle"), parse_segment_label("metabolic")
    (('aorta', None), ('muscle', None), ('other', None))
    >>> parse_segment_label("GTV"), parse_segment_label("metastasis 2")
    (('lesion', None), ('lesion', '2'))
    """
    text = re.sub(r"[\s_\-]+", " ", str(label)).strip().lower()
    original = re.sub(r"[\s_\-]+", " ", str(label)).strip()
    for kind, pattern in _LABEL_KINDS:
        m = pattern.match(text)
        if m:
            if kind != "lesion":
                return kind, None
            lid = m.group(1)
            return kind, (original[m.start(1):].strip() if lid else None)  # the id as written
    return "other", None


def segment_kind(label: str) -> str:
    """The kind of a segment label: lesion, liver, muscle, blood_pool, aorta, portal_vein or other.

    Examples
    --------
    >>> [segment_kind(s) for s in ("lesion 3", "Liver", "blood pool", "Portal_Vein", "kidney")]
    ['lesion', 'liver', 'blood_pool', 'portal_vein', 'other']
    """
    return parse_segment_label(label)[0]


def segment_property_codes(label: str) -> tuple[Any, Any]:
    """SCT (category, type) codes (:class:`pydicom.sr.coding.Code`) of a segment label.

    Examples
    --------
    >>> cat, typ = segment_property_codes("lesion 2")
    >>> (cat.meaning, typ.value, typ.meaning)
    ('Morphologically Abnormal Structure', '108369006', 'Neoplasm')
    """
    from pydicom.sr.codedict import codes

    sct = codes.SCT
    anat = sct.AnatomicalStructure
    kind = segment_kind(label)
    return {
        "lesion": (sct.MorphologicallyAbnormalStructure, sct.Neoplasm),
        "liver": (anat, sct.Liver),
        "muscle": (sct.Tissue, sct.SkeletalMuscle),
        "blood_pool": (sct.BodySubstance, sct.Blood),
        "aorta": (anat, sct.Aorta),
        "portal_vein": (anat, sct.PortalVein),
    }.get(kind, (anat, sct.Tissue))


# ---------------------------------------------------------------------------------------- read
def _lps_ascending(array: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flip the slice axis, if needed, so that it runs along row x column (as read_dicom_series)."""
    affine = np.array(affine, dtype=float)
    col_dir = affine[:3, 2]  # index x: along the row direction
    row_dir = affine[:3, 1]
    normal = np.cross(col_dir, row_dir)
    if np.dot(affine[:3, 0], normal) < 0 and array.shape[0] > 1:
        n = array.shape[0]
        affine[:3, 3] = affine[:3, 3] + (n - 1) * affine[:3, 0]
        affine[:3, 0] = -affine[:3, 0]
        array = array[::-1]
    return np.ascontiguousarray(array), affine


def _check_reference_for(path: Path, for_uid: str, reference: Image) -> None:
    headers = reference.meta.get("headers") if isinstance(reference.meta, Mapping) else None
    if not headers:
        return
    first = headers[0]
    while isinstance(first, (list, tuple)) and first:
        first = first[0]
    ref_for = str(getattr(first, "FrameOfReferenceUID", "") or "")
    if ref_for and for_uid and ref_for != for_uid:
        raise DicomError(
            f"{path.name}: FrameOfReferenceUID (0020,0052) {for_uid} differs from the reference image's "
            f"{ref_for}; the masks were drawn on another frame of reference: pass the image series the "
            "SEG/RTSTRUCT references (ReferencedSeriesSequence)"
        )


def read_seg(path: str | Path, *, reference: Image | None = None) -> Segmentation:
    """Read a DICOM SEG (BINARY or LABELMAP) as boolean masks, one per segment label.

    Parameters
    ----------
    path : str or Path
        The SEG file.
    reference : Image, optional
        Image to put the masks on (nearest-neighbour resampling; exact when the SEG frames lie on
        that grid, the usual case). Without it, each mask is on the SEG's own frames' geometry: the
        block of slices from the first to the last frame stored (empty frames are often omitted),
        with the slice axis running along row x column as :func:`read_dicom_series` does.

    Returns
    -------
    Segmentation

    Raises
    ------
    DicomError
        Unreadable file, not a SEG, a FRACTIONAL segmentation (probability or occupancy maps are
        not masks), duplicate segment labels, or frames that do not form a regular 3-D volume;
        the message names the file and the tag.
    """
    import highdicom as hd

    path = Path(path)
    if not path.is_file():
        raise DicomError(f"{path}: no such SEG file")
    try:
        seg = hd.seg.segread(str(path))
    except Exception as exc:
        raise DicomError(f"{path.name}: not a readable DICOM Segmentation (SEG) object ({exc}); "
                         "check SOPClassUID (0008,0016) is 1.2.840.10008.5.1.4.1.1.66.4") from exc
    stype = seg.segmentation_type
    if stype == hd.seg.SegmentationTypeValues.FRACTIONAL:
        raise DicomError(
            f"{path.name}: SegmentationType (0062,0001) is FRACTIONAL "
            f"({seg.get('SegmentationFractionalType', '')}); theraquant needs binary masks: export the "
            "segmentation as BINARY or LABELMAP (e.g. threshold the fractions at 0.5 in the segmentation "
            "tool) and read it again"
        )
    numbers = list(seg.segment_numbers)
    if not numbers:
        raise DicomError(f"{path.name}: SegmentSequence (0062,0002) is empty; the SEG holds no segment")
    labels: dict[int, str] = {}
    for n in numbers:
        label = str(seg.get_segment_description(n).get("SegmentLabel", "") or f"segment {n}")
        if label in labels.values():
            raise DicomError(
                f"{path.name}: segment label {label!r} (SegmentLabel (0062,0005)) is used by more than "
                "one segment; give every segment its own label (e.g. 'lesion 1', 'lesion 2')"
            )
        labels[n] = label
    try:
        vol = seg.get_volume(segment_numbers=numbers, combine_segments=False, allow_missing_positions=True)
    except Exception as exc:
        raise DicomError(
            f"{path.name}: the SEG frames (PlanePositionSequence (0020,9113)) do not form a regular 3-D "
            f"volume ({exc}); re-export it on the image's slices"
        ) from exc
    arr = np.asarray(vol.array)
    if arr.ndim == 3:
        arr = arr[..., None]
    masks: dict[str, Image] = {}
    for i, n in enumerate(numbers):
        a, aff = _lps_ascending(arr[..., i] > 0, vol.affine)
        masks[labels[n]] = Image(a, aff, units="", meta={"source": str(path), "label": labels[n]})
    for_uid = str(seg.get("FrameOfReferenceUID", "") or "")
    if reference is not None:
        _check_reference_for(path, for_uid, reference)
        masks = {k: m.resample_like(reference, interpolation="nearest") for k, m in masks.items()}
    refs = tuple(str(item.SeriesInstanceUID) for item in seg.get("ReferencedSeriesSequence", []))
    return Segmentation(masks=masks, referenced_series_uids=refs, frame_of_reference_uid=for_uid,
                        series_uid=str(seg.SeriesInstanceUID), study_uid=str(seg.StudyInstanceUID),
                        path=path)


# ---------------------------------------------------------------------------------------- write
def check_masks(masks: Mapping[str, Image], *, argument: str = "masks") -> tuple[list[str], Image, np.ndarray]:
    """Validate a label -> mask mapping; return the labels, the first mask and the (z, y, x, n) stack."""
    if not isinstance(masks, Mapping) or not masks:
        raise TheraquantError(f"{argument} must be a non-empty mapping of label -> boolean Image, got {masks!r}")
    labels = [str(k) for k in masks]
    first: Image | None = None
    stack = []
    for label, img in masks.items():
        if not label.strip() or len(label) > 64 or "\\" in label:
            raise TheraquantError(
                f"{argument}: segment label {label!r} must be 1 to 64 characters without a backslash "
                "(DICOM LO); name every mask, e.g. 'lesion 1'")
        if not isinstance(img, Image) or img.array.ndim != 3:
            raise TheraquantError(f"{argument}[{label!r}] must be a 3-D Image, got {img!r}")
        a = img.array
        if a.dtype != bool:
            if not np.isin(np.unique(a), (0, 1)).all():
                raise TheraquantError(
                    f"{argument}[{label!r}] holds values other than 0 and 1 ({np.unique(a)[:5].tolist()}...); "
                    "pass one boolean mask per label (label == value for a label image)"
                )
            a = a.astype(bool)
        if first is None:
            first = img
        else:
            first.check_same_grid(img, names=(f"{argument}[{labels[0]!r}]", f"{argument}[{label!r}]"))
        stack.append(a)
    assert first is not None
    return labels, first, np.stack(stack, axis=-1)


def check_mask_source(masks: Mapping[str, Image],
                      source: Sequence[Any]) -> tuple[list[str], Image, np.ndarray, list[Any]]:
    """Validate the arguments of a mask writer (SEG, RTSTRUCT).

    Parameters
    ----------
    masks : Mapping[str, Image]
        Label -> boolean mask, checked by :func:`check_masks`.
    source : sequence of pydicom.Dataset
        The series the masks are on, reduced by :func:`~theraquant.io._dicom_out.flatten_source`.

    Returns
    -------
    tuple
        The labels, the first mask, the (z, y, x, n) stack and the source datasets (one per slice
        position, sorted along the slice normal).
    """
    labels, first, stack = check_masks(masks)
    return labels, first, stack, flatten_source(source)


def write_seg(masks: Mapping[str, Image], source: Sequence[Any], path: str | Path, *,
              series_description: str = "theraquant masks",
              identifiers: Mapping[str, str] | None = None,
              series_number: int = 901) -> Path:
    """Write boolean masks as one DICOM SEG (BINARY, one segment per label) with highdicom.

    Parameters
    ----------
    masks : Mapping[str, Image]
        Segment label -> boolean mask, all on one grid in the source's frame of reference
        (normally the source series' own grid). Labels are written exactly as given
        (SegmentLabel) with SCT property codes (:func:`segment_property_codes`).
    source : sequence of pydicom.Dataset
        Datasets (headers suffice) of the series the masks were drawn on, e.g.
        ``image.meta["headers"]`` of :func:`read_dicom_series`; a 4-D series is reduced to one
        dataset per slice position. The SEG references this series and shares its
        FrameOfReferenceUID.
    path : str or Path
        Output file (written atomically, DICOM Part 10).
    series_description : str
        SeriesDescription of the SEG.
    identifiers : Mapping[str, str], optional
        Pseudonymise: see :mod:`theraquant.io._dicom_out` (``PatientID``, ``PatientName``,
        ``DateShiftDays``, ``UIDSalt``, any other DICOM keyword). None keeps the source's identity.
    series_number : int
        SeriesNumber of the SEG.

    Returns
    -------
    Path
        ``path``.
    """
    import highdicom as hd

    labels, first, stack, src = check_mask_source(masks, source)
    hd_src, restore = highdicom_sources(src)
    for_uid = str(src[0].FrameOfReferenceUID)
    vol = hd.Volume(stack.astype(np.uint8), first.affine, coordinate_system="PATIENT",
                    frame_of_reference_uid=for_uid, channels={"SegmentNumber": list(range(1, len(labels) + 1))})
    descriptions = []
    for i, label in enumerate(labels, start=1):
        cat, typ = segment_property_codes(label)
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=i, segment_label=label, segmented_property_category=cat,
            segmented_property_type=typ, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL))
    try:
        seg = hd.seg.Segmentation(
            source_images=hd_src, pixel_array=vol, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=descriptions, series_instance_uid=new_uid(), series_number=int(series_number),
            sop_instance_uid=new_uid(), instance_number=1, manufacturer=MANUFACTURER,
            manufacturer_model_name=MODEL_NAME, software_versions=software_version(),
            device_serial_number="0", content_label="MASKS", content_description=series_description[:64],
            omit_empty_frames=True)
    except ValueError as exc:
        raise TheraquantError(f"write_seg: highdicom refused the masks for {path} ({exc})") from exc
    seg.SeriesDescription = series_description[:64]
    restore_source_classes(seg, restore)
    apply_identifiers(seg, identifiers)
    return save_dataset(seg, path)
