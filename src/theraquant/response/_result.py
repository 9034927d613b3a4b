"""Result types of the response criteria: a decision, the rule that fired and its numbers."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

from ..errors import Finding
from ..results import Result

__all__ = ["Rule", "Finding", "ResponseResult"]  # Finding lives in theraquant.errors


@dataclass(frozen=True, slots=True)
class Rule:
    """The rule of a response criterion that decided a category.

    Attributes
    ----------
    id : str
        Short stable identifier, ``"<criteria>.<scope>.<rule>"``, e.g. ``"percist.pmr"``.
    text : str
        The rule as a human sentence (the numbers it compared are in
        :attr:`ResponseResult.values`).
    """

    id: str
    text: str


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        return f"{v:.4g}"
    if isinstance(v, tuple):
        return "(" + ", ".join(_fmt(x) for x in v) + ")"
    return str(v)


@dataclass(frozen=True, slots=True)
class ResponseResult(Result):
    """One response decision and how it was made (a :class:`~theraquant.results.Result`).

    A read-only mapping of its fields (``res["category"]``); note that ``res.values`` is the
    field below (the compared numbers), not the mapping method.

    Attributes
    ----------
    category : str
        ``"CR"``, ``"PR"``, ``"SD"``, ``"PD"`` (RECIST 1.1, mRECIST; also
        ``"non-CR/non-PD"`` for patients with non-target disease only), ``"CMR"``,
        ``"PMR"``, ``"SMD"``, ``"PMD"`` (PERCIST 1.0, EORTC 1999), or ``"NE"``
        (not evaluable).
    rule : Rule
        The rule that fired (id and sentence).
    values : mapping of str to float, str, bool or tuple
        The numbers the rule compared, read-only. Names carry their unit:
        ``*_mm`` in mm, ``*_sul`` in SUL units (g/mL), ``*_suv`` in SUV units (g/mL),
        ``*_fraction`` dimensionless (-0.30 is a 30 % decrease).
    criteria : str
        ``"RECIST"``, ``"mRECIST"``, ``"PERCIST"`` or ``"EORTC"``.
    version : str
        Version of the criteria (``"1.1"``, ``"2010"``, ``"1.0"``, ``"1999"``).
    thresholds : mapping of str to float or bool
        Every threshold used (package defaults merged with overrides), read-only.
    level : str
        ``"lesion"`` (one lesion's baseline vs follow-up) or ``"patient"``.
    reference : str
        DOI of the paper defining the criteria.
    findings : tuple of Finding
        Remarks on the input (e.g. an unstable liver reference for PERCIST).
    """

    category: str
    rule: Rule
    values: Mapping[str, Any] = field()  # field(): not the inherited Mapping.values as a default
    criteria: str
    version: str
    thresholds: Mapping[str, Any]
    level: str
    reference: str = ""
    findings: tuple[Finding, ...] = field(default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", MappingProxyType(dict(self.values)))
        object.__setattr__(self, "thresholds", MappingProxyType(dict(self.thresholds)))
        super(ResponseResult, self).__post_init__()

    __hash__ = None  # type: ignore[assignment]  # holds mappings

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict of the result (for provenance records and reports)."""
        return {
            "category": self.category,
            "rule_id": self.rule.id,
            "rule": self.rule.text,
            "values": dict(self.values),
            "criteria": self.criteria,
            "version": self.version,
            "thresholds": dict(self.thresholds),
            "level": self.level,
            "reference": self.reference,
            "findings": [
                {"level": f.level, "check": f.check, "message": f.message, "fix": f.fix}
                for f in self.findings
            ],
        }

    def summary(self) -> str:
        """Fixed-width text: category, rule and the compared values, one per line."""
        lines = [
            f"{self.criteria} {self.version} ({self.level} level)   category: {self.category}",
            f"rule {self.rule.id}: {self.rule.text}",
        ]
        width = max((len(k) for k in self.values), default=0)
        lines += [f"  {k:<{width}}  {_fmt(v)}" for k, v in self.values.items()]
        lines += [f"  [{f.check}] {f.message}" for f in self.findings]
        return "\n".join(lines)
