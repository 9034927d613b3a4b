"""The phantom studies: TARE (hypoxia) and PRRT (perfusion) cohorts written as real DICOM.

Each patient is an analytic anatomy (:mod:`._anatomy`) imaged by several modalities on their
own grids in one frame of reference; each lesion's biomarkers are drawn, its images built from
them, its truth measured on the noise-free images, and its response drawn from the biological
model (:mod:`._response_model`) with those true values. ``MODEL.md`` beside this file states
every definition.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
from numpy.typing import NDArray

from ..errors import TheraquantError
from ..image import Image
from ._anatomy import Anatomy, Lesion, blur, grid, make_anatomy
from ._headers import TRACERS, VENDORS, da, pet_headers
from ._response_model import (PRRT_MODEL, TARE_MODEL, TBP_CUTOFF, draw_categories, _biomarkers)

__all__ = ["PhantomStudy", "write_tare_study", "write_prrt_study", "TRUTH_COLUMNS"]


#: Columns of :attr:`PhantomStudy.truth`.
TRUTH_COLUMNS = ("patient_id", "lesion", "biomarker", "unit", "value")

# ---- imaging settings (small images: the whole demo must run in minutes on 2 cores)
MR_SHAPE, MR_SPACING = (10, 64, 64), (8.0, 4.5, 4.5)
PET_SHAPE, PET_SPACING = (24, 64, 64), (4.5, 4.5, 4.5)
SPECT_SHAPE, SPECT_SPACING = (22, 60, 60), (4.7952, 4.7952, 4.7952)  # the 177Lu VSV kernel's voxel
PET_FWHM_MM, Y90_FWHM_MM, SPECT_FWHM_MM = 7.0, 9.0, 11.0
HCT = 0.45
R1 = 4.5            # 1/(s mM), the pipeline's default relaxivity
TR_S = 0.004
DCE_FLIP = 15.0
VFA_FLIPS = (3.0, 15.0)
MR_NOISE = 4.0      # signal units, Gaussian (SNR ~70-100 on the pre-contrast 15 deg signal)
BOLUS_DELAY_S = 30.0  # AIF delay: the 5 baseline frames (0-24 s) are all pre-contrast
PET_NOISE = 0.03    # relative Gaussian noise of PET / SPECT voxels
Y90_NOISE = 0.08
#: 90Y local deposition: Gy per (Bq/mL) of permanently implanted activity (k = 49.67 Gy kg/GBq,
#: density 1.04 g/mL): D = k A / m.
Y90_GY_PER_BQML = 49.67e-9 / 1.04e-3
LIVER_DCE = {"Ktrans": 0.60, "ve": 0.25, "vp": 0.12, "fa": 0.25}
BODY_DCE = {"Ktrans": 0.05, "ve": 0.20, "vp": 0.02}
T10 = {"body": 0.90, "liver": 0.60, "blood": 1.50}
M0 = {"body": 10000.0, "liver": 9000.0, "lesion": 11000.0, "blood": 12000.0}  # SPGR at TR 4 ms: ~30-40x lower signal
UNITS = {"ktrans": "1/min", "kep": "1/min", "ve": "mL/mL", "vp": "mL/mL", "fa": "1", "t_bp": "1", "t_m": "1",
         "hypoxic": "1", "hypoxic_fraction": "1", "suvmax_fmiso": "g/mL", "dmean_gy": "Gy", "d70_gy": "Gy",
         "v100_pct": "%", "volume_ml": "mL", "response": "", "responder": "1", "ktrans_followup": "1/min",
         "kep_followup": "1/min", "ve_followup": "mL/mL", "vp_followup": "mL/mL", "fa_followup": "1",
         "ktrans_change_pct": "%", "response_baseline": "g/mL", "response_followup": "g/mL",
         "response_change_pct": "%", "kep_change_pct": "%", "ve_change_pct": "%",
         "vp_change_pct": "%", "dose_normal_liver_gy": "Gy"}
RESPONSE_PERCIST = {"CR": "CMR", "PR": "PMR", "SD": "SMD", "PD": "PMD"}


@dataclass(frozen=True)
class PhantomStudy:
    """A phantom study written to disk and its ground truth.

    Attributes
    ----------
    study_dir : Path
        The study folder (DICOM in nested folders).
    design : str
        ``"tare"`` or ``"prrt"``.
    truth : pandas.DataFrame
        One row per lesion and biomarker: ``patient_id``, ``lesion`` (the SEG's ``<id>``),
        ``biomarker`` (a lesions.csv column name), ``unit``, ``value`` (float; the response
        category is in ``response`` rows as text).
    patients : pandas.DataFrame
        Per patient: ``patient_id``, ``therapy_date``, administered activity, vendors, folders.
    """

    study_dir: Path
    design: str
    truth: Any
    patients: Any
    settings: dict[str, Any] = field(default_factory=dict)

    def write_truth(self, path: str | Path) -> Path:
        """Write :attr:`truth` as CSV (or Parquet by suffix); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        from ..io import write_table

        if path.suffix.lower() in (".parquet", ".csv"):
            return write_table(self.truth, path)  # atomic
        self.truth.to_csv(path, index=False)
        return path

    def value(self, patient_id: str, lesion: str, biomarker: str) -> Any:
        """One truth value."""
        t = self.truth
        row = t[(t.patient_id == patient_id) & (t.lesion == str(lesion)) & (t.biomarker == biomarker)]
        if row.empty:
            raise TheraquantError(f"no truth for patient {patient_id!r}, lesion {lesion!r}, biomarker {biomarker!r}")
        return row.value.iloc[0]


# ----------------------------------------------------------------------------- helpers
class _Writer:
    """Writes one patient's series into varied folders and names; collects the files of each series."""

    def __init__(self, root: Path, patient_id: str, index: int, identity: dict[str, Any]):
        self.root = root
        self.patient_id = patient_id
        self.index = index
        self.identity = identity
        self.for_uid = _uid()
        self.series_number = 0
        self.study_uids: dict[str, str] = {}
        # three folder/name styles, rotating over patients
        self.style = index % 3

    def folder(self, session: date, label: str) -> Path:
        if self.style == 0:
            return self.root / self.patient_id / session.strftime("%Y%m%d") / label
        if self.style == 1:
            return self.root / f"export_{self.index:02d}" / "DICOM" / f"S{self.series_number:04d}"
        return self.root / "incoming" / f"{self.patient_id.lower()}_{session.isoformat()}_{label}"

    def name(self) -> str | Callable[[int, int, int], str]:
        if self.style == 0:
            return "IM{index:05d}.dcm"
        if self.style == 1:
            return "{index:06d}"  # no extension
        return lambda i, z, t: f"slice_{z:02d}_{t:03d}.DCM" if t else f"{i + 1}"

    def headers(self, session: date, description: str) -> dict[str, Any]:
        key = session.isoformat()
        if key not in self.study_uids:
            self.study_uids[key] = _uid()
        self.series_number += 1
        return {**self.identity, "StudyInstanceUID": self.study_uids[key], "FrameOfReferenceUID": self.for_uid,
                "SeriesInstanceUID": _uid(), "StudyDate": da(_at(session, 8)), "StudyTime": "080000",
                "StudyDescription": "theraquant phantom", "SeriesDescription": description,
                "AccessionNumber": f"A{self.index:03d}{session.strftime('%m%d')}", "StudyID": key.replace("-", "")}


def _uid() -> str:
    from pydicom.uid import generate_uid

    return generate_uid()


def _at(day: date, hour: float) -> datetime:
    return datetime.combine(day, time()) + timedelta(hours=hour)


def _write(image: Image, w: _Writer, session: date, label: str, description: str, modality: str,
           extra: dict[Any, Any], start: datetime) -> list[Path]:
    from ..io import write_dicom_series

    h = w.headers(session, description)
    h.update(extra)
    return write_dicom_series(image, w.folder(session, label), modality=modality, headers=h,
                              series_number=w.series_number, file_name=w.name(), start=start)


#: The source attributes a SEG needs (patient, study, series, frame of reference, slice geometry).
_SEG_SOURCE_TAGS = ["PatientID", "PatientName", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyID",
                    "StudyDate", "StudyTime", "ReferringPhysicianName", "AccessionNumber", "SOPClassUID",
                    "SOPInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID", "ImagePositionPatient",
                    "ImageOrientationPatient", "PixelSpacing", "SliceThickness", "SpacingBetweenSlices", "Rows",
                    "Columns", "Modality", "SeriesNumber", "InstanceNumber", "BitsAllocated",
                    "PhotometricInterpretation", "SamplesPerPixel"]


def _write_seg(masks: dict[str, NDArray[np.bool_]], ref: Image, files: list[Path], path: Path, description: str) -> None:
    """A SEG referencing the series of ``files`` (read back: only the attributes a SEG needs)."""
    import pydicom

    from ..io import write_seg

    # one dataset per slice position (files are slice-major: the first frame of each slice)
    step = len(files) // ref.shape[0]
    source = [pydicom.dcmread(f, specific_tags=_SEG_SOURCE_TAGS) for f in files[::step]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write_seg({k: ref.with_array(v) for k, v in masks.items()}, source, path, series_description=description)


def _dce_frames() -> NDArray[np.float64]:
    """Scanner-like non-uniform frame times, s: 5 baseline frames, fast bolus sampling, slow washout."""
    return np.concatenate([np.arange(0.0, 25.0, 6.0), np.arange(28.0, 92.0, 4.0), np.arange(100.0, 290.0, 15.0)])


def _dce_session(anat: Anatomy, lesion_params: dict[str, dict[str, float]], rng: np.random.Generator,
                 *, lesions: tuple[Lesion, ...] | None = None) -> dict[str, Any]:
    """DCE + VFA signal images of one session and the voxel truth maps (DCE grid)."""
    from .. import dce

    ref = grid(MR_SHAPE, MR_SPACING)
    masks = anat.masks(ref, lesions=lesions)
    t = _dce_frames()
    # inputs and tissue curves on a fine uniform grid (1 s), then sampled at the frame times
    tf = np.arange(0.0, t[-1] + 1.0, 1.0)
    sample = np.searchsorted(tf, t)
    cpf = np.asarray(dce.aif.parker(tf, delay=BOLUS_DELAY_S, hct=HCT), dtype=np.float64)
    cpvf = np.asarray(dce.aif.portal_venous(tf, cpf), dtype=np.float64)
    cp, cpv = cpf[sample], cpvf[sample]

    def sim(model: str, pars: dict[str, Any]) -> NDArray:
        return dce.simulate(tf, model, pars, cp=cpf, cp_portal=cpvf if model.startswith("dual") else None)[..., sample]
    shape = ref.shape
    truth = {k: np.full(shape, np.nan) for k in ("Ktrans", "ve", "vp", "fa")}
    t10 = np.full(shape, T10["body"])
    m0 = np.where(masks["body"], M0["body"], 0.0)
    conc = np.zeros((*shape, t.size))
    body = masks["body"] & ~masks["liver"] & ~masks["aorta"] & ~masks["portal vein"]
    les_masks = {k[7:]: v for k, v in masks.items() if k.startswith("lesion ")}
    for v in les_masks.values():
        body &= ~v
    conc[body] = sim("etofts", BODY_DCE)[None, :]
    liv = masks["liver"]
    conc[liv] = sim("dual_input_etofts", LIVER_DCE)[None, :]
    for k, val in LIVER_DCE.items():
        truth[k][liv] = val
    t10[liv], m0[liv] = T10["liver"], M0["liver"]
    x, y, z = _world_b(ref)
    for lid, m in les_masks.items():
        p = lesion_params[lid]
        les = next(l for l in (lesions or anat.lesions) if l.lesion_id == lid)
        # rim enhancement: Ktrans from 0.8x (centre) to 1.2x (edge) of the lesion value
        rr = np.sqrt((x - les.center[0]) ** 2 + (y - les.center[1]) ** 2 + (z - les.center[2]) ** 2)[m]
        kt = p["ktrans"] * (0.8 + 0.4 * np.clip(rr / max(les.radius_mm, 1e-6), 0, 1))
        pars = {"Ktrans": kt, "ve": np.full(kt.size, p["ve"]), "vp": np.full(kt.size, p["vp"]),
                "fa": np.full(kt.size, p["fa"])}
        conc[m] = sim("dual_input_etofts", pars)
        for k in pars:
            truth[k][m] = pars[k]
        t10[m], m0[m] = p["t10"], M0["lesion"]
    for name, curve in (("aorta", cp), ("portal vein", cpv)):
        conc[masks[name]] = curve * (1.0 - HCT)
        t10[masks[name]], m0[masks[name]] = T10["blood"], M0["blood"]
    sig = dce.concentration_to_signal(conc, t10=t10, r1=R1, tr=TR_S,
                                      flip_angle=DCE_FLIP, m0=m0)
    sig = np.abs(sig + rng.normal(0.0, MR_NOISE, sig.shape))
    vfa = []
    for fa in VFA_FLIPS:
        s = dce.spgr_signal(m0, 1.0 / t10, TR_S, fa)
        vfa.append(np.abs(s + rng.normal(0.0, MR_NOISE, s.shape)))
    truth["kep"] = truth["Ktrans"] / truth["ve"]
    return {"ref": ref, "masks": masks, "t": t, "signal": sig, "vfa": vfa, "truth": truth, "t10": t10}


def _world_b(img: Image) -> tuple[NDArray, NDArray, NDArray]:
    from ._anatomy import world

    x, y, z = world(img)
    return (np.broadcast_to(x, img.shape), np.broadcast_to(y, img.shape), np.broadcast_to(z, img.shape))


def _write_mr_session(w: _Writer, ses: dict[str, Any], day: date, tag: str) -> dict[str, Any]:
    """Write the VFA series (one per flip angle) and the DCE series of a session; returns file lists."""
    ref = ses["ref"]
    out: dict[str, Any] = {}
    for i, (fa, s) in enumerate(zip(VFA_FLIPS, ses["vfa"])):
        out[f"vfa{i}"] = _write(ref.with_array(s), w, day, f"{tag}_vfa_{int(fa)}", f"VFA T1 FA{fa:g}", "MR",
                                {"FlipAngle": fa, "RepetitionTime": TR_S * 1000.0, "EchoTime": 1.2,
                                 "MagneticFieldStrength": 1.5, "ScanningSequence": "GR",
                                 "SequenceVariant": "SP", "ScanOptions": "", "MRAcquisitionType": "3D"},
                                _at(day, 9.0 + 0.02 * i))
    img = Image(ses["signal"], ref.affine, frame_times_s=ses["t"])
    out["dce"] = _write(img, w, day, f"{tag}_dce", "DCE liver dynamic", "MR",
                        {"FlipAngle": DCE_FLIP, "RepetitionTime": TR_S * 1000.0, "EchoTime": 1.2,
                         "MagneticFieldStrength": 1.5, "ScanningSequence": "GR", "SequenceVariant": "SP",
                         "ScanOptions": "", "MRAcquisitionType": "3D"}, _at(day, 9.25))
    return out


def _nearest(mask: NDArray[np.bool_], src: Image, dst: Image) -> NDArray[np.bool_]:
    """``mask`` (on ``src``) on ``dst``'s grid by nearest neighbour in physical space (outside: False)."""
    idx = np.indices(dst.shape).reshape(3, -1)
    world = dst.affine @ np.vstack([idx, np.ones(idx.shape[1])])
    ijk = np.rint((np.linalg.inv(src.affine) @ world)[:3]).astype(int)
    ok = np.all((ijk >= 0) & (ijk < np.asarray(src.shape)[:, None]), axis=0)
    out = np.zeros(idx.shape[1], bool)
    out[ok] = mask[ijk[0, ok], ijk[1, ok], ijk[2, ok]]
    return out.reshape(dst.shape)


def _median_in(a: NDArray, m: NDArray) -> float:
    v = a[m]
    v = v[np.isfinite(v)]
    return float(np.median(v)) if v.size else math.nan


def _patient_identity(rng: np.random.Generator, prefix: str, i: int) -> tuple[str, dict[str, Any], float, float]:
    pid = f"{prefix}-{i + 1:03d}"
    sex = "F" if rng.random() < 0.4 else "M"
    weight = round(float(rng.uniform(55, 95)), 1)
    height = round(float(rng.uniform(1.58, 1.92)), 2)
    ident = {"PatientID": pid, "PatientName": f"Phantom^{prefix.title()}{i + 1:03d}",
             "PatientBirthDate": f"19{int(rng.integers(40, 75))}0{int(rng.integers(1, 9))}15", "PatientSex": sex,
             "PatientWeight": weight, "PatientSize": height, "InstitutionName": "theraquant phantom hospital"}
    return pid, ident, weight, height


def _suv_to_bqml(weight_kg: float, injected_bq: float, tracer: str, uptake_s: float) -> float:
    lam = math.log(2.0) / TRACERS[tracer]["half_life_s"]
    return injected_bq * math.exp(-lam * uptake_s) / (weight_kg * 1000.0)


def _write_pet(w: _Writer, day: date, label: str, desc: str, suv_or_bq: NDArray, ref: Image, *, vendor: str,
               tracer: str, injected_bq: float, injection: datetime, scan: datetime, weight: float, height: float,
               is_suv: bool, rng: np.random.Generator, noise: float, modality: str = "PT") -> list[Path]:
    bq = suv_or_bq * (_suv_to_bqml(weight, injected_bq, tracer, (scan - injection).total_seconds()) if is_suv else 1.0)
    bq = np.clip(bq * (1.0 + noise * rng.standard_normal(bq.shape)), 0.0, None)
    h, scale = pet_headers(vendor, tracer, injected_bq=injected_bq, injection=injection, scan_start=scan,
                           weight_kg=weight, height_m=height, modality=modality)
    return _write(ref.with_array(bq * scale), w, day, label, desc, modality, h, scan)


def _row(rows: list, pid: str, lesion: str, name: str, value: Any, unit: str | None = None) -> None:
    rows.append((pid, str(lesion), name, UNITS.get(name, "") if unit is None else unit, value))


def _solve_uptake(build: Callable[[NDArray], NDArray], measure: Callable[[NDArray], NDArray], target: NDArray,
                  start: NDArray, n_iter: int = 6) -> NDArray:
    """Fixed-point: scale each lesion's uptake until the measured value (after blur) meets its target."""
    u = np.asarray(start, dtype=np.float64).copy()
    for _ in range(n_iter):
        got = measure(build(u))
        u = u * target / np.maximum(got, 1e-12)
    return u


# ----------------------------------------------------------------------------- TARE
def _tare_patient(root: Path, i: int, seed: int) -> tuple[list[tuple], dict[str, Any]]:
    """Write one TARE patient; returns its truth rows and its patient row."""
    from .. import dosimetry, pet

    rng = np.random.default_rng([seed, i])
    rows: list[tuple] = []
    pid, ident, weight, height = _patient_identity(rng, "TARE", i)
    n_les = int(rng.integers(1, 5))
    anat = make_anatomy(rng, n_les)
    n_les = len(anat.lesions)
    lids = [l.lesion_id for l in anat.lesions]
    therapy = date(2026, 1, 12) + timedelta(days=int(7 * i + rng.integers(0, 4)))
    w = _Writer(root, pid, i, ident)
    # biomarkers from the calibrated joint distribution (clipped to what the images can show)
    d_t, tbp_t, k_t = _biomarkers(TARE_MODEL, rng.standard_normal((n_les, 3)))
    d_t, tbp_t, k_t = np.clip(d_t, 20.0, 400.0), np.clip(tbp_t, 0.95, 2.6), np.clip(k_t, 0.03, 0.8)
    params = {lid: {"ktrans": float(k_t[j]), "ve": float(rng.uniform(0.2, 0.45)),
                    "vp": float(np.clip(rng.lognormal(math.log(0.04), 0.4), 0.01, 0.12)),
                    "fa": float(rng.uniform(0.6, 0.9)), "t10": float(rng.uniform(0.9, 1.3))}
              for j, lid in enumerate(lids)}
    # ---- baseline MR (therapy - 14 d)
    d_mr = therapy - timedelta(days=14)
    ses = _dce_session(anat, params, rng)
    mr = _write_mr_session(w, ses, d_mr, "mr")
    m = ses["masks"]
    seg_masks = {f"lesion {lid}": m[f"lesion {lid}"] for lid in lids}
    seg_masks.update({"liver": m["liver"], "aorta": m["aorta"], "portal vein": m["portal vein"]})
    _write_seg(seg_masks, ses["ref"], mr["dce"], w.folder(d_mr, "mr_dce") / "seg_dce.dcm", "masks DCE")
    vox_ml = ses["ref"].voxel_volume_ml
    for lid in lids:
        lm = m[f"lesion {lid}"]
        for name, key in (("ktrans", "Ktrans"), ("kep", "kep"), ("ve", "ve"), ("vp", "vp"), ("fa", "fa")):
            _row(rows, pid, lid, name, _median_in(ses["truth"][key], lm))
        _row(rows, pid, lid, "volume_ml", float(lm.sum() * vox_ml))
    # ---- FMISO PET (therapy - 10 d), SUV: body 0.8, muscle 0.95, liver 1.0, blood 1.2
    vendor = VENDORS[i % len(VENDORS)]
    d_fm = therapy - timedelta(days=10)
    pref = grid(PET_SHAPE, PET_SPACING, shift_mm=(2.0, -3.0, 1.5))
    pm = anat.masks(pref)
    base = (0.8 * pm["body"] + 0.15 * (pm["muscle"]) + 0.2 * pm["liver"]
            + 0.4 * (pm["aorta"] | pm["portal vein"]))
    les_pm = [pm[f"lesion {lid}"] for lid in lids]

    def fm_build(u: NDArray) -> NDArray:
        img = base.astype(np.float64).copy()
        for lm_, uu in zip(les_pm, u):
            img[lm_] = uu
        return blur(img, PET_SPACING, PET_FWHM_MM)

    def fm_measure(b: NDArray) -> NDArray:
        bp = b[pm["blood pool"]].mean()
        return np.asarray([b[lm_].max() / bp for lm_ in les_pm])

    u = _solve_uptake(fm_build, fm_measure, tbp_t, 1.2 * tbp_t)
    fm = fm_build(u)
    bp_mean, mu_mean = fm[pm["blood pool"]].mean(), fm[pm["muscle"]].mean()
    for j, lid in enumerate(lids):
        lm = les_pm[j]
        _row(rows, pid, lid, "t_bp", float(fm[lm].max() / bp_mean))
        _row(rows, pid, lid, "t_m", float(fm[lm].max() / mu_mean))
        _row(rows, pid, lid, "suvmax_fmiso", float(fm[lm].max()))
        _row(rows, pid, lid, "hypoxic_fraction", float((fm[lm] / bp_mean > TBP_CUTOFF).mean()))
        _row(rows, pid, lid, "hypoxic", float(fm[lm].max() / bp_mean > TBP_CUTOFF))
    inj = _at(d_fm, 8.0)
    fm_files = _write_pet(w, d_fm, "pet_fmiso", "PET FMISO static 2h", fm, pref, vendor=vendor, tracer="fmiso",
                          injected_bq=float(rng.uniform(330e6, 400e6)), injection=inj, scan=_at(d_fm, 10.2),
                          weight=weight, height=height, is_suv=True, rng=rng, noise=PET_NOISE)
    fm_seg = {f"lesion {lid}": pm[f"lesion {lid}"] for lid in lids}
    fm_seg.update({"blood pool": pm["blood pool"], "muscle": pm["muscle"], "liver": pm["liver"]})
    _write_seg(fm_seg, pref, fm_files, w.folder(d_fm, "pet_fmiso") / "seg_fmiso", "masks FMISO")
    # ---- 90Y PET on the therapy day (partition model; truth on the noise-free blurred image)
    yref = grid(PET_SHAPE, PET_SPACING, shift_mm=(-1.0, 2.0, -2.0))
    ym = anat.masks(yref)
    les_ym = [ym[f"lesion {lid}"] for lid in lids]
    liver_all = ym["liver"] | ym["portal vein"] | np.any(les_ym, axis=0)
    normal = ym["liver"] | ym["portal vein"]
    v_t = [float(lm_.sum() * yref.voxel_volume_ml) for lm_ in les_ym]
    m_t = np.asarray(v_t) * 1.04e-3
    m_n = float(normal.sum() * yref.voxel_volume_ml) * 1.04e-3
    d_normal = float(rng.uniform(25.0, 45.0))
    # lesion concentrations (Bq/mL) so that the blurred lesion mean dose equals the drawn Dmean;
    # normal liver from the partition model (tumour-to-normal ratio of the drawn doses)
    onehots = [normal.astype(np.float64)] + [lm_.astype(np.float64) for lm_ in les_ym]
    blurred = [blur(o, PET_SPACING, Y90_FWHM_MM) for o in onehots]
    c_n = d_normal / Y90_GY_PER_BQML
    amat = np.asarray([[b[lm_].mean() for b in blurred[1:]] for lm_ in les_ym])
    rhs = d_t / Y90_GY_PER_BQML - c_n * np.asarray([blurred[0][lm_].mean() for lm_ in les_ym])
    c_t = np.linalg.solve(amat, rhs)
    c_t = np.maximum(c_t, c_n)
    tn = float(np.sum(c_t * m_t) / (np.sum(m_t) * c_n))
    lsf = float(rng.uniform(0.03, 0.10))
    plan = dosimetry.partition_model(tumour_mass_kg=float(np.sum(m_t)), normal_liver_mass_kg=m_n, tn_ratio=tn,
                                     lung_shunt_fraction=lsf, tumour_dose_gy=float(np.sum(c_t * m_t) /
                                                                                   np.sum(m_t) * Y90_GY_PER_BQML))
    act = np.zeros(yref.shape)
    act[normal] = plan["D_normal_liver_Gy"] / Y90_GY_PER_BQML
    for lm_, c in zip(les_ym, c_t):
        act[lm_] = c
    act_b = blur(act, PET_SPACING, Y90_FWHM_MM)
    dose_b = act_b * Y90_GY_PER_BQML
    for j, lid in enumerate(lids):
        dv = dose_b[les_ym[j]]
        _row(rows, pid, lid, "dmean_gy", float(dv.mean()))
        _row(rows, pid, lid, "d70_gy", float(np.percentile(dv, 30.0)))
        _row(rows, pid, lid, "v100_pct", float(100.0 * (dv >= 100.0).mean()))
    admin = _at(therapy, 10.5)
    y90_scan = _at(therapy, 15.0)
    lam_y = math.log(2.0) / TRACERS["y90"]["half_life_s"]
    act_scan = act_b * math.exp(-lam_y * (y90_scan - admin).total_seconds())
    activity_bq = float(plan["activity_GBq"]) * 1e9
    y_files = _write_pet(w, therapy, "pet_y90", "PET 90Y post SIRT", act_scan, yref, vendor="siemens",
                         tracer="y90", injected_bq=activity_bq, injection=admin, scan=y90_scan, weight=weight,
                         height=height, is_suv=False, rng=rng, noise=Y90_NOISE)
    y_seg = {f"lesion {lid}": ym[f"lesion {lid}"] for lid in lids}
    y_seg["liver"] = ym["liver"]
    _write_seg(y_seg, yref, y_files, w.folder(therapy, "pet_y90") / "seg_y90.dcm", "masks 90Y")
    # ---- response drawn from the model with the true values
    tv = {(r[1], r[2]): r[4] for r in rows if r[0] == pid}
    probs = TARE_MODEL.probabilities([tv[(l, "dmean_gy")] for l in lids], [tv[(l, "t_bp")] for l in lids],
                                     [tv[(l, "ktrans")] for l in lids])
    cats = draw_categories(probs, rng)
    # ---- FDG PET baseline (therapy - 8 d) and follow-up (therapy + 70-90 d)
    d_fb = therapy - timedelta(days=8)
    d_ff = therapy + timedelta(days=int(rng.integers(70, 91)))
    fref = grid(PET_SHAPE, PET_SPACING, shift_mm=(0.5, 1.0, -1.0))
    fmk = anat.masks(fref)
    les_f = [fmk[f"lesion {lid}"] for lid in lids]
    fbase = (0.7 * fmk["body"] + 0.2 * fmk["muscle"] + 1.5 * fmk["liver"]
             + 1.1 * (fmk["aorta"] | fmk["portal vein"]))

    def fdg_build(u: NDArray) -> NDArray:
        img = fbase.astype(np.float64).copy()
        for lm_, uu in zip(les_f, u):
            img[lm_] = uu
        return blur(img, PET_SPACING, PET_FWHM_MM)

    def fdg_peak(b: NDArray) -> NDArray:
        return np.asarray([pet.suv_peak(b, lm_, PET_SPACING) for lm_ in les_f])

    liver_mean = fdg_build(np.full(n_les, 2.2))[fmk["liver"]].mean()
    target_b = liver_mean * rng.uniform(3.2, 4.5, n_les)
    ub = _solve_uptake(fdg_build, fdg_peak, target_b, target_b * 1.5)
    fb = fdg_build(ub)
    peak_b = fdg_peak(fb)
    # PERCIST reads SULpeak (lean body mass, Janmahasatian): SUL = SUVbw x LBM / weight
    sul = pet.lean_body_mass(weight, height, ident["PatientSex"], method="janmahasatian") / weight
    ratio = {"PR": (0.42, 0.55), "SD": (0.93, 1.07), "PD": (1.45, 1.65)}
    target_f = np.asarray([peak_b[j] * rng.uniform(*ratio[c]) if c != "CR" else 0.0 for j, c in enumerate(cats)])
    uf = ub.copy()
    cr = np.asarray([c == "CR" for c in cats])
    if (~cr).any():
        idx = np.flatnonzero(~cr)

        def fdg_build_sub(us: NDArray) -> NDArray:
            full = uf.copy()
            full[idx] = us
            full[cr] = 1.1
            return fdg_build(full)

        uf[idx] = _solve_uptake(fdg_build_sub, lambda b: fdg_peak(b)[idx], target_f[idx], ub[idx] * target_f[idx]
                                / peak_b[idx])
    uf[cr] = 1.1  # complete metabolic response: the blood pool's uptake, half the liver's
    ff = fdg_build(uf)
    peak_f = fdg_peak(ff)
    for j, lid in enumerate(lids):
        _row(rows, pid, lid, "response", RESPONSE_PERCIST[cats[j]])
        _row(rows, pid, lid, "responder", float(cats[j] in ("CR", "PR")))
        _row(rows, pid, lid, "response_baseline", float(peak_b[j] * sul))
        _row(rows, pid, lid, "response_followup", float(peak_f[j] * sul))
        _row(rows, pid, lid, "response_change_pct", float(100.0 * (peak_f[j] / peak_b[j] - 1.0)))
    fdg_vendor = VENDORS[(i + 1) % len(VENDORS)]
    for day, img, tag, desc in ((d_fb, fb, "pet_fdg_bl", "PET FDG baseline"),
                                (d_ff, ff, "pet_fdg_fu", "PET FDG follow-up")):
        files = _write_pet(w, day, tag, desc, img, fref, vendor=fdg_vendor, tracer="fdg",
                           injected_bq=float(rng.uniform(250e6, 350e6)), injection=_at(day, 8.5),
                           scan=_at(day, 9.5), weight=weight, height=height, is_suv=True, rng=rng, noise=PET_NOISE)
        fseg = {f"lesion {lid}": fmk[f"lesion {lid}"] for lid in lids}
        fseg["liver"] = fmk["liver"]
        _write_seg(fseg, fref, files, w.folder(day, tag) / f"seg_{tag}.dcm", f"masks {desc}")
    _row(rows, pid, "", "dose_normal_liver_gy", float(dose_b[ym["liver"]].mean()))
    return rows, {"patient_id": pid, "therapy_date": therapy.isoformat(), "n_lesions": n_les,
                 "activity_gbq": float(plan["activity_GBq"]), "lung_shunt_fraction": lsf,
                 "dose_normal_liver_gy": float(dose_b[ym["liver"]].mean()), "fmiso_vendor": vendor,
                 "fdg_vendor": fdg_vendor, "weight_kg": weight, "height_m": height}


def _map_patients(fn: Callable, root: Path, n: int, seed: int, workers: int | None) -> list[Any]:
    """Run ``fn(root, i, seed)`` for every patient, in ``workers`` processes (default: 2 when n >= 4)."""
    import os

    if workers is None:
        workers = min(2, os.cpu_count() or 1) if n >= 4 else 1
    if workers <= 1:
        return [fn(root, i, seed) for i in range(n)]
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    import threading

    # fork is fastest (no re-import) but unsafe once other threads run (a Dask client, numba's
    # pool): then forkserver (workers import the package afresh)
    methods = mp.get_all_start_methods()
    method = ("fork" if threading.active_count() == 1 and "fork" in methods
              else "forkserver" if "forkserver" in methods else "spawn")
    ctx = mp.get_context(method)
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as ex:
        return list(ex.map(fn, [root] * n, range(n), [seed] * n))


def write_tare_study(study_dir: str | Path, *, n_patients: int = 12, seed: int = 2026,
                     workers: int | None = None) -> PhantomStudy:
    """Write the TARE (hypoxia) phantom study as DICOM and return its ground truth.

    Per patient: 1-4 liver lesions; baseline MR session (VFA at 3 and 15 degrees, 4-D DCE with
    non-uniform frames), FMISO PET, FDG PET at baseline and about 75 days after therapy, and 90Y
    PET (Bq/mL) on the therapy day; a SEG per series that needs masks (``lesion <id>``, ``liver``,
    ``aorta``, ``portal vein``, ``blood pool``, ``muscle``). PET series rotate over vendors' SUV
    conventions (Siemens, GE, GE ADMIN, Philips). Definitions of every truth value: MODEL.md.

    Parameters
    ----------
    study_dir : str or Path
        Output folder (created; existing files are left alone).
    n_patients : int
        Number of patients (>= 1; the demo uses 12).
    seed : int
        Seed of every draw (anatomy, biomarkers, noise, responses); patient ``i`` draws from
        ``numpy.random.default_rng([seed, i])``, so the study does not depend on ``workers``.
    workers : int, optional
        Processes writing patients in parallel (default 2 from 4 patients on, else 1).

    Returns
    -------
    PhantomStudy
    """
    return _write_study(_tare_patient, "tare", study_dir, n_patients=n_patients, seed=seed, workers=workers,
                        params={"mr_shape": MR_SHAPE, "pet_shape": PET_SHAPE, "pet_fwhm_mm": PET_FWHM_MM,
                                "y90_fwhm_mm": Y90_FWHM_MM})


def _write_study(patient_fn: Callable[[Path, int, int], tuple[list[tuple], dict[str, Any]]], design: str,
                 study_dir: str | Path, *, n_patients: int, seed: int, workers: int | None,
                 params: Mapping[str, Any]) -> PhantomStudy:
    """Write a phantom study patient by patient and gather its ground truth.

    Parameters
    ----------
    patient_fn : callable
        ``patient_fn(root, i, seed) -> (truth rows, patient row)``: writes patient ``i``.
    design : str
        The study's design (``"tare"``, ``"prrt"``).
    study_dir : str or Path
        Output folder (created; existing files are left alone).
    n_patients : int
        Number of patients (>= 1).
    seed : int
        Seed of every draw.
    workers : int or None
        Processes writing patients in parallel (see :func:`_map_patients`).
    params : mapping
        The design's parameters, recorded after ``seed`` and ``n_patients``.

    Returns
    -------
    PhantomStudy
    """
    import pandas as pd

    if not isinstance(n_patients, (int, np.integer)) or n_patients < 1:
        raise TheraquantError(f"n_patients must be a positive integer, got {n_patients!r}", argument="n_patients")
    root = Path(study_dir)
    root.mkdir(parents=True, exist_ok=True)
    rows: list[tuple] = []
    prow: list[dict[str, Any]] = []
    for r, pr in _map_patients(patient_fn, root, int(n_patients), seed, workers):
        rows += r
        prow.append(pr)
    truth = pd.DataFrame(rows, columns=list(TRUTH_COLUMNS))
    return PhantomStudy(root, design, truth, pd.DataFrame(prow),
                        {"seed": seed, "n_patients": int(n_patients), **params})


# ----------------------------------------------------------------------------- PRRT
SPECT_HOURS = (4.0, 24.0, 72.0, 168.0)
RECIST_CATEGORY = {"CR": "CR", "PR": "PR", "SD": "SD", "PD": "PD"}


def _prrt_patient(root: Path, i: int, seed: int) -> tuple[list[tuple], dict[str, Any]]:
    """Write one PRRT patient; returns its truth rows and its patient row."""
    from .. import dosimetry

    rng = np.random.default_rng([seed, i])
    rows: list[tuple] = []
    pid, ident, weight, height = _patient_identity(rng, "PRRT", i)
    n_les = int(rng.integers(1, 5))
    anat = make_anatomy(rng, n_les, radius_mm=(8.0, 12.0), gap_mm=20.0)
    n_les = len(anat.lesions)
    lids = [l.lesion_id for l in anat.lesions]
    therapy = date(2026, 2, 2) + timedelta(days=int(7 * i + rng.integers(0, 4)))
    w = _Writer(root, pid, i + 1, ident)
    k_t = np.clip(rng.lognormal(math.log(0.15), 0.5, n_les), 0.03, 0.8)
    vp_t = np.clip(rng.lognormal(math.log(0.05), 0.4, n_les), 0.01, 0.15)
    params = {lid: {"ktrans": float(k_t[j]), "ve": float(rng.uniform(0.2, 0.4)), "vp": float(vp_t[j]),
                    "fa": float(rng.uniform(0.6, 0.9)), "t10": float(rng.uniform(0.9, 1.3))}
              for j, lid in enumerate(lids)}
    # target lesion doses: better perfused lesions take up more peptide
    d_t = np.clip(30.0 * (k_t / 0.15) ** 0.4 * rng.lognormal(0.0, 0.45, n_les), 5.0, 150.0)
    # ---- baseline MR (therapy - 10 d)
    d_bl = therapy - timedelta(days=10)
    ses = _dce_session(anat, params, rng)
    mr = _write_mr_session(w, ses, d_bl, "mr_bl")
    m = ses["masks"]
    seg = {f"lesion {lid}": m[f"lesion {lid}"] for lid in lids}
    seg.update({"liver": m["liver"], "aorta": m["aorta"], "portal vein": m["portal vein"]})
    _write_seg(seg, ses["ref"], mr["dce"], w.folder(d_bl, "mr_bl_dce") / "seg_dce_baseline.dcm", "masks DCE baseline")
    vox_ml = ses["ref"].voxel_volume_ml
    base_truth: dict[str, dict[str, float]] = {}
    for lid in lids:
        lm = m[f"lesion {lid}"]
        base_truth[lid] = {}
        for name, key in (("ktrans", "Ktrans"), ("kep", "kep"), ("ve", "ve"), ("vp", "vp"), ("fa", "fa")):
            v = _median_in(ses["truth"][key], lm)
            base_truth[lid][name] = v
            _row(rows, pid, lid, name, v)
        _row(rows, pid, lid, "volume_ml", float(lm.sum() * vox_ml))
    # ---- 177Lu SPECT at 4, 24, 72, 168 h (mono-exponential per region from administration)
    sref = grid(SPECT_SHAPE, SPECT_SPACING, shift_mm=(1.5, -2.0, 2.5))
    sm = anat.masks(sref)
    # lesions on the SPECT grid as the pipeline sees them: the baseline DCE SEG's masks resampled
    # (nearest neighbour, physical coordinates) onto the SPECT grid
    les_s = [_nearest(m[f"lesion {lid}"], ses["ref"], sref) for lid in lids]
    lam_p = math.log(2.0) / TRACERS["lu177"]["half_life_s"]
    t_bio_h = {"normal": float(rng.uniform(30, 50)), "body": float(rng.uniform(10, 20))}
    lam = {"normal": lam_p + math.log(2.0) / (t_bio_h["normal"] * 3600.0),
           "body": lam_p + math.log(2.0) / (t_bio_h["body"] * 3600.0)}
    lam_les = lam_p + math.log(2.0) / (rng.uniform(60.0, 160.0, n_les) * 3600.0)
    les_union = np.any(les_s, axis=0)
    true_union = np.any([sm[f"lesion {lid}"] for lid in lids], axis=0)
    normal = (sm["liver"] | sm["portal vein"] | true_union) & ~les_union
    body = sm["body"] & ~normal & ~les_union
    vml = sref.voxel_volume_ml
    unit = np.ones((1, 1, 1))
    gy_per_bqs_ml = float(dosimetry.absorbed_dose(unit * vml, SPECT_SPACING, nuclide="Lu-177", method="ldm")[0, 0, 0])
    c_n = float(rng.uniform(3.0, 6.0)) / (gy_per_bqs_ml / lam["normal"])    # normal liver 3-6 Gy
    c_b = 0.8 / (gy_per_bqs_ml / lam["body"])                                  # body 0.8 Gy
    tia_bg = (c_n / lam["normal"]) * normal + (c_b / lam["body"]) * body
    bg_b = blur(tia_bg, SPECT_SPACING, SPECT_FWHM_MM)
    les_b = [blur(lm_.astype(np.float64), SPECT_SPACING, SPECT_FWHM_MM) for lm_ in les_s]
    amat = np.asarray([[b[lm_].mean() / lam_les[k] for k, b in enumerate(les_b)] for lm_ in les_s])
    rhs = d_t / gy_per_bqs_ml - np.asarray([bg_b[lm_].mean() for lm_ in les_s])
    c_t = np.maximum(np.linalg.solve(amat, rhs), c_n)
    tia_b = bg_b + sum(c * b / lk for c, b, lk in zip(c_t, les_b, lam_les))
    dose_b = tia_b * gy_per_bqs_ml
    for j, lid in enumerate(lids):
        dv = dose_b[les_s[j]]
        _row(rows, pid, lid, "dmean_gy", float(dv.mean()))
        _row(rows, pid, lid, "d70_gy", float(np.percentile(dv, 30.0)))
    admin = _at(therapy, 9.0)
    injected = float(rng.uniform(7.2e9, 7.6e9))
    spect_files = []
    for k, hours in enumerate(SPECT_HOURS):
        scan = admin + timedelta(hours=hours)
        act = (c_n * np.exp(-lam["normal"] * hours * 3600.0)) * normal.astype(np.float64) \
            + (c_b * np.exp(-lam["body"] * hours * 3600.0)) * body
        for lm_, c, lk in zip(les_s, c_t, lam_les):
            act = act + c * math.exp(-lk * hours * 3600.0) * lm_
        img = blur(act, SPECT_SPACING, SPECT_FWHM_MM)
        files = _write_pet(w, scan.date(), f"spect_{int(hours)}h", f"SPECT Lu-177 {int(hours)} h", img, sref,
                           vendor="siemens", tracer="lu177", injected_bq=injected, injection=admin, scan=scan,
                           weight=weight, height=height, is_suv=False, rng=rng, noise=PET_NOISE, modality="NM")
        spect_files.append(files)
    # no SEG on the SPECT: NM is a multi-frame IOD for highdicom, so its masks come from the
    # baseline DCE SEG through the shared frame of reference (registered by construction)
    # ---- response from the PRRT model with the true values; follow-up MR consistent with it
    tv = {(r[1], r[2]): r[4] for r in rows}
    probs = PRRT_MODEL.probabilities([tv[(l, "dmean_gy")] for l in lids], [tv[(l, "ktrans")] for l in lids],
                                     [tv[(l, "vp")] for l in lids])
    cats = draw_categories(probs, rng)
    from .. import response

    fu_lesions = []
    fu_params = {}
    diam: dict[str, tuple[float, float]] = {}
    mr_ref = ses["ref"]
    for les, c in zip(anat.lesions, cats):
        r0 = les.radius_mm
        r1 = {"CR": 0.0, "PR": r0 * rng.uniform(0.45, 0.55), "SD": r0,
              "PD": max(r0 * rng.uniform(1.4, 1.5), r0 + 4.0)}[c]
        # the longest axial diameter of the rasterised masks (as a reader measures it) must sit
        # clear of RECIST's boundaries: PR <= -40 %, PD >= +30 % and >= +7 mm
        d0 = response.longest_axial_diameter(m[f"lesion {les.lesion_id}"], MR_SPACING)
        for _ in range(20):
            one = anat.masks(mr_ref, lesions=(les.resized(r1),))[f"lesion {les.lesion_id}"]
            d1 = response.longest_axial_diameter(one, MR_SPACING) if r1 > 0 else 0.0
            if c == "PR" and (d1 > 0.6 * d0 or d1 == 0.0):
                r1 = r1 * 0.92 if d1 > 0 else r1 * 1.15
            elif c == "PD" and (d1 < 1.3 * d0 or d1 - d0 < 7.0):
                r1 *= 1.08
            else:
                break
        diam[les.lesion_id] = (d0, d1)
        fu_lesions.append(les.resized(r1))
        f = {"CR": 0.0, "PR": rng.uniform(0.5, 0.7), "SD": rng.uniform(0.9, 1.1), "PD": rng.uniform(1.0, 1.2)}[c]
        fu_params[les.lesion_id] = dict(params[les.lesion_id], ktrans=params[les.lesion_id]["ktrans"] * max(f, 0.1))
    d_fu = therapy + timedelta(days=int(rng.integers(56, 71)))
    fu = _dce_session(anat, fu_params, rng, lesions=tuple(fu_lesions))
    mr_fu = _write_mr_session(w, fu, d_fu, "mr_fu")
    mf = fu["masks"]
    seg = {f"lesion {lid}": mf[f"lesion {lid}"] for lid in lids}
    seg.update({"liver": mf["liver"], "aorta": mf["aorta"], "portal vein": mf["portal vein"]})
    _write_seg(seg, fu["ref"], mr_fu["dce"], w.folder(d_fu, "mr_fu_dce") / "seg_dce_followup.dcm",
               "masks DCE follow-up")
    for j, lid in enumerate(lids):
        _row(rows, pid, lid, "response", RECIST_CATEGORY[cats[j]])
        _row(rows, pid, lid, "responder", float(cats[j] in ("CR", "PR")))
        d0, d1 = diam[lid]
        _row(rows, pid, lid, "response_baseline", d0, "mm")
        _row(rows, pid, lid, "response_followup", d1, "mm")
        _row(rows, pid, lid, "response_change_pct", 100.0 * (d1 / d0 - 1.0))
        if cats[j] != "CR":
            lm = mf[f"lesion {lid}"]
            for name, key in (("ktrans", "Ktrans"), ("kep", "kep"), ("ve", "ve"), ("vp", "vp")):
                v = _median_in(fu["truth"][key], lm)
                _row(rows, pid, lid, f"{name}_followup", v)
                _row(rows, pid, lid, f"{name}_change_pct", 100.0 * (v / base_truth[lid][name] - 1.0))
    _row(rows, pid, "", "dose_normal_liver_gy", float(dose_b[sm["liver"]].mean()))
    return rows, {"patient_id": pid, "therapy_date": therapy.isoformat(), "n_lesions": n_les,
                  "activity_gbq": injected / 1e9, "dose_normal_liver_gy": float(dose_b[sm["liver"]].mean()),
                  "weight_kg": weight, "height_m": height}


def write_prrt_study(study_dir: str | Path, *, n_patients: int = 10, seed: int = 2026,
                     workers: int | None = None) -> PhantomStudy:
    """Write the PRRT (perfusion) phantom study as DICOM and return its ground truth.

    Per patient: 1-4 liver lesions (1.6-2.4 cm); MR sessions (VFA and 4-D DCE) 10 days before and
    8-10 weeks after therapy; 177Lu quantitative SPECT (NM, Bq/mL) 4, 24, 72 and 168 h after
    administration with mono-exponential kinetics per region; SEGs on both DCE series (``lesion
    <id>``, ``liver``, ``aorta``, ``portal vein``; a lesion in complete response has an empty
    follow-up segment); the SPECT series share the patient's frame of reference (no SEG of their own). Each lesion's RECIST category is drawn from
    :data:`PRRT_MODEL` (dose, Ktrans, vp) and its follow-up size follows it. See MODEL.md.

    Parameters
    ----------
    study_dir : str or Path
        Output folder (created).
    n_patients : int
        Number of patients (the demo uses 10).
    seed : int
        Seed; patient ``i`` draws from ``numpy.random.default_rng([seed, i])``.
    workers : int, optional
        Processes writing patients in parallel (default 2 from 4 patients on, else 1).

    Returns
    -------
    PhantomStudy
    """
    return _write_study(_prrt_patient, "prrt", study_dir, n_patients=n_patients, seed=seed, workers=workers,
                        params={"mr_shape": MR_SHAPE, "spect_shape": SPECT_SHAPE, "spect_fwhm_mm": SPECT_FWHM_MM,
                                "spect_hours": SPECT_HOURS})
