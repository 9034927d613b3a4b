"""Digital phantoms with ground truth."""
