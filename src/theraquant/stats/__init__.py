"""Cohort statistics: ROC, group tests, regression, the response predictor."""
