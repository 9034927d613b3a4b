"""Response per lesion (each lesion graded on its own change) and per patient.

Composition only: :func:`theraquant.response.grade_lesions` grades every lesion at once;
:func:`~theraquant.response.percist`, :func:`~theraquant.response.recist`,
:func:`~theraquant.response.mrecist` and :func:`~theraquant.response.eortc` grade the patient;
diameters come from :func:`theraquant.response.longest_axial_diameter`.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd

__all__ = ["CRITERIA", "grade", "RESPONDER_CATEGORIES"]

#: config name -> (engine name, label for response_criteria, measure, unit)
CRITERIA = {"percist": ("PERCIST", "PERCIST 1.0", "SULpeak", "g/mL"),
            "eortc": ("EORTC", "EORTC 1999", "SUVmax", "g/mL"),
            "recist": ("RECIST", "RECIST 1.1", "longest axial diameter", "mm"),
            "mrecist": ("mRECIST", "mRECIST", "longest axial diameter", "mm")}
RESPONDER_CATEGORIES = ("CR", "PR", "CMR", "PMR")
_NON_RESPONDER = ("SD", "PD", "SMD", "PMD", "non-CR/non-PD")


def _responder(cat: str) -> float:
    if cat in RESPONDER_CATEGORIES:
        return 1.0
    if cat in _NON_RESPONDER:
        return 0.0
    return float("nan")


def grade(criteria: str, baseline: Mapping[str, float], followup: Mapping[str, float], *,
          reference: Mapping[str, float] | None = None,
          new_lesions: bool = False) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Grade each lesion and the patient.

    Parameters
    ----------
    criteria : {"percist", "eortc", "recist", "mrecist"}
    baseline, followup : mapping of lesion id -> measurement
        SULpeak (g/mL, PERCIST), SUVmax (g/mL, EORTC) or longest axial diameter (mm; 0 for a
        lesion that disappeared). NaN: not measured.
    reference : mapping, optional
        PERCIST liver reference: ``mean``, ``sd`` (baseline) and ``followup_mean`` (g/mL).
    new_lesions : bool
        Lesions segmented at follow-up only: the patient is PD / PMD (each lesion keeps its own grade).

    Returns
    -------
    (per-lesion columns, patient columns)
        Lesion: ``response``, ``responder`` (1 CR/PR/CMR/PMR, 0 otherwise, NaN for NE),
        ``response_rule``, ``response_criteria``, ``response_measure``, ``response_unit``,
        ``response_baseline``, ``response_followup``, ``response_change_pct``; patient:
        ``response``, ``response_rule``.

    Examples
    --------
    Two liver lesions by RECIST 1.1, each on its own change (40 -> 20 mm: PR; 30 -> 33 mm: SD):

    >>> rows, patient = grade("recist", {"1": 40.0, "2": 30.0}, {"1": 20.0, "2": 33.0})
    >>> rows["1"]["response"], rows["1"]["responder"], rows["2"]["response"], patient["response"]
    ('PR', 1.0, 'SD', 'SD')
    """
    from .. import response

    name, label, measure, unit = CRITERIA[criteria]
    ref = dict(reference or {})
    ids = list(baseline)
    rows: dict[str, dict[str, Any]] = {}
    for lid in ids:
        b, f = float(baseline.get(lid, np.nan)), float(followup.get(lid, np.nan))
        rows[lid] = {"response": "NE", "responder": np.nan, "response_rule": "", "response_criteria": label,
                     "response_measure": measure, "response_unit": unit, "response_baseline": b,
                     "response_followup": f,
                     "response_change_pct": 100.0 * (f - b) / b if np.isfinite(b) and b > 0 and np.isfinite(f)
                     else np.nan, "_notes": []}
    ok = [lid for lid in ids if np.isfinite(rows[lid]["response_baseline"]) and np.isfinite(
        rows[lid]["response_followup"]) and rows[lid]["response_baseline"] > 0]
    for lid in ids:
        if lid not in ok:
            rows[lid]["_notes"].append(f"{measure} not measured at baseline and follow-up: response NE")
    if ok:
        table = pd.DataFrame({"lesion": ok, "baseline": [rows[i]["response_baseline"] for i in ok],
                              "followup": [rows[i]["response_followup"] for i in ok]})
        if name == "PERCIST" and np.isfinite(ref.get("mean", np.nan)):
            table["reference_mean"] = ref["mean"]
            table["reference_sd"] = ref.get("sd", np.nan) if np.isfinite(ref.get("sd", np.nan)) else 0.0
            if np.isfinite(ref.get("followup_mean", np.nan)):
                table["followup_reference_mean"] = ref["followup_mean"]
        graded = response.grade_lesions(table, name)
        for lid, cat, rule in zip(ok, graded["category"], graded["rule"]):
            rows[lid].update(response=str(cat), responder=_responder(str(cat)), response_rule=str(rule))
    patient: dict[str, Any] = {"response": "NE", "response_rule": ""}
    try:
        if ok:
            if name == "PERCIST":
                kw = {}
                if np.isfinite(ref.get("mean", np.nan)):
                    kw = {"reference_mean": ref["mean"], "reference_sd": ref.get("sd", 0.0)}
                    if np.isfinite(ref.get("followup_mean", np.nan)):
                        kw["followup_reference_mean"] = ref["followup_mean"]
                res = response.percist({i: rows[i]["response_baseline"] for i in ok},
                                       {i: rows[i]["response_followup"] for i in ok}, strict="ignore",
                                       new_lesions=new_lesions, **kw)
            elif name == "EORTC":
                res = response.eortc({i: rows[i]["response_baseline"] for i in ok},
                                     {i: rows[i]["response_followup"] for i in ok}, new_lesions=new_lesions)
            else:
                fn = response.recist if name == "RECIST" else response.mrecist
                res = fn([response.Lesion(i, "liver", rows[i]["response_baseline"]) for i in ok],
                         {i: rows[i]["response_followup"] for i in ok}, select_targets=True,
                         new_lesions=new_lesions)
            patient = {"response": str(res.category), "response_rule": str(res.rule.text)}
    except Exception as exc:  # the patient grade must not lose the lesion grades
        patient = {"response": "NE", "response_rule": f"not graded: {exc}"}
    return rows, patient
