"""Composition of io and the engines into runs that read files and write results.

A study folder of DICOM (any layout) is discovered (:func:`discover_study`), configured by its
``study.yaml`` (:class:`StudyConfig`, :func:`load_config`) and run patient by patient on Dask
(:func:`run_study`), writing the RESULTS layout of ``docs/results-layout.md``. The per-series runs
(:func:`run_dce_fit`) are the building blocks of the single-series commands.
"""

from ._config import StudyConfig, config_hash, default_yaml, load_config
from ._dce import DCE_AIFS, DCE_MODELS, DceFitSettings, DceRun, run_dce_fit
from ._demo import DceDemoRun, DemoRun, run_dce_demo, run_demo, validation_summary, vs_truth_table
from ._discovery import ROLES, TIMEPOINTS, PatientStudy, SeriesInfo, Study, discover_study, parse_segment_label
from ._patient import Failure, PatientOutcome, process_patient
from ._cohort import cohort_analysis
from ._predict import PredictRun, run_predict
from ._outputs import (MANIFEST, check_out_dir, check_output_file, prepare_out_dir, previous_outputs, read_manifest,
                       write_manifest)
from ._run import RunSettings, StudyRun, run_study
from ._discovery import Problem
from ._export import export_dicom  # DICOM results (issue #12)

__all__ = ["DCE_AIFS", "DCE_MODELS", "DceFitSettings", "DceRun", "run_dce_fit", "DemoRun", "run_demo", "DceDemoRun", "run_dce_demo",
           "vs_truth_table", "validation_summary", "prepare_out_dir",
           "StudyConfig", "load_config", "default_yaml", "config_hash",
           "SeriesInfo", "PatientStudy", "Study", "discover_study", "parse_segment_label", "ROLES", "TIMEPOINTS",
           "RunSettings", "StudyRun", "run_study", "Problem", "MANIFEST", "check_out_dir", "check_output_file", "previous_outputs", "read_manifest",
           "write_manifest", "Failure", "PatientOutcome", "process_patient",
           "cohort_analysis", "PredictRun", "run_predict"]
__all__ += ["export_dicom"]  # DICOM results (issue #12)
from ._single import DoseRun, DoseSettings, MaskSpec, read_mask, run_dose, run_hypoxia, run_response  # CONV (#9)

__all__ += ["DoseRun", "DoseSettings", "MaskSpec", "read_mask", "run_dose", "run_hypoxia", "run_response"]  # CONV (#9)
