"""Cohort statistics: ROC, group tests, regression, the response predictor."""

from ._bootstrap import BootstrapResult, cluster_bootstrap, roc_bootstrap
from ._common import wilson
from ._tests import TestResult, chi2_test, fisher_test, kruskal_wallis, mann_whitney, wilcoxon_signed_rank
from ._dose import DoseResponse, dose_response
from ._tables import ResponseTable, response_table
from ._predictor import (CalibrationTable, CrossValidation, ResponsePredictor, calibration_table,
                         cross_validated_auc, fit_predictor)
from ._regression import LogisticResult, find_patient_column, logistic
from ._roc import RocComparison, RocResult, ThresholdMetrics, compare_roc, roc, threshold_metrics

__all__ = ["BootstrapResult", "cluster_bootstrap", "roc_bootstrap", "RocComparison", "RocResult", "ThresholdMetrics", "compare_roc", "roc", "threshold_metrics",
           "wilson", "TestResult", "chi2_test", "fisher_test", "kruskal_wallis", "mann_whitney",
           "wilcoxon_signed_rank", "LogisticResult", "find_patient_column", "logistic", "DoseResponse", "dose_response", "ResponseTable",
           "response_table", "CalibrationTable", "CrossValidation", "ResponsePredictor", "calibration_table",
           "cross_validated_auc", "fit_predictor"]
