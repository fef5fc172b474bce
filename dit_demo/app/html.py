"""The comparison as the page shows it, in plain HTML (styled by `dit_demo.app.style`): captioned tiles, a
difference view with its scale stated, a table with units, an SVG chart with labelled points.

Images are inline PNGs (data URIs), upscaled by whole multiples with nearest neighbour so a 16-pixel digit is a
crisp 128-pixel tile; nothing here needs a file route, so nothing can 404.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping, Sequence
from html import escape

import numpy as np
from PIL import Image

from dit_demo.app.views import ComparisonState, difference_images, recipe_label, table_frame
from dit_demo.compare import Comparison
from dit_demo.reports import render
from dit_demo.reports.charts import PALETTE, nice_ticks
from dit_demo.units import MIB

TILE_SIDE = 128  # smallest side of an on-page tile


def data_uri(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def tile_image(image: Image.Image, side: int = TILE_SIDE) -> Image.Image:
    return render.upscale(image, render.tile_size(max(image.size), side))


def figure(image: Image.Image, caption_html: str, alt: str) -> str:
    tile = tile_image(image)
    return (
        f'<figure class="dq-tile"><img src="{data_uri(tile)}" width="{tile.width}" height="{tile.height}" '
        f'alt="{escape(alt)}"><figcaption>{caption_html}</figcaption></figure>'
    )


def image_grid_html(col_labels: Sequence[str], rows: Sequence[tuple[str, Sequence[Image.Image | None]]]) -> str:
    """A compact labelled grid (CSS grid, not a table): a header per column, a label per row, small crisp tiles
    that shrink to fit a phone."""
    cells = ['<div class="dq-grid-h"></div>'] + [f'<div class="dq-grid-h">{escape(c)}</div>' for c in col_labels]
    for label, images in rows:
        cells.append(f'<div class="dq-grid-r">{escape(label)}</div>')
        for image in images:
            if image is None:
                cells.append("<div></div>")
                continue
            tile = tile_image(image, 64)
            cells.append(
                f'<img src="{data_uri(tile)}" width="{tile.width}" height="{tile.height}" alt="{escape(label)}">'
            )
    style = f"grid-template-columns: max-content repeat({len(col_labels)}, minmax(0, 96px))"
    return f'<div class="dq-grid" style="{style}">{"".join(cells)}</div>'


def _quality_line(row: Mapping, index: int, reference: str) -> str:
    if row["recipe"] == reference:
        line = "reference"
    elif row.get("psnr_db") is None:
        line = "identical to the reference"
    else:
        line = f"PSNR {row['psnr_db']:.1f} dB (all images)"
    if row.get("predicted_digits"):
        line += f" · reads as {row['predicted_digits'][index]} ({100 * row['confidences'][index]:.0f} %)"
    return line


def tiles_html(comparison: Comparison, rows: Sequence[Mapping]) -> str:
    """One block per requested image (class and seed): every recipe's tile, each captioned with recipe and class."""
    by_recipe = {row["recipe"]: row for row in rows}
    reference = comparison.reference_recipe
    ref = comparison.reference
    blocks = []
    for i, (name, seed) in enumerate(zip(ref.class_names, ref.seeds)):
        tiles = []
        for recipe, result in comparison.results.items():
            row = by_recipe[recipe]
            label = recipe_label(row, reference)
            text = (
                f"<b>{escape(label)}</b> · {escape(name)} (seed {seed})<br>{escape(_quality_line(row, i, reference))}"
            )
            tiles.append(figure(result.images[i], text, f"{label}: {name}, seed {seed}"))
        blocks.append(
            f'<section class="dq-row"><h4>{escape(name)} · seed {seed}</h4>'
            f'<div class="dq-strip">{"".join(tiles)}</div></section>'
        )
    return f'<div class="dq-rows" id="dq-tiles">{"".join(blocks)}</div>'


def differences_html(comparison: Comparison, rows: Sequence[Mapping]) -> str:
    """Per quantized recipe: where it differs from the reference, with the gain and the largest error stated."""
    by_recipe = {row["recipe"]: row for row in rows}
    reference = comparison.reference_recipe
    ref = comparison.reference
    ref_label = recipe_label(by_recipe[reference], reference)
    sections = []
    for recipe, result in comparison.results.items():
        if recipe == reference:
            continue
        images, gain, largest = difference_images(ref.images, result.images)
        if largest == 0:
            note = f"<b>{escape(recipe)}</b> vs the {escape(ref_label)}: identical pixels (no difference at all)."
        else:
            note = (
                f"<b>{escape(recipe)}</b> vs the {escape(ref_label)}: |difference| ×{gain}, "
                f'<span class="dq-swatch" style="background:#fff"></span> white = identical, '
                f'<span class="dq-swatch" style="background:#f00"></span> red = {math.ceil(255 / gain)}/255 or '
                f"more. Largest error: {largest}/255 ({100 * largest / 255:.1f} %)."
            )
        tiles = []
        for i, (name, seed, image) in enumerate(zip(ref.class_names, ref.seeds, images)):
            own = int(np.abs(np.asarray(ref.images[i].convert("RGB"), np.int16)
                             - np.asarray(result.images[i].convert("RGB"), np.int16)).max())  # fmt: skip
            text = f"<b>{escape(recipe)} − ref.</b> · {escape(name)} (seed {seed})<br>max error {own}/255, ×{gain}"
            tiles.append(figure(image, text, f"difference {recipe}: {name}, seed {seed}"))
        sections.append(f'<p class="dq-note">{note}</p><div class="dq-strip">{"".join(tiles)}</div>')
    return f'<div class="dq-rows" id="dq-diffs">{"".join(sections)}</div>' if sections else ""


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:g}"
    return escape(str(value))


def table_html(columns: Sequence[str], rows: Sequence[Sequence[object]], note: str = "", table_id: str = "") -> str:
    """A plain table: header row `columns`, body `rows` whose first cell heads its row.

    Tables of more than three value columns are marked `dq-wide`: on a phone each row becomes a block (its title,
    then every value after its column's name), so nothing is cut off and no header breaks mid-word."""
    head = "".join(f'<th scope="col">{escape(c)}</th>' for c in columns)
    names = [escape(str(c)) for c in columns[1:]]
    body = "".join(
        f'<tr><th scope="row">{escape(str(r[0]))}</th>'
        + "".join(f'<td data-label="{name}">{_cell(v)}</td>' for name, v in zip(names, r[1:]))
        + "</tr>"
        for r in rows
    )
    ident = f' id="{escape(table_id)}"' if table_id else ""
    wide = " dq-wide" if len(columns) > 4 else ""
    foot = f'<p class="dq-note">{note}</p>' if note else ""
    return (
        f'<div class="dq-table-wrap"><table class="dq-table{wide}"{ident}><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>{foot}"
    )


def comparison_table(rows: Sequence[Mapping], memory_kind: str = "") -> str:
    """The per-recipe numbers transposed: recipes are the (short) column heads, metrics with units the rows."""
    frame = table_frame(rows)
    if (frame["compile"] == "none").all():
        frame = frame.drop(columns=["compile"])
    if frame["one-time warm-up (s)"].isna().all():
        frame = frame.drop(columns=["one-time warm-up (s)"])
    recipes = [str(r) for r in frame["recipe"]]
    metrics = [c for c in frame.columns if c != "recipe"]
    body = []
    for metric in metrics:
        values = list(frame[metric])
        if metric == "PSNR (dB)":
            values = ["—" if i == 0 else ("identical" if v is None or v != v else v) for i, v in enumerate(values)]
        body.append([metric, *values])
    note = "One-time warm-up: the first run of a variant (kernel builds such as the fp8 JIT or the int4 extension, "
    note += "compile), kept out of its latency."
    if memory_kind.startswith("process"):
        note += " Peak memory on CPU is the whole process (every loaded model), so weights tell recipes apart."
    return table_html(["", *recipes], body, note=escape(note), table_id="dq-table")


def _text_box(x: float, baseline: float, text: str, size: float, anchor: str) -> tuple[float, float, float, float]:
    width = 0.56 * size * len(text)  # close enough for the UI sans-serif; boxes are only kept apart
    left = {"start": x, "end": x - width, "middle": x - width / 2}[anchor]
    return left, baseline - size, left + width, baseline + 3


def _overlaps(a: tuple, b: tuple) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def place_labels(
    spots: Sequence[tuple[float, float]], texts: Sequence[str], area: tuple[float, float, float, float], size: float
) -> list[tuple[float, float, str]]:
    """A spot (x, baseline, anchor) for each point's label: right, left, above or below its point, or further out,
    wherever it stays inside `area` and clear of the points and of labels already placed."""
    taken = [(x - 7, y - 7, x + 7, y + 7) for x, y in spots]
    placed = []
    for (x, y), text in zip(spots, texts):
        candidates = [
            (x + 9, y + 4, "start"),
            (x - 9, y + 4, "end"),
            (x, y - 10, "middle"),
            (x, y + size + 8, "middle"),
        ]
        for step in (1, 2, 3):
            shift = step * (size + 3)
            candidates += [(x + 9, y + 4 - shift, "start"), (x + 9, y + 4 + shift, "start")]
            candidates += [(x - 9, y + 4 - shift, "end"), (x - 9, y + 4 + shift, "end")]
        choice = candidates[0]
        for cx, cy, anchor in candidates:
            box = _text_box(cx, cy, text, size, anchor)
            inside = area[0] <= box[0] and box[2] <= area[2] and area[1] <= box[1] and box[3] <= area[3]
            if inside and not any(_overlaps(box, other) for other in taken):
                choice = (cx, cy, anchor)
                break
        taken.append(_text_box(*choice[:2], text, size, choice[2]))
        placed.append(choice)
    return placed


def scatter_svg(points: Sequence[Mapping], x_title: str, y_title: str, title: str = "") -> str:
    """An inline SVG scatter: axes from zero (ratios read honestly), round ticks, every point labelled."""
    width, height, font = 360, 270, 14
    left, right, top, bottom = 52, 12, 30 if title else 12, 42
    xs = [float(p["x"]) for p in points]
    ys = [float(p["y"]) for p in points]
    x_ticks = nice_ticks(0.0, max(xs, default=1.0) * 1.15 or 1.0)
    y_ticks = nice_ticks(0.0, max(ys, default=1.0) * 1.15 or 1.0)

    def px(vx: float, vy: float) -> tuple[float, float]:
        fx = (vx - x_ticks[0]) / ((x_ticks[-1] - x_ticks[0]) or 1)
        fy = (vy - y_ticks[0]) / ((y_ticks[-1] - y_ticks[0]) or 1)
        return left + fx * (width - left - right), height - bottom - fy * (height - top - bottom)

    parts = [f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title or y_title)}">']
    if title:
        parts.append(f'<text x="4" y="18" font-size="{font + 1}" font-weight="600">{escape(title)}</text>')
    for t in x_ticks:
        x, _ = px(t, 0)
        parts.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{height - bottom}" stroke="#8884"/>')
        parts.append(f'<text x="{x:.1f}" y="{height - bottom + 16}" font-size="13" text-anchor="middle">{t:g}</text>')
    for t in y_ticks:
        _, y = px(0, t)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#8884"/>')
        parts.append(f'<text x="{left - 5}" y="{y + 4:.1f}" font-size="13" text-anchor="end">{t:g}</text>')
    parts.append(
        f'<text x="{(left + width - right) / 2}" y="{height - 6}" font-size="{font}" text-anchor="middle">'
        f"{escape(x_title)}</text>"
    )
    parts.append(
        f'<text transform="translate(13 {(top + height - bottom) / 2}) rotate(-90)" font-size="{font}" '
        f'text-anchor="middle">{escape(y_title)}</text>'
    )
    spots = [px(x, y) for x, y in zip(xs, ys)]
    texts = [str(p["label"]) for p in points]
    spots_labels = place_labels(spots, texts, (left + 2, top, width - right, height - bottom), 13)
    for k, ((x, y), (lx, ly, anchor), text) in enumerate(zip(spots, spots_labels, texts)):
        colour = PALETTE[k % len(PALETTE)]
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5.5" fill="{colour}" stroke="#fff" stroke-width="1"/>')
        parts.append(
            f'<text class="dq-point" x="{lx:.1f}" y="{ly:.1f}" font-size="13" text-anchor="{anchor}">'
            f"{escape(text)}</text>"
        )
    parts.append("</svg>")
    return f'<div class="dq-chart">{"".join(parts)}</div>'


def comparison_chart(rows: Sequence[Mapping]) -> str:
    points = [
        {"x": row["latency_s"], "y": row["weight_bytes"] / MIB, "label": row.get("label") or row["recipe"]}
        for row in rows
    ]
    chart = scatter_svg(points, "end-to-end latency (s)", "transformer weights (MiB)", "Latency vs weights")
    return chart + '<p class="dq-note">Lower left is better: faster and smaller.</p>'


def page_views(state: ComparisonState | None) -> tuple[str, str, str, str]:
    """Tiles, differences, table and chart of the last run."""
    if state is None:
        return "", "", "", ""
    comparison = state.comparison
    rows = state.rows
    return (
        tiles_html(comparison, rows),
        differences_html(comparison, rows),
        comparison_table(rows, comparison.reference.memory_kind),
        comparison_chart(rows),
    )
