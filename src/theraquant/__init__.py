"""theraquant: quantitative imaging for radionuclide therapy of liver tumours.

The package is organised as science engines that work on plain arrays
(:mod:`theraquant.dce`, :mod:`theraquant.pet`, :mod:`theraquant.dosimetry`,
:mod:`theraquant.response`, :mod:`theraquant.stats`), one image type
(:class:`theraquant.image.Image`) and the readers and writers in
:mod:`theraquant.io`.

Conventions (stated once, used everywhere)
------------------------------------------
* Arrays are indexed ``(z, y, x)``; a time (or flip-angle) axis is always the
  **last** axis, ``(z, y, x, t)``.
* ``spacing_mm`` is ``(z, y, x)`` in mm wherever raw arrays are taken.
* :class:`~theraquant.image.Image` stores a 4x4 affine from array index
  ``(z, y, x)`` to **DICOM patient coordinates (LPS, mm)**. NIfTI's RAS is
  converted at the NIfTI reader and writer only.
* Units follow OSIPI CAPLEX for perfusion (s, mM, 1/min, mL/100 mL/min) and
  MIRD for dosimetry (Bq s, Gy, kg).
"""

__version__ = "0.1.0"

from .errors import TheraquantError  # noqa: E402
from .image import Image  # noqa: E402

__all__ = ["Image", "TheraquantError", "__version__"]
