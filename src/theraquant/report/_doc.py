"""The report as a list of sections of plain blocks, rendered twice: to HTML and to PDF (same content)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Union

__all__ = ["Heading", "Paragraph", "Items", "Links", "Table", "Figure", "Section", "Block", "fmt", "fmt_ci"]


@dataclass
class Heading:
    text: str
    level: int = 3  # 3 = subsection (h3), 4 = minor (h4)
    anchor: str | None = None


@dataclass
class Paragraph:
    text: str
    kind: str = "p"  # "p" | "note" | "warn"


@dataclass
class Items:
    items: list[str]
    kind: str = "p"


@dataclass
class Links:
    """In-page links (``(text, anchor)``): anchors in the HTML, plain text in the PDF."""

    label: str
    links: list[tuple[str, str]]


@dataclass
class Table:
    """A table: ``cells`` hold raw values (numbers stay numbers, so the HTML sorts them as numbers)."""

    columns: list[str]
    cells: list[list[Any]]
    caption: str = ""
    interactive: bool = False  # sortable and filterable in the HTML
    table_id: str | None = None
    digits: int = 3  # significant digits shown for floats

    def text(self, i: int, j: int) -> str:
        return fmt(self.cells[i][j], digits=self.digits)


@dataclass
class Figure:
    png: bytes
    caption: str
    alt: str
    width_px: int
    height_px: int


Block = Union[Heading, Paragraph, Items, Links, Table, Figure]


@dataclass
class Section:
    id: str
    title: str
    blocks: list[Block] = field(default_factory=list)


def fmt(v: Any, *, digits: int = 3) -> str:
    """Display text of one value: floats to ``digits`` significant digits, NaN/None as an en dash.

    Examples
    --------
    >>> fmt(0.123456), fmt(1234.5), fmt(float("nan")), fmt(True), fmt(3)
    ('0.123', '1.23e+03', '–', 'yes', '3')
    >>> fmt(88.97, digits=4)
    '88.97'
    """
    if v is None:
        return "–"
    if isinstance(v, bool) or type(v).__name__ == "bool_":
        return "yes" if v else "no"
    if isinstance(v, int) or type(v).__name__.startswith("int"):
        return str(int(v))
    if isinstance(v, float) or type(v).__name__.startswith("float"):
        v = float(v)
        if math.isnan(v):
            return "–"
        if math.isinf(v):
            return "∞" if v > 0 else "−∞"
        if v == 0:
            return "0"
        mag = abs(v)
        if 1e-3 <= mag < 10 ** digits:
            decimals = max(0, digits - 1 - int(math.floor(math.log10(mag))))
            return f"{v:.{decimals}f}"
        return f"{v:.{digits}g}"
    text = str(v)
    return "–" if text in ("nan", "None", "<NA>") else text


def fmt_ci(lo: Any, hi: Any, *, digits: int = 3) -> str:
    """``"lo–hi"`` for a confidence interval (en dash), ``"–"`` when missing.

    >>> fmt_ci(0.61, 0.903)
    '0.610–0.903'
    """
    if lo is None or hi is None:
        return "–"
    a, b = fmt(lo, digits=digits), fmt(hi, digits=digits)
    if a == "–" and b == "–":
        return "–"
    return f"{a}–{b}"
