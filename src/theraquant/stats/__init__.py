"""Cohort statistics: ROC, group tests, regression, the response predictor.

``y`` is always 1 for a responder. Lesions clustered in patients are handled explicitly:
Obuchowski's ROC variance, GEE with exchangeable correlation, patient-level bootstrap and
patient-grouped cross-validation; every result says which analysis it used.
"""

from ._bootstrap import BootstrapResult, cluster_bootstrap, roc_bootstrap
from ._common import wilson
from ._dose import DoseResponse, dose_response
from ._predictor import (CalibrationTable, CrossValidation, ResponsePredictor, calibration_table,
                         cross_validated_auc, fit_predictor)
from ._regression import LogisticResult, find_patient_column, logistic
from ._report import CohortReport, analyze
from ._roc import RocComparison, RocResult, ThresholdMetrics, compare_roc, roc, threshold_metrics
from ._tables import ResponseTable, response_table
from ._tests import TestResult, chi2_test, fisher_test, kruskal_wallis, mann_whitney, wilcoxon_signed_rank

__all__ = [
    # ROC
    "roc", "compare_roc", "threshold_metrics", "roc_bootstrap", "cluster_bootstrap",
    "RocResult", "RocComparison", "ThresholdMetrics", "BootstrapResult", "wilson",
    # group comparisons
    "mann_whitney", "kruskal_wallis", "chi2_test", "fisher_test", "wilcoxon_signed_rank", "TestResult",
    # regression, tables, dose-response
    "logistic", "LogisticResult", "find_patient_column", "response_table", "ResponseTable",
    "dose_response", "DoseResponse",
    # predictor
    "fit_predictor", "ResponsePredictor", "cross_validated_auc", "CrossValidation", "calibration_table",
    "CalibrationTable",
    # everything at once
    "analyze", "CohortReport",
]
