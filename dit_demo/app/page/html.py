"""The comparison as the page shows it, in plain HTML (styled by `dit_demo.app.page.style`): captioned tiles, a
difference view with its scale stated, and the table and chart every page draws (`dit_demo.reports.tables`,
`dit_demo.reports.charts`, labels and units from `dit_demo.metrics`).

Images are inline PNGs (data URIs), upscaled by whole multiples with nearest neighbour so a 16-pixel digit is a
crisp 128-pixel tile; nothing here needs a file route, so nothing can 404.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from dit_demo.app.page.views import (
    TABLE_ROWS,
    TEXT_ROWS,
    ComparisonState,
    difference_images,
    recipe_label,
    table_record,
)
from dit_demo.metrics import METRICS
from dit_demo.reports import render
from dit_demo.reports.charts import scatter_svg
from dit_demo.reports.tables import labelled_table, metric_rows

if TYPE_CHECKING:  # the page is built before torch is imported (dit_demo.app.startup)
    from dit_demo.compare import Comparison

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


def comparison_table(rows: Sequence[Mapping], memory_kind: str = "") -> str:
    """The per-recipe numbers transposed: recipes are the (short) column heads, metrics with units the rows, then
    how each recipe ran (compile) and what the digits judge read, in words."""
    records = [table_record(row, index == 0) for index, row in enumerate(rows)]
    body = metric_rows(records, [k for k in TABLE_ROWS if k not in TEXT_ROWS])
    for key, title in TEXT_ROWS.items():
        values = [r.get(key) for r in records]
        if any(v not in (None, "none") for v in values):
            body.append([title, *(v or "—" for v in values)])
    note = "One-time warm-up: the first run of a variant (kernel builds such as the fp8 JIT or the int4 extension, "
    note += "compile), kept out of its latency."
    if memory_kind.startswith("process"):
        note += " Peak memory on CPU is the whole process (every loaded model), so weights tell recipes apart."
    names = [str(r["recipe"]) for r in records]
    return labelled_table(["", *names], body, note=escape(note), table_id="dq-table")


def comparison_chart(rows: Sequence[Mapping]) -> str:
    latency, weights = METRICS["latency_s"], METRICS["weight_bytes"]
    points = [
        {
            "x": latency.number(row["latency_s"]),
            "y": weights.number(row["weight_bytes"]),
            "label": row.get("label") or row["recipe"],
            "x_text": latency.text(row["latency_s"]),
            "y_text": weights.text(row["weight_bytes"]) + " weights",
        }
        for row in rows
    ]
    chart = scatter_svg(points, latency.header, f"transformer {weights.header}", "Latency vs weights")
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
