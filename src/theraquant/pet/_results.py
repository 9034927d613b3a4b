"""A read-only mapping of named results, each with its unit, and a fixed-width summary."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Iterator

import numpy as np

__all__ = ["Result"]


class Result(Mapping):
    """Read-only mapping of named values; ``units[name]`` gives each value's unit.

    Examples
    --------
    >>> r = Result({"SUVmax": 4.0, "MTV_mL": 12.5}, units={"SUVmax": "g/mL", "MTV_mL": "mL"}, title="lesion")
    >>> r["SUVmax"], r.units["MTV_mL"]
    (4.0, 'mL')
    >>> print(r.summary())
    lesion
      SUVmax         4            g/mL
      MTV_mL         12.5         mL
    """

    __slots__ = ("_data", "_units", "_title")

    def __init__(self, data: Mapping[str, Any], *, units: Mapping[str, str] | None = None, title: str = ""):
        self._data = dict(data)
        self._units = MappingProxyType(dict(units or {}))
        self._title = title

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    @property
    def units(self) -> Mapping[str, str]:
        """Unit of each field ("" when dimensionless)."""
        return self._units

    def summary(self) -> str:
        """Fixed-width text: one line per field, value and unit."""
        lines = [self._title] if self._title else []
        for k, v in self._data.items():
            if isinstance(v, (float, np.floating)):
                s = f"{float(v):.6g}"
            else:
                s = str(v)
            lines.append(f"  {k:<14} {s:<12} {self._units.get(k, '')}".rstrip())
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from html import escape

        rows = "".join(f"<tr><td>{escape(str(k))}</td><td>{escape(f'{float(v):.6g}' if isinstance(v, (float, np.floating)) else str(v))}</td>"
                       f"<td>{escape(self._units.get(k, ''))}</td></tr>" for k, v in self._data.items())
        cap = f"<caption>{escape(self._title)}</caption>" if self._title else ""
        return f"<table>{cap}<tr><th>name</th><th>value</th><th>unit</th></tr>{rows}</table>"

    def __repr__(self) -> str:
        return f"Result({self._data!r})"
