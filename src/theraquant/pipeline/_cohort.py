"""Cohort statistics of a study run: ``cohort.json``, ``cohort.txt`` and the fitted predictor ``model.json``.

Composition only: :func:`theraquant.stats.analyze` (ROC with Obuchowski variance, GEE, cluster
bootstrap, dose-response, stratified table), :func:`~theraquant.stats.fit_predictor` (patient-grouped
cross-validated AUC and calibration) and :func:`~theraquant.stats.wilson`. The layout of
cohort.json is in docs/results-layout.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._config import StudyConfig

import numpy as np
import pandas as pd

from ..errors import TheraquantError

__all__ = ["cohort_analysis", "STUDY_CUTOFFS", "MIN_LESIONS"]

#: the radioembolization study's cut-offs, as the ARTE-MISO trial states them: hypoxic is "T/BP > 1.29"
#: (FMISO; the study.yaml key fmiso.threshold replaces 1.29) and high dose is "Dmean > 89 Gy"
STUDY_CUTOFFS = {"t_bp": 1.29, "dmean_gy": 89.0}
STUDY_OPERATORS = {"t_bp": ">", "dmean_gy": ">"}
#: fewer assessable lesions than this (or fewer than 2 of either class) skip the analysis
MIN_LESIONS = 6
_STRATUM_LABELS = {"t_bp": ("non-hypoxic", "hypoxic"), "dmean_gy": ("low dose", "high dose")}


def _markers(lesions: pd.DataFrame, config: Any, notes: list[str]) -> list[str]:
    from ._config import PREDICTOR_DEFAULT_MARKERS

    markers = getattr(getattr(config, "predictor", None), "markers", None)
    if not markers:
        ttype = getattr(getattr(config, "therapy", None), "type", None)
        if ttype is None:
            ttype = "tare" if "t_bp" in lesions and pd.to_numeric(lesions["t_bp"], errors="coerce").notna().any() \
                else "prrt"
        markers = PREDICTOR_DEFAULT_MARKERS[ttype]
    out = []
    for m in markers:
        if m not in lesions.columns:
            notes.append(f"marker {m!r} is not a lesions.csv column; left out")
        elif pd.to_numeric(lesions[m], errors="coerce").notna().sum() == 0:
            notes.append(f"marker {m!r} has no value in any lesion; left out")
        else:
            out.append(m)
    return out


def _roc_json(r: Any) -> dict[str, Any]:
    return {"auc": r.auc, "ci": list(r.ci), "variance": "Obuchowski" if "Obuchowski" in r.variance_method else "DeLong",
            "direction": r.direction, "fpr": np.asarray(r.fpr).tolist(), "tpr": np.asarray(r.tpr).tolist(),
            "thresholds": np.asarray(r.thresholds).tolist(), "youden_threshold": r.youden_threshold,
            "sensitivity": r.sensitivity, "specificity": r.specificity, "n_pos": r.n_pos, "n_neg": r.n_neg}


def _regression_json(lr: Any) -> dict[str, Any]:
    method = "GEE" if str(lr.method).startswith("GEE") else "GLM"
    rows = [{"term": t, "odds_ratio": lr.odds_ratio[t], "ci_low": lr.ci[t][0], "ci_high": lr.ci[t][1], "p": lr.p[t]}
            for t in lr.coef]
    return {"method": method, "description": lr.method, "rows": rows}


def _stratified(data: pd.DataFrame, cluster: str | None, threshold: float | None = None
                ) -> tuple[dict[str, Any] | None, str]:
    """Hypoxia x dose table at the study's cut-offs (``threshold``: the configured T/BP cut-off) with
    Wilson 95 % CIs per cell."""
    from .. import stats

    have = [m for m in STUDY_CUTOFFS if m in data and data[m].notna().any()]
    if "t_bp" not in have:  # the table is the hypoxia study's (T/BP 1.29 x Dmean 89 Gy), not a PRRT one
        return None, ""
    cutoffs = dict(STUDY_CUTOFFS, **({"t_bp": float(threshold)} if threshold is not None else {}))
    cut = {m: cutoffs[m] for m in have}
    ops = {m: STUDY_OPERATORS[m] for m in have}
    d = data.dropna(subset=have)
    table = stats.response_table(d, "responder", cut, labels={m: _STRATUM_LABELS[m] for m in have}, cluster=cluster,
                                 operators=ops)
    rows = []
    for _, c in table.cells.iterrows():
        n, k = int(c["n"]), int(c["responders"])
        lo, hi = stats.wilson(k, n) if n else (float("nan"), float("nan"))
        rows.append({"stratum": " / ".join(str(c[m]) for m in have), "n": n, "responders": k,
                     "rate": k / n if n else float("nan"), "ci_low": lo, "ci_high": hi})
    return {"cutoffs": cut, "operators": ops, "ci": "Wilson 95 %", "rows": rows}, table.summary()


def cohort_analysis(lesions: pd.DataFrame, config: "StudyConfig", out_dir: str | Path) -> dict[str, Any]:
    """Statistics of the lesion table: markers vs response, predictor; writes cohort.json/.txt, model.json.

    Parameters
    ----------
    lesions : pandas.DataFrame
        The study's lesions.csv table (``patient``, ``responder`` 0/1/NaN and the marker columns).
    config : StudyConfig
        ``predictor.markers`` (default per therapy type: tare -> t_bp, dmean_gy, ktrans; prrt ->
        ktrans, vp, dmean_gy).
    out_dir : str or Path
        The RESULTS folder.

    Returns
    -------
    dict
        The content of cohort.json. Analyses that cannot run (one class, fewer than
        :data:`MIN_LESIONS` assessable lesions, a marker without values) are skipped with the reason
        in ``notes``; model.json is then not written.

    Notes
    -----
    ROC per marker with the clustered (Obuchowski 1997) variance, GEE logistic regression with
    exchangeable within-patient correlation (Liang & Zeger 1986), logistic dose-response with D50,
    the hypoxia x dose table at T/BP 1.29 and Dmean 89 Gy (the radioembolization study's
    cut-offs) with Wilson (1927) intervals, and a logistic predictor whose AUC is cross-validated
    with folds grouped by patient.
    """
    from .. import stats
    from ..io import write_json, write_text

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    markers = _markers(lesions, config, notes)
    data = lesions.copy()
    if "responder" not in data:
        data["responder"] = np.nan
    data["responder"] = pd.to_numeric(data["responder"], errors="coerce")
    for m in set(markers) | set(STUDY_CUTOFFS):
        if m in data:
            data[m] = pd.to_numeric(data[m], errors="coerce")
    n_all = len(data)
    data = data[data["responder"].isin([0, 1])].copy()
    if len(data) < n_all:
        notes.append(f"{n_all - len(data)} of {n_all} lesions without an assessable response left out")
    data["responder"] = data["responder"].astype(int)
    n_resp = int(data["responder"].sum())
    result: dict[str, Any] = {
        "outcome": "responder", "markers": markers, "analysis": "skipped", "clustered": False,
        "n_lesions": int(len(data)), "n_patients": int(data["patient"].nunique()) if "patient" in data else 0,
        "n_responders": n_resp, "roc": {}, "regression": None, "dose_response": None, "stratified": None,
        "predictor": None, "full": None, "notes": notes}
    text = [f"Cohort statistics: {len(data)} assessable lesions ({n_resp} responders)"]
    degenerate = None
    if not markers:
        degenerate = "no marker column with values"
    elif len(data) < MIN_LESIONS:
        degenerate = f"{len(data)} assessable lesions (at least {MIN_LESIONS} needed)"
    elif min(n_resp, len(data) - n_resp) < 2:
        degenerate = f"{n_resp} responders and {len(data) - n_resp} non-responders (at least 2 of each needed)"
    model_path = out_dir / "model.json"
    if degenerate is not None:
        notes.append(f"cohort analysis skipped: {degenerate}")
        text.append(f"analysis skipped: {degenerate}")
        if model_path.exists():
            model_path.unlink()
    else:
        cluster = "patient" if "patient" in data and data["patient"].nunique() > 1 else None
        group = "response" if "response" in data and data["response"].astype(str).nunique() > 1 else None
        kw: dict[str, Any] = {"cluster": cluster, "n_boot": 500, "seed": 0}
        if "dmean_gy" in data and data["dmean_gy"].notna().sum() >= MIN_LESIONS:
            kw["dose"] = "dmean_gy"
        if {"ktrans", "ktrans_followup"} <= set(data.columns) and pd.to_numeric(
                data["ktrans_followup"], errors="coerce").notna().sum() >= MIN_LESIONS:
            data["ktrans_followup"] = pd.to_numeric(data["ktrans_followup"], errors="coerce")
            kw["paired"] = ("ktrans", "ktrans_followup")   # Wilcoxon signed-rank of the Ktrans change
        try:
            rep = stats.analyze(data, "responder", markers, group=group, **kw)
        except TheraquantError as exc:
            rep = None
            notes.append(f"cohort analysis skipped: {exc}")
            text.append(f"analysis skipped: {exc}")
        if rep is not None:
            notes.extend(rep.notes)
            result.update(analysis=rep.analysis, clustered=rep.cluster is not None,
                          roc={m: _roc_json(r) for m, r in rep.roc.items()}, full=rep.to_dict())
            lr = rep.multivariable if rep.multivariable is not None else (
                rep.univariable.get(markers[0]) if rep.univariable else None)
            if lr is not None:
                result["regression"] = _regression_json(lr)
            if rep.dose is not None:
                dr = rep.dose
                result["dose_response"] = {"d50_gy": dr.d50_gy, "ci": list(dr.d50_ci_gy), "method": dr.method,
                                           "curve": {"dose_gy": np.asarray(dr.curve_dose_gy).tolist(),
                                                     "p": np.asarray(dr.curve_p).tolist(),
                                                     "ci_low": np.asarray(dr.curve_ci_low).tolist(),
                                                     "ci_high": np.asarray(dr.curve_ci_high).tolist()}}
            text.append(rep.summary())
        try:
            threshold = getattr(getattr(config, "fmiso", None), "threshold", None)
            strat, stext = _stratified(data, cluster, threshold)
            result["stratified"] = strat
            if stext:
                text.append(stext)
        except TheraquantError as exc:
            notes.append(f"stratified table skipped: {exc}")
        try:
            model = stats.fit_predictor(data, "responder", markers, cluster=cluster)
            tr = model.training
            cal = tr.get("calibration") or {}
            bins = cal.get("bins", [])
            result["predictor"] = {"markers": list(model.markers), "cv_auc": tr.get("cv_auc"),
                                   "cv_ci": list(tr.get("cv_auc_ci", [np.nan, np.nan])), "threshold": model.cutoff,
                                   "method": model.method, "cv_grouped_by": tr.get("cv_grouped_by"),
                                   "calibration": {"mean_predicted": [b["mean_predicted"] for b in bins],
                                                   "observed": [b["observed"] for b in bins],
                                                   "n": [b["n"] for b in bins]}}
            write_text(model.to_json(), model_path)
            text.append(model.summary())
        except TheraquantError as exc:
            notes.append(f"predictor not fitted: {exc}")
            if model_path.exists():
                model_path.unlink()
    if notes:
        text.append("notes:\n" + "\n".join(f"  - {n}" for n in notes))
    write_json(result, out_dir / "cohort.json")
    write_text("\n\n".join(text) + "\n", out_dir / "cohort.txt")
    return result
