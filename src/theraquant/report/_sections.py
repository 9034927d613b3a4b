"""The report's sections (contract ids: study, cohort, patients, validation, provenance) from a RESULTS folder."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import _plots as plots
from ._doc import Figure, Heading, Items, Links, Paragraph, Section, Table, fmt, fmt_ci
from ..io import parse_segment_label
from ._load import IDENTIFIER_KEYS, Results, _find_key

__all__ = ["build_sections", "column_label", "COLUMN_INFO"]

#: lesions.csv column -> (display name, unit) for headers and axes ("1" = dimensionless)
COLUMN_INFO: dict[str, tuple[str, str]] = {
    "patient": ("patient", ""), "lesion": ("lesion", ""), "volume_ml": ("volume", "mL"),
    "ktrans": ("Ktrans", "1/min"), "kep": ("kep", "1/min"), "ve": ("ve", "mL/mL"), "vp": ("vp", "mL/mL"),
    "fa": ("arterial fraction fa", "1"), "iaugc60": ("IAUGC60", "mM s"), "t10": ("T10", "s"),
    "t_bp": ("FMISO T/BP", "1"), "t_m": ("FMISO T/M", "1"), "hypoxic_fraction": ("hypoxic fraction", "1"),
    "hypoxic": ("hypoxic", "yes/no"), "suvmax_fmiso": ("FMISO SUVmax", "g/mL"),
    "dmean_gy": ("Dmean", "Gy"), "d70_gy": ("D70", "Gy"), "v100_pct": ("V100", "%"),
    "response": ("response", ""), "responder": ("responder", "0/1"), "response_rule": ("rule", ""),
    "response_criteria": ("criteria", ""), "response_measure": ("measure", ""),
    "response_baseline": ("baseline", "criteria unit"), "response_followup": ("follow-up", "criteria unit"),
    "response_change_pct": ("change", "%"), "fit_success_frac": ("fit success fraction", "1"),
    "fit_r2_median": ("median fit R²", "1"), "dce_model": ("DCE model", ""), "notes": ("notes", ""),
}
LESION_TABLE_COLUMNS = ("patient", "lesion", "volume_ml", "ktrans", "kep", "ve", "vp", "fa", "ktrans_change_pct",
                        "t_bp", "hypoxic_fraction", "hypoxic", "dmean_gy", "d70_gy", "v100_pct",
                        "response_baseline", "response_followup", "response_change_pct", "response",
                        "responder", "notes")
CATEGORY_ORDER = ("CR", "CMR", "PR", "PMR", "SD", "SMD", "PD", "PMD", "NE")
#: maps shown per patient, in order: name -> (title, default unit, colour map)
MAP_PANELS = {
    "ktrans": ("Ktrans", "1/min", "viridis"), "ve": ("ve", "mL/mL", "viridis"), "vp": ("vp", "mL/mL", "viridis"),
    "fa": ("arterial fraction fa", "1", "cividis"), "suv_fmiso": ("FMISO SUV", "g/mL", "magma"),
    "fmiso_tbp": ("FMISO T/BP", "1", "magma"), "suv_fdg_baseline": ("FDG SUV (baseline)", "g/mL", "magma"),
    "dose_gy": ("absorbed dose", "Gy", "viridis"),
}
#: biomarkers shown first in the recovered-vs-true scatter (at most 12 panels; every one is in the table)
VALIDATION_ORDER = ("ktrans", "kep", "ve", "vp", "fa", "t_bp", "t_m", "hypoxic_fraction", "suvmax_fmiso",
                    "dmean_gy", "d70_gy", "v100_pct", "response_change_pct", "response_baseline", "response_followup")
DEFAULT_GRID = {"ktrans": "dce", "ve": "dce", "vp": "dce", "fa": "dce", "anatomy_mr": "dce", "suv_fmiso": "fmiso",
                "fmiso_tbp": "fmiso", "suv_fdg_baseline": "fdg_baseline", "dose_gy": "y90"}


def column_label(col: str, unit: str | None = None) -> str:
    """Header text with units, e.g. ``"Ktrans (1/min)"``, ``"Ktrans follow-up (1/min)"``.

    >>> column_label("dmean_gy"), column_label("ktrans_change_pct"), column_label("lesion")
    ('Dmean (Gy)', 'Ktrans change (%)', 'lesion')
    """
    if col in COLUMN_INFO:
        name, u = COLUMN_INFO[col]
    elif col.endswith("_change_pct") and col[: -len("_change_pct")] in COLUMN_INFO:
        name, u = COLUMN_INFO[col[: -len("_change_pct")]][0] + " change", "%"
    elif col.endswith("_followup") and col[: -len("_followup")] in COLUMN_INFO:
        base = COLUMN_INFO[col[: -len("_followup")]]
        name, u = base[0] + " follow-up", base[1]
    else:
        name, u = col, ""
    if unit is not None:
        u = unit
    return f"{name} ({u})" if u else name


def _num(series: pd.Series | None) -> np.ndarray:
    if series is None:
        return np.array([], float)
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)


def _first(values: Any) -> Any:
    vals = [v for v in pd.Series(values).dropna().unique() if str(v) not in ("", "nan")]
    return vals[0] if vals else None


def _setting(res: Results, group: str, key: str) -> Any:
    block = _find_key(res.provenance, group)
    if isinstance(block, dict):
        return block.get(key)
    return None


def _category_order(cats: pd.Series) -> list[str]:
    present = [str(c) for c in cats.dropna().unique() if str(c) not in ("", "nan")]
    known = [c for c in CATEGORY_ORDER if c in present]
    return known + sorted(c for c in present if c not in known)


def _label_kind(name: str) -> tuple[str, str | None]:
    """A mask label's kind and lesion id, read as the pipeline reads segment labels
    (:func:`theraquant.io.parse_segment_label`); a bare number is a lesion id.

    >>> _label_kind("Lesion 3"), _label_kind("tumour_A"), _label_kind("Liver"), _label_kind("aorta"), _label_kind("2")
    (('lesion', '3'), ('lesion', 'A'), ('liver', None), ('aorta', None), ('lesion', '2'))
    """
    text = str(name).strip()
    if text.isdigit():
        return "lesion", text
    return parse_segment_label(text)


# =============================================================================================== study
def study_section(res: Results) -> Section:
    sec = Section("study", "Study")
    les, pts = res.lesions, res.patients
    patients = res.patient_ids()
    n_les = len(les)
    parts = [f"This run analysed {len(patients)} patient{'s' if len(patients) != 1 else ''} "
             f"with {n_les} lesion{'s' if n_les != 1 else ''}"]
    if "status" in pts.columns and len(pts):
        counts = Counter(str(s) for s in pts["status"].fillna("unknown"))
        parts[-1] += " (" + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) + ")"
    parts[-1] += "."
    therapy = _first(pts["therapy_type"]) if "therapy_type" in pts.columns else None
    therapy = therapy or _setting(res, "therapy", "type")
    if therapy:
        name = {"tare": "transarterial radioembolisation (TARE, 90Y)",
                "prrt": "peptide receptor radionuclide therapy (PRRT, 177Lu)"}.get(str(therapy).lower(), str(therapy))
        src = _find_key(res.study, "therapy_source")
        parts.append(f"Therapy: {name}" + (f"; therapy dates from {src}" if src else "") + ".")
    roles = Counter(str(r) for r in _collect(res.study, "role"))
    if roles:
        names = {"dce": "DCE-MRI", "vfa": "variable-flip-angle T1", "fmiso": "FMISO PET", "fdg": "FDG PET",
                 "y90": "90Y PET/SPECT", "lu177": "177Lu SPECT", "seg": "DICOM SEG", "rtstruct": "RTSTRUCT",
                 "mr": "other MR", "ct": "CT", "other": "other"}
        parts.append("Series used: " + ", ".join(f"{n} {names.get(r, r)}" for r, n in sorted(roles.items())) + ".")
    tps = Counter()
    for tp in _collect_dicts(res.study, "timepoints"):
        tps.update(k for k, v in tp.items() if v)
    if tps:
        parts.append("Time points: " + ", ".join(f"{k.replace('_', ' ')} ({v} patient{'s' if v != 1 else ''})"
                                                  for k, v in tps.items()) + ".")
    lu = [len(p.get("lu177") or []) for p in (res.study.get("patients", []) if isinstance(res.study, dict) else [])
          if isinstance(p, dict)]
    if any(lu):
        parts.append(f"Post-therapy 177Lu imaging: {lu[0]} time points per patient." if min(lu) == max(lu) else
                     f"Post-therapy 177Lu imaging: median {float(np.median(lu)):g} time points per patient "
                     f"(range {min(lu)}–{max(lu)}).")
    timing = _timing(res.study)
    if timing:
        parts.append(timing)
    missing = _collect_lists(res.study, "missing")
    if missing:
        parts.append(f"Missing: {len(missing)} item{'s' if len(missing) != 1 else ''} (listed under each patient).")
    model = _first(les["dce_model"]) if "dce_model" in les.columns else None
    model = model or _setting(res, "dce", "model")
    if model:
        extras = []
        for key, unit in (("r1", "1/(s mM)"), ("hematocrit", "")):
            v = _setting(res, "dce", key)
            if v is not None:
                extras.append(f"{key} {fmt(v)}{' ' + unit if unit else ''}")
        parts.append(f"DCE model: {model}" + (f" ({', '.join(extras)})" if extras else "") + ".")
    thr = _setting(res, "fmiso", "threshold")
    has_fmiso = roles.get("fmiso", 0) > 0 or ("t_bp" in les.columns and les["t_bp"].notna().any())
    if thr is not None and has_fmiso:
        parts.append(f"Hypoxia: FMISO tumour-to-blood ratio above {fmt(thr)}.")
    method = _setting(res, "dosimetry", "method")
    if method:
        parts.append(f"Dosimetry: {str(method).upper()} ({'local deposition' if method == 'ldm' else 'voxel S-values'}).")
    crit = _first(les["response_criteria"]) if "response_criteria" in les.columns else None
    if crit:
        measure = _first(les["response_measure"]) if "response_measure" in les.columns else None
        parts.append(f"Response: {crit}" + (f" on {measure}" if measure else "") + ".")
    coh = res.cohort or {}
    if coh.get("markers"):
        parts.append(f"Markers tested against {coh.get('outcome', 'response')}: {', '.join(coh['markers'])}.")
    cut = (coh.get("stratified") or {}).get("cutoffs") or {}
    if cut:
        parts.append("Cut-offs: " + _cutoffs(cut) + ".")
    pred = coh.get("predictor") or {}
    if pred.get("markers"):
        parts.append(f"Predictor: {' + '.join(pred['markers'])}.")
    fails = res.failures
    if len(fails):
        who = fails["patient"].nunique() if "patient" in fails.columns else "?"
        steps = Counter(str(s) for s in fails.get("step", pd.Series(dtype=str)))
        parts.append(f"What failed: {len(fails)} step{'s' if len(fails) != 1 else ''} in {who} "
                     f"patient{'s' if who != 1 else ''} (" + ", ".join(f"{k} ×{v}" for k, v in steps.items())
                     + "); the table below lists them.")
    else:
        parts.append("Nothing failed.")
    sec.blocks.append(Paragraph(" ".join(parts)))
    if len(fails):
        cols = [c for c in ("patient", "step", "file", "message") if c in fails.columns]
        sec.blocks.append(Table(cols, fails[cols].astype(object).where(fails[cols].notna(), None).values.tolist(),
                                caption="Failures (failures.csv): each failed step and what it left out."))
    if res.problems:
        sec.blocks.append(Items(list(res.problems), kind="warn"))
    return sec


def _timing(study: Any) -> str:
    """Median (range) days from baseline imaging to therapy and from therapy to follow-up (study.json dates)."""
    from datetime import date

    def day(v: Any):
        try:
            return date.fromisoformat(str(v)[:10])
        except ValueError:
            return None

    before, after = [], []
    for p in study.get("patients", []) if isinstance(study, dict) else []:
        if not isinstance(p, dict) or not day(p.get("therapy_date")):
            continue
        t0 = day(p.get("therapy_date"))
        for key, tp in (p.get("timepoints") or {}).items():
            d = day(tp.get("date")) if isinstance(tp, dict) else None
            if d is None:
                continue
            if key.endswith("_baseline"):
                before.append((t0 - d).days)
            elif key.endswith("_followup"):
                after.append((d - t0).days)
    out = []
    for what, vals in (("baseline imaging", before), ("follow-up", after)):
        if vals:
            med = float(np.median(vals))
            rng = f" (range {min(vals)}–{max(vals)})" if min(vals) != max(vals) else ""
            out.append(f"{what} {med:g} days{rng} {'before' if what.startswith('baseline') else 'after'} therapy")
    return ("Median timing: " + "; ".join(out) + ".") if out else ""


def _cutoffs(cut: Mapping[str, Any]) -> str:
    out = []
    for k, v in cut.items():
        name, unit = COLUMN_INFO.get(k, (k, ""))
        out.append(f"{name} {fmt(v)}" + (f" {unit}" if unit not in ("", "1") else ""))
    return ", ".join(out)


def _find(obj: Any, key: str, *, keep: Callable[[Any], bool]) -> Iterator[Any]:
    """Values under ``key`` anywhere in nested dicts/lists, depth first, that ``keep`` accepts.

    Parameters
    ----------
    obj : Any
        A JSON-like tree (dicts, lists, scalars).
    key : str
        The dict key looked for.
    keep : callable
        Whether a value under ``key`` is taken; a value it refuses is searched further instead.

    Yields
    ------
    Any
        Each accepted value, in document order.
    """
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == key and keep(v):
                yield v
            else:
                yield from _find(v, key, keep=keep)
    elif isinstance(obj, list):
        for v in obj:
            yield from _find(v, key, keep=keep)


def _collect(obj: Any, key: str) -> list:
    """The scalar values under ``key`` anywhere in ``obj``."""
    return list(_find(obj, key, keep=lambda v: not isinstance(v, (dict, list))))


def _collect_lists(obj: Any, key: str) -> list:
    """The items of the lists under ``key`` anywhere in ``obj``, concatenated."""
    return [x for v in _find(obj, key, keep=lambda v: isinstance(v, list)) for x in v]


def _study_patient(res: Results, pid: str) -> dict:
    """The patient's record in study.json (matched on its pseudonym), or {}."""
    for p in res.study.get("patients", []) if isinstance(res.study, dict) else []:
        if isinstance(p, dict) and pid in (p.get("patient"), p.get("pseudonym")):
            return p
    return {}


def _collect_dicts(obj: Any, key: str) -> list[dict]:
    """The dicts under ``key`` anywhere in ``obj``."""
    return list(_find(obj, key, keep=lambda v: isinstance(v, dict)))


# =============================================================================================== cohort
def cohort_section(res: Results) -> Section:
    sec = Section("cohort", "Cohort")
    les = res.lesions
    coh = res.cohort or {}
    if len(les):
        # columns this study has (an all-empty column, e.g. FMISO in a PRRT study, is left out)
        cols = [c for c in LESION_TABLE_COLUMNS if c in les.columns
                and (c in ("patient", "lesion", "notes") or les[c].notna().any())]
        unit = _first(les["response_unit"]) if "response_unit" in les.columns else None
        headers = [column_label(c, unit if c in ("response_baseline", "response_followup") and unit else None)
                   for c in cols]
        cells = [[_cell(v) for v in row] for row in les[cols].itertuples(index=False)]
        sec.blocks.append(Heading("Lesions"))
        sec.blocks.append(Table(headers, cells, interactive=True, table_id="lesion-table",
                                caption=f"{len(les)} lesions (lesions.csv holds every column). Click a header "
                                        "to sort; type in the box to filter."))
    else:
        sec.blocks.append(Paragraph("No lesion table (lesions.csv) in this RESULTS folder.", kind="warn"))
    if not coh:
        sec.blocks.append(Paragraph("No cohort analysis (cohort.json) in this RESULTS folder.", kind="warn"))
        return sec
    clustered = bool(coh.get("clustered"))
    who = (f"{coh.get('n_lesions', len(les))} lesions, {coh.get('n_responders', '?')} responding"
           + (f", in {coh['n_patients']} patients" if coh.get("n_patients") is not None else ""))
    sec.blocks.append(Paragraph(f"Outcome: {coh.get('outcome', 'responder')} ({who}). "
                                + (f"{coh['analysis']}. " if coh.get("analysis") else "")
                                + ("Lesions share patients: confidence intervals and tests are clustered by patient."
                                   if clustered else "Lesions are treated as independent.")))
    labels = {m: column_label(m) for m in (coh.get("markers") or [])}
    roc = coh.get("roc") or {}
    if roc:
        sec.blocks.append(Heading("ROC curves per marker"))
        fig = plots.roc_figure(roc, clustered=clustered, labels=labels)
        lines = [f"{labels.get(m, m)}: AUC {fmt(r.get('auc'))} (95 % CI {fmt_ci(*(r.get('ci') or [None, None]))}"
                 f"{', clustered' if clustered else ''}{', ' + r['variance'] if r.get('variance') else ''})"
                 for m, r in roc.items()]
        sec.blocks.append(plots.render(fig, "ROC curve of each marker for response. " + "; ".join(lines) + ".",
                                       "ROC curves per marker"))
        rows = [[labels.get(m, m), r.get("auc"), fmt_ci(*(r.get("ci") or [None, None])), r.get("variance"),
                 r.get("direction"), _with_unit(r.get("youden_threshold"), COLUMN_INFO.get(m, ("", ""))[1])]
                for m, r in roc.items()]
        sec.blocks.append(Table(["marker", "AUC (1)", "95 % CI", "variance", "direction", "Youden cut-off"],
                                rows, caption="Area under the ROC curve per marker; direction '<': responders have higher values, "
                                              "'>': lower; the cut-off is Youden's."))
    if "response_change_pct" in les.columns and "response" in les.columns:
        change = _num(les["response_change_pct"])
        if np.isfinite(change).any():
            cats = les["response"].fillna("NE").astype(str).tolist()
            order = _category_order(les["response"].fillna("NE"))
            measure = _first(les["response_measure"]) if "response_measure" in les.columns else "the response measure"
            crit = _first(les["response_criteria"]) if "response_criteria" in les.columns else ""
            sec.blocks.append(Heading("Waterfall plot of response"))
            fig = plots.waterfall_figure(change, cats, measure=str(measure), order=order)
            sec.blocks.append(plots.render(fig, f"Change in {measure} from baseline to follow-up per lesion, "
                                                f"coloured by {crit or 'response'} category.", "waterfall plot"))
    dr = coh.get("dose_response")
    if dr:
        sec.blocks.append(Heading("Dose–response"))
        dose_col = "dmean_gy" if "dmean_gy" in les.columns else None
        fig = plots.dose_response_figure(_num(les.get(dose_col)) if dose_col else np.array([]),
                                         _num(les.get("responder")) if dose_col else np.array([]),
                                         dr.get("curve") or {}, dr.get("d50_gy"), dr.get("ci"),
                                         dose_label=column_label("dmean_gy"))
        sec.blocks.append(plots.render(fig, f"Logistic dose–response: D50 = {fmt(dr.get('d50_gy'))} Gy "
                                            f"(95 % CI {fmt_ci(*(dr.get('ci') or [None, None]))} Gy).",
                                       "dose-response curve"))
    markers = [m for m in (coh.get("markers") or []) if m in les.columns]
    if markers and "response" in les.columns:
        order = _category_order(les["response"].fillna("NE"))
        cats = les["response"].fillna("NE").astype(str).to_numpy()
        sec.blocks.append(Heading("Markers by response category"))
        fig = plots.marker_box_figure({m: _num(les[m]) for m in markers}, cats, order, labels)
        sec.blocks.append(plots.render(fig, "Each marker by response category: box = quartiles, line = median, "
                                            "whiskers to 1.5 IQR, every lesion as a point.", "markers by response"))
    strat = coh.get("stratified")
    if strat and strat.get("rows"):
        cut = strat.get("cutoffs") or {}
        sec.blocks.append(Heading("Hypoxia × dose strata"))
        rows = [[r.get("stratum"), r.get("n"), r.get("responders"), r.get("rate"),
                 fmt_ci(r.get("ci_low"), r.get("ci_high"))] for r in strat["rows"]]
        sec.blocks.append(Table(["stratum", "lesions", "responders", "response rate (1)", "95 % Wilson CI"], rows,
                                caption="Response rate per stratum; cut-offs " + _cutoffs(cut) + "."))
    reg = coh.get("regression")
    if reg and reg.get("rows"):
        method = reg.get("method", "")
        how = reg.get("description") or {"GEE": "GEE logistic regression, exchangeable correlation within patients",
                                         "GLM": "GLM logistic regression (lesions independent)"}.get(str(method), str(method))
        sec.blocks.append(Heading(f"Regression ({method})"))
        rows = [[column_label(str(r.get("term"))) if r.get("term") in COLUMN_INFO else r.get("term"),
                 r.get("odds_ratio"), fmt_ci(r.get("ci_low"), r.get("ci_high")), r.get("p")] for r in reg["rows"]]
        sec.blocks.append(Table(["term", "odds ratio (per marker unit)", "95 % CI", "p"], rows,
                                caption=f"{how}: odds ratios of response."))
    pred = coh.get("predictor")
    if not pred:
        sec.blocks.append(Heading("Predictor"))
        notes = [str(n) for n in coh.get("notes") or []]
        why = ([n for n in notes if n.lower().startswith("predictor")]
               or [n for n in notes if "predictor not" in n.lower()])
        sec.blocks.append(Paragraph("No predictor was fitted" + (f": {why[0]}" if why else ".")
                                    + " See the remarks of the analysis below.", kind="warn"))
    if pred:
        sec.blocks.append(Heading("Predictor"))
        grouped = "patient-grouped folds" if clustered else "lesion folds"
        sec.blocks.append(Paragraph(
            f"Predictor on {' + '.join(pred.get('markers') or [])}: cross-validated AUC {fmt(pred.get('cv_auc'))} "
            f"(95 % CI {fmt_ci(*(pred.get('cv_ci') or [None, None]))}, {grouped}); decision threshold "
            f"{fmt(pred.get('threshold'))} (probability). The fitted model is model.json."))
        cal = pred.get("calibration") or {}
        if cal.get("mean_predicted"):
            fig = plots.calibration_figure(cal["mean_predicted"], cal.get("observed", []), cal.get("n"))
            sec.blocks.append(plots.render(fig, "Calibration of the cross-validated predicted probabilities: "
                                                "observed response fraction per bin against the mean prediction.",
                                           "calibration plot"))
    notes = [str(n) for n in coh.get("notes") or []]
    if notes:
        sec.blocks.append(Heading("Remarks of the analysis", level=4))
        sec.blocks.append(Items(notes, kind="warn"))
    return sec


def _with_unit(v: Any, unit: str) -> str:
    """``"72.7 Gy"``; dimensionless values without a unit."""
    text = fmt(v)
    return text if text == "–" or unit in ("", "1") else f"{text} {unit}"


def _cell(v: Any) -> Any:
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return None
    return v


# =============================================================================================== patients
def patients_section(res: Results) -> Section:
    from ..io import read_nifti

    sec = Section("patients", "Patients")
    pts = res.patients.set_index("patient", drop=False) if "patient" in res.patients.columns else pd.DataFrame()
    ids = res.patient_ids()
    if not ids:
        sec.blocks.append(Paragraph("No patients in this RESULTS folder.", kind="warn"))
    elif len(ids) > 1:
        sec.blocks.append(Links("Go to patient:", [(pid, f"patient-{_slug(pid)}") for pid in ids]))
    for pid in ids:
        sec.blocks.append(Heading(f"Patient {pid}", anchor=f"patient-{_slug(pid)}"))
        les = res.lesions[res.lesions["patient"] == pid] if "patient" in res.lesions.columns else pd.DataFrame()
        sec.blocks.append(Paragraph(_patient_text(pid, pts.loc[pid] if pid in pts.index else None, les)))
        missing = [str(m) for m in _study_patient(res, pid).get("missing", []) or []]
        if missing:
            sec.blocks.append(Items([f"missing: {m}" for m in missing], kind="warn"))
        fails = res.failures[res.failures["patient"].astype(str) == pid] if "patient" in res.failures.columns else []
        if len(fails):
            sec.blocks.append(Items([f"{f.step}: {f.message}" + (f" ({f.file})" if isinstance(f.file, str) and f.file else "")
                                     for f in fails.itertuples()], kind="warn"))
        try:
            fig = _maps_figure(res.root / "patients" / pid, les, read_nifti)
        except Exception as exc:  # a damaged map must not stop the report of the other patients
            sec.blocks.append(Paragraph(f"Maps of {pid} could not be drawn: {exc}", kind="warn"))
            fig = None
        if fig is not None:
            sec.blocks.append(fig)
        if res.curves is not None and "patient" in res.curves.columns:
            fig = _curves_figure(res.curves[res.curves["patient"] == pid], pid)
            if fig is not None:
                sec.blocks.append(fig)
        if res.dvh is not None and "patient" in res.dvh.columns:
            fig = _dvh_figure(res.dvh[res.dvh["patient"] == pid], pid)
            if fig is not None:
                sec.blocks.append(fig)
        if len(les) and "response" in les.columns:
            cols = [c for c in ("lesion", "response_criteria", "response_measure", "response_baseline",
                                "response_followup", "response_change_pct", "response", "response_rule")
                    if c in les.columns]
            unit = _first(les["response_unit"]) if "response_unit" in les.columns else None
            headers = [column_label(c, unit if c in ("response_baseline", "response_followup") and unit else None)
                       for c in cols]
            sec.blocks.append(Table(headers, [[_cell(v) for v in r] for r in les[cols].itertuples(index=False)],
                                    caption=f"Response of each lesion of {pid}: the rule that fired and the "
                                            "numbers it compared."))
    return sec


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", str(text))


def _patient_text(pid: str, row: pd.Series | None, les: pd.DataFrame) -> str:
    bits = [f"{len(les)} lesion{'s' if len(les) != 1 else ''}"]
    if row is not None:
        if _present(row.get("therapy_type")):
            bits.append(f"therapy {str(row['therapy_type']).upper()}"
                        + (f" on {row['therapy_date']}" if _present(row.get("therapy_date")) else ""))
        if _present(row.get("response")):
            bits.append(f"patient-level response {row['response']}"
                        + (f" ({row['response_rule']})" if _present(row.get("response_rule")) else ""))
        if _present(row.get("dose_normal_liver_gy")):
            bits.append(f"mean dose to normal liver {fmt(row['dose_normal_liver_gy'])} Gy")
        if _present(row.get("tumour_to_normal_ratio")):
            bits.append(f"tumour-to-normal ratio {fmt(row['tumour_to_normal_ratio'])}")
        if _present(row.get("status")):
            bits.append(f"status {row['status']}")
        if _present(row.get("notes")):
            bits.append(f"notes: {row['notes']}")
    return f"{pid}: " + "; ".join(bits) + "."


def _present(v: Any) -> bool:
    return v is not None and not (isinstance(v, float) and np.isnan(v)) and str(v) not in ("", "nan")


def _read_mask(pdir: Path, grid: str, read_nifti) -> tuple[Any, dict[int, str]] | None:
    path = pdir / "masks" / f"{grid}.nii.gz"
    if not path.exists():
        return None
    img = read_nifti(path, mmap=False)
    side = img.meta.get("sidecar") or {}
    labels = {int(k): str(v) for k, v in (side.get("labels") or {}).items()}
    return img, labels


def _maps_figure(pdir: Path, les: pd.DataFrame, read_nifti) -> Figure | None:
    mdir = pdir / "maps"
    if not mdir.is_dir():
        return None
    names = [n for n in MAP_PANELS if (mdir / f"{n}.nii.gz").exists()]
    if not names:
        return None
    anatomy = read_nifti(mdir / "anatomy_mr.nii.gz", mmap=False) if (mdir / "anatomy_mr.nii.gz").exists() else None
    # the largest lesion (lesions.csv volume), the same physical lesion on every grid
    target = None
    if len(les) and "volume_ml" in les.columns:
        vol = _num(les["volume_ml"])
        if np.isfinite(vol).any():
            target = str(les["lesion"].iloc[int(np.nanargmax(vol))])
    grids: dict[str, Any] = {}
    panels = []
    slice_note = ""
    for name in names:
        img = read_nifti(mdir / f"{name}.nii.gz", mmap=False)
        side = img.meta.get("sidecar") or {}
        grid = str(side.get("Grid") or DEFAULT_GRID.get(name, name))
        if grid not in grids:
            grids[grid] = _grid_view(pdir, grid, img, target, anatomy, read_nifti)
        view = grids[grid]
        z = view["z"]
        arr = np.asarray(img.array[z] if img.array.ndim == 3 else img.array[z, ..., 0], dtype=float)
        arr = arr[view["crop"]]
        title, unit, cmap = MAP_PANELS[name]
        unit = str(side.get("Units") or img.units or unit)
        unit = "1" if unit in ("", "1", "ratio") else unit
        if view["region"] is not None:
            arr = np.where(view["region"], arr, np.nan)
        finite = arr[np.isfinite(arr)]
        vmax = float(np.percentile(finite, 99)) if finite.size else 1.0
        vmin = 0.0 if (finite.size == 0 or finite.min() >= 0) else float(np.percentile(finite, 1))
        panels.append(plots.MapPanel(title=f"{title} (z = {z})", unit=f"{title} ({unit})", values=arr,
                                     extent=view["extent"], background=view["background"],
                                     outlines=view["outlines"], liver=view["liver"], cmap=cmap, vmin=vmin,
                                     vmax=vmax if vmax > vmin else None))
        slice_note = view["note"]
    fig = plots.maps_figure(panels)
    return plots.render(fig, f"Parametric maps on the anatomy (pre-contrast MR where on or resampled to the "
                             f"map's grid), slice through the largest lesion{slice_note}, cropped to the liver; "
                             f"solid white outlines = lesions (numbered), dashed = liver; colour bars in the maps' "
                             f"units; bar = length in mm.",
                        f"maps of {pdir.name}")


def _grid_view(pdir: Path, grid: str, img, target: str | None, anatomy, read_nifti) -> dict:
    shape = img.array.shape[:3]
    mask = _read_mask(pdir, grid, read_nifti)
    lab = None
    lesion_vals: dict[int, str] = {}
    liver_vals: list[int] = []
    if mask is not None and mask[0].array.shape[:3] == shape:
        lab = np.asarray(mask[0].array)
        for v, name in mask[1].items():
            kind, lid = _label_kind(name)
            if kind == "lesion":
                lesion_vals[v] = lid or str(v)
            elif kind == "liver":
                liver_vals.append(v)
    z = shape[0] // 2
    note = ""
    if lab is not None and lesion_vals:
        chosen = [v for v, n in lesion_vals.items() if n == target]
        if not chosen:  # fall back on the largest lesion by voxel count on this grid
            counts = {v: int((lab == v).sum()) for v in lesion_vals}
            chosen = [max(counts, key=counts.get)]
        area = (lab == chosen[0]).sum(axis=(1, 2))
        if area.max() > 0:
            z = int(np.argmax(area))
            note = f" (lesion {lesion_vals[chosen[0]]})"
    sp = img.spacing_mm
    ny, nx = shape[1], shape[2]
    # crop to the liver and lesions (all slices, so every panel of the grid shows the same field)
    ys, xs = slice(0, ny), slice(0, nx)
    if lab is not None and (liver_vals or lesion_vals):
        inside = np.isin(lab, liver_vals + list(lesion_vals)).any(axis=0)
        if inside.any():
            yy, xx = np.nonzero(inside)
            my, mx = max(3, int(0.12 * (np.ptp(yy) + 1))), max(3, int(0.12 * (np.ptp(xx) + 1)))
            ys = slice(max(0, yy.min() - my), min(ny, yy.max() + 1 + my))
            xs = slice(max(0, xx.min() - mx), min(nx, xx.max() + 1 + mx))
    extent = (xs.start * sp[2], xs.stop * sp[2], ys.stop * sp[1], ys.start * sp[1])
    outlines, liver, region = [], None, None
    if lab is not None:
        sl = lab[z][ys, xs]
        outlines = [(sl == v, n) for v, n in sorted(lesion_vals.items(), key=lambda t: t[1])]
        if liver_vals or lesion_vals:
            region = np.isin(sl, liver_vals + list(lesion_vals))  # the liver outline goes round its lesions
            liver = region if liver_vals else None
            if not region.any():
                region = None
    background = None
    if anatomy is not None:
        background = _background_slice(anatomy, img, z)
        background = None if background is None else background[ys, xs]
    return {"z": z, "extent": extent, "outlines": outlines, "liver": liver, "region": region,
            "background": background, "note": note, "crop": (ys, xs)}


def _background_slice(anatomy, img, z: int) -> np.ndarray | None:
    """The anatomy on slice ``z`` of ``img``'s grid (same grid: as is; else trilinear by the affines)."""
    a = np.asarray(anatomy.array if anatomy.array.ndim == 3 else anatomy.array[..., 0])
    if a.shape == img.array.shape[:3] and np.allclose(anatomy.affine, img.affine, atol=1e-3):
        return np.asarray(a[z], dtype=float)
    from scipy.ndimage import map_coordinates

    ny, nx = img.array.shape[1:3]
    yy, xx = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    idx = np.stack([np.full(yy.size, z), yy.ravel(), xx.ravel()], axis=1).astype(float)
    world = img.index_to_world(idx)
    src = anatomy.world_to_index(world)
    out = map_coordinates(np.asarray(a, float), src.T, order=1, cval=np.nan).reshape(ny, nx)
    return out if np.isfinite(out).any() else None


def _curves_figure(cur: pd.DataFrame, pid: str) -> Figure | None:
    if not len(cur) or "kind" not in cur.columns:
        return None
    cur = cur.sort_values("t_s")
    sessions = [s for s in ("baseline", "followup") if s in set(cur["session"])] or sorted(set(cur["session"]))
    aifs = {s: (_num(g["t_s"]), _num(g["value_mM"])) for s, g in cur[cur["kind"] == "aif"].groupby("session")}
    portals = {s: (_num(g["t_s"]), _num(g["value_mM"])) for s, g in cur[cur["kind"] == "portal"].groupby("session")}
    tissue = cur[cur["kind"].isin(["data", "fit"]) & (cur["lesion"] != "")]
    groups = []
    for lesion in sorted(tissue["lesion"].unique(), key=lambda s: (len(s), s)):
        g = tissue[tissue["lesion"] == lesion]
        series = []
        for s in sessions:
            d = g[(g["session"] == s) & (g["kind"] == "data")]
            f = g[(g["session"] == s) & (g["kind"] == "fit")]
            if len(d) or len(f):
                series.append((s, _num(d["t_s"]), _num(d["value_mM"]), _num(f["t_s"]), _num(f["value_mM"])))
        groups.append((lesion, series))
    if not groups:
        return None
    fig = plots.curves_figure(groups, aifs, portals)
    return plots.render(fig, f"{pid}: each lesion's mean concentration (points), the fitted model (line) and the "
                             "arterial (and portal) plasma input (grey, right axis).", f"concentration curves of {pid}")


def _dvh_figure(dvh: pd.DataFrame, pid: str) -> Figure | None:
    if not len(dvh):
        return None
    lines = []
    for lesion, g in sorted(dvh.groupby("lesion"), key=lambda t: (t[0] == "liver", len(t[0]), t[0])):
        g = g.sort_values("dose_gy")
        lines.append(("normal liver" if lesion == "liver" else f"lesion {lesion}", _num(g["dose_gy"]),
                      _num(g["volume_pct"])))
    fig = plots.dvh_figure(lines)
    return plots.render(fig, f"{pid}: cumulative dose–volume histogram of each lesion and of the normal liver.",
                        f"DVH of {pid}")


# =============================================================================================== validation
def validation_section(res: Results) -> Section:
    sec = Section("validation", "Validation against ground truth")
    val = res.validation or {}
    vt = res.vs_truth
    sec.blocks.append(Paragraph("The digital phantom's true biomarkers are known: each recovered value is compared "
                                "with its truth (vs_truth.csv); bias and 95 % limits of agreement (Bland–Altman, "
                                "bias ± 1.96 SD of the differences) per biomarker come from validation.json."))
    if vt is not None and {"biomarker", "true", "recovered"} <= set(vt.columns):
        panels, categorical = [], []
        for name, g in vt.groupby("biomarker", sort=False):
            t, r = _num(g["true"]), _num(g["recovered"])
            unit = _first(g["unit"]) if "unit" in g.columns else ""
            unit = "1" if unit in (None, "", "1") else str(unit)  # dimensionless shown as (1)
            if np.isfinite(t).sum() >= 1 and np.isfinite(r).sum() >= 1:
                if np.nanmax(t) > np.nanmin(t):  # a constant truth (flags, fixed volumes) says little in a scatter
                    panels.append((str(name), unit, t, r, val.get(str(name)) if isinstance(val, dict) else None))
            else:
                agree = int((g["true"].astype(str) == g["recovered"].astype(str)).sum())
                categorical.append([str(name), len(g), agree, agree / len(g) if len(g) else None])
        if panels:
            rank = {c: i for i, c in enumerate(VALIDATION_ORDER)}
            panels.sort(key=lambda t: rank.get(t[0], len(rank)))
            fig = plots.validation_figure(panels[:12])
            sec.blocks.append(plots.render(fig, "Recovered against true value per biomarker (dashed: identity).",
                                           "recovered vs true"))
        if categorical:
            sec.blocks.append(Table(["biomarker", "lesions", "agree", "agreement (1)"], categorical,
                                    caption="Categorical biomarkers: recovered category equal to the true one."))
    if isinstance(val, dict) and val:
        rows = []
        for name, v in val.items():
            if isinstance(v, dict):
                rows.append([name, v.get("n"), v.get("unit"), v.get("bias"), v.get("bias_pct"), v.get("loa_low"),
                             v.get("loa_high"), v.get("agreement")])
        if rows:
            sec.blocks.append(Table(["biomarker", "n", "unit", "bias (unit)", "bias (%)", "LoA low (unit)",
                                     "LoA high (unit)", "agreement (1)"], rows,
                                    caption="Bias and 95 % limits of agreement (categorical biomarkers: fraction "
                                            "of lesions whose category was recovered)."))
    les = res.lesions
    qcols = [c for c in ("patient", "lesion", "dce_model", "fit_success_frac", "fit_r2_median", "notes")
             if c in les.columns]
    if "fit_success_frac" in les.columns or "fit_r2_median" in les.columns:
        succ = _num(les.get("fit_success_frac")) if "fit_success_frac" in les.columns else np.full(len(les), np.nan)
        r2 = _num(les.get("fit_r2_median")) if "fit_r2_median" in les.columns else np.full(len(les), np.nan)
        notes = les["notes"].astype(str) if "notes" in les.columns else pd.Series([""] * len(les))
        flag = (succ < 0.9) | (r2 < 0.8) | (notes.str.len().to_numpy() > 0)
        sec.blocks.append(Heading("Fit-quality flags"))
        sec.blocks.append(Paragraph(
            f"{int(flag.sum())} of {len(les)} lesions flagged (fit success fraction below 0.9, median voxel R² "
            f"below 0.8, or a note). Median fit success fraction {fmt(float(np.nanmedian(succ)) if np.isfinite(succ).any() else None)}, "
            f"median R² {fmt(float(np.nanmedian(r2)) if np.isfinite(r2).any() else None)}."))
        if flag.any():
            sub = les.loc[flag, qcols]
            sec.blocks.append(Table([column_label(c) for c in qcols],
                                    [[_cell(v) for v in r] for r in sub.itertuples(index=False)],
                                    caption="Flagged lesions."))
    return sec


# =============================================================================================== provenance
def provenance_section(res: Results, *, report_info: Mapping[str, Any]) -> Section:
    sec = Section("provenance", "Provenance")
    prov = _scrub(res.provenance, show=res.show_identifiers)
    version = (_find_key(prov, "SoftwareVersion") or _find_key(prov, "software_version")
               or _find_key(prov, "version"))
    sec.blocks.append(Paragraph(
        f"Results written by theraquant {version or '(version not recorded)'}; report rendered by theraquant "
        f"{report_info.get('version')} at {report_info.get('rendered')} from {report_info.get('folder')}. "
        "Everything below is provenance.json as the run wrote it"
        + ("." if res.show_identifiers else "; identifiers are withheld (the run was pseudonymised).")))
    if not prov:
        sec.blocks.append(Paragraph("No provenance.json in this RESULTS folder.", kind="warn"))
    scalars = [[k, _short(v)] for k, v in prov.items() if not isinstance(v, (dict, list))]
    if scalars:
        sec.blocks.append(Table(["item", "value"], scalars, caption="Run.", digits=6))
    for key, value in prov.items():
        if isinstance(value, dict):
            rows = _flatten(value)
            if rows:
                sec.blocks.append(Heading(key.replace("_", " "), level=4))
                sec.blocks.append(Table(["setting", "value"], rows, digits=6))
        elif isinstance(value, list):
            sec.blocks.append(Heading(key.replace("_", " "), level=4))
            if value and all(isinstance(v, dict) for v in value):
                cols: list[str] = []
                for v in value:
                    cols += [k for k in v if k not in cols]
                sec.blocks.append(Table(cols, [[_short(v.get(c)) for c in cols] for v in value], digits=6))
            elif value:
                sec.blocks.append(Items([_short(v) for v in value]))
            else:
                sec.blocks.append(Paragraph("none"))
    status = _find_key(res.manifest, "patients")
    if isinstance(status, dict) and status:
        rows = [[p, _short(s.get("status") if isinstance(s, dict) else s)] for p, s in status.items()]
        sec.blocks.append(Heading("per-patient status (manifest.json)", level=4))
        sec.blocks.append(Table(["patient", "status"], rows))
    return sec


def _short(v: Any, limit: int = 400) -> Any:
    """Provenance values as the run wrote them (4.5 stays "4.5"; long texts cut)."""
    if isinstance(v, float) or (isinstance(v, int) and not isinstance(v, bool)):
        return repr(v)
    if isinstance(v, (dict, list)):
        v = json.dumps(v, default=str)
    if isinstance(v, str) and len(v) > limit:
        return v[: limit - 1] + "…"
    return v


def _flatten(d: Mapping[str, Any], prefix: str = "") -> list[list[Any]]:
    rows: list[list[Any]] = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            rows += _flatten(v, key + ".")
        else:
            rows.append([key, _short(v)])
    return rows


def _scrub(obj: Any, *, show: bool) -> Any:
    """Withhold identifier fields (PatientName, PatientID, ...) unless the run showed identifiers."""
    if show:
        return obj
    if isinstance(obj, dict):
        return {k: ("(withheld)" if str(k).lower() in IDENTIFIER_KEYS else _scrub(v, show=show)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_scrub(v, show=show) for v in obj]
    return obj


def build_sections(res: Results, *, report_info: Mapping[str, Any]) -> list[Section]:
    """The report's sections in order; ``validation`` only when ground truth exists."""
    secs = [study_section(res), cohort_section(res), patients_section(res)]
    if res.has_truth:
        secs.append(validation_section(res))
    secs.append(provenance_section(res, report_info=report_info))
    return secs
