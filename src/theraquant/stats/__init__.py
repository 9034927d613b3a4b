"""Cohort statistics: ROC, group tests, regression, the response predictor."""

from ._common import wilson
from ._roc import RocComparison, RocResult, ThresholdMetrics, compare_roc, roc, threshold_metrics

__all__ = ["RocComparison", "RocResult", "ThresholdMetrics", "compare_roc", "roc", "threshold_metrics",
           "wilson"]
