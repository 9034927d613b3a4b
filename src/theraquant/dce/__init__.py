"""DCE-MRI perfusion engine: signal to concentration, T1, input functions, models, fitting."""
