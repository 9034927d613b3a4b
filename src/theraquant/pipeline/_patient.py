"""One patient's science: read its series and masks (io), run the per-lesion steps (engines), write
its maps and masks, and return its rows of lesions.csv, patients.csv, curves and DVH.

Composition only (issue #10, "What a run computes, per lesion"): every number comes from
:mod:`theraquant.dce`, :mod:`~theraquant.pet`, :mod:`~theraquant.dosimetry` and
:mod:`~theraquant.response` through the helper modules ``_lesion_*``. A broken series fails only
what depends on it: its quantities are NaN with the reason in ``notes`` and a :class:`Failure`.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from ..errors import TheraquantError
from ..image import Image
from ._lesion_dce import DCE_UNITS, Regions

if TYPE_CHECKING:
    from ._config import StudyConfig
    from ._discovery import PatientStudy

__all__ = ["Failure", "PatientOutcome", "process_patient", "LESION_COLUMNS", "PATIENT_COLUMNS",
           "CURVE_COLUMNS", "DVH_COLUMNS"]

#: the lesions.csv columns every row has (issue #10 contract + results-layout extras), in order
LESION_COLUMNS = (
    "patient", "lesion", "volume_ml",
    "ktrans", "kep", "ve", "vp", "fa", "iaugc60", "dce_model", "fit_success_frac", "fit_r2_median",
    "ktrans_followup", "kep_followup", "ve_followup", "vp_followup", "fa_followup", "iaugc60_followup",
    "ktrans_change_pct", "kep_change_pct", "ve_change_pct", "vp_change_pct", "fa_change_pct",
    "iaugc60_change_pct",
    "t_bp", "t_m", "hypoxic_fraction", "hypoxic", "suvmax_fmiso",
    "dmean_gy", "d70_gy", "v100_pct",
    "response", "responder", "response_rule", "response_criteria", "response_measure", "response_unit",
    "response_baseline", "response_followup", "response_change_pct",
)
PATIENT_COLUMNS = ("patient", "n_lesions", "therapy_type", "therapy_date", "response", "response_rule",
                   "dose_normal_liver_gy", "tumour_to_normal_ratio", "status", "notes")
CURVE_COLUMNS = ("patient", "lesion", "session", "kind", "t_s", "value_mM")
DVH_COLUMNS = ("patient", "lesion", "dose_gy", "volume_pct")
_DCE_CHANGE = ("ktrans", "kep", "ve", "vp", "fa", "iaugc60")
#: maps whose lesion histogram goes into lesions.csv as <map>_mean/_p25/_p75
_HIST_SKIP = {"anatomy_mr", "hypoxic", "t10", "t10_followup", "anatomy_mr_followup"}
_MAP_QUANTITY = {
    "ktrans": "Ktrans (volume transfer constant)", "kep": "kep (rate constant EES -> plasma)",
    "ve": "ve (extravascular extracellular volume fraction)", "vp": "vp (plasma volume fraction)",
    "fa": "fa (arterial fraction of the dual input)", "iaugc60": "IAUGC60 (initial area under the Gd curve)",
    "t10": "T10 (pre-contrast T1)", "anatomy_mr": "mean pre-contrast DCE signal",
    "suv_fmiso": "FMISO SUV", "fmiso_tbp": "FMISO voxel SUV / blood-pool SUVmean",
    "hypoxic": "hypoxic voxel (T/BP above the threshold)", "suv_fdg_baseline": "FDG SUL",
    "suv_fdg_followup": "FDG SUL", "activity_y90": "90Y activity concentration at administration",
    "dose_gy": "absorbed dose",
}
#: label values of the reference regions in masks/<grid>.nii.gz (lesions are 1..n)
_REF_LABELS = {"liver": 0, "muscle": 1, "blood_pool": 2, "aorta": 3, "portal_vein": 4}


@dataclass(frozen=True)
class Failure:
    """One thing that could not be computed: a row of ``failures.csv``.

    Attributes
    ----------
    patient : str
        Pseudonym (or PatientID with identifiers shown).
    step : str
        ``"dce_baseline"``, ``"dce_followup"``, ``"fmiso"``, ``"dose"``, ``"response"``,
        ``"masks"``, ``"write"``...
    file : str
        The file at fault, relative to the study folder ("" when none).
    message : str
        One line: what was wrong and how to fix it.
    """

    patient: str
    step: str
    file: str
    message: str


@dataclass(frozen=True)
class PatientOutcome:
    """Everything :func:`process_patient` computed for one patient.

    Attributes
    ----------
    pseudonym : str
        The patient's name in the results.
    lesions : pandas.DataFrame
        Its rows of ``lesions.csv`` (:data:`LESION_COLUMNS` first, then histogram columns, then
        ``notes``).
    patient_row : dict
        Its row of ``patients.csv`` (:data:`PATIENT_COLUMNS`).
    curves : pandas.DataFrame
        Its rows of ``curves.parquet`` (:data:`CURVE_COLUMNS`).
    dvh : pandas.DataFrame
        Its rows of ``dvh.parquet`` (:data:`DVH_COLUMNS`).
    failures : tuple of Failure
        What could not be computed.
    warnings : tuple of str
        Remarks that did not stop anything.
    written : tuple of Path
        The maps and masks written under ``patients/<pseudonym>/``.
    settings : dict
        What each step used (model, inputs, constants), for provenance.json.
    """

    pseudonym: str
    lesions: pd.DataFrame
    patient_row: dict
    curves: pd.DataFrame
    dvh: pd.DataFrame
    failures: tuple[Failure, ...]
    warnings: tuple[str, ...]
    written: tuple[Path, ...] = ()
    settings: Mapping[str, Any] = field(default_factory=dict)


def _sort_key(lid: str) -> tuple:
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", lid) if p)


def _as_3d(image: Image) -> Image:
    if image.array.ndim == 3:
        return image
    return Image(np.zeros(image.shape, np.uint8), image.affine, meta={"headers": image.meta.get("headers")})


@contextmanager
def _series_folder(files: Sequence[Path]) -> Iterator[Path]:
    """A temporary folder of links to exactly these files (a series may be spread over folders)."""
    with tempfile.TemporaryDirectory(prefix="tq_series_") as tmp:
        used: set[str] = set()
        for i, f in enumerate(files):
            name = Path(f).name  # the file's own name (messages name it), unless two share it
            if name in used:
                name = f"{i:06d}_{name}"
            used.add(name)
            dst = Path(tmp) / name
            try:
                os.symlink(Path(f).resolve(), dst)
            except OSError:  # no symlinks (some file systems): copy
                import shutil

                shutil.copyfile(f, dst)
        yield Path(tmp)


def _header_value(h: Any, name: str) -> Any:
    return getattr(h, name, None)


def _first_header(image: Image) -> Any:
    h = image.meta.get("headers")
    while isinstance(h, (list, tuple)) and h:
        h = h[0]
    return h


def _median_finite(v: np.ndarray) -> float:
    v = np.asarray(v, float)
    v = v[np.isfinite(v)]
    return float(np.median(v)) if v.size else float("nan")


class _Run:
    """State of one patient's run: rows being filled, failures, maps to write."""

    def __init__(self, patient: Any, config: Any, out_dir: Path, study_dir: Path | None):
        self.p = patient
        self.cfg = config
        self.name = patient.pseudonym
        self.out = Path(out_dir) / "patients" / self.name
        self.study_dir = Path(study_dir) if study_dir is not None else self._guess_root()
        self.rows: dict[str, dict[str, Any]] = {}
        self.notes: dict[str, list[str]] = {}
        self.patient_notes: list[str] = []
        self.failures: list[Failure] = []
        self.warnings: list[str] = []
        self.curves: list[dict[str, Any]] = []
        self.dvh: list[dict[str, Any]] = []
        self.patient_row: dict[str, Any] = {}
        self.maps: dict[str, tuple[Image, str, str, str]] = {}   # name -> (image, grid, session, series uid)
        self.grids: dict[str, tuple[Image, Regions, str]] = {}   # grid -> (3-D reference, regions, series uid)
        self.settings: dict[str, Any] = {}
        self.written: list[Path] = []
        self._segs: dict[Path, Any] = {}
        self.steps_ok: list[str] = []
        self.steps_failed: list[str] = []
        self.pending: list[str] = []

    # ------------------------------------------------------------------ bookkeeping
    def _guess_root(self) -> Path:
        files = [Path(f) for s in self.p.series for f in s.files]
        if not files:
            return Path(".")
        return Path(os.path.commonpath([str(f.parent) for f in files]))

    def rel(self, path: Path | str | None) -> str:
        if path is None:
            return ""
        try:
            return Path(path).resolve().relative_to(self.study_dir.resolve()).as_posix()
        except ValueError:
            return Path(path).name

    def row(self, lid: str) -> dict[str, Any]:
        if lid not in self.rows:
            self.rows[lid] = {}
            self.notes[lid] = []
        return self.rows[lid]

    def note(self, lid: str, text: str) -> None:
        self.row(lid)
        if text and text not in self.notes[lid]:
            self.notes[lid].append(text)

    def merge_rows(self, rows: Mapping[str, Mapping[str, Any]], label: str, *, suffix: str = "") -> None:
        """Merge a step's per-lesion values into the lesion rows.

        Parameters
        ----------
        rows : mapping
            Lesion id -> {column: value}; a ``"_notes"`` entry holds the lesion's notes.
        label : str
            Prefix of the notes (``"<label>: <note>"``).
        suffix : str, optional
            Appended to every column name (e.g. ``"_fu"`` for the follow-up session).
        """
        for lid, vals in rows.items():
            r = self.row(lid)
            for k, v in vals.items():
                if k == "_notes":
                    for n in v:
                        self.note(lid, f"{label}: {n}")
                else:
                    r[k + suffix] = v

    def fail(self, step: str, exc: BaseException, file: Path | str | None = None,
             affects: Sequence[str] | None = None) -> None:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if not isinstance(exc, TheraquantError):
            msg = f"{type(exc).__name__}: {msg}"
        f = self.rel(file) if file is not None else ""
        self.failures.append(Failure(self.name, step, f, msg))
        self.steps_failed.append(step)
        if affects is None:  # every lesion, including those found by later steps (see finish_notes)
            self.pending.append(f"{step} failed: {msg}")
        for lid in affects or ():
            self.note(lid, f"{step} failed: {msg}")

    def finish_notes(self) -> None:
        for lid in self.rows:
            for text in self.pending:
                self.note(lid, text)

    def add_map(self, name: str, array: np.ndarray, grid: str, session: str, uid: str, units: str) -> None:
        ref, _, _ = self.grids[grid]
        self.maps[name] = (Image(np.asarray(array), ref.affine, units=units), grid, session, uid)

    # ------------------------------------------------------------------ reading
    def read_image(self, series: Any, *, modality: str | Sequence[str] | None = None,
                   dtype: Any = np.float64) -> Image:
        from ..io import read_dicom_series

        with _series_folder(series.files) as d:
            return read_dicom_series(d, series_uid=series.series_uid, modality=modality, dtype=dtype)

    def read_suv(self, series: Any, normalization: str) -> Image:
        """SUV image of a PT series: io reads it, :func:`theraquant.pet.suv_image` applies the SUV rules."""
        from .. import pet
        from ..io import read_pet_series

        with _series_folder(series.files) as d:
            ps = read_pet_series(d, series_uid=series.series_uid)
        return pet.suv_image(ps.image, ps.headers, names=list(ps.names), normalization=normalization)

    def _read_seg(self, seg_series: Any, path: Path, reference: Image) -> Any:
        from .. import io

        if seg_series.role == "rtstruct":
            return io.read_rtstruct(path, reference)
        if path not in self._segs:
            self._segs[path] = io.read_seg(path)
        return self._segs[path]

    def regions(self, series: Any, image: Image, grid: str) -> Regions:
        """Masks of every SEG/RTSTRUCT that applies to ``series``, on ``image``'s grid."""
        from ._discovery import parse_segment_label

        ref = _as_3d(image)
        segs = self.p.masks_for(series.series_uid)
        if not segs:
            raise TheraquantError(f"{self.rel(series.files[0])}: no SEG or RTSTRUCT references this "
                                  f"{series.role} series or shares its frame of reference, so its lesions "
                                  "cannot be located; add a SEG referencing it")
        reg = Regions()
        own = set(series.series_uids if hasattr(series, "series_uids") else (series.series_uid,))
        direct_segs = [s for s in segs if own & set(s.referenced_series_uids)]
        segs = direct_segs or self._nearest_session(segs, series)
        for s in segs:
            direct = bool(own & set(s.referenced_series_uids))
            for path in s.files:
                try:
                    seg = self._read_seg(s, Path(path), ref)
                except Exception as exc:  # the failure names the mask file, not the image
                    raise _attach(exc, path)
                for label, m in seg.masks.items():
                    kind, lid = parse_segment_label(label)
                    if kind == "other" or (kind == "lesion" and lid is None):
                        continue  # not a study region, or a lesion without the <id> that links sessions
                    try:
                        arr = self._on_grid(m, ref, Path(path), label, grid, strict=direct)
                    except Exception as exc:
                        raise _attach(exc, path)
                    if kind == "lesion":
                        prev = reg.lesions.get(lid)
                        reg.lesions[lid] = arr if prev is None else prev | arr
                        reg.sources[f"lesion {lid}"] = label
                    else:
                        prev = getattr(reg, kind)
                        setattr(reg, kind, arr if prev is None else prev | arr)
                        reg.sources[kind] = label
        self.grids[grid] = (ref, reg, series.series_uid)
        return reg

    def _nearest_session(self, segs: Sequence[Any], series: Any) -> list:
        """Of masks found through the frame of reference, those drawn on the session nearest in time
        to ``series`` (earlier wins a tie): a post-therapy scan takes the baseline masks, not the
        follow-up's."""
        def when(x: Any) -> Optional[datetime]:
            t = getattr(x, "acquired", None)
            if t is None and getattr(x, "date", None) is not None:
                t = datetime.combine(x.date, datetime.min.time())
            return t

        target = when(series)
        if target is None or len(segs) < 2:
            return list(segs)
        scored = []
        for sg in segs:
            refs = [self.p.series_by_uid(u) for u in sg.referenced_series_uids]
            times = [when(r) for r in refs if r is not None and when(r) is not None] or [when(sg)]
            t = times[0]
            if t is None:
                scored.append((float("inf"), 0.0, sg))
            else:
                d = (t - target).total_seconds()
                scored.append((abs(d), d, sg))
        best = min((a, b) for a, b, _ in scored)
        return [sg for a, b, sg in scored if (a, b) == best]

    def _on_grid(self, mask: Image, ref: Image, path: Path, label: str, grid: str, *, strict: bool) -> np.ndarray:
        src = np.asarray(mask.array, bool)
        if mask.same_grid(ref):
            return src.copy()
        idx = np.argwhere(src)
        if idx.size:
            ci = ref.world_to_index(mask.index_to_world(idx))
            inside = np.all((ci >= -0.5) & (ci <= np.asarray(ref.shape) - 0.5), axis=1)
            n_out = int(np.count_nonzero(~inside))
            if n_out and (strict or not inside.any()):
                raise TheraquantError(
                    f"{self.rel(path)}: segment {label!r} falls outside the {grid} image ({n_out} of {idx.shape[0]} "
                    "mask voxels beyond its field of view); the mask and the image must share their frame of "
                    "reference and the mask must lie inside the image it references")
        return np.asarray(mask.resample_like(ref, interpolation="nearest").array, bool)

    # ------------------------------------------------------------------ steps
    def step(self, name: str, fn: Callable[[], None]) -> None:
        try:
            fn()
            self.steps_ok.append(name)
        except Exception as exc:  # a broken series fails only what depends on it
            self.fail(name, exc, getattr(exc, "_tq_file", None), affects=getattr(exc, "_tq_affects", None))


def _plausible(run: "_Run", name: str, value: Any, argument: str) -> None:
    """:func:`theraquant.quantities.check_quantity` on a value read or computed; an implausible one
    becomes a warning of the patient (an impossible one an error of the step)."""
    import warnings

    from ..quantities import PlausibilityWarning, check_quantity

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PlausibilityWarning)
        check_quantity(name, value, argument=argument)
    for w in caught:
        if issubclass(w.category, PlausibilityWarning):
            run.warnings.append(f"{run.name}: {w.message}")


def _attach(exc: Exception, file: Any) -> Exception:
    try:
        exc._tq_file = file  # type: ignore[attr-defined]
    except Exception:
        pass
    return exc


# ====================================================================== DCE
def _vfa_t10(run: _Run, vfa: Any, dce_ref: Image, region_dce: np.ndarray) -> tuple[np.ndarray, str]:
    """T1 map (s) on the DCE grid from the VFA series (one or several series, one or several angles)."""
    from scipy import ndimage

    from ._lesion_dce import vfa_t1

    uids = vfa.series_uids if hasattr(vfa, "series_uids") else (vfa.series_uid,)
    by_angle: dict[float, list[np.ndarray]] = {}
    grid_img: Image | None = None
    tr = None
    with _series_folder(vfa.files) as d:
        from ..io import read_dicom_series

        for uid in uids:
            img = read_dicom_series(d, series_uid=uid, modality="MR")
            h = img.meta["headers"]
            if tr is None:
                tr = float(_header_value(_first_header(img), "RepetitionTime")) / 1000.0
            frames = [img.array] if img.array.ndim == 3 else [img.array[..., k] for k in range(img.n_frames)]
            fas = ([float(_header_value(h[0], "FlipAngle"))] if img.array.ndim == 3
                   else [float(_header_value(h[0][k], "FlipAngle")) for k in range(img.n_frames)])
            for fa, arr in zip(fas, frames):
                im3 = Image(arr, img.affine)
                if grid_img is None:
                    grid_img = im3
                elif not im3.same_grid(grid_img):
                    im3 = im3.resample_like(grid_img)
                by_angle.setdefault(fa, []).append(np.asarray(im3.array, float))
    if len(by_angle) < 2:
        raise TheraquantError(f"VFA series {vfa.series_uid}: {len(by_angle)} distinct FlipAngle value(s); "
                              "T1 mapping needs two or more")
    angles = np.array(sorted(by_angle))
    sig = np.stack([np.mean(by_angle[a], axis=0) for a in angles], axis=-1)
    assert grid_img is not None
    region_v = Image(region_dce.astype(np.uint8), dce_ref.affine).resample_like(grid_img, interpolation="nearest")
    mask_v = ndimage.binary_dilation(np.asarray(region_v.array, bool), iterations=2)
    t1 = vfa_t1(sig, angles, float(tr), mask_v)
    t1_img = Image(np.nan_to_num(t1, nan=0.0), grid_img.affine)
    if t1_img.same_grid(dce_ref):
        out = np.asarray(t1, float)
    else:
        out = np.asarray(t1_img.resample_like(dce_ref).array, float)
        out[out <= 0] = np.nan
    return out, f"VFA ({len(angles)} flip angles: {', '.join(f'{a:g}' for a in angles)} deg)"


def _dce_step(run: _Run, key: str, suffix: str, session: str, grid: str) -> None:
    from ._lesion_dce import dce_lesions

    series = run.p.timepoints[key]
    cfg = run.cfg.dce
    try:
        img = run.read_image(series, modality="MR", dtype=np.float32)
        if img.array.ndim != 4 or img.frame_times_s is None:
            raise TheraquantError(f"{run.rel(series.files[0])}: the DCE series has no temporal positions "
                                  "(needs a 4-D series with AcquisitionTime per frame)")
        reg = run.regions(series, img, grid)
    except Exception as exc:
        raise _attach(exc, getattr(exc, "_tq_file", series.files[0]))
    for lid in reg.lesions:
        run.row(lid)
    h0 = _first_header(img)
    if _header_value(h0, "RepetitionTime") is None or _header_value(h0, "FlipAngle") is None:
        raise _attach(TheraquantError(f"{run.rel(series.files[0])}: RepetitionTime (0018,0080) or FlipAngle "
                                      "(0018,1314) missing; the SPGR signal cannot be converted to concentration"),
                      series.files[0])
    tr = float(_header_value(h0, "RepetitionTime")) / 1000.0
    fa = float(_header_value(h0, "FlipAngle"))
    _plausible(run, "repetition_time_s", tr, f"{run.rel(series.files[0])} RepetitionTime (ms / 1000)")
    _plausible(run, "flip_angle_deg", fa, f"{run.rel(series.files[0])} FlipAngle")
    shape = img.shape
    region = reg.any_lesion(shape)
    for extra in (reg.liver, reg.aorta, reg.blood_pool, reg.portal_vein):
        if extra is not None:
            region = region | extra
    vfa_key = "vfa_" + ("followup" if suffix else "baseline")
    t10_tissue: Any = float(cfg.t10_tissue_s)
    t10_blood = float(cfg.t10_blood_s)
    t10_source = f"default tissue T10 {cfg.t10_tissue_s:g} s ({'liver'}), blood T10 {cfg.t10_blood_s:g} s"
    vfa = run.p.timepoints.get(vfa_key)
    if vfa is not None:
        try:
            t1map, how = _vfa_t10(run, vfa, _as_3d(img), region)
            art = reg.aorta if reg.aorta is not None and reg.aorta.any() else reg.blood_pool
            tb = _median_finite(t1map[art]) if art is not None and art.any() else float("nan")
            n_bad = int(np.count_nonzero(~np.isfinite(t1map[region]) | (t1map[region] <= 0)))
            t1map = np.where(np.isfinite(t1map) & (t1map > 0), t1map, float(cfg.t10_tissue_s))
            t10_tissue = t1map
            if np.isfinite(tb):
                t10_blood = tb
            t10_source = f"{how}; blood T10 {t10_blood:.3g} s" + (
                f"; {n_bad} voxels without a VFA T1 took the liver default" if n_bad else "")
        except Exception as exc:
            run.fail(vfa_key, exc, vfa.files[0], affects=list(reg.lesions))
            for lid in reg.lesions:
                run.note(lid, "T10 from the defaults (VFA failed)")
    res = dce_lesions(np.asarray(img.array), img.frame_times_s, reg, tr_s=tr, flip_angle_deg=fa, r1=cfg.r1,
                      hematocrit=cfg.hematocrit, t10_tissue=t10_tissue, t10_blood=t10_blood,
                      n_baseline=cfg.n_baseline, model=cfg.model)
    run.merge_rows(res.rows, f"DCE{' follow-up' if suffix else ''}", suffix=suffix)
    for n in res.notes:
        run.warnings.append(f"{run.name} DCE{' follow-up' if suffix else ''}: {n}")
    for c in res.curves:
        run.curves.append({**c, "session": session})
    for name, arr in res.maps.items():
        run.add_map(name + suffix, arr, grid, session, series.series_uid, DCE_UNITS[name])
    run.settings[f"dce{suffix}"] = {**res.settings, "t10": t10_source, "series_uid": series.series_uid}


# ====================================================================== PET
def _fmiso_step(run: _Run) -> None:
    from ._lesion_pet import fmiso_lesions

    series = run.p.timepoints["fmiso_baseline"]
    try:
        img = run.read_suv(series, run.cfg.fmiso.normalization)
        reg = run.regions(series, img, "fmiso")
    except Exception as exc:
        raise _attach(exc, getattr(exc, "_tq_file", series.files[0]))
    res = fmiso_lesions(np.asarray(img.array, float), reg, spacing_mm=img.spacing_mm,
                        threshold=float(run.cfg.fmiso.threshold))
    run.merge_rows(res.rows, "FMISO")
    for n in res.notes:
        run.warnings.append(f"{run.name}: {n}")
    units = {"suv_fmiso": img.units or "g/mL", "fmiso_tbp": "1", "hypoxic": "1"}
    for name, arr in res.maps.items():
        run.add_map(name, arr, "fmiso", "baseline", series.series_uid, units[name])
    run.settings["fmiso"] = {**res.settings, "normalization": run.cfg.fmiso.normalization,
                             "series_uid": series.series_uid}


# ====================================================================== dose
def _dose_step(run: _Run) -> None:
    from ._lesion_dose import activity_at_administration, dose_rows, lu177_dose, y90_dose

    dcfg = run.cfg.dosimetry
    if "y90_post" in run.p.timepoints:
        series = run.p.timepoints["y90_post"]
        grid = "y90"
        try:
            img = run.read_image(series, modality="PT")
            reg = run.regions(series, img, grid)
            act, info = activity_at_administration(np.asarray(img.array, float), img.meta["headers"],
                                                   names=[Path(f).name for f in _flat_files(img)])
        except Exception as exc:
            raise _attach(exc, getattr(exc, "_tq_file", series.files[0]))
        liver = reg.liver
        if liver is not None:
            liver = liver | reg.any_lesion(liver.shape)
        res = y90_dose(act, img.spacing_mm, method=dcfg.method, density_g_ml=dcfg.density_g_ml,
                       normalize_to_injected=dcfg.normalize_to_injected, injected_bq=info["injected_dose_Bq"],
                       liver=liver)
        run.add_map("activity_y90", act, grid, "post_therapy", series.series_uid, "Bq/mL")
        # the decay record keeps intervals, not dates (the results are pseudonymised)
        decay = {k: v for k, v in info.items() if k not in ("decisions", "injection_datetime", "reference_datetime")}
        run.settings["dose"] = {**res.settings, "decay": decay, "series_uid": series.series_uid}
    else:
        series_list = list(run.p.lu177)
        if not series_list:
            return
        grid = "lu177"
        series = series_list[0]
        frames, times = [], []
        ref_img: Image | None = None
        reg: Regions | None = None
        for s in series_list:
            try:
                img = run.read_image(s, modality=("PT", "NM"))
                if img.array.ndim == 4:
                    img = Image(img.array[..., 0], img.affine, meta=img.meta)
                dc = None
                h0 = _first_header(img)
                if not _header_value(h0, "DecayCorrection"):
                    dc = "NONE"
                act, info = activity_at_administration(np.asarray(img.array, float), img.meta["headers"],
                                                       names=[Path(f).name for f in _flat_files(img)],
                                                       decay_correction=dc)
            except Exception as exc:
                raise _attach(exc, getattr(exc, "_tq_file", s.files[0]))
            inj = _dt(info["injection_datetime"])
            ref_t = _dt(info["reference_datetime"]) or s.acquired
            if inj is None or ref_t is None:
                raise _attach(TheraquantError(f"{run.rel(s.files[0])}: no administration or acquisition time "
                                              "(RadiopharmaceuticalStartDateTime (0018,1078), AcquisitionTime); "
                                              "the 177Lu time-activity curve needs both"), s.files[0])
            dt_h = (ref_t - inj).total_seconds() / 3600.0
            half_h = float(info["half_life_s"]) / 3600.0
            # the activity present at the scan (its own time after administration), as fit_tac expects
            act_t = act * 2.0 ** (-dt_h / half_h)
            im = Image(act_t, img.affine)
            if ref_img is None:
                ref_img = im
                reg = run.regions(s, img, grid)
                series = s
            elif not im.same_grid(ref_img):
                im = im.resample_like(ref_img)
            frames.append(np.asarray(im.array, float))
            times.append(dt_h)
        assert ref_img is not None and reg is not None
        region = reg.any_lesion(ref_img.shape)
        if reg.liver is not None:
            region = region | reg.liver
        _plausible(run, "tac_time_h", np.asarray(times), "177Lu scan times after administration (h)")
        res = lu177_dose(frames, times, ref_img.spacing_mm, region=region, method=dcfg.method,
                         density_g_ml=dcfg.density_g_ml)
        run.settings["dose"] = {**res.settings, "series_uids": [s.series_uid for s in series_list]}
    for lid in reg.lesions:
        run.row(lid)
    rows, dvh, patient = dose_rows(res, reg)
    for lid, vals in rows.items():
        if np.isfinite(vals["dmean_gy"]):
            _plausible(run, "dose_gy", vals["dmean_gy"], f"lesion {lid} Dmean")
    run.merge_rows(rows, "dose")
    for n in res.notes:
        run.warnings.append(f"{run.name}: {n}")
    run.dvh.extend(dvh)
    run.patient_row.update(patient)
    run.add_map("dose_gy", res.dose_gy, grid, "post_therapy", series.series_uid, "Gy")


def _flat_files(img: Image) -> list:
    out: list = []
    for f in img.meta.get("files", []):
        out.extend(f if isinstance(f, list) else [f])
    return out


def _dt(v: Any) -> Optional[datetime]:
    from ._lesion_dose import _first_datetime

    return _first_datetime(v)


# ====================================================================== response
def _criteria(run: _Run) -> Optional[str]:
    c = run.cfg.response.criteria
    tp = run.p.timepoints
    if c is not None:
        return c
    if "fdg_baseline" in tp and "fdg_followup" in tp:
        return "percist"
    if "dce_followup" in tp or any(s.role == "mr" for s in run.p.series):
        return "recist"
    return None


def _mr_measure_series(run: _Run, which: str) -> Any:
    """The MR series whose masks are measured: the DCE time point, else the last MR (first after therapy
    for ``followup``) series with a SEG/RTSTRUCT referencing it, by the therapy date."""
    tp = run.p.timepoints
    key = f"dce_{which}"
    if key in tp:
        return tp[key], key
    therapy = run.p.therapy_date
    if therapy is None:
        return None, None
    cands = [s for s in run.p.series if s.role in ("mr", "dce") and s.date is not None
             and any(set(s.series_uids) & set(m.referenced_series_uids) for m in run.p.series
                     if m.role in ("seg", "rtstruct"))]
    if which == "baseline":
        cands = sorted((s for s in cands if s.date <= therapy), key=lambda s: s.acquired or datetime.min)
        return (cands[-1], "mr_baseline") if cands else (None, None)
    cands = sorted((s for s in cands if s.date > therapy), key=lambda s: s.acquired or datetime.min)
    return (cands[0], "mr_followup") if cands else (None, None)


def _response_step(run: _Run) -> None:
    from ._lesion_response import grade

    crit = _criteria(run)
    if crit is None:
        run.patient_notes.append("no follow-up imaging: response not assessed")
        return
    base: dict[str, float] = {}
    fu: dict[str, float] = {}
    ref: dict[str, float] = {}
    if crit in ("percist", "eortc"):
        from ._lesion_pet import fdg_sulpeak

        if "fdg_baseline" not in run.p.timepoints or "fdg_followup" not in run.p.timepoints:
            raise TheraquantError(f"response.criteria is {crit} but the patient lacks a "
                                  f"{'baseline' if 'fdg_baseline' not in run.p.timepoints else 'follow-up'} "
                                  "FDG PET")
        # PERCIST reads SUL (lean body mass, Janmahasatian: O, Lodge, Wahl 2016); when either scan lacks
        # height or sex, both scans are read as SUVbw so that the two are comparable
        norm = "lbm-janmahasatian" if crit == "percist" else "bw"
        series = {w: run.p.timepoints[f"fdg_{w}"] for w in ("baseline", "followup")}
        images: dict[str, Image] = {}
        for w, s in series.items():
            try:
                try:
                    images[w] = run.read_suv(s, norm)
                except TheraquantError as exc:
                    if norm == "bw":
                        raise
                    run.warnings.append(f"{run.name}: FDG {w}: SUL not computable ({exc}); SUVbw used for both scans")
                    norm = "bw"
                    images = {w2: run.read_suv(series[w2], norm) for w2 in images}
                    images[w] = run.read_suv(s, norm)
            except Exception as exc:
                raise _attach(exc, getattr(exc, "_tq_file", s.files[0]))
        vals: dict[str, dict[str, float]] = {}
        base_masks: dict[str, Image] = {}
        for when in ("baseline", "followup"):
            s = series[when]
            grid = f"fdg_{when}"
            img = images[when]
            try:
                reg = run.regions(s, img, grid)
            except Exception as exc:
                raise _attach(exc, getattr(exc, "_tq_file", s.files[0]))
            fallback = {}
            if when == "followup":
                for lid, m in base_masks.items():
                    if lid not in reg.lesions:
                        fallback[lid] = np.asarray(m.resample_like(_as_3d(img), interpolation="nearest").array, bool)
                        run.note(lid, "FDG follow-up: no follow-up segment; measured in the baseline mask")
            if crit == "percist":
                peaks, r, notes = fdg_sulpeak(np.asarray(img.array, float), reg, spacing_mm=img.spacing_mm,
                                              fallback_masks=fallback)
            else:
                allm = {**fallback, **reg.lesions}
                peaks = {lid: float(np.max(img.array[m])) if m.any() else float("nan") for lid, m in allm.items()}
                r, notes = {"mean": float("nan"), "sd": float("nan")}, []
            vals[when] = peaks
            if when == "baseline":
                ref = {"mean": r["mean"], "sd": r["sd"]}
                base_masks = {lid: Image(m.astype(np.uint8), img.affine) for lid, m in reg.lesions.items()}
            else:
                ref["followup_mean"] = r["mean"]
            for n in notes:
                run.warnings.append(f"{run.name} FDG {when}: {n}")
            run.add_map(f"suv_fdg_{when}", np.asarray(img.array, np.float32), grid, when, s.series_uid,
                        img.units or "g/mL")
        base, fu = vals["baseline"], vals["followup"]
        run.settings["response"] = {"criteria": crit, "normalization": norm}
    else:
        from .. import response

        sb, kb = _mr_measure_series(run, "baseline")
        sf, kf = _mr_measure_series(run, "followup")
        if sb is None or sf is None:
            raise TheraquantError(f"response.criteria is {crit} but the patient lacks a "
                                  f"{'baseline' if sb is None else 'follow-up'} MR series with lesion masks")
        gb = "dce" if kb == "dce_baseline" else "mr_baseline"
        gf = "dce_followup" if kf == "dce_followup" else "mr_followup"
        for s, grid, target in ((sb, gb, base), (sf, gf, fu)):
            if grid in run.grids:
                ref_img, reg, _ = run.grids[grid]
            else:
                try:
                    img = run.read_image(s, modality="MR", dtype=np.float32)
                    ref_img = _as_3d(img)
                    reg = run.regions(s, img, grid)
                except Exception as exc:
                    raise _attach(exc, getattr(exc, "_tq_file", s.files[0]))
            for lid, m in reg.lesions.items():
                target[lid] = response.longest_axial_diameter(m, ref_img.spacing_mm)
        for lid in base:
            if lid not in fu:
                fu[lid] = 0.0  # a follow-up segmentation without this lesion: it disappeared
                run.note(lid, "no follow-up segment for this lesion: taken as disappeared (0 mm)")
        run.settings["response"] = {"criteria": crit, "measure": "longest axial diameter from the masks"}
    new = [lid for lid in fu if lid not in base]
    rows, patient = grade(crit, base, fu, reference=ref, new_lesions=bool(new))
    run.merge_rows(rows, "response")
    if new:
        run.warnings.append(f"{run.name}: lesion(s) {', '.join(new)} only at follow-up (new lesions: the "
                            "patient-level response is progression)")
        for lid in new:
            run.note(lid, "new at follow-up: no baseline segment")
    run.patient_row.update(patient)


# ====================================================================== outputs
def _write_outputs(run: _Run) -> None:
    from ..io import write_nifti
    from ..provenance import provenance

    maps_dir = run.out / "maps"
    masks_dir = run.out / "masks"
    ids = sorted(run.rows, key=_sort_key)
    lesion_label = {lid: i + 1 for i, lid in enumerate(ids)}
    ref_base = 10 if len(ids) < 10 else 10 * math.ceil((len(ids) + 1) / 10)
    for name, (img, grid, session, uid) in sorted(run.maps.items()):
        side = {"Quantity": _MAP_QUANTITY.get(name.replace("_followup", ""), name), "Units": img.units,
                "SourceSeriesUID": uid, "Session": session, "Grid": grid, "Patient": run.name,
                "Provenance": provenance(settings=run.settings.get(_map_step(name), {}), units={name: img.units},
                                         command="theraquant.pipeline.process_patient")}
        maps_dir.mkdir(parents=True, exist_ok=True)
        dtype = np.uint8 if name == "hypoxic" else np.float32
        run.written.append(write_nifti(img, maps_dir / f"{name}.nii.gz", sidecar=side, dtype=dtype))
    for grid, (ref, reg, uid) in sorted(run.grids.items()):
        lab = np.zeros(ref.shape, np.int16)
        labels: dict[str, str] = {}
        for kind, off in _REF_LABELS.items():
            m = getattr(reg, kind)
            if m is not None and m.any():
                lab[m] = ref_base + off
                labels[str(ref_base + off)] = reg.sources.get(kind, kind)
        for lid, m in reg.lesions.items():
            if m.any():
                lab[m] = lesion_label.get(lid, 0)
                labels[str(lesion_label[lid])] = reg.sources.get(f"lesion {lid}", f"lesion {lid}")
        masks_dir.mkdir(parents=True, exist_ok=True)
        side = {"labels": labels, "Grid": grid, "SourceSeriesUID": uid, "Patient": run.name}
        run.written.append(write_nifti(Image(lab, ref.affine), masks_dir / f"{grid}.nii.gz", sidecar=side,
                                       dtype=np.int16))


def _map_step(name: str) -> str:
    """The settings entry (step) that made a map."""
    base = name[: -len("_followup")] if name.endswith("_followup") else name
    if base in DCE_UNITS:
        return "dce_followup" if name.endswith("_followup") else "dce"
    if name in ("suv_fmiso", "fmiso_tbp", "hypoxic"):
        return "fmiso"
    if name in ("activity_y90", "dose_gy"):
        return "dose"
    return "response"


def _histograms(run: _Run) -> None:
    for name, (img, grid, session, uid) in run.maps.items():
        if name in _HIST_SKIP:
            continue
        _, reg, _ = run.grids[grid]
        for lid, m in reg.lesions.items():
            r = run.row(lid)
            v = np.asarray(img.array, float)[m]
            v = v[np.isfinite(v)]
            if v.size:
                r[f"{name}_mean"] = float(v.mean())
                r[f"{name}_p25"], r[f"{name}_p75"] = (float(x) for x in np.percentile(v, [25, 75]))
            else:
                r[f"{name}_mean"] = r[f"{name}_p25"] = r[f"{name}_p75"] = float("nan")


def _volumes(run: _Run) -> None:
    order = ("dce", "mr_baseline", "fmiso", "fdg_baseline", "y90", "lu177")
    for lid in run.rows:
        for grid in order:
            if grid in run.grids:
                ref, reg, _ = run.grids[grid]
                m = reg.lesions.get(lid)
                if m is not None and m.any():
                    run.rows[lid]["volume_ml"] = float(m.sum()) * ref.voxel_volume_ml
                    break


def _change(run: _Run) -> None:
    for lid, r in run.rows.items():
        for k in _DCE_CHANGE:
            b, f = float(r.get(k, np.nan)), float(r.get(f"{k}_followup", np.nan))
            r[f"{k}_change_pct"] = (100.0 * (f - b) / b if np.isfinite(b) and np.isfinite(f) and b != 0
                                    else float("nan"))


def _tables(run: _Run) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    ids = sorted(run.rows, key=_sort_key)
    recs = []
    for lid in ids:
        r = {"patient": run.name, "lesion": lid}
        for c in LESION_COLUMNS[2:]:
            r[c] = run.rows[lid].get(c, np.nan)
        for c, v in run.rows[lid].items():
            if c not in r:
                r[c] = v
        r["notes"] = "; ".join(run.notes.get(lid, []))
        recs.append(r)
    cols = list(LESION_COLUMNS) + sorted({c for r in recs for c in r} - set(LESION_COLUMNS) - {"notes"}) + ["notes"]
    lesions = pd.DataFrame(recs, columns=cols)
    for c in ("response", "response_rule", "response_criteria", "response_measure", "response_unit", "dce_model",
              "dce_model_followup"):
        if c in lesions:
            lesions[c] = lesions[c].astype(object).where(lesions[c].notna(), "")
    lesions["hypoxic"] = pd.array([None if (v is None or (isinstance(v, float) and math.isnan(v))) else bool(v)
                                   for v in lesions["hypoxic"]], dtype="boolean")
    lesions["responder"] = pd.to_numeric(lesions["responder"], errors="coerce").astype(float)
    crecs = []
    for c in run.curves:
        t = np.asarray(c["t_s"], float)
        v = np.asarray(c["value_mM"], float)
        crecs.append(pd.DataFrame({"patient": run.name, "lesion": c["lesion"], "session": c["session"],
                                   "kind": c["kind"], "t_s": t, "value_mM": v}))
    curves = pd.concat(crecs, ignore_index=True) if crecs else pd.DataFrame(columns=list(CURVE_COLUMNS))
    drecs = [pd.DataFrame({"patient": run.name, "lesion": d["lesion"], "dose_gy": np.asarray(d["dose_gy"], float),
                           "volume_pct": np.asarray(d["volume_pct"], float)}) for d in run.dvh]
    dvh = pd.concat(drecs, ignore_index=True) if drecs else pd.DataFrame(columns=list(DVH_COLUMNS))
    return lesions, curves, dvh


def process_patient(patient: "PatientStudy", config: "StudyConfig", out_dir: str | Path, *,
                    study_dir: str | Path | None = None) -> PatientOutcome:
    """Compute one patient's lesion biomarkers, response and dose, and write its maps and masks.

    Parameters
    ----------
    patient : PatientStudy
        The discovered patient (:func:`theraquant.pipeline.discover_study`).
    config : StudyConfig
        The study's settings (study.yaml after defaults).
    out_dir : str or Path
        The RESULTS folder; maps go to ``out_dir/patients/<pseudonym>/maps/``, label images to
        ``.../masks/`` (docs/results-layout.md).
    study_dir : str or Path, optional
        The study folder, so that :class:`Failure` files are relative to it (default: the folder
        holding all the patient's files).

    Returns
    -------
    PatientOutcome
        Lesion rows (issue #10 columns; CAPLEX units for DCE: Ktrans, kep 1/min, ve, vp mL/mL,
        iaugc60 mM s; t_bp, t_m dimensionless; doses Gy; volume mL), the patient row, DCE curves
        (mM), DVH rows, failures and warnings.

    Raises
    ------
    TheraquantError
        Only when nothing at all could be computed for the patient (every step failed); the
        message lists each step's failure.

    Notes
    -----
    Per step (each fails alone): DCE at baseline and follow-up (T10 from VFA, Deoni 2003, else the
    defaults; measured AIF from the aorta, else blood pool, plasma = blood / (1 - Hct); portal input
    from the portal vein; extended Tofts, or the dual-input extended Tofts of Madym with a portal
    vein; lesion medians); FMISO T/BP and T/M (Rasey 1996; threshold fmiso.threshold, 1.29 in the
    radioembolization study of Soydal 2025); 90Y local-deposition (or VSV) dose of a permanent
    implant from activity taken back to the administration time, or 177Lu voxel TAC fits (EANM
    2022); response per lesion by PERCIST 1.0 (Wahl 2009), RECIST 1.1 (Eisenhauer 2009) or
    mRECIST (Lencioni 2010).
    """
    out_dir = Path(out_dir)
    run = _Run(patient, config, out_dir, Path(study_dir) if study_dir is not None else None)
    tp = patient.timepoints
    if "dce_baseline" in tp:
        run.step("dce_baseline", lambda: _dce_step(run, "dce_baseline", "", "baseline", "dce"))
    if "dce_followup" in tp:
        run.step("dce_followup", lambda: _dce_step(run, "dce_followup", "_followup", "followup", "dce_followup"))
    if "fmiso_baseline" in tp:
        run.step("fmiso", lambda: _fmiso_step(run))
    if "y90_post" in tp or patient.lu177:
        run.step("dose", lambda: _dose_step(run))
    run.step("response", lambda: _response_step(run))
    for pr in getattr(patient, "problems", ()):
        run.warnings.append(pr)
    if not run.rows:
        msgs = "; ".join(f"{f.step}: {f.message}" for f in run.failures) or "no lesion segment in any series"
        raise TheraquantError(f"patient {run.name}: nothing could be computed ({msgs})", argument="patient")
    run.finish_notes()
    _change(run)
    _volumes(run)
    _histograms(run)
    try:
        _write_outputs(run)
    except Exception as exc:
        run.fail("write", exc, None, affects=[])
    lesions, curves, dvh = _tables(run)
    status = "ok" if not run.failures else "partial"
    prow = {"patient": run.name, "n_lesions": int(len(lesions)),
            "therapy_type": getattr(patient, "therapy_type", None) or getattr(config.therapy, "type", None) or "",
            "therapy_date": patient.therapy_date.isoformat() if patient.therapy_date else "",
            "response": run.patient_row.get("response", ""), "response_rule": run.patient_row.get("response_rule", ""),
            "dose_normal_liver_gy": run.patient_row.get("dose_normal_liver_gy", np.nan),
            "tumour_to_normal_ratio": run.patient_row.get("tumour_to_normal_ratio", np.nan),
            "status": status,
            "notes": "; ".join(run.patient_notes + [f"{f.step} failed: {f.message}" for f in run.failures])}
    return PatientOutcome(pseudonym=run.name, lesions=lesions, patient_row=prow, curves=curves, dvh=dvh,
                          failures=tuple(run.failures), warnings=tuple(run.warnings), written=tuple(run.written),
                          settings=run.settings)
