"""Exceptions raised by theraquant.

Every error on bad input is a :class:`TheraquantError`, a subclass of
:class:`ValueError`, so callers may catch either. Its message names the
argument or file, the value received, what was needed and how to fix it.
"""

from __future__ import annotations

__all__ = ["TheraquantError", "DicomError"]


class TheraquantError(ValueError):
    """Bad input to a theraquant function: the message says what and how to fix it."""


class DicomError(TheraquantError):
    """A DICOM file or series that cannot be used as it is.

    The message starts with the file name and names the tag, e.g.
    ``"IM0001.dcm: Units (0054,1001) is 'CNTS' without a Philips scale factor"``.
    """
