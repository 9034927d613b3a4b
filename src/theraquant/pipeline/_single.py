"""Single-input runs behind ``theraquant pet hypoxia``, ``theraquant dose`` and ``theraquant response``.

Composition only (CONV, issue #9): read with :mod:`theraquant.io`, compute with the engines
(:func:`theraquant.pet.hypoxia`, :func:`theraquant.dosimetry.absorbed_dose` and
:func:`~theraquant.dosimetry.dose_volume`, :func:`theraquant.response.grade_lesions` /
:func:`~theraquant.response.grade_patients`), write atomically. Settings are library types; the
CLI parses its strings into them. Errors are :class:`TheraquantError` whose ``argument`` is the
keyword at fault.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..errors import TheraquantError

__all__ = ["MaskSpec", "DoseSettings", "DoseRun", "run_dose", "run_hypoxia", "run_response", "read_mask"]

DOSE_NUCLIDES = ("Y-90", "Lu-177")
DOSE_INPUTS = ("activity", "tia")
DOSE_METHODS = ("vsv", "ldm")
RESPONSE_CRITERIA = ("recist", "mrecist", "percist", "eortc")
RESPONSE_LEVELS = ("lesion", "patient")


@dataclass(frozen=True)
class MaskSpec:
    """A mask on disk: a NIfTI mask, or one label of a label image (``labels == label``).

    Attributes
    ----------
    path : Path
        NIfTI mask (0/1, bool) or label image.
    label : int, optional
        The label to take from a label image; ``None`` for a mask file.
    """

    path: Path
    label: Optional[int] = None

    @classmethod
    def parse(cls, text: str) -> "MaskSpec":
        """``"mask.nii.gz"`` or ``"labels.nii.gz:3"`` (a label of a label image)."""
        head, sep, tail = text.rpartition(":")
        if sep and tail.lstrip("-").isdigit() and head:
            return cls(Path(head), int(tail))
        return cls(Path(text))

    def __str__(self) -> str:
        return f"{self.path}" + (f":{self.label}" if self.label is not None else "")


def read_mask(spec: MaskSpec, reference: Any, *, argument: str) -> np.ndarray:
    """The boolean mask of ``spec`` on the grid of the Image ``reference``."""
    from ..io import read_label_image

    img = read_label_image(spec.path, argument=argument)
    try:
        reference.check_same_grid(img, names=("image", argument))
    except TheraquantError as exc:
        raise TheraquantError(str(exc), argument=argument, fix=exc.fix) from None
    labels = np.asarray(img.array)
    present = sorted(int(v) for v in np.unique(labels) if v)
    if spec.label is not None:
        m = labels == spec.label
        if not m.any():
            raise TheraquantError(f"{argument}={spec}: no voxel has label {spec.label}; labels present: {present}",
                                  argument=argument)
        return m
    if not set(present) <= {1}:
        raise TheraquantError(f"{argument}={spec.path.name} is a label image (labels {present[:8]}), not a mask; "
                              f"choose one label, e.g. {spec.path.name}:{present[0]}", argument=argument)
    if not present:
        raise TheraquantError(f"{argument}={spec.path.name} is empty (no voxel set)", argument=argument)
    return labels == 1


def _label_names(path: Path) -> dict[int, str]:
    from ..io import read_nifti

    side = read_nifti(path, mmap=False).meta.get("sidecar", {}) or {}
    return {int(k): str(v) for k, v in (side.get("LabelNames") or {}).items()}


# ------------------------------------------------------------------------------------ pet hypoxia
def run_hypoxia(image_path: Path, tumour: MaskSpec, *, blood: Optional[MaskSpec] = None,
                muscle: Optional[MaskSpec] = None, threshold: float | str = "arte-miso",
                operator: Optional[str] = None, tumour_stat: str = "max", reference_stat: str = "mean") -> Any:
    """FMISO hypoxia of one tumour from files: :func:`theraquant.pet.hypoxia` on a NIfTI image.

    Parameters
    ----------
    image_path : Path
        3-D FMISO PET NIfTI (SUV or Bq/mL; ratios are unitless).
    tumour, blood, muscle : MaskSpec
        Tumour, blood-pool and muscle masks on the image grid (at least one reference).
    threshold, operator, tumour_stat, reference_stat
        As :func:`theraquant.pet.hypoxia`.

    Returns
    -------
    theraquant.results.Result
        The hypoxia result; its provenance also names the files.
    """
    from ..io import read_nifti
    from ..pet import hypoxia
    from ..results import attach_provenance

    img = read_nifti(image_path, mmap=False)
    if img.array.ndim != 3:
        raise TheraquantError(f"{image_path.name}: the FMISO image must be 3-D, got shape {img.array.shape}",
                              argument="image_path")
    masks = {"tumour_mask": read_mask(tumour, img, argument="tumour")}
    if blood is not None:
        masks["blood_mask"] = read_mask(blood, img, argument="blood")
    if muscle is not None:
        masks["muscle_mask"] = read_mask(muscle, img, argument="muscle")
    if blood is None and muscle is None:
        raise TheraquantError("hypoxia needs a reference region: give blood and/or muscle", argument="blood")
    try:
        res = hypoxia(np.asarray(img.array, dtype=np.float64), masks.pop("tumour_mask"), spacing_mm=img.spacing_mm,
                      threshold=threshold, operator=operator, tumour_stat=tumour_stat,  # type: ignore[arg-type]
                      reference_stat=reference_stat, **masks)  # type: ignore[arg-type]
    except TheraquantError as exc:  # the engine's keywords are the run's: blood_mask -> blood
        arg = {"blood_mask": "blood", "muscle_mask": "muscle", "tumour_mask": "tumour"}.get(exc.argument or "",
                                                                                           exc.argument)
        raise TheraquantError(str(exc), argument=arg, fix=exc.fix) from None
    record = dict(res.provenance)
    record["Inputs"] = [{"path": str(p)} for p in (image_path, tumour.path, getattr(blood, "path", None),
                                                    getattr(muscle, "path", None)) if p is not None]
    record["Masks"] = {"tumour": str(tumour), "blood": str(blood) if blood else None,
                       "muscle": str(muscle) if muscle else None}
    return attach_provenance(res, record)


# ------------------------------------------------------------------------------------ dose
@dataclass(frozen=True)
class DoseSettings:
    """Settings of ``theraquant dose`` in library types.

    Attributes
    ----------
    input_path : Path
        3-D NIfTI: activity concentration at implantation, Bq/mL (``input_kind="activity"``), or
        time-integrated activity concentration, Bq s/mL (``"tia"``).
    out_dir : Path
        Output folder (refused when not empty unless ``overwrite``).
    nuclide : {"Y-90", "Lu-177"}
    input_kind : {"activity", "tia"}
        ``activity``: TIA = A0 T1/2 / ln 2 (physical decay only: exact for 90Y microspheres, an
        upper bound for 177Lu, whose TIA should come from :func:`theraquant.dosimetry.fit_tac`).
    method : {"vsv", "ldm"}
        Voxel S-value convolution (Lanconelli 2012) or local energy deposition.
    mask : Path, optional
        Label image on the input grid: one DVH per non-zero label (names from its sidecar
        ``LabelNames``); without it, one DVH of every voxel.
    density_g_ml : float, optional
        Tissue density, g/mL (default: the kernels' soft tissue, 1.04).
    d_percent : tuple of float
        Dx levels, % of the volume.
    v_gy : tuple of float
        Vy levels, Gy.
    clip_negative : bool
        Set negative voxels (reconstruction noise of 90Y PET) to 0 first; their number and sum are
        recorded. Without it a negative voxel is an error.
    overwrite : bool
    """

    input_path: Path
    out_dir: Path
    nuclide: str = "Y-90"
    input_kind: str = "activity"
    method: str = "vsv"
    mask: Optional[Path] = None
    density_g_ml: Optional[float] = None
    d_percent: tuple[float, ...] = (2.0, 50.0, 70.0, 98.0)
    v_gy: tuple[float, ...] = (100.0, 150.0, 200.0)
    clip_negative: bool = False
    overwrite: bool = False

    def __post_init__(self) -> None:
        for name, allowed in (("nuclide", DOSE_NUCLIDES), ("input_kind", DOSE_INPUTS), ("method", DOSE_METHODS)):
            if getattr(self, name) not in allowed:
                raise TheraquantError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}",
                                      argument=name)
        if self.density_g_ml is not None and not (np.isfinite(self.density_g_ml) and self.density_g_ml > 0):
            raise TheraquantError(f"density_g_ml must be a positive density in g/mL, got {self.density_g_ml!r}",
                                  argument="density_g_ml")


@dataclass(frozen=True)
class DoseRun:
    """What :func:`run_dose` produced: the DoseMap, the DVH table and curves, every file written."""

    dose: Any
    table: Any
    curves: Any
    written: tuple[Path, ...]


def run_dose(settings: DoseSettings) -> DoseRun:
    """Absorbed dose map and per-region DVH table from an activity or TIA NIfTI.

    Writes ``dose_gy.nii.gz`` (+ JSON sidecar with the provenance), ``dvh.csv`` (one row per
    region: Dmean, Dmedian, Dmin, Dmax, Dx, Vy, BEDmean, EUD, EUBED, volume), ``dvh_curves.csv``
    (region, dose_Gy, volume_pct), ``dose.json`` and ``manifest.json``.
    """
    import pandas as pd

    from .. import dosimetry
    from ..image import Image
    from ..io import read_label_image, read_nifti, sidecar_path, write_json, write_nifti, write_table
    from ..results import describe_call
    from ._outputs import check_out_dir, prepare_out_dir, write_manifest

    s = settings
    inputs = [s.input_path, s.mask]
    check_out_dir(s.out_dir, s.overwrite, inputs=inputs)
    img = read_nifti(s.input_path, mmap=False)
    if img.array.ndim != 3:
        raise TheraquantError(f"{s.input_path.name}: the input must be a 3-D image, got shape {img.array.shape}",
                              argument="input_path")
    values = np.asarray(img.array, dtype=np.float64)
    clipped = {"n_voxels": 0, "sum": 0.0}
    if s.clip_negative:
        neg = values < 0
        clipped = {"n_voxels": int(neg.sum()), "sum": float(values[neg].sum())}
        values = np.where(neg, 0.0, values)
    sp = tuple(float(v) for v in img.spacing_mm)
    voxel_ml = float(np.prod(sp)) / 1000.0
    if s.input_kind == "activity":
        tia = dosimetry.permanent_implant_tia(dosimetry.activity_from_concentration(values, sp), s.nuclide)
    else:
        tia = values * voxel_ml  # Bq s/mL x mL = Bq s per voxel
    dose = dosimetry.absorbed_dose(tia, sp, nuclide=s.nuclide, method=s.method, density=s.density_g_ml)
    if s.mask is not None:
        lab_img = read_label_image(s.mask, argument="mask")
        try:
            img.check_same_grid(lab_img, names=("input_path", "mask"))
        except TheraquantError as exc:
            raise TheraquantError(str(exc), argument="mask", fix=exc.fix) from None
        labels = np.asarray(lab_img.array)
        names = _label_names(s.mask)
        regions = [(int(k), names.get(int(k), f"label {int(k)}")) for k in np.unique(labels) if k != 0]
        if not regions:
            raise TheraquantError(f"mask {s.mask.name} is empty (no non-zero label)", argument="mask")
    else:
        labels = np.ones(values.shape, np.int32)
        regions = [(1, "all voxels")]
    rows, curves = [], []
    for k, name in regions:
        r = dosimetry.dose_volume(dose, labels == k, d=s.d_percent, v_gy=s.v_gy, nuclide=s.nuclide)
        scalars = {key: v for key, v in r.items() if isinstance(v, (int, float))}
        rows.append({"label": k, "name": name, "volume_mL": round(r["n_voxels"] * voxel_ml, 9), **scalars})
        curve = r["dvh"].copy()
        curve.insert(0, "label", k)
        curves.append(curve)
    table = pd.DataFrame(rows)
    curve_table = pd.concat(curves, ignore_index=True)
    prepare_out_dir(s.out_dir, s.overwrite, inputs=inputs)
    record = dict(dose.provenance)
    record["Command"] = "theraquant.pipeline.run_dose(" + describe_call("DoseSettings", {
        f.name: getattr(s, f.name) for f in fields(s) if getattr(s, f.name) != f.default}) + ")"
    record["Inputs"] = [{"path": str(p)} for p in inputs if p is not None]
    record["Input"] = {"kind": s.input_kind, "units": "Bq/mL" if s.input_kind == "activity" else "Bq s/mL",
                       "tia": "A0 T1/2 / ln 2 (physical decay only)" if s.input_kind == "activity" else "as given",
                       "negative_voxels_set_to_0": clipped}
    written = [write_nifti(Image(np.asarray(dose), img.affine, units="Gy"), s.out_dir / "dose_gy.nii.gz",
                           sidecar={**{k: v for k, v in record.items() if k != "Units"}, "Units": "Gy",
                                    "Quantity": "absorbed dose", "UnitsOfInputs": record.get("Units")})]
    written.append(sidecar_path(written[0]))
    written.append(write_table(table, s.out_dir / "dvh.csv", float_format="%.10g"))
    written.append(write_table(curve_table, s.out_dir / "dvh_curves.csv", float_format="%.6g"))
    written.append(write_json({**record, "DVH": table.to_dict(orient="records")}, s.out_dir / "dose.json"))
    written.append(write_manifest(s.out_dir, [p for p in written if p.exists()], kind="dose",
                                  settings={f.name: str(getattr(s, f.name)) for f in fields(s)}))
    return DoseRun(dose, table, curve_table, tuple(p for p in written if p.exists()))


# ------------------------------------------------------------------------------------ response
def run_response(table_path: Path, criteria: str, *, level: str = "lesion",
                 columns: Optional[dict[str, str]] = None, after_one_cycle: bool = False,
                 reference: str = "liver") -> Any:
    """Grade a table of lesion measurements (CSV or Parquet) by RECIST 1.1, mRECIST, PERCIST 1.0 or EORTC.

    ``level="lesion"``: :func:`theraquant.response.grade_lesions` (one row per lesion);
    ``"patient"``: :func:`~theraquant.response.grade_patients` (a ``patient`` column, one row
    per patient). Returns the graded DataFrame (``category``, ``rule_id``, ``rule`` ...).
    """
    from ..io import read_table
    from ..response import grade_lesions, grade_patients

    if criteria.lower() not in RESPONSE_CRITERIA:
        raise TheraquantError(f"criteria must be one of {', '.join(RESPONSE_CRITERIA)}, got {criteria!r}",
                              argument="criteria")
    if level not in RESPONSE_LEVELS:
        raise TheraquantError(f"level must be one of {', '.join(RESPONSE_LEVELS)}, got {level!r}", argument="level")
    data = read_table(table_path, argument="table_path")
    kw: dict[str, Any] = {"columns": columns or None}
    if criteria.lower() == "eortc":
        kw["after_one_cycle"] = after_one_cycle
    if criteria.lower() == "percist":
        kw["reference"] = reference
    if level == "lesion":
        return grade_lesions(data, criteria, **kw)
    out = grade_patients(data, criteria, **kw)
    return out.reset_index() if "patient" not in out.columns else out
