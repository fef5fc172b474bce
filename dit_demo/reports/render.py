"""Rendering helpers for galleries, benchmarks and cards: labelled image grids, tables (Markdown and sortable
HTML) and a small scatter chart — all with Pillow and the standard library, no matplotlib.

Generic on purpose: a table is a list of dict rows, a chart is a list of dict points, a grid is a list of rows of
PIL images. Nothing here knows about DiT, recipes or metrics, so `bench.py`, `gallery.py` and the Hub card share
one look and one set of tests.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

Column = str | tuple[str, str]  # a row key, or (row key, header text)
Formatter = Callable[[object], str]

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f")


@lru_cache(maxsize=16)
def font(size: int = 13) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's bundled font at a size (no system fonts needed, so renders are the same on every machine)."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


# Pillow's bundled font lacks a few typographic glyphs (they render as boxes): draw ASCII stand-ins instead.
_ASCII = str.maketrans({"—": "-", "–": "-", "−": "-", "×": "x", "…": "...", "→": "->", "≤": "<=", "≥": ">="})


def drawable(text: str) -> str:
    """`text` with the glyphs the bundled font cannot draw replaced by ASCII look-alikes."""
    return text.translate(_ASCII)


def text_width(text: str, size: int = 13) -> int:
    left, _, right, _ = font(size).getbbox(text)
    return int(math.ceil(right - left))


def fit_text(text: str, width: int, size: int = 13) -> str:
    """`text`, cut with an ellipsis so it fits `width` pixels: labels never spill into the next cell."""
    text = drawable(text)
    if text_width(text, size) <= width:
        return text
    while text and text_width(text + "...", size) > width:
        text = text[:-1]
    return text + "..." if text else ""


def tile_size(side: int, minimum: int = 96) -> int:
    """Smallest whole multiple of `side` that is ≥ `minimum`: 16 px digits → 96 px, 256 px images stay 256 px."""
    if side <= 0:
        raise ValueError(f"image side must be positive, got {side}")
    return side * max(1, math.ceil(minimum / side))


def upscale(image: Image.Image, tile: int) -> Image.Image:
    """Scale so the longer side is `tile` pixels with NEAREST: every generated pixel stays a crisp square."""
    scale = tile / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.convert("RGB").resize(size, Image.Resampling.NEAREST) if size != image.size else image.convert("RGB")


@dataclass(frozen=True)
class GridLayout:
    """Where everything goes in a labelled grid; the size is a formula, so tests can check it independently.

    width  = 2·pad + label_width + cols·tile + (cols − 1)·gap
    height = 2·pad + header_height + rows·tile + (rows − 1)·gap
    """

    rows: int
    cols: int
    tile: int
    gap: int = 4
    pad: int = 8
    label_width: int = 150
    header_height: int = 24

    @property
    def width(self) -> int:
        return 2 * self.pad + self.label_width + self.cols * self.tile + max(self.cols - 1, 0) * self.gap

    @property
    def height(self) -> int:
        return 2 * self.pad + self.header_height + self.rows * self.tile + max(self.rows - 1, 0) * self.gap

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    def cell(self, row: int, col: int) -> tuple[int, int]:
        """Top-left pixel of a tile."""
        x = self.pad + self.label_width + col * (self.tile + self.gap)
        y = self.pad + self.header_height + row * (self.tile + self.gap)
        return x, y


def hstrip(images: Sequence[Image.Image], background: str = "white") -> Image.Image:
    """Images side by side at native size (one per requested class), e.g. for a CLI output or a slider view."""
    width, height = sum(i.width for i in images), max(i.height for i in images)
    canvas = Image.new("RGB", (width, height), background)
    x = 0
    for image in images:
        canvas.paste(image.convert("RGB"), (x, 0))
        x += image.width
    return canvas


def image_grid(
    cells: Sequence[Sequence[Image.Image | None]],
    *,
    row_labels: Sequence[str] = (),
    col_labels: Sequence[str] = (),
    tile: int | None = None,
    gap: int = 4,
    pad: int = 8,
    label_width: int = 150,
    header_height: int = 24,
    font_size: int = 13,
    background: str = "white",
) -> Image.Image:
    """A labelled grid: rows × columns of tiles (NEAREST-upscaled to `tile`), column headers, row labels.

    `None` cells stay blank (e.g. no difference image for the reference column). `tile` defaults to
    `tile_size(largest image side)`. Set `label_width=0` / `header_height=0` for an unlabelled grid.
    """
    rows = len(cells)
    cols = max((len(r) for r in cells), default=0)
    if rows == 0 or cols == 0:
        raise ValueError("image_grid needs at least one row and one column")
    if row_labels and len(row_labels) != rows:
        raise ValueError(f"{len(row_labels)} row labels for {rows} rows")
    if col_labels and len(col_labels) != cols:
        raise ValueError(f"{len(col_labels)} column labels for {cols} columns")
    if tile is None:
        side = max((max(im.size) for r in cells for im in r if im is not None), default=96)
        tile = tile_size(side)
    layout = GridLayout(rows, cols, tile, gap, pad, label_width, header_height)
    canvas = Image.new("RGB", layout.size, background)
    draw = ImageDraw.Draw(canvas)
    text_font = font(font_size)
    for c, label in enumerate(col_labels):
        x, _ = layout.cell(0, c)
        text = fit_text(str(label), tile, font_size)
        draw.text((x + (tile - text_width(text, font_size)) // 2, pad + 4), text, fill="black", font=text_font)
    for r, row in enumerate(cells):
        if row_labels:
            _, y = layout.cell(r, 0)
            lines = [fit_text(line, label_width - 8, font_size) for line in str(row_labels[r]).splitlines()]
            line_height = font_size + 3
            top = y + (tile - line_height * len(lines)) // 2
            for k, line in enumerate(lines):
                draw.text((pad, top + k * line_height), line, fill="black", font=text_font)
        for c, image in enumerate(row):
            if image is not None:
                tile_image = upscale(image, tile)
                x, y = layout.cell(r, c)
                canvas.paste(tile_image, (x + (tile - tile_image.width) // 2, y + (tile - tile_image.height) // 2))
    return canvas


# ---------------------------------------------------------------------------------------------------- tables


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
    return [(c, c) if isinstance(c, str) else (c[0], c[1]) for c in columns]


def _cell(row: Mapping, key: str, formats: Mapping[str, Formatter] | None) -> str:
    value = row.get(key)
    formatter = (formats or {}).get(key)
    return formatter(value) if formatter is not None and value is not None else format_value(value)


def markdown_table(
    rows: Sequence[Mapping],
    columns: Sequence[Column] | None = None,
    formats: Mapping[str, Formatter] | None = None,
    align: Mapping[str, str] | None = None,
) -> str:
    """A GitHub Markdown table from dict rows. `columns`: keys or (key, header); default every key seen.
    `formats`: key → callable for non-missing values; `align`: key → "left" | "right" | "center"
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


# ---------------------------------------------------------------------------------------------------- chart


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2, 2.5, 5 × 10^k steps) covering [low, high]."""
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"tick range must be finite, got {low}, {high}")
    if high <= low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / max(count - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.floor(low / step) * step
    ticks, value = [], start
    while value < high + step * 0.999:
        ticks.append(round(value, 12))
        value += step
    return ticks


def scatter_chart(
    points: Sequence[Mapping],
    *,
    x: str,
    y: str,
    label: str | None = None,
    title: str = "",
    x_label: str | None = None,
    y_label: str | None = None,
    size: tuple[int, int] = (640, 420),
    from_zero: bool = True,
    x_format: Formatter = format_value,
    y_format: Formatter = format_value,
) -> Image.Image:
    """A labelled scatter plot (e.g. latency vs memory, one point per recipe) as an RGB image.

    Points whose x or y is missing or not finite are left out; at least one must remain. Axes start at zero
    unless `from_zero=False`, so ratios between points read correctly.
    """
    usable = []
    for point in points:
        px, py = point.get(x), point.get(y)
        if isinstance(px, (int, float)) and isinstance(py, (int, float)) and math.isfinite(px) and math.isfinite(py):
            usable.append(point)
    if not usable:
        raise ValueError(f"no point has finite {x!r} and {y!r}")
    width, height = size
    left, right, top, bottom = 72, 24, 36 if title else 16, 48
    xs, ys = [float(p[x]) for p in usable], [float(p[y]) for p in usable]
    x_ticks = nice_ticks(0.0 if from_zero else min(xs), max(xs) * (1.08 if max(xs) > 0 else 1) or 1.0)
    y_ticks = nice_ticks(0.0 if from_zero else min(ys), max(ys) * (1.08 if max(ys) > 0 else 1) or 1.0)

    def to_px(vx: float, vy: float) -> tuple[float, float]:
        fx = (vx - x_ticks[0]) / ((x_ticks[-1] - x_ticks[0]) or 1)
        fy = (vy - y_ticks[0]) / ((y_ticks[-1] - y_ticks[0]) or 1)
        return left + fx * (width - left - right), height - bottom - fy * (height - top - bottom)

    canvas = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(canvas)
    small, normal = font(11), font(13)
    for tick in x_ticks:
        px, _ = to_px(tick, y_ticks[0])
        draw.line([(px, top), (px, height - bottom)], fill="#e6e6e6")
        text = drawable(x_format(tick))
        draw.text((px - text_width(text, 11) / 2, height - bottom + 4), text, fill="#333", font=small)
    for tick in y_ticks:
        _, py = to_px(x_ticks[0], tick)
        draw.line([(left, py), (width - right, py)], fill="#e6e6e6")
        text = drawable(y_format(tick))
        draw.text((left - 6 - text_width(text, 11), py - 6), text, fill="#333", font=small)
    draw.rectangle([left, top, width - right, height - bottom], outline="#444")
    title, x_label, y_label = drawable(title), drawable(x_label or x), drawable(y_label or y)
    if title:
        draw.text(((width - text_width(title, 13)) / 2, 10), title, fill="black", font=normal)
    draw.text(((left + width - right - text_width(x_label, 13)) / 2, height - 22), x_label, fill="black", font=normal)
    label_image = Image.new("RGB", (text_width(y_label, 13) + 4, 16), "white")
    ImageDraw.Draw(label_image).text((2, 0), y_label, fill="black", font=normal)
    rotated = label_image.rotate(90, expand=True)
    canvas.paste(rotated, (4, max(top, (top + height - bottom - rotated.height) // 2)))
    placed: list[tuple[float, float, float, float]] = []
    for i, point in enumerate(usable):
        px, py = to_px(float(point[x]), float(point[y]))
        colour = PALETTE[i % len(PALETTE)]
        draw.ellipse([px - 5, py - 5, px + 5, py + 5], fill=colour, outline="black")
        if label:
            text = drawable(str(point.get(label, "")))
            w = text_width(text, 13)
            tx = px + 8 if px + 8 + w < width - right else px - 8 - w
            # first vertical offset whose box overlaps no earlier label: close points stay readable
            for dy in (-16, 4, -30, 18, -44, 32):
                box = (tx, py + dy, tx + w, py + dy + 14)
                if not any(b[0] < box[2] and box[0] < b[2] and b[1] < box[3] and box[1] < b[3] for b in placed):
                    break
            placed.append(box)
            draw.text((box[0], box[1]), text, fill=colour, font=normal)
    return canvas
