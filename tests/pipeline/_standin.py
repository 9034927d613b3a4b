"""A stand-in per-patient step for the orchestration tests (no science: numbers derived from the UIDs).

Deterministic for a given study, so a resumed run must equal a clean one. A patient whose PatientID
contains "BROKEN" raises; with THERAQUANT_TEST_SLEEP=s every patient after the first sleeps s seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd

from theraquant.pipeline import parse_segment_label


def _num(text: str) -> float:
    return int(hashlib.sha256(text.encode()).hexdigest()[:6], 16) / 16 ** 6


def standin_process(patient, config, out_dir, *, study_dir=None):
    if "BROKEN" in patient.patient_id:
        raise RuntimeError(f"cannot read {patient.series[0].files[0]} of {patient.patient_id}")
    if os.environ.get("THERAQUANT_TEST_SLEEP") and patient.pseudonym != "P001":
        time.sleep(float(os.environ["THERAQUANT_TEST_SLEEP"]))
    labels = sorted({lid for s in patient.series if s.role == "seg" for lab in s.segment_labels
                     for kind, lid in [parse_segment_label(lab)] if kind == "lesion"})
    dce = patient.timepoints.get("dce_baseline")
    rows = []
    for lid in labels:
        rows.append({"patient": patient.pseudonym, "lesion": lid,
                     "ktrans": _num(f"{dce.series_uid if dce else ''}{lid}") if dce else float("nan"),
                     "t_bp": 1.0 + _num(f"fmiso{patient.patient_id}{lid}"),
                     "notes": "" if dce else f"no DCE for {patient.patient_id}"})
    maps = Path(out_dir) / "patients" / patient.pseudonym / "maps"
    maps.mkdir(parents=True, exist_ok=True)
    # a sidecar naming the patient and a date, as a real step might: the run must scrub and shift it
    (maps / "ktrans.json").write_text(json.dumps({"Units": "1/min", "Source": f"{patient.patient_id}/dce",
                                                  "Date": str(patient.therapy_date)}))
    failures = ()
    if dce is None:
        failures = (SimpleNamespace(patient=patient.pseudonym, step="dce", file="", message="no DCE series"),)
    curves = pd.DataFrame({"patient": patient.pseudonym, "lesion": labels[:1] * 3, "session": "baseline",
                           "kind": "data", "t_s": [0.0, 1.0, 2.0], "value_mM": [0.0, 0.1, 0.2]}) if labels else None
    row = {"patient": patient.pseudonym, "n_lesions": len(labels), "therapy_date": patient.therapy_date,
           "notes": ""}
    return SimpleNamespace(pseudonym=patient.pseudonym, lesions=pd.DataFrame(rows), patient_row=row,
                           curves=curves, dvh=pd.DataFrame(), failures=failures, warnings=())
