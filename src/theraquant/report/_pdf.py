"""The same report as a PDF (fpdf2, pure Python; DejaVu fonts shipped with matplotlib, so any Unicode shows)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

from ._doc import Figure, Heading, Items, Links, Paragraph, Section, Table

__all__ = ["to_pdf"]

PX_TO_MM = 25.4 / 96.0  # figures are drawn at 96 dpi: shown at their natural size


def _font_dir() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def to_pdf(sections: Sequence[Section], *, title: str, subtitle: str) -> bytes:
    """The whole report as PDF bytes (A4 landscape)."""
    from fpdf import FPDF
    from fpdf.enums import XPos, YPos
    from fpdf.fonts import FontFace

    pdf = FPDF(orientation="L", unit="mm", format="A4")
    pdf.set_auto_page_break(auto=True, margin=12)
    pdf.set_margins(12, 12, 12)
    fonts = _font_dir()
    pdf.add_font("DejaVu", "", fonts / "DejaVuSans.ttf")
    pdf.add_font("DejaVu", "B", fonts / "DejaVuSans-Bold.ttf")
    pdf.set_title(title)
    pdf.set_creator("theraquant report")
    pdf.set_author("theraquant")
    # fpdf2 records its own creation date in the file; the report's time is in its text

    def footer() -> None:
        pdf.set_y(-9)
        pdf.set_font("DejaVu", "", 7)
        pdf.set_text_color(110)
        pdf.cell(0, 4, f"{title} · page {pdf.page_no()}", align="C")
        pdf.set_text_color(0)

    pdf.footer = footer  # type: ignore[method-assign]
    pdf.add_page()
    pdf.set_font("DejaVu", "B", 17)
    pdf.multi_cell(0, 8, title, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("DejaVu", "", 9)
    pdf.set_text_color(85)
    pdf.multi_cell(0, 5, subtitle, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_text_color(0)

    def para(text: str, *, size: float = 9.5, colour: int | tuple = 0, h: float = 4.8) -> None:
        pdf.set_font("DejaVu", "", size)
        if isinstance(colour, tuple):
            pdf.set_text_color(*colour)
        else:
            pdf.set_text_color(colour)
        pdf.multi_cell(0, h, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT, align="L")
        pdf.set_text_color(0)

    for k, sec in enumerate(sections):
        if k > 0:
            pdf.add_page()
        pdf.start_section(sec.title, level=0)
        pdf.set_font("DejaVu", "B", 14)
        pdf.set_draw_color(49, 104, 142)
        pdf.cell(0, 8, sec.title, border="B", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(2)
        for i, b in enumerate(sec.blocks):
            if isinstance(b, Heading):
                nxt = sec.blocks[i + 1] if i + 1 < len(sec.blocks) else None
                need = 30.0
                if isinstance(nxt, Paragraph) and i + 2 < len(sec.blocks) and isinstance(sec.blocks[i + 2], Figure):
                    nxt = sec.blocks[i + 2]
                    need += 12
                if isinstance(nxt, Figure):  # keep a heading with its figure
                    need += min(_figure_size(pdf, nxt)[1], pdf.eph - 40)
                if pdf.will_page_break(need):
                    pdf.add_page()
                pdf.ln(2)
                if b.level <= 3:
                    pdf.start_section(b.text, level=1)
                pdf.set_font("DejaVu", "B", 11.5 if b.level <= 3 else 10)
                pdf.multi_cell(0, 6, b.text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            elif isinstance(b, Paragraph):
                colour = (138, 59, 0) if b.kind == "warn" else (85 if b.kind == "note" else 0)
                para(b.text, colour=colour)
                pdf.ln(1)
            elif isinstance(b, Items):
                colour = (138, 59, 0) if b.kind == "warn" else 0
                for item in b.items:
                    para(f"•  {item}", colour=colour, size=9)
                pdf.ln(1)
            elif isinstance(b, Links):
                para(f"{b.label} " + " · ".join(t for t, _ in b.links), size=9)
                pdf.ln(1)
            elif isinstance(b, Table):
                _table(pdf, b, FontFace)
            elif isinstance(b, Figure):
                w, h = _figure_size(pdf, b)
                if pdf.will_page_break(h + 10):
                    pdf.add_page()
                pdf.image(io.BytesIO(b.png), x=pdf.l_margin, w=w, h=h, alt_text=b.alt)
                pdf.ln(1)
                para(b.caption, size=8, colour=85, h=4)
                pdf.ln(2)
    return bytes(pdf.output())


def _figure_size(pdf, f: Figure) -> tuple[float, float]:
    """Width and height (mm) of a figure on the page: natural size, shrunk to fit the page."""
    w, h = f.width_px * PX_TO_MM, f.height_px * PX_TO_MM
    scale = min(1.0, pdf.epw / w, (pdf.eph - 14) / h)
    return w * scale, h * scale


def _table(pdf, t: Table, FontFace) -> None:
    ncol = len(t.columns)
    size = 8 if ncol <= 8 else (7 if ncol <= 14 else 6)
    texts = [[t.text(i, j) for j in range(ncol)] for i in range(len(t.cells))]
    if pdf.will_page_break(min(len(texts) + 2, 5) * size * 0.9 + 8):  # caption, header and rows together
        pdf.add_page()
    if t.caption:
        pdf.set_font("DejaVu", "", 8)
        pdf.set_text_color(85)
        pdf.multi_cell(0, 4, t.caption, new_x="LMARGIN", new_y="NEXT")
        pdf.set_text_color(0)
    # column widths (mm) from the widest cell (capped at 70 mm, longer text wraps) and the longest
    # header word, so that numbers never wrap; scaled down to the page width when wider
    pdf.set_font("DejaVu", "B", size)
    head = [max(pdf.get_string_width(w) for w in (str(c).split() or [""])) for c in t.columns]
    pdf.set_font("DejaVu", "", size)
    widths = []
    for j in range(ncol):
        cell = max([pdf.get_string_width(r[j]) for r in texts] + [0.0])
        widths.append(min(max(head[j], cell, 4.0), 70.0) + 2.0)
    total = sum(widths)
    width = min(pdf.epw, total)
    heading = FontFace(emphasis="BOLD", fill_color=(236, 236, 240))
    with pdf.table(col_widths=tuple(widths), width=width, align="LEFT", line_height=size * 0.5,
                   headings_style=heading, text_align="LEFT", first_row_as_headings=True,
                   padding=0.6) as table:
        row = table.row()
        for c in t.columns:
            row.cell(str(c))
        for i, r in enumerate(texts):
            row = table.row()
            for j, cell in enumerate(r):
                v = t.cells[i][j]
                numeric = isinstance(v, (int, float)) and not isinstance(v, bool)
                row.cell(cell, align="RIGHT" if numeric else "LEFT")
    pdf.ln(3)
