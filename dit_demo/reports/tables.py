"""Every table the project shows, from dict rows: GitHub Markdown, sortable HTML for self-contained pages, and the
labelled (transposed) table of the app's tabs.

A table is a list of dict rows; `columns` picks keys (or (key, header) pairs). A key of the metric vocabulary
(`dit_demo.metrics`) brings its own header (label and unit) and cell format; `formats` overrides a key's formatter.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Callable, Mapping, Sequence

from PIL import Image

from dit_demo.metrics import METRICS

Column = str | tuple[str, str]  # a row key, or (row key, header text)
Formatter = Callable[[object], str]


def format_value(value: object) -> str:
    """Readable default: 4 significant digits for floats, thousands separators for ints, "—" for missing."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "—"
        if math.isinf(value):
            return "∞" if value > 0 else "−∞"
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(v) for v in value)
    return str(value)


def _columns(rows: Sequence[Mapping], columns: Sequence[Column] | None) -> list[tuple[str, str]]:
    if columns is None:
        keys: list[str] = []
        for row in rows:
            keys += [k for k in row if k not in keys]
        columns = keys
    return [(c, METRICS[c].header if c in METRICS else c) if isinstance(c, str) else (c[0], c[1]) for c in columns]


def _cell(row: Mapping, key: str, formats: Mapping[str, Formatter] | None) -> str:
    """A key's own formatter for present values, else the metric's cell, else `format_value`."""
    value = row.get(key)
    formatter = (formats or {}).get(key)
    if formatter is not None and value is not None:
        return formatter(value)
    return METRICS[key].cell(value) if key in METRICS else format_value(value)


def markdown_table(
    rows: Sequence[Mapping],
    columns: Sequence[Column] | None = None,
    formats: Mapping[str, Formatter] | None = None,
    align: Mapping[str, str] | None = None,
) -> str:
    """A GitHub Markdown table from dict rows. `columns`: keys or (key, header); default every key seen; a metric
    key's header is its label with unit. `formats`: key → callable for non-missing values (default: the metric's);
    `align`: key → "left" | "right" | "center"
    (default: right for numbers, left otherwise)."""
    cols = _columns(rows, columns)
    if not cols:
        return ""

    def escape(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    def rule(key: str) -> str:
        side = (align or {}).get(key)
        if side is None:
            numeric = any(isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool) for r in rows)
            side = "right" if numeric else "left"
        return {"left": ":---", "right": "---:", "center": ":---:"}[side]

    lines = [
        "| " + " | ".join(escape(header) for _, header in cols) + " |",
        "|" + "|".join(rule(key) for key, _ in cols) + "|",
    ]
    for row in rows:
        lines.append("| " + " | ".join(escape(_cell(row, key, formats)) for key, _ in cols) + " |")
    return "\n".join(lines) + "\n"


SORT_SCRIPT = """<script>
// Click a header to sort by that column (again to reverse); numbers sort by their data-sort value.
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, col) {
    th.addEventListener("click", function () {
      var body = table.tBodies[0], rows = Array.from(body.rows);
      var asc = th.getAttribute("aria-sort") !== "ascending";
      table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", asc ? "ascending" : "descending");
      function key(row) {
        var cell = row.cells[col], raw = cell.getAttribute("data-sort");
        var text = raw !== null ? raw : cell.textContent.trim(), num = parseFloat(text);
        return raw !== null && raw !== "" && !isNaN(num) ? [0, num] : [1, text.toLowerCase()];
      }
      rows.sort(function (a, b) {
        var ka = key(a), kb = key(b);
        var cmp = ka[0] - kb[0] || (ka[1] < kb[1] ? -1 : ka[1] > kb[1] ? 1 : 0);
        return asc ? cmp : -cmp;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
</script>"""

TABLE_STYLE = """
table.sortable { border-collapse: collapse; font: 13px system-ui, sans-serif; }
table.sortable th, table.sortable td { border: 1px solid #ccc; padding: 3px 8px; }
table.sortable th { background: #f3f3f3; cursor: pointer; user-select: none; }
table.sortable th[aria-sort=ascending]::after { content: " ▲"; }
table.sortable th[aria-sort=descending]::after { content: " ▼"; }
table.sortable td.num { text-align: right; font-variant-numeric: tabular-nums; }
"""


def html_table(
    rows: Sequence[Mapping],
    columns: Sequence[Column] | None = None,
    formats: Mapping[str, Formatter] | None = None,
    *,
    table_id: str | None = None,
    sortable: bool = True,
) -> str:
    """An HTML table from dict rows; numeric cells carry `data-sort` with the raw value so sorting is numeric.
    Add `SORT_SCRIPT` (and `TABLE_STYLE`) once per page to make every `table.sortable` clickable."""
    cols = _columns(rows, columns)
    attrs = (f' id="{html.escape(table_id)}"' if table_id else "") + (' class="sortable"' if sortable else "")
    out = [f"<table{attrs}>", "<thead><tr>"]
    out += [f"<th>{html.escape(header)}</th>" for _, header in cols]
    out.append("</tr></thead>\n<tbody>")
    for row in rows:
        out.append("<tr>")
        for key, _ in cols:
            value = row.get(key)
            text = html.escape(_cell(row, key, formats))
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            if numeric and math.isfinite(value):
                out.append(f'<td class="num" data-sort="{value!r}">{text}</td>')
            elif numeric or value is None:
                out.append(f'<td class="num" data-sort="">{text}</td>')
            else:
                out.append(f"<td>{text}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def html_page(title: str, body: str, *, style: str = "", script: str = SORT_SCRIPT) -> str:
    """A complete self-contained page (inline CSS and JS, no external requests): opens from disk."""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>\nbody {{ font: 14px system-ui, sans-serif; margin: 1.5em; }}"
        f"{TABLE_STYLE}{style}\n</style>\n</head>\n<body>\n{body}\n{script}\n</body>\n</html>\n"
    )


def data_uri(image: Image.Image) -> str:
    """A PNG as a `data:` URI, for pages that must be a single file."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _labelled_cell(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:g}"
    return html.escape(str(value))


def labelled_table(
    columns: Sequence[str], rows: Sequence[Sequence[object]], *, note: str = "", table_id: str = ""
) -> str:
    """A plain table for the app's pages: header row `columns`, body `rows` whose first cell heads its row, in a
    scrolling wrapper. Tables of more than two value columns are marked `dq-wide`: on a phone each row becomes a
    block (its title, then every value after its column's name), so nothing is cut off. `note` is HTML."""
    head = "".join(f'<th scope="col">{html.escape(c)}</th>' for c in columns)
    names = [html.escape(str(c)) for c in columns[1:]]
    body = "".join(
        f'<tr><th scope="row">{html.escape(str(r[0]))}</th>'
        + "".join(f'<td data-label="{name}">{_labelled_cell(v)}</td>' for name, v in zip(names, r[1:]))
        + "</tr>"
        for r in rows
    )
    ident = f' id="{html.escape(table_id)}"' if table_id else ""
    wide = " dq-wide" if len(columns) > 3 else ""
    foot = f'<p class="dq-note">{note}</p>' if note else ""
    return (
        f'<div class="dq-table-wrap"><table class="dq-table{wide}"{ident}><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>{foot}"
    )


def metric_rows(records: Sequence[Mapping], keys: Sequence[str]) -> list[list[str]]:
    """Metrics down, one column per record: each row titled by the metric's header, each cell in its format. A key
    no record has is left out; a string in a record is shown as it is."""
    return [
        [METRICS[key].header, *(METRICS[key].cell(r.get(key)) for r in records)]
        for key in keys
        if any(r.get(key) is not None for r in records)
    ]


def metric_table(
    records: Sequence[Mapping], keys: Sequence[str], names: Sequence[str], *, note: str = "", table_id: str = ""
) -> str:
    """`metric_rows` as a labelled table whose columns are named by `names`."""
    return labelled_table(["", *names], metric_rows(records, keys), note=note, table_id=table_id)
