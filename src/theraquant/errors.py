"""Exceptions raised by theraquant, and the findings of input-check batteries.

Every error on bad input is a :class:`TheraquantError`, a subclass of
:class:`ValueError`, so callers may catch either. Its message names the
argument or file, the value received, what was needed and how to fix it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TheraquantError", "DicomError", "Finding"]


class TheraquantError(ValueError):
    """Bad input to a theraquant function: the message says what and how to fix it."""


class DicomError(TheraquantError):
    """A DICOM file or series that cannot be used as it is.

    The message starts with the file name and names the tag, e.g.
    ``"IM0001.dcm: Units (0054,1001) is 'CNTS' without a Philips scale factor"``.
    """


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem or remark found by a check battery (all checks run, every finding returned).

    Used by :func:`theraquant.pet.check_suv_headers` (header problems) and the response
    criteria (remarks that did not stop the grading), so that input is fixed in one pass.

    Attributes
    ----------
    level : int
        Logging level: 20 information, 30 warning, 40 error.
    check : str
        Which check, e.g. ``"pet.dose"`` or ``"percist.reference_stability"``.
    message : str
        What was found, with the values; for DICOM it starts with the file name and names the tag.
    fix : str
        How to fix it (often the override or option to pass).
    """

    level: int
    check: str
    message: str
    fix: str = ""
