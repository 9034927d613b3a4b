"""Digital phantoms with ground truth."""

from ._liver_dce import LIVER_LABELS, LIVER_T10_S, LIVER_TISSUES, LiverDcePhantom, liver_dce_phantom

__all__ = ["LIVER_LABELS", "LIVER_T10_S", "LIVER_TISSUES", "LiverDcePhantom", "liver_dce_phantom"]
