"""The leaderboard as one self-contained HTML page: a static table whose columns sort on click (a few lines of
inline JavaScript; no stylesheet, script or font is fetched)."""

from __future__ import annotations

import html
import math
import re
from typing import Any, Mapping, Sequence

import pandas as pd

#: sorts the table on a header click: numbers by each cell's ``data-sort``, text by its content, first in the
#: header's ``data-first`` order, reversed by a second click; blank cells stay last
SCRIPT = """\
const headers = document.querySelectorAll("#zoo thead th");
for (const th of headers) {
  th.addEventListener("click", () => {
    const body = document.querySelector("#zoo tbody"), col = th.cellIndex, num = th.dataset.type === "number";
    const first = th.dataset.first, order = th.dataset.dir === first ? (first === "asc" ? "desc" : "asc") : first;
    for (const h of headers) delete h.dataset.dir;
    th.dataset.dir = order;
    const key = (row) => { const c = row.cells[col]; return num ? c.dataset.sort : c.textContent.trim(); };
    const rows = Array.from(body.rows);
    rows.sort((a, b) => {
      const x = key(a), y = key(b);
      if (x === "" || y === "") return (x === "") - (y === "");
      const d = num ? parseFloat(x) - parseFloat(y) : x.localeCompare(y);
      return order === "asc" ? d : -d;
    });
    for (const r of rows) body.appendChild(r);
  });
}
"""

STYLE = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:90%}"
         "th,td{border:1px solid #ccc;padding:2px 6px}th{cursor:pointer;background:#eee}"
         "td.n{text-align:right}")


def _markup(text: str) -> str:
    """``text`` escaped, with Markdown's `code` spans as <code>."""
    return re.sub(r"`([^`]*)`", r"<code>\1</code>", html.escape(text))


def _sort_value(v: Any) -> str:
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return ""
    return repr(float(v))


def render_html(shown: pd.DataFrame, keys: Mapping[str, Sequence[Any] | None], title: str, caption: str,
                descending: Sequence[str] = ()) -> str:
    """The page of ``shown`` (text cells, one row per model) under ``title`` and ``caption`` (Markdown code spans
    become ``<code>``). ``keys``: per header, the numbers its cells sort by (one per row, None / NaN for a blank),
    or None for a column that sorts by its text. ``descending``: the headers whose first click sorts highest first
    (the others: lowest / A first). Returns the HTML text (UTF-8)."""
    def th(c: str) -> str:
        kind = "number" if keys.get(c) is not None else "text"
        first = "desc" if c in descending else "asc"
        return f'<th data-type="{kind}" data-first="{first}">{html.escape(str(c))}</th>'

    head = "".join(th(c) for c in shown.columns)
    body = []
    for i, row in enumerate(shown.itertuples(index=False)):
        cells = []
        for c, v in zip(shown.columns, row):
            k = keys.get(c)
            attr = f' class="n" data-sort="{_sort_value(k[i])}"' if k is not None else ""
            cells.append(f"<td{attr}>{html.escape(str(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>", f"<style>{STYLE}</style>", "</head>", "<body>",
        f"<h1>{html.escape(title)}</h1>", f"<p>{_markup(caption)}</p>",
        "<p>Click a column header to sort by it (again to reverse).</p>",
        '<table id="zoo">', f"<thead><tr>{head}</tr></thead>", "<tbody>", *body, "</tbody>", "</table>",
        f"<script>\n{SCRIPT}</script>", "</body>", "</html>", ""])
