"""PET quantification: SUV, lesion metrics, SUVpeak, FMISO hypoxia."""
