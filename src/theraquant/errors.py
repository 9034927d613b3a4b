"""Exceptions raised by theraquant, and the findings of input-check batteries.

Every error on bad input is a :class:`TheraquantError`, a subclass of
:class:`ValueError`, so callers may catch either. Its message names the
argument or file, the value received, what was needed and how to fix it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["TheraquantError", "DicomError", "Finding"]


#: The package's wording of a fix that names a keyword argument: "pass weight_kg=70.0".
_PASS_KEYWORD = re.compile(r"\bpass ([a-z_][a-z0-9_]*)=")


class TheraquantError(ValueError):
    """Bad input to a theraquant function: the message says what and how to fix it.

    Parameters
    ----------
    message : str
        What is wrong: the argument or file, the value received and what was needed.
    argument : str, optional
        The API keyword of the offending argument (e.g. ``"series_uid"``); the command line
        maps it to its ``--flag`` instead of rewriting the message. When not given, it is the
        keyword the message's fix names in the package's standard wording ``"pass NAME=..."``
        (the first such), so existing messages need no second spelling of it.
    fix : str, optional
        How to fix it; appended to the message as ``"; fix: ..."`` unless the message says it.

    Examples
    --------
    >>> err = TheraquantError("threshold=-1 must be > 0", argument="threshold", fix="pass e.g. 1.29")
    >>> str(err), err.argument
    ('threshold=-1 must be > 0; fix: pass e.g. 1.29', 'threshold')
    >>> isinstance(err, ValueError)
    True
    >>> TheraquantError("weight missing; pass weight_kg=70.0").argument
    'weight_kg'
    """

    def __init__(self, message: str = "", *args: object, argument: str | None = None, fix: str | None = None):
        super().__init__(message, *args)
        self.message = str(message)
        if argument is None:
            found = _PASS_KEYWORD.search(self.message)
            argument = found.group(1) if found else None
        self.argument = argument
        self.fix = fix

    def __str__(self) -> str:
        text = super().__str__()
        if self.fix and self.fix not in text:
            text = f"{text}; fix: {self.fix}"
        return text

    def __reduce__(self):  # keyword-only fields survive pickling (Dask workers)
        return (_rebuild_error, (type(self), self.args, self.argument, self.fix))


def _rebuild_error(cls: type, args: tuple, argument: str | None, fix: str | None) -> TheraquantError:
    return cls(*args, argument=argument, fix=fix)


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
