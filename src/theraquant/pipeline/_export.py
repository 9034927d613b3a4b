"""DICOM export of a finished run: Parametric Maps, SEG, RT Dose and RTSTRUCT from RESULTS.

:func:`export_dicom` reads only the RESULTS layout of ``docs/results-layout.md`` (``study.json``,
``patients/<P>/maps/*.nii.gz`` with their sidecars, ``patients/<P>/masks/<grid>.nii.gz`` with their
label sidecars) and the headers of the source series that ``study.json`` lists (relative to the
study folder it names), and writes ``patients/<P>/dicom/``:

=============================  ===========================================================
file                           content
=============================  ===========================================================
``pm_<map>.dcm``               Parametric Map of every voxel map with a coded quantity
                               (``ktrans``, ``kep``, ``ve``, ``vp``, ``fa``, ``iaugc60``, ``t10``,
                               ``suv_*``, ``fmiso_tbp``, ``hypoxic``, ``dose_gy`` and their
                               ``_followup`` twins); ``anatomy_mr`` (a.u.) and ``activity_y90``
                               are backgrounds/intermediates and are not exported
``seg_<grid>.dcm``             SEG of every mask grid: the lesion and reference-region
                               segments with the study's own labels
``rtdose_<map>.dcm``           RT Dose of every absorbed-dose map
``rtstruct_<grid>.dcm``        RTSTRUCT of the lesions and the liver on each dose grid
=============================  ===========================================================

Identifiers follow the run (``study.json["pseudonymised"]``): pseudonymised runs write the
pseudonym as PatientID and PatientName, shift every date by the patient's own shift (the one
``study.json`` dates carry, :func:`theraquant.pipeline._privacy.date_shift_days`), and remap
every UID consistently per patient under theraquant's UID root (see
:mod:`theraquant.io._dicom_out`), with a salt derived from the real PatientID, which RESULTS
never holds. Runs with ``--show-identifiers`` keep the source identity and UIDs, so the objects
join the original studies in PACS.
"""

from __future__ import annotations

import glob
import hashlib
import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from ..errors import TheraquantError

__all__ = ["export_dicom", "EXPORT_PATTERNS"]

#: file name patterns written under patients/<P>/dicom/ (also what --overwrite replaces)
EXPORT_PATTERNS = ("pm_*.dcm", "seg_*.dcm", "rtdose_*.dcm", "rtstruct_*.dcm")

_SKIP_MAPS = ("anatomy_mr", "activity_y90")


#: SUV normalisation (theraquant.pet) -> PARAMETRIC_QUANTITIES key
_SUV_QUANTITY = {"bw": "suv_bw", "lbm": "suv_lbm", "lbm-james": "suv_lbm_james",
                 "lbm-janmahasatian": "suv_lbm_janma", "ibw": "suv_ibw", "bsa": "suv_bsa"}


def _suv_normalization(base: str, side: dict, settings: dict) -> str:
    """The SUV normalisation of a map: the sidecar's, else its Quantity text, else the run's settings."""
    norm = str(side.get("Normalization", "") or "").lower()
    if norm in _SUV_QUANTITY:
        return norm
    text = str(side.get("Quantity", "")).lower()
    words = set(re.split(r"[^a-z0-9]+", text))
    if "sul" in words or "lbm" in text or "lean" in text:
        return "lbm-james" if "james" in text else "lbm-janmahasatian"  # theraquant's SUL: Janmahasatian
    for key in ("bsa", "ibw"):
        if key in words:
            return key
    if base == "suv_fmiso":
        norm = str(((settings.get("study") or {}).get("fmiso") or {}).get("normalization", "") or "").lower()
        if norm in _SUV_QUANTITY:
            return norm
    return "bw"


def _quantity(name: str, side: dict, settings: dict | None = None) -> str | None:
    """The PARAMETRIC_QUANTITIES key of a map name (None: not exported)."""
    base = re.sub(r"_(followup|baseline)$", "", name)
    if base in _SKIP_MAPS:
        return None
    if base.startswith("suv"):
        return _SUV_QUANTITY[_suv_normalization(base, side, settings or {})]
    if base.startswith("dose_gy") or base == "dose":
        return "dose_gy"
    return base


class _Patient:
    """One patient's export: source headers (cached), identifiers, failures."""

    def __init__(self, rec: dict, results: Path, study_dir: Path, private: bool, index: dict):
        self.rec = rec
        self.name = str(rec["patient"])
        self.results = results
        self.study_dir = study_dir
        self.private = private
        self.pdir = results / "patients" / self.name
        self.series = {s["series_uid"]: s for s in rec.get("series", [])}
        self._headers: dict[str, list] = {}
        self._index = index  # shared by the patients: series UID -> files, filled by one study scan
        self.failures: list[Any] = []
        self._ids: dict[str, str] | None = None
        self._secrets: list[str] = []

    # ------------------------------------------------------------------ sources
    def _scan_study(self) -> dict[str, list[Path]]:
        """Series UID -> files of the whole study folder (one header scan, shared by all patients)."""
        if not self._index:
            import pydicom

            for f in sorted(p for p in self.study_dir.rglob("*") if p.is_file() and not p.name.startswith(".")):
                try:
                    ds = pydicom.dcmread(str(f), stop_before_pixels=True, specific_tags=["SeriesInstanceUID"])
                except Exception:  # noqa: BLE001 - not DICOM
                    continue
                uid = str(ds.get("SeriesInstanceUID", "") or "")
                if uid:
                    self._index.setdefault(uid, []).append(f)
            self._index.setdefault("", [])  # scanned (even if empty)
        return self._index

    def _candidates(self, rec: dict | None) -> list[Path]:
        """The series' files from study.json; a redacted path (the PatientID replaced by the pseudonym)
        is matched with a wildcard in its place."""
        if rec is None or not self.study_dir.is_dir():
            return []
        out: list[Path] = []
        for rel in rec.get("files", []):
            if not rec.get("files_redacted"):
                out.append(self.study_dir / rel)
            elif self.name in rel:
                pattern = glob.escape(rel).replace(glob.escape(self.name), "*")
                out.extend(sorted(self.study_dir.glob(pattern)))
        return out

    def headers(self, uid: str) -> list:
        """Headers (no pixel data) of a source series, from study.json's file list (else a study scan)."""
        if uid in self._headers:
            return self._headers[uid]
        import pydicom

        out: list = []
        for files in (lambda: self._candidates(self.series.get(uid)), lambda: self._scan_study().get(uid, [])):
            seen: set[Path] = set()
            for f in files():
                if f in seen or not f.is_file():
                    continue
                seen.add(f)
                try:
                    ds = pydicom.dcmread(str(f), stop_before_pixels=True)
                except Exception:  # noqa: BLE001 - not DICOM
                    continue
                if str(ds.get("SeriesInstanceUID", "")) == uid:
                    out.append(ds)
            if out:
                break
        if not out:
            raise TheraquantError(
                f"source series {uid} of patient {self.name} is not in study folder {self.study_dir.name}",
                fix="run the export where the study folder named in study.json is readable")
        self._headers[uid] = out
        if self.private and not self._secrets:
            ds = out[0]
            self._secrets = sorted({str(ds.get("PatientID", "")), str(ds.get("PatientName", "")),
                                    *str(ds.get("PatientName", "")).split("^")} - {""}, key=len, reverse=True)
        return out

    def identifiers(self, uid: str) -> dict[str, str] | None:
        """The pseudonymisation of this patient's objects (None when identifiers are shown)."""
        if not self.private:
            return None
        if self._ids is None:
            from ._privacy import date_shift_days

            ds = self.headers(uid)[0]
            pid = str(ds.get("PatientID", ""))
            study_uids = sorted({str(s.get("study_uid", "")) for s in self.series.values()})
            fake = SimpleNamespace(patient_id=pid, series=[SimpleNamespace(study_uid=u) for u in study_uids])
            days = int(date_shift_days(fake))  # type: ignore[arg-type]
            salt = hashlib.sha256(("theraquant-uid\n" + pid + "\n" + "\n".join(study_uids)).encode()).hexdigest()
            self._ids = {"PatientID": self.name, "PatientName": f"{self.name}^", "DateShiftDays": str(days),
                         "UIDSalt": salt}
        return self._ids

    # ------------------------------------------------------------------ failures
    def clean(self, text: str) -> str:
        text = text.replace(str(self.study_dir) + "/", "").replace(str(self.results) + "/", "")
        for s in self._secrets:
            if len(s) >= 3:
                text = text.replace(s, self.name)
        return text

    def fail(self, file: Path | str, exc: BaseException) -> None:
        from ._patient import Failure

        rel = Path(file)
        try:
            rel = rel.relative_to(self.results)
        except ValueError:
            pass
        msg = f"{type(exc).__name__}: {exc}" if not isinstance(exc, TheraquantError) else str(exc)
        self.failures.append(Failure(patient=self.name, step="export", file=rel.as_posix(),
                                     message=self.clean(msg.splitlines()[0] if msg else type(exc).__name__)))


def _read_sidecar(path: Path) -> dict:
    from ..io import sidecar_path

    side = sidecar_path(path)
    if not side.is_file():
        return {}
    try:
        return json.loads(side.read_text())
    except json.JSONDecodeError as exc:
        raise TheraquantError(f"{side.name}: not valid JSON ({exc})", fix="re-run the patient") from exc


def _targets(pdir: Path) -> list[Path]:
    d = pdir / "dicom"
    if not d.is_dir():
        return []
    return sorted(p for pat in EXPORT_PATTERNS for p in d.glob(pat))


def export_dicom(results_dir: str | Path, *, overwrite: bool = False) -> list:
    """Write the DICOM objects of a finished run under ``RESULTS/patients/<P>/dicom/``.

    Parameters
    ----------
    results_dir : str or Path
        The RESULTS folder of ``theraquant run`` (must hold ``study.json``; the study folder it names
        must still be readable, for the source series' headers).
    overwrite : bool
        Replace DICOM objects an earlier export wrote. Without it, existing objects are an error and
        nothing is written, except while the run that owns RESULTS is in progress (its
        ``manifest.json`` says ``"Complete": false``): :func:`run_study` calls the export before it
        completes, and objects of patients kept by ``--resume`` are then rewritten from their maps.

    Returns
    -------
    list of Failure
        One :class:`~theraquant.pipeline.Failure` (step ``"export"``, file relative to RESULTS) per
        object that could not be written; the other objects are written regardless.

    Raises
    ------
    TheraquantError
        No ``study.json`` in ``results_dir``, or existing objects without ``overwrite``.
    """
    from ..image import Image
    from ..io import (read_nifti, segment_kind, write_parametric_map, write_rt_dose, write_rtstruct, write_seg)
    from ._outputs import read_manifest

    results = Path(results_dir).expanduser().absolute()
    sj = results / "study.json"
    if not sj.is_file():
        raise TheraquantError(f"RESULTS {results_dir} has no study.json; it is not the output folder of "
                              "theraquant run", argument="results_dir",
                              fix="give the --out folder of a finished theraquant run")
    try:
        study = json.loads(sj.read_text())
    except json.JSONDecodeError as exc:
        raise TheraquantError(f"{sj}: not valid JSON ({exc})", argument="results_dir",
                              fix="re-run the study, or restore study.json") from exc
    study_dir = Path(str(study.get("study_dir", "")))
    private = bool(study.get("pseudonymised", True))
    patients = [p for p in study.get("patients", []) if (results / "patients" / str(p.get("patient"))).is_dir()]
    existing = [t for p in patients for t in _targets(results / "patients" / str(p["patient"]))]
    manifest = read_manifest(results)
    in_run = manifest is not None and manifest.get("Complete") is False  # run_study calls us before it ends
    if existing and not (overwrite or in_run):
        raise TheraquantError(
            f"RESULTS {results_dir} already holds {len(existing)} exported DICOM objects (e.g. "
            f"{existing[0].relative_to(results)})", argument="overwrite",
            fix="pass --overwrite to replace them")
    for t in existing:
        t.unlink()

    settings: dict = {}
    prov = results / "provenance.json"
    if prov.is_file():
        try:
            settings = dict(json.loads(prov.read_text()).get("Settings") or {})
        except (json.JSONDecodeError, AttributeError):
            settings = {}
    failures: list = []
    index: dict[str, list[Path]] = {}
    for rec in patients:
        pt = _Patient(rec, results, study_dir, private, index)
        out = pt.pdir / "dicom"
        maps = sorted((pt.pdir / "maps").glob("*.nii.gz")) if (pt.pdir / "maps").is_dir() else []
        dose_grids: dict[str, str] = {}  # grid -> source series of a dose map on it
        number = 910
        for f in maps:
            name = f.name[: -len(".nii.gz")]
            try:
                side = _read_sidecar(f)
                q = _quantity(name, side, settings)
                if q is None:
                    continue
                uid = str(side.get("SourceSeriesUID", ""))
                if not uid:
                    raise TheraquantError(f"{f.name}: the sidecar names no SourceSeriesUID",
                                          fix="re-run the patient")
                img = read_nifti(f, mmap=False)
                src = pt.headers(uid)
                ids = pt.identifiers(uid)
                session = str(side.get("Session", ""))
                desc = f"{side.get('Quantity', name)}" + (f" ({session})" if session else "")
                number += 1
                if q == "hypoxic":
                    img = img.with_array(np.asarray(img.array, dtype=np.float32))
            except Exception as exc:  # noqa: BLE001 - one map fails alone
                pt.fail(f, exc)
                continue
            try:
                write_parametric_map(img, src, out / f"pm_{name}.dcm", quantity=q,
                                     units=str(side.get("Units", img.units) or "") or None,
                                     series_description=desc, identifiers=ids, series_number=number)
            except Exception as exc:  # noqa: BLE001 - one object fails alone
                pt.fail(f, exc)
            if q == "dose_gy":
                dose_grids[str(side.get("Grid", ""))] = uid
                try:
                    write_rt_dose(img.with_array(img.array, units="Gy"), src, out / f"rtdose_{name}.dcm",
                                  series_description=desc, identifiers=ids, series_number=number + 100)
                except Exception as exc:  # noqa: BLE001
                    pt.fail(f, exc)
        masks = sorted((pt.pdir / "masks").glob("*.nii.gz")) if (pt.pdir / "masks").is_dir() else []
        for f in masks:
            grid = f.name[: -len(".nii.gz")]
            try:
                side = _read_sidecar(f)
                labels = {int(k): str(v) for k, v in (side.get("labels") or {}).items()}
                uid = str(side.get("SourceSeriesUID", "") or dose_grids.get(grid, ""))
                if not labels:
                    continue
                if not uid:
                    raise TheraquantError(f"{f.name}: the sidecar names no SourceSeriesUID", fix="re-run the patient")
                lab = read_nifti(f, mmap=False)
                arr = np.rint(np.asarray(lab.array)).astype(np.int64)
                items = sorted(labels.items(), key=lambda kv: (segment_kind(kv[1]) != "lesion", kv[0]))
                bool_masks = {name: Image(arr == value, lab.affine) for value, name in items if (arr == value).any()}
                if not bool_masks:
                    continue
                src = pt.headers(uid)
                ids = pt.identifiers(uid)
            except Exception as exc:  # noqa: BLE001 - one mask file fails alone
                pt.fail(f, exc)
                continue
            try:
                write_seg(bool_masks, src, out / f"seg_{grid}.dcm",
                          series_description=f"theraquant masks ({grid})", identifiers=ids)
            except Exception as exc:  # noqa: BLE001 - one object fails alone
                pt.fail(f, exc)
            rois = {k: v for k, v in bool_masks.items() if segment_kind(k) in ("lesion", "liver")}
            if grid in dose_grids and rois:
                try:
                    write_rtstruct(rois, src, out / f"rtstruct_{grid}.dcm",
                                   series_description=f"theraquant lesions and liver ({grid})", identifiers=ids)
                except Exception as exc:  # noqa: BLE001
                    pt.fail(f, exc)
        failures += pt.failures
    return failures
