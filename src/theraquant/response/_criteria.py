"""Thresholds of the response criteria, read from the package data file ``criteria.json``."""

from __future__ import annotations

import copy
import json
import math
from functools import lru_cache
from importlib import resources
from types import MappingProxyType
from typing import Any, Mapping

from ..errors import TheraquantError

__all__ = ["criteria", "NAMES", "operators"]

#: accepted spellings -> key in criteria.json
NAMES = {"recist": "RECIST", "mrecist": "mRECIST", "percist": "PERCIST", "eortc": "EORTC"}

#: Absolute tolerance of every boundary comparison (on fractions, SUL and mm): decimal inputs
#: such as 2.0 -> 2.8 SUL (a float difference of 0.7999999999999998) or 10.0 -> 13.0
#: (+0.30000000000000004) sit exactly on a 0.8 SUL or 30 % boundary. 1e-9 is far above float64
#: round-off of such inputs (~1e-15) and far below any clinically meaningful change.
EPS = 1e-9

_OPERATORS = (">=", ">")


@lru_cache(maxsize=None)
def _load() -> dict[str, Any]:
    text = resources.files("theraquant.response").joinpath("criteria.json").read_text("utf-8")
    return json.loads(text)


def _key(name: str) -> str:
    try:
        return NAMES[str(name).lower()]
    except KeyError:
        raise TheraquantError(
            f"criteria must be one of {sorted(NAMES.values())}, got {name!r}; "
            "pick one of these names (case does not matter)") from None


def criteria(name: str) -> dict[str, Any]:
    """The definition of one response criterion as shipped with theraquant.

    Parameters
    ----------
    name : {"RECIST", "mRECIST", "PERCIST", "EORTC"}
        Criterion, case-insensitive.

    Returns
    -------
    dict
        A copy of the block of ``theraquant/response/criteria.json``: ``name``,
        ``version``, ``source``, ``doi`` and ``thresholds`` (fractions are
        dimensionless, ``*_mm`` in mm, ``*_SUL`` in SUL units).

    Examples
    --------
    >>> from theraquant.response import criteria
    >>> c = criteria("recist")
    >>> c["version"], c["thresholds"]["pr_decrease"], c["thresholds"]["pd_absolute_mm"]
    ('1.1', 0.3, 5.0)
    """
    return copy.deepcopy(_load()[_key(name)])


def thresholds(name: str, overrides: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """Package thresholds of `name` with `overrides` merged in, checked, read-only."""
    base = dict(_load()[_key(name)]["thresholds"])
    if overrides is None:
        return MappingProxyType(base)
    if not isinstance(overrides, Mapping):
        raise TheraquantError(
            f"thresholds must be a mapping of threshold name to value, got {type(overrides).__name__}; "
            f"pass e.g. {{'{next(iter(base))}': {next(iter(base.values()))}}}")
    if "inclusive" in overrides:
        raise TheraquantError(
            f"thresholds['inclusive'] is gone: each rule of {_key(name)} has its own comparison as its source "
            f"words it ({dict(operators(name))}); remove 'inclusive' (criteria({_key(name)!r})['quotes'] "
            "gives the sentences)", argument="thresholds")
    unknown = sorted(set(overrides) - set(base))
    if unknown:
        raise TheraquantError(
            f"thresholds has unknown name(s) {unknown} for {_key(name)}; "
            f"allowed: {sorted(base)}")
    for k, v in overrides.items():
        if isinstance(base[k], bool):
            if not isinstance(v, bool):
                raise TheraquantError(f"thresholds[{k!r}] must be True or False, got {v!r}")
        elif isinstance(base[k], int) and not isinstance(base[k], bool):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise TheraquantError(f"thresholds[{k!r}] must be a positive integer, got {v!r}")
        else:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise TheraquantError(
                    f"thresholds[{k!r}] must be a finite number >= 0, got {v!r}; "
                    "fractions are positive (0.3 for 30 %), the sign is set by the rule")
        base[k] = v
    return MappingProxyType(base)


def meta(name: str) -> tuple[str, str, str]:
    """(name, version, doi) of a criterion."""
    block = _load()[_key(name)]
    return block["name"], block["version"], block["doi"]


def operators(name: str) -> Mapping[str, str]:
    """Comparison of each boundary of a criterion (``">="`` at least, ``">"`` more than), read-only.

    Examples
    --------
    >>> ops = operators("PERCIST")
    >>> ops["pmr_relative"], ops["pmd_relative"]
    ('>=', '>')
    """
    ops = _load()[_key(name)]["operators"]
    assert all(v in _OPERATORS for v in ops.values()), ops
    return MappingProxyType(dict(ops))


def passes(x: Any, op: str, limit: Any) -> Any:
    """``x >= limit`` or ``x > limit`` by ``op``, with the tolerance :data:`EPS`; NaN gives False."""
    return at_least(x, limit, op == ">=")


def words(op: str) -> str:
    """``">="`` -> ``"at least"``, ``">"`` -> ``"more than"`` (for rule sentences)."""
    return "at least" if op == ">=" else "more than"


def at_least(x: Any, limit: Any, inclusive: bool) -> Any:
    """``x >= limit`` (inclusive) or ``x > limit``, with the tolerance :data:`EPS`; NaN gives False."""
    import numpy as np

    with np.errstate(invalid="ignore"):
        if inclusive:
            return np.asarray(x) >= np.asarray(limit) - EPS
        return np.asarray(x) > np.asarray(limit) + EPS


def finite(value: Any, name: str, *, unit: str, minimum: float = 0.0, strict_min: bool = False,
           fix: str = "") -> float:
    """`value` as a float, checked finite and >= `minimum` (> when `strict_min`)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok:
        try:
            import numpy as np

            ok = isinstance(value, np.number) and not isinstance(value, np.bool_)
        except ImportError:  # pragma: no cover
            ok = False
    v = float(value) if ok else math.nan
    bad = (not ok) or (not math.isfinite(v)) or (v <= minimum if strict_min else v < minimum)
    if bad:
        need = f"{'>' if strict_min else '>='} {minimum:g}"
        raise TheraquantError(
            f"{name} must be a finite number {need} {unit}, got {value!r}"
            + (f"; {fix}" if fix else ""))
    return v
