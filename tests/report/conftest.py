"""A small synthetic RESULTS folder (docs/results-layout.md) so the report tests do not need the pipeline.

Three patients (P001-P003), two lesions each, tiny maps on three grids (dce, fmiso, y90) sharing one
frame of reference, masks with lesion and liver labels, curves, DVHs, a cohort.json, and (optionally)
ground truth. The numbers are made up but consistent with the layout; the report only draws them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from theraquant.image import Image
from theraquant.io import write_nifti

#: identifiers planted in provenance.json / study.json: the report must not show them by default
SECRET_NAME = "DOE^JANE"
SECRET_ID = "MRN-4711-0815"

GRIDS = {  # name: (shape (z, y, x), spacing_mm (z, y, x))
    "dce": ((6, 32, 32), (4.0, 2.0, 2.0)),
    "fmiso": ((5, 20, 20), (5.0, 3.2, 3.2)),
    "y90": ((6, 24, 24), (4.0, 8 / 3, 8 / 3)),
}
LESION_CENTRES = {"1": (12.0, 22.0, 20.0), "2": (12.0, 40.0, 44.0)}  # LPS mm (z, y, x order below)
LESION_RADII = {"1": 9.0, "2": 6.0}


def _world(shape, spacing):
    z, y, x = np.meshgrid(*(np.arange(n) * s for n, s in zip(shape, spacing)), indexing="ij")
    return z, y, x


def _masks(shape, spacing):
    z, y, x = _world(shape, spacing)
    lab = np.zeros(shape, np.int16)
    liver = ((y - 32) / 26) ** 2 + ((x - 32) / 28) ** 2 <= 1.0
    lab[liver] = 10
    for name, (cz, cy, cx) in LESION_CENTRES.items():
        r = LESION_RADII[name]
        lab[(z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2 <= r * r] = int(name)
    return lab


def _write_patient(root: Path, pid: str, rng: np.random.Generator, ktrans_scale: float) -> None:
    pdir = root / "patients" / pid
    for grid, (shape, spacing) in GRIDS.items():
        lab = _masks(shape, spacing)
        write_nifti(Image.from_spacing(lab, spacing), pdir / "masks" / f"{grid}.nii.gz",
                    sidecar={"labels": {"1": "lesion 1", "2": "lesion 2", "10": "liver"}}, dtype=np.int16)
        inside = lab > 0
        les = np.isin(lab, [1, 2])

        def put(name, values, units, quantity):
            write_nifti(Image.from_spacing(values.astype(np.float32), spacing), pdir / "maps" / f"{name}.nii.gz",
                        sidecar={"Units": units, "Quantity": quantity, "Grid": grid, "Session": "baseline",
                                 "SourceSeriesUID": "2.25.1234"})

        if grid == "dce":
            z, y, x = _world(shape, spacing)
            put("anatomy_mr", 200 + 100 * inside + 20 * np.sin(x / 7) + rng.normal(0, 5, shape), "a.u.", "anatomy")
            put("ktrans", np.where(inside, ktrans_scale * (0.05 + 0.2 * les) + rng.normal(0, 0.01, shape), np.nan),
                "1/min", "Ktrans")
            put("ve", np.where(inside, 0.2 + 0.1 * les, np.nan), "mL/mL", "ve")
            put("vp", np.where(inside, 0.02 + 0.03 * les, np.nan), "mL/mL", "vp")
            put("fa", np.where(inside, 0.25 + 0.5 * les, np.nan), "1", "arterial fraction")
        elif grid == "fmiso":
            put("suv_fmiso", 1.0 + 0.8 * inside + 1.5 * les + rng.normal(0, 0.05, shape), "g/mL", "SUVbw")
            put("fmiso_tbp", (1.0 + 0.8 * inside + 1.5 * les) / 1.4, "1", "T/BP")
        else:
            put("dose_gy", 5 + 40 * inside + 120 * les + rng.normal(0, 1, shape), "Gy", "absorbed dose")


def make_results(root: Path, *, truth: bool = True, show_identifiers: bool = False, n_patients: int = 3) -> Path:
    """Write the synthetic RESULTS folder into ``root`` and return it (``n_patients`` of P001-P003)."""
    rng = np.random.default_rng(7)
    root.mkdir(parents=True, exist_ok=True)
    pids = ["P001", "P002", "P003"][:n_patients]
    rows = []
    for k, pid in enumerate(pids):
        _write_patient(root, pid, rng, 1.0 + 0.3 * k)
        for lesion, vol in (("1", 3.1), ("2", 0.9)):
            kt = 0.25 * (1 + 0.3 * k) * (1.1 if lesion == "1" else 0.9)
            resp = ["CMR", "PMR", "SMD", "PMD", "PMR", "SMD"][len(rows)]
            change = {"CMR": -85.0, "PMR": -42.0, "SMD": -5.0, "PMD": 48.0}[resp]
            rows.append({
                "patient": pid, "lesion": lesion, "volume_ml": vol, "ktrans": kt, "kep": kt / 0.3, "ve": 0.3,
                "vp": 0.05, "fa": 0.75, "iaugc60": 12.0, "ktrans_followup": kt * 0.7, "ktrans_change_pct": -30.0,
                "t_bp": 1.1 + 0.2 * len(rows), "t_m": 1.5, "hypoxic_fraction": 0.05 * len(rows),
                "hypoxic": 1.1 + 0.2 * len(rows) > 1.29, "dmean_gy": 60.0 + 25 * len(rows), "d70_gy": 50.0 + 20 * len(rows),
                "v100_pct": 10.0 * len(rows), "response": resp, "responder": 1.0 if resp in ("CMR", "PMR") else 0.0,
                "response_rule": f"SULpeak change {change:+.0f} % vs thresholds -30 %/+30 % -> {resp}",
                "response_criteria": "PERCIST 1.0", "response_measure": "SULpeak", "response_unit": "g/mL",
                "response_baseline": 8.0, "response_followup": 8.0 * (1 + change / 100),
                "response_change_pct": change, "suvmax_fmiso": 3.2, "fit_success_frac": 0.98 if len(rows) != 4 else 0.6,
                "fit_r2_median": 0.95, "dce_model": "dual_input_etofts",
                "notes": "" if len(rows) != 4 else "DCE fit failed in 40 % of voxels",
            })
    lesions = pd.DataFrame(rows)
    lesions.to_csv(root / "lesions.csv", index=False)
    lesions.to_parquet(root / "lesions.parquet")
    n = len(pids)
    pd.DataFrame({"patient": pids, "n_lesions": [2, 2, 2][:n], "therapy_type": "tare",
                  "therapy_date": ["2026-01-10", "2026-02-03", "2026-03-15"][:n], "response": ["PMR", "SMD", "PMR"][:n],
                  "response_rule": "PERCIST 1.0: hottest lesion", "dose_normal_liver_gy": [31.0, 28.5, 35.2][:n],
                  "tumour_to_normal_ratio": [2.9, 3.4, 2.2][:n], "status": ["ok", "ok", "partial"][:n],
                  "notes": ["", "", "FDG follow-up missing"][:n]}).to_csv(root / "patients.csv", index=False)
    pd.DataFrame([{"patient": "P003", "step": "fdg_followup", "file": "P003/fdg2/IM1.dcm",
                   "message": "IM1.dcm: RadionuclideTotalDose (0018,1074) missing"}]).to_csv(
        root / "failures.csv", index=False)
    # curves: data, fit, aif per session
    t = np.arange(0, 300, 5.0)
    aif = 5 * (t / 30) * np.exp(1 - t / 30)
    crow = []
    for pid in pids:
        for session in ("baseline", "followup"):
            crow += [{"patient": pid, "lesion": "", "session": session, "kind": "aif", "t_s": a, "value_mM": b}
                     for a, b in zip(t, aif)]
            for lesion in ("1", "2"):
                fit = 0.4 * (1 - np.exp(-t / 60)) * (0.7 if session == "followup" else 1.0)
                data = fit + rng.normal(0, 0.02, t.size)
                crow += [{"patient": pid, "lesion": lesion, "session": session, "kind": "fit", "t_s": a,
                          "value_mM": b} for a, b in zip(t, fit)]
                crow += [{"patient": pid, "lesion": lesion, "session": session, "kind": "data", "t_s": a,
                          "value_mM": b} for a, b in zip(t, data)]
    pd.DataFrame(crow).to_parquet(root / "curves.parquet")
    d = np.linspace(0, 300, 61)
    drow = []
    for pid in pids:
        for lesion, d50 in (("1", 120.0), ("2", 90.0), ("liver", 30.0)):
            vol = 100 / (1 + np.exp((d - d50) / 15))
            drow += [{"patient": pid, "lesion": lesion, "dose_gy": a, "volume_pct": b} for a, b in zip(d, vol)]
    pd.DataFrame(drow).to_parquet(root / "dvh.parquet")
    fpr = [0.0, 0.0, 0.25, 0.5, 1.0]
    cohort = {
        "outcome": "responder", "markers": ["t_bp", "dmean_gy", "ktrans"], "analysis": "lesion-level, clustered by patient",
        "clustered": True, "n_lesions": 6, "n_patients": 3, "n_responders": 3,
        "roc": {m: {"auc": a, "ci": [a - 0.2, min(1.0, a + 0.15)], "variance": "Obuchowski", "direction": "<",
                    "fpr": fpr, "tpr": [0.0, 0.5, 0.75, 1.0, 1.0], "thresholds": [9, 8, 7, 6, 5],
                    "youden_threshold": 7.0}
                for m, a in (("t_bp", 0.812), ("dmean_gy", 0.733), ("ktrans", 0.645))},
        "regression": {"method": "GEE", "rows": [
            {"term": "t_bp", "odds_ratio": 0.214, "ci_low": 0.051, "ci_high": 0.897, "p": 0.035},
            {"term": "dmean_gy", "odds_ratio": 1.031, "ci_low": 1.004, "ci_high": 1.059, "p": 0.024}]},
        "dose_response": {"d50_gy": 88.7, "ci": [61.2, 116.4],
                          "curve": {"dose_gy": list(np.linspace(0, 250, 26)),
                                    "p": list(1 / (1 + np.exp(-(np.linspace(0, 250, 26) - 88.7) / 20)))}},
        "stratified": {"cutoffs": {"t_bp": 1.29, "dmean_gy": 89.0}, "rows": [
            {"stratum": "normoxic, dose >= 89 Gy", "n": 2, "responders": 2, "rate": 1.0, "ci_low": 0.342, "ci_high": 1.0},
            {"stratum": "hypoxic, dose < 89 Gy", "n": 4, "responders": 1, "rate": 0.25, "ci_low": 0.0456, "ci_high": 0.699}]},
        "predictor": {"markers": ["t_bp", "dmean_gy"], "cv_auc": 0.771, "cv_ci": [0.52, 0.93], "threshold": 0.5,
                      "calibration": {"mean_predicted": [0.2, 0.5, 0.8], "observed": [0.0, 0.5, 1.0], "n": [2, 2, 2]}},
        "full": {},
    }
    (root / "cohort.json").write_text(json.dumps(cohort))
    (root / "cohort.txt").write_text("cohort summary\n")
    (root / "model.json").write_text(json.dumps({"markers": ["t_bp", "dmean_gy"], "cv_auc": 0.771}))
    # provenance.json and study.json as pipeline._run writes them (theraquant.provenance.provenance record)
    (root / "provenance.json").write_text(json.dumps({
        "Software": "theraquant", "SoftwareVersion": "0.9.0", "Created": "2026-12-03T18:00:00Z",
        "Command": "run_study('STUDY', out='RESULTS')",
        "Settings": {"study": {"therapy": {"date": None, "type": "tare"},
                               "dce": {"model": None, "r1": 4.5, "hematocrit": 0.45, "t10_blood_s": 1.6},
                               "fmiso": {"threshold": 1.29, "normalization": "bw"},
                               "dosimetry": {"method": "ldm", "density_g_ml": 1.04}},
                     "run": {"show_identifiers": show_identifiers, "workers": 2}, "settings_hash": "ab12"},
        "Constants": {"y90_post_window_days": 7},
        "InputSeries": {pid: {"dce_baseline": ["2.25.11"], "fmiso_baseline": ["2.25.12"]} for pid in pids},
        "Inputs": [{"path": "P001/dce", "PatientName": SECRET_NAME}, {"path": "P002/dce", "PatientID": SECRET_ID}],
        "Started": "2026-12-03T17:58:00Z", "RunTime_s": 123.4,
        "Warnings": ["P003: FDG follow-up missing"], "Pseudonymised": not show_identifiers,
    }))
    (root / "study.json").write_text(json.dumps({"study_dir": "/data/STUDY", "pseudonymised": not show_identifiers,
                                                 "patients": [
        {"patient": pid, "patient_id": SECRET_ID if pid == "P002" else "x", "therapy_type": "tare",
         "therapy_source": "therapy.date",
         "series": [{"role": r, "series_uid": f"2.25.{k}"} for k, r in enumerate(("dce", "fmiso", "fdg", "fdg", "y90", "seg"))],
         "therapy_date": "2026-01-10",
         "timepoints": {"dce_baseline": {"series_uid": "2.25.1", "date": "2026-01-03"},
                        "fmiso_baseline": {"series_uid": "2.25.2", "date": "2026-01-06"},
                        "fdg_baseline": {"series_uid": "2.25.3", "date": "2026-01-05"},
                        "y90_post": {"series_uid": "2.25.5", "date": "2026-01-10"},
                        **({"fdg_followup": {"series_uid": "2.25.4", "date": f"2026-03-{21 + 7 * k:02d}"}}
                           if pid != "P003" else {})},
         "missing": ["FDG PET at follow-up"] if pid == "P003" else []}
        for k, pid in enumerate(pids)]}))
    (root / "manifest.json").write_text(json.dumps({"patients": {p: {"status": "ok"} for p in pids}}))
    if truth:
        vt = []
        for r in rows:
            for b, unit in (("ktrans", "1/min"), ("dmean_gy", "Gy"), ("t_bp", "1")):
                true = r[b] * 0.95
                vt.append({"patient": r["patient"], "lesion": r["lesion"], "biomarker": b, "unit": unit,
                           "true": true, "recovered": r[b], "error": r[b] - true,
                           "rel_error_pct": 100 * (r[b] - true) / true})
            vt.append({"patient": r["patient"], "lesion": r["lesion"], "biomarker": "response", "unit": "",
                       "true": r["response"], "recovered": r["response"], "error": None, "rel_error_pct": None})
        pd.DataFrame(vt).to_csv(root / "vs_truth.csv", index=False)
        (root / "validation.json").write_text(json.dumps({
            "ktrans": {"n": 6, "bias": 0.0162, "bias_pct": 5.26, "loa_low": 0.004, "loa_high": 0.028, "unit": "1/min"},
            "dmean_gy": {"n": 6, "bias": 6.2, "bias_pct": 5.26, "loa_low": 2.1, "loa_high": 10.3, "unit": "Gy"}}))
    return root


@pytest.fixture(name="make_results", scope="session")
def _make_results_fixture():
    """The folder writer itself, for tests that need a variant (``truth=False``, ``show_identifiers=True``)."""
    return make_results


@pytest.fixture(scope="session")
def secrets() -> tuple[str, str]:
    """The identifiers planted in the synthetic folder (name, ID)."""
    return SECRET_NAME, SECRET_ID


@pytest.fixture(scope="session")
def report_files(tmp_path_factory):
    """The synthetic RESULTS folder's report, rendered once (HTML + PDF) for the session."""
    from theraquant.report import render_report

    return render_report(make_results(tmp_path_factory.mktemp("report") / "RESULTS"))


@pytest.fixture(scope="session")
def results_dir(report_files) -> Path:
    """The synthetic RESULTS folder (with report.html and report.pdf)."""
    return report_files.html.parent
