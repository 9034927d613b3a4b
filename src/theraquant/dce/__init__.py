"""DCE-MRI perfusion engine: signal to concentration, T1, input functions, models, fitting."""

from ._summary import summarize_maps  # noqa: E402  (volume driver and summary tables)
from ._volume import VolumeFit, fit_volume  # noqa: E402

__all__ = ["VolumeFit", "fit_volume", "summarize_maps"]
