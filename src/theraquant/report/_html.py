"""One self-contained HTML file: images as base64 data URIs, style and script inline, no fetch of any kind."""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence

from ._doc import Figure, Heading, Items, Links, Paragraph, Section, Table

__all__ = ["to_html"]

CSS = """
:root { --fg: #1b1b1b; --muted: #555; --line: #d0d0d0; --band: #f4f4f6; --accent: #31688e; }
* { box-sizing: border-box; }
body { font-family: "DejaVu Sans", "Segoe UI", Helvetica, Arial, sans-serif; font-size: 15px; line-height: 1.45;
       color: var(--fg); margin: 0; background: #fff; }
header.top { position: sticky; top: 0; z-index: 5; background: #fff; border-bottom: 1px solid var(--line);
             padding: 8px 24px; display: flex; gap: 18px; align-items: baseline; flex-wrap: wrap; }
header.top strong { font-size: 17px; }
header.top a { color: var(--accent); text-decoration: none; }
main { max-width: 1280px; margin: 0 auto; padding: 8px 24px 48px; }
section { border-top: 2px solid var(--accent); margin-top: 28px; padding-top: 4px; }
h1 { font-size: 24px; margin: 18px 0 4px; }
h2 { font-size: 21px; margin: 6px 0 10px; }
h3 { font-size: 17px; margin: 22px 0 6px; }
h4 { font-size: 15px; margin: 14px 0 4px; color: var(--muted); }
p.note { color: var(--muted); }
p.links a { color: var(--accent); }
p.warn, ul.warn { color: #8a3b00; }
figure { margin: 10px 0 16px; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); }
figcaption { font-size: 13.5px; color: var(--muted); max-width: 1000px; }
.tablewrap { overflow-x: auto; margin: 6px 0 14px; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid var(--line); padding: 3px 7px; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td { max-width: 38em; }
th { background: var(--band); position: sticky; top: 0; }
table.interactive th { cursor: pointer; user-select: none; }
table.interactive th[aria-sort="ascending"]::after { content: " \\25B2"; }
table.interactive th[aria-sort="descending"]::after { content: " \\25BC"; }
tbody tr:nth-child(even) { background: #fafafa; }
caption { caption-side: top; text-align: left; font-size: 13.5px; color: var(--muted); padding-bottom: 4px; }
input.filter { font-size: 14px; padding: 3px 6px; margin: 4px 0; width: 22em; }
.count { color: var(--muted); font-size: 13px; margin-left: 8px; }
@media print { header.top { position: static; } th { position: static; } }
"""

SCRIPT = """
(function () {
  function key(td) {
    var v = td.getAttribute('data-v');
    if (v !== null && v !== '') { var f = parseFloat(v); if (!isNaN(f)) return [0, f]; }
    return [1, td.textContent.toLowerCase()];
  }
  function cmp(a, b) {
    if (a[0] !== b[0]) return a[0] - b[0];
    return a[1] < b[1] ? -1 : (a[1] > b[1] ? 1 : 0);
  }
  document.querySelectorAll('table.interactive').forEach(function (table) {
    var tbody = table.tBodies[0];
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th, col) {
      th.addEventListener('click', function () {
        var dir = th.getAttribute('aria-sort') === 'ascending' ? -1 : 1;
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute('aria-sort'); });
        th.setAttribute('aria-sort', dir === 1 ? 'ascending' : 'descending');
        var rows = Array.prototype.slice.call(tbody.rows);
        rows.sort(function (r1, r2) { return dir * cmp(key(r1.cells[col]), key(r2.cells[col])); });
        rows.forEach(function (r) { tbody.appendChild(r); });
      });
    });
    var box = document.querySelector('input.filter[data-for="' + table.id + '"]');
    var count = document.querySelector('span.count[data-for="' + table.id + '"]');
    if (box) {
      box.addEventListener('input', function () {
        var q = box.value.toLowerCase().trim(), shown = 0;
        Array.prototype.forEach.call(tbody.rows, function (r) {
          var ok = q === '' || r.textContent.toLowerCase().indexOf(q) >= 0;
          r.style.display = ok ? '' : 'none';
          if (ok) shown += 1;
        });
        if (count) count.textContent = shown + ' of ' + tbody.rows.length + ' rows';
      });
    }
  });
})();
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _table(t: Table, n: int) -> str:
    tid = t.table_id or f"table-{n}"
    out = []
    if t.interactive:
        out.append(f'<div><input class="filter" type="search" data-for="{_e(tid)}" '
                   f'placeholder="filter rows (e.g. a patient or PD)" aria-label="filter {_e(tid)}">'
                   f'<span class="count" data-for="{_e(tid)}">{len(t.cells)} rows</span></div>')
    cls = ' class="interactive"' if t.interactive else ""
    out.append(f'<div class="tablewrap"><table id="{_e(tid)}"{cls}>')
    if t.caption:
        out.append(f"<caption>{_e(t.caption)}</caption>")
    out.append("<thead><tr>" + "".join(f'<th scope="col">{_e(c)}</th>' for c in t.columns) + "</tr></thead><tbody>")
    for i, row in enumerate(t.cells):
        tds = []
        for j, v in enumerate(row):
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                fv = float(v)
                dv = "" if math.isnan(fv) else repr(fv)
                tds.append(f'<td class="num" data-v="{dv}">{_e(t.text(i, j))}</td>')
            else:
                tds.append(f"<td>{_e(t.text(i, j))}</td>")
        out.append("<tr>" + "".join(tds) + "</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def _figure(f: Figure) -> str:
    b64 = base64.b64encode(f.png).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{b64}" width="{f.width_px}" height="{f.height_px}" '
            f'alt="{_e(f.alt)}"><figcaption>{_e(f.caption)}</figcaption></figure>')


def to_html(sections: Sequence[Section], *, title: str, subtitle: str) -> str:
    """The whole report as one HTML document (UTF-8 text)."""
    nav = " ".join(f'<a href="#{s.id}">{_e(s.title)}</a>' for s in sections)
    body: list[str] = []
    n = 0
    for s in sections:
        body.append(f'<section id="{_e(s.id)}"><h2>{_e(s.title)}</h2>')
        for b in s.blocks:
            if isinstance(b, Heading):
                anchor = f' id="{_e(b.anchor)}"' if b.anchor else ""
                body.append(f"<h{b.level}{anchor}>{_e(b.text)}</h{b.level}>")
            elif isinstance(b, Paragraph):
                cls = f' class="{b.kind}"' if b.kind != "p" else ""
                body.append(f"<p{cls}>{_e(b.text)}</p>")
            elif isinstance(b, Items):
                cls = f' class="{b.kind}"' if b.kind != "p" else ""
                body.append(f"<ul{cls}>" + "".join(f"<li>{_e(i)}</li>" for i in b.items) + "</ul>")
            elif isinstance(b, Links):
                body.append(f'<p class="links">{_e(b.label)} '
                            + " · ".join(f'<a href="#{_e(a)}">{_e(t)}</a>' for t, a in b.links) + "</p>")
            elif isinstance(b, Table):
                n += 1
                body.append(_table(b, n))
            elif isinstance(b, Figure):
                body.append(_figure(b))
        body.append("</section>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
            "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">"
            f"<title>{_e(title)}</title><link rel=\"icon\" href=\"data:,\"><style>{CSS}</style></head><body>"
            f"<header class=\"top\"><strong>{_e(title)}</strong>{nav}</header><main>"
            f"<h1>{_e(title)}</h1><p class=\"note\">{_e(subtitle)}</p>"
            + "".join(body) + f"</main><script>{SCRIPT}</script></body></html>\n")
