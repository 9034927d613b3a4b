"""``theraquant predict``: a saved response predictor applied to a new patient's images.

Composition only: the same discovery (:func:`discover_study`) and per-lesion steps
(:func:`process_patient`) as a study run, then :meth:`theraquant.stats.ResponsePredictor.predict`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import TheraquantError

__all__ = ["PredictRun", "run_predict", "PREDICTION_COLUMNS"]

#: predictions.csv columns (then the model's marker columns, as used)
PREDICTION_COLUMNS = ("patient", "lesion", "probability", "predicted_response", "cutoff", "status")


@dataclass(frozen=True)
class PredictRun:
    """What :func:`run_predict` produced.

    Attributes
    ----------
    predictions : pandas.DataFrame
        One row per lesion: ``patient``, ``lesion``, ``probability`` (0-1), ``predicted_response``
        (probability >= cutoff; empty when a marker is missing), ``cutoff``, ``status`` ("ok" or the
        missing markers), then the marker values used (in the model's units).
    failures : tuple
        :class:`~theraquant.pipeline.Failure` rows of the per-lesion steps.
    written : tuple of Path
        predictions.csv, predictions.json and the patients' maps and masks.
    """

    predictions: pd.DataFrame
    failures: tuple
    written: tuple[Path, ...]


def _load_model(model_path: Path) -> Any:
    from .. import stats

    if not model_path.is_file():
        raise TheraquantError(f"{model_path}: no such model file; give the model.json of a study run "
                              "(RESULTS/model.json)", argument="model_path")
    try:
        return stats.ResponsePredictor.from_json(model_path.read_text(encoding="utf-8"))
    except TheraquantError as exc:
        raise TheraquantError(f"{model_path}: not a theraquant predictor ({exc})", argument="model_path") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise TheraquantError(f"{model_path}: not a theraquant predictor model.json ({type(exc).__name__}: {exc}); "
                              "give the model.json written by `theraquant run`", argument="model_path") from None


def run_predict(model_path: str | Path, patient_dir: str | Path, out_dir: str | Path, *,
                overwrite: bool = False) -> PredictRun:
    """Probability of response of each lesion of a new patient, from a saved predictor.

    Parameters
    ----------
    model_path : str or Path
        ``model.json`` of a study run (:class:`theraquant.stats.ResponsePredictor`, logistic, with
        its Youden cut-off and patient-grouped cross-validated AUC).
    patient_dir : str or Path
        A folder of the new patient's DICOM (any layout, with SEG/RTSTRUCT lesion masks; an optional
        study.yaml gives the settings, which should match the training study's).
    out_dir : str or Path
        Output folder: ``predictions.csv``, ``predictions.json`` (provenance: model, its training
        summary, settings, inputs) and the per-patient maps under ``patients/``.
    overwrite : bool
        Replace the outputs of an earlier run in ``out_dir``.

    Returns
    -------
    PredictRun

    Raises
    ------
    TheraquantError
        Missing or invalid model file, a folder without any patient, an output folder in use.
    """
    from .. import __version__
    from ..io import write_json, write_table
    from ._discovery import discover_study
    from ._outputs import prepare_out_dir
    from ._patient import process_patient

    model_path = Path(model_path)
    model = _load_model(model_path)
    study = discover_study(patient_dir)
    if not study.patients:
        raise TheraquantError(f"{patient_dir}: no patient's DICOM found (problems: "
                              f"{'; '.join(study.problems[:3]) or 'none'})", argument="patient_dir")
    out = prepare_out_dir(out_dir, overwrite, inputs=(patient_dir, model_path))
    from ._patient import Failure
    from ._privacy import date_shift_days, identifier_strings, scrub

    tables, failures, warnings, written = [], [], [], []
    for p in study.patients:
        days, ids = date_shift_days(p), identifier_strings(p)

        def clean(text: str) -> str:  # the same pseudonymisation as a study run's failures and warnings
            return scrub(str(text), p, shift_days=days, identifiers=ids)

        try:
            res = process_patient(p, study.config, out, study_dir=study.study_dir)
        except TheraquantError as exc:
            failures.append(Failure(p.pseudonym, "patient", "", clean(str(exc))))
            continue
        tables.append(res.lesions)
        failures.extend(Failure(f.patient, f.step, clean(f.file), clean(f.message)) for f in res.failures)
        warnings.extend(clean(w) for w in res.warnings)
        written.extend(res.written)
    if not tables:
        raise TheraquantError(f"{patient_dir}: no lesion could be measured: "
                              + "; ".join(f"{f.patient} {f.step}: {f.message}" for f in failures),
                              argument="patient_dir")
    lesions = pd.concat(tables, ignore_index=True)
    markers = list(model.markers)
    for m in markers:
        if m not in lesions:
            lesions[m] = float("nan")
    scored = model.predict(lesions[["patient", "lesion", *markers]])
    preds = scored[[*PREDICTION_COLUMNS, *markers]].copy()
    written.append(write_table(preds, out / "predictions.csv"))
    prov = {"software": "theraquant", "version": __version__, "command": "predict",
            "model": {"path": str(model_path), "format_version": model.format_version,
                      "software_version": model.software_version, "outcome": model.outcome,
                      "markers": markers, "cutoff": model.cutoff, "cutoff_method": model.cutoff_method,
                      "method": model.method, "training": dict(model.training)},
            "settings": study.config.model_dump(mode="json"),
            "inputs": {p.pseudonym: sorted({s.series_uid for s in p.series}) for p in study.patients},
            "failures": [f.__dict__ for f in failures], "warnings": warnings,
            "columns": {"probability": "probability of response (0-1)",
                        "predicted_response": "probability >= cutoff", "cutoff": "Youden cut-off of the model"}}
    written.append(write_json(prov, out / "predictions.json"))
    return PredictRun(predictions=preds, failures=tuple(failures), written=tuple(written))
