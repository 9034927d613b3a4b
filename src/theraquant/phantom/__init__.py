"""Digital phantoms with ground truth: the liver DCE phantom, the TARE and PRRT phantom studies
(real DICOM) and the biological response models that draw each lesion's true response."""

from ._liver_dce import LIVER_LABELS, LIVER_T10_S, LIVER_TISSUES, LiverDcePhantom, liver_dce_phantom
from ._response_model import (ARTEMISO_TARGETS, PRRT_MODEL, RESPONSE_CATEGORIES, TARE_MODEL, PrrtResponseModel,
                              TareResponseModel, simulate_tare_lesions, tare_response_summary)
from ._studies import PhantomStudy, write_prrt_study, write_tare_study

__all__ = ["LIVER_LABELS", "LIVER_T10_S", "LIVER_TISSUES", "LiverDcePhantom", "liver_dce_phantom",
           "ARTEMISO_TARGETS", "PRRT_MODEL", "RESPONSE_CATEGORIES", "TARE_MODEL", "PrrtResponseModel",
           "TareResponseModel", "simulate_tare_lesions", "tare_response_summary", "PhantomStudy", "write_prrt_study",
           "write_tare_study"]
