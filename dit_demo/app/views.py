"""What a comparison looks like on the page: captions, the numbers JSON, the table, the chart, the slider and
difference views, and the one downloadable PNG.

Bytes are shown through `dit_demo.units` (MiB = 2**20 bytes, labelled so); images are drawn by
`dit_demo.reports.render` (the one grid drawer). The JSON keeps raw numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import gradio as gr
import pandas as pd
from PIL import Image

from dit_demo.app.config import DIFF_GAIN, PREVIEW_SIDE, STRIP_TILE
from dit_demo.compare import Comparison
from dit_demo.engine.metrics import amplified_difference
from dit_demo.engine.quantize import REFERENCE_RECIPE
from dit_demo.reports import render
from dit_demo.units import format_bytes, format_seconds, mebibytes

if TYPE_CHECKING:
    from dit_demo.app.inputs import Request

CSS = """
#gallery img, #slider img, #diff img, #precomputed-grid img, #precomputed-chart img { image-rendering: pixelated; }
"""

TABLE_COLUMNS = {
    "recipe": "recipe",
    "latency_s": "latency s",
    "per_step_ms": "ms / step",
    "weights_mib": "weights MiB",
    "peak_memory_mib": "peak MiB",
    "quantize_s": "quantize s",
    "calibrate_s": "calibrate s",
    "compile_mode": "compile",
    "warmup_s": "warm-up s",
    "psnr_db": "PSNR dB",
    "ssim": "SSIM",
    "digits": "predicted digit (confidence)",
}


@dataclass
class ComparisonState:
    """What the follow-up views (slider, difference, table, chart) need from the last comparison."""

    comparison: Comparison
    rows: list[dict] = field(default_factory=list)


def launch_kwargs() -> dict:
    """Options Gradio 6 takes at launch (css); tests launch with the same so the page looks the same."""
    return {"css": CSS}


def _mib(value: int | None) -> float | None:
    return mebibytes(value, 3)


def caption(row: dict, index: int) -> str:
    """Gallery caption: recipe, class, and the numbers that matter at a glance."""
    parts = [f"{row['recipe']} · {row['class_names'][index]} (seed {row['seeds'][index]})"]
    parts.append(f"{row['latency_s']:.2f} s · {format_bytes(row['weight_bytes'])} weights")
    if row.get("psnr_db") is not None:
        parts.append(f"PSNR {row['psnr_db']:.1f} dB · SSIM {row['ssim']:.3f}")
    elif row["recipe"] != REFERENCE_RECIPE:
        parts.append("identical to reference")
    if row.get("predicted_digits"):
        parts.append(f"reads as {row['predicted_digits'][index]} ({100 * row['confidences'][index]:.0f} %)")
    return " · ".join(parts)


def table_headers() -> list[str]:
    """Column titles of the table before the first run (the digits column appears only for the digits model)."""
    return [title for key, title in TABLE_COLUMNS.items() if key != "digits"]


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _table_record(row: dict) -> dict:
    record = {
        "recipe": row["recipe"],
        "latency_s": round(row["latency_s"], 3),
        "per_step_ms": round(1000 * row["per_step_s"], 2),
        "weights_mib": _mib(row["weight_bytes"]),
        "peak_memory_mib": _mib(row["peak_memory_bytes"]),
        "quantize_s": round(row["quantize_s"], 3),
        "calibrate_s": round(row["calibrate_s"], 3),
        "compile_mode": row.get("compile_mode", "none"),
        "warmup_s": _round(row.get("warmup_s"), 2),
        "psnr_db": row.get("psnr_db"),
        "ssim": row.get("ssim"),
    }
    if "predicted_digits" in row:
        record["digits"] = ", ".join(
            f"{d} ({100 * c:.0f}%)" for d, c in zip(row["predicted_digits"], row["confidences"])
        )
    return record


def table_frame(rows: Sequence[dict]) -> pd.DataFrame:
    """The per-recipe table shown under the images (human units; the JSON keeps raw numbers)."""
    frame = pd.DataFrame.from_records([_table_record(row) for row in rows])
    return frame.rename(columns=TABLE_COLUMNS)


def chart_frame(rows: Sequence[dict]) -> pd.DataFrame:
    """Latency vs memory per recipe, one point each (the chart's data)."""
    return pd.DataFrame(
        {
            "recipe": [r["recipe"] for r in rows],
            "latency_s": [round(r["latency_s"], 4) for r in rows],
            "weights_mib": [_mib(r["weight_bytes"]) for r in rows],
            "peak_memory_mib": [_mib(r["peak_memory_bytes"]) for r in rows],
        }
    )


def numbers_json(comparison: Comparison, request: Request) -> dict:
    """What the API returns next to the images: the request as run (`request.seed`) and every metric per recipe."""
    rows = comparison.rows()
    ref = comparison.reference
    return {
        "model": ref.source,
        "reference": comparison.reference_recipe,
        "seed": request.seed,
        "seeds": ref.seeds,
        "classes": ref.class_names,
        "class_ids": ref.class_ids,
        "steps": ref.steps,
        "guidance_scale": ref.guidance_scale,
        "scheduler": ref.scheduler,
        "device": ref.device,
        "image_size": list(ref.images[0].size),
        "recipes": {row["recipe"]: row for row in rows},
    }


def summary_markdown(numbers: dict) -> str:
    """The line above the images: what was run, with the seed actually used."""
    return (
        f"**seed {numbers['seed']}** · {', '.join(numbers['classes'])} · {numbers['steps']} steps · guidance "
        f"{numbers['guidance_scale']:g} · {numbers['scheduler']} · {numbers['device']} · "
        f"{numbers['image_size'][0]}×{numbers['image_size'][1]} px · model `{numbers['model']}`"
    )


def display_scale(image: Image.Image, min_side: int = PREVIEW_SIDE) -> Image.Image:
    """Pixel-exact integer upscaling for on-page views: a 16-pixel digit stays crisp instead of a speck."""
    side = max(image.size)
    tile = render.tile_size(side, min_side)
    return image if tile == side else render.upscale(image, tile)


def first_quantized(comparison: Comparison) -> str | None:
    return next((r for r in comparison.results if r != comparison.reference_recipe), None)


def _strip_label(row: dict, reference: str) -> str:
    lines = [row["recipe"], format_seconds(row["latency_s"]), format_bytes(row["weight_bytes"])]
    if row["recipe"] != reference:
        lines.append("PSNR " + ("identical" if row.get("psnr_db") is None else f"{row['psnr_db']:.1f} dB"))
    return "\n".join(lines)


def comparison_strip(comparison: Comparison, gain: float = DIFF_GAIN) -> Image.Image:
    """ONE labelled PNG of the whole comparison, drawn by `render.image_grid`: a row per requested image (class
    and seed), a column per recipe (reference first; latency, weights, PSNR in the header), then the difference
    between the reference and the first quantized recipe.

    Small images are scaled up by an integer factor (nearest neighbour, so pixels stay exact) to leave room
    for the labels.
    """
    rows = {row["recipe"]: row for row in comparison.rows()}
    ref = comparison.reference
    recipes = list(comparison.results)
    other = first_quantized(comparison)
    return render.image_grid(
        [[comparison.results[recipe].images[i] for recipe in recipes] for i in range(len(ref.images))],
        row_labels=[f"{name}\nseed {seed}" for name, seed in zip(ref.class_names, ref.seeds)],
        col_labels=[_strip_label(rows[recipe], comparison.reference_recipe) for recipe in recipes],
        difference=None if other is None else (recipes.index(comparison.reference_recipe), recipes.index(other)),
        gain=gain,
        min_tile=STRIP_TILE,
    )


def views(state: ComparisonState | None) -> tuple:
    """Slider (reference vs first quantized recipe), amplified difference, table, chart of the last run, and
    gallery columns = recipes, so each row of the gallery is one class rendered by every recipe."""
    if state is None:
        return None, None, None, None, gr.update()
    comparison = state.comparison
    ref = comparison.reference
    other = first_quantized(comparison)
    slider = diff = None
    if other is not None:
        quantized = comparison.results[other].images
        slider = (display_scale(render.hstrip(ref.images, "black")), display_scale(render.hstrip(quantized, "black")))
        diffs = [amplified_difference(a, b, DIFF_GAIN) for a, b in zip(ref.images, quantized)]
        diff = display_scale(render.hstrip(diffs, "black"))
    columns = gr.update(columns=len(comparison.results))
    return slider, diff, table_frame(state.rows), chart_frame(state.rows), columns
