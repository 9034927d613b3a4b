"""DCE-MRI perfusion engine: signal to concentration, T1, input functions, models, fitting."""

from . import aif  # noqa: E402  (input functions: theraquant.dce.aif.parker, ...)
from ._metrics import (  # noqa: E402  (model-free metrics)
    ModelFreeResult, bolus_arrival, enhancement_ratio, iaugc, max_upslope, model_free, time_to_peak)
from ._signal import (  # noqa: E402  (signal <-> concentration)
    ConcentrationResult, InvalidSignalWarning, concentration_to_signal, signal_to_concentration, spgr_signal)
from ._t1 import T1Result, t1_vfa  # noqa: E402  (VFA T1 mapping)
from ._fit import FIT_STATUS, FitResult, fit, simulate  # noqa: E402  (models and fitting)
from ._models import MODELS, ModelName  # noqa: E402
from ._kernels import COMPILE_ESTIMATE_S, kernels_ready, warm_up  # noqa: E402  (compile ahead of a fit)
from ._summary import summarize_maps  # noqa: E402  (volume driver and summary tables)
from ._volume import VolumeFit, fit_volume  # noqa: E402

__all__ = [
    "aif", "ModelFreeResult", "bolus_arrival", "enhancement_ratio", "iaugc", "max_upslope", "model_free",
    "time_to_peak", "ConcentrationResult", "InvalidSignalWarning", "concentration_to_signal",
    "signal_to_concentration", "spgr_signal", "T1Result", "t1_vfa",
    "FIT_STATUS", "FitResult", "MODELS", "ModelName", "COMPILE_ESTIMATE_S", "kernels_ready", "warm_up", "fit", "simulate", "VolumeFit", "fit_volume", "summarize_maps"]
