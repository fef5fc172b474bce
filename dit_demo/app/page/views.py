"""What a comparison says: labels, captions, the numbers JSON, the table's data, the one-line verdicts, the
summary, and the one downloadable PNG. The page's HTML (tiles, differences, table, chart) is drawn by
`dit_demo.app.page.html` from these.

Bytes are shown through `dit_demo.units` (MiB = 2**20 bytes, labelled so); images are drawn by
`dit_demo.reports.render` (the one grid drawer). The JSON keeps raw numbers and the recipe names the API has
always used (`bf16` is the reference recipe); what people read names the reference by the dtype it really ran in
(fp32 on CPU, bf16 on GPU).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from dit_demo.app.config import STRIP_TILE
from dit_demo.engine.quant.recipes import REFERENCE_RECIPE
from dit_demo.engine.timing import SpeedVerdict
from dit_demo.reports import render
from dit_demo.units import format_bytes, format_seconds

if TYPE_CHECKING:  # the page is built before torch is imported (dit_demo.app.startup)
    from dit_demo.app.inputs import Request
    from dit_demo.compare import Comparison

MAX_DIFF_GAIN = 64  # difference views: the largest error fills the scale, at most ×64
DTYPE_NAMES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}

# The table's rows, in order: metric keys (labels and units from `dit_demo.metrics`), then rows of words.
TABLE_ROWS = (
    "latency_s",
    "latency_ratio",
    "per_step_s",
    "weight_bytes",
    "peak_memory_bytes",
    "quantize_s",
    "calibrate_s",
    "warmup_s",
    "psnr_db",
    "ssim",
)
TEXT_ROWS = {"compile_mode": "compile", "digits": "digits read as (confidence)"}


@dataclass
class ComparisonState:
    """What the follow-up views (tiles, slider, differences, table, chart) need from the last comparison."""

    comparison: Comparison
    rows: list[dict] = field(default_factory=list)


def dtype_name(dtype: str | None) -> str:
    return DTYPE_NAMES.get(str(dtype).replace("torch.", ""), str(dtype))


def recipe_label(row: Mapping, reference: str = REFERENCE_RECIPE) -> str:
    """What people read: the reference named by the dtype it ran in ("fp32 reference"), recipes by name."""
    if row["recipe"] == reference == REFERENCE_RECIPE:
        return f"{dtype_name(row.get('dtype'))} reference"
    return str(row["recipe"])


def caption(row: dict, index: int, reference: str = REFERENCE_RECIPE) -> str:
    """Caption of one image: recipe, class, seed, and the numbers that matter at a glance."""
    parts = [f"{recipe_label(row, reference)} · {row['class_names'][index]} (seed {row['seeds'][index]})"]
    parts.append(f"{row['latency_s']:.2f} s · {format_bytes(row['weight_bytes'])} weights")
    if row.get("psnr_db") is not None:
        parts.append(f"PSNR {row['psnr_db']:.1f} dB · SSIM {row['ssim']:.3f}")
    elif row["recipe"] != reference:
        parts.append("identical to reference")
    if row.get("predicted_digits"):
        parts.append(f"reads as {row['predicted_digits'][index]} ({100 * row['confidences'][index]:.0f} %)")
    return " · ".join(parts)


def table_record(row: Mapping, is_reference: bool = False) -> dict:
    """A recipe's row as the table shows it: raw metric values (the metrics format them), the label people read,
    no PSNR against itself for the reference, and the digits the judge read in words."""
    record = {key: row.get(key) for key in TABLE_ROWS}
    record.update(recipe=row.get("label") or row["recipe"], compile_mode=row.get("compile_mode", "none"))
    if is_reference:
        record["psnr_db"] = "—"
    if "predicted_digits" in row:
        record["digits"] = ", ".join(
            f"{d} ({100 * c:.0f}%)" for d, c in zip(row["predicted_digits"], row["confidences"])
        )
    return record


def _speed(row: Mapping, what: str) -> str | None:
    """The speed verdict in words: from the interleaved runs' spreads when the row has them (`engine.timing`:
    "faster"/"slower" only when the ranges do not overlap, with the run count), else from the one ratio."""
    if isinstance(row.get("speed_verdict"), Mapping):
        return SpeedVerdict(**row["speed_verdict"]).phrase(what)
    return _times(row["latency_ratio"], what) if row.get("latency_ratio") else None


def _times(ratio: float, what: str) -> str:
    """A latency ratio in words: "1.35× slower than X", "2.10× faster than X", "about as fast as X"."""
    if abs(ratio - 1) < 0.05:
        return f"about as fast as {what} ({ratio:.2f}× its latency)"
    return f"{ratio:.2f}× slower than {what}" if ratio > 1 else f"{1 / ratio:.2f}× faster than {what}"


def verdict(row: Mapping, reference_label: str, *, process_memory: bool = False, where: str = " here") -> str:
    """One line from the numbers: "int8: 1.35× slower than the fp32 reference here, 0.61× peak memory, 47.8 dB".

    `process_memory`: the peak is the whole process's (CPU RSS), shared by every loaded model, so weights are
    the memory figure that tells recipes apart.
    """
    label = row.get("label") or row["recipe"]
    parts = []
    speed = _speed(row, f"the {reference_label}{where}")
    if speed:
        parts.append(speed)
    if row.get("peak_memory_ratio") and not process_memory:
        parts.append(f"{row['peak_memory_ratio']:.2f}× peak memory")
    if row.get("weight_bytes_ratio"):
        parts.append(f"{row['weight_bytes_ratio']:.2f}× weights")
    psnr = row.get("psnr_db")
    parts.append("identical images" if psnr is None else f"{psnr:.1f} dB PSNR")
    accuracy = row.get("digit_accuracy")
    if accuracy is not None:
        parts.append(f"{100 * accuracy:.0f} % of digits read as asked")
    return f"{label}: " + ", ".join(parts)


def numbers_json(comparison: Comparison, request: Request) -> dict:
    """What the API returns next to the images: the request as run (`request.seed`) and every metric per recipe,
    each row with the `label` people read and, for pre-quantized sources, no stale quantize/calibrate time."""
    rows = comparison.rows()
    ref = comparison.reference
    prequantized = comparison.reference_recipe != REFERENCE_RECIPE
    for row in rows:
        row["label"] = recipe_label(row, comparison.reference_recipe)
        if prequantized:  # loaded already quantized: nothing was quantized or calibrated in this run
            row.update(quantize_s=0.0, calibrate_s=0.0, prequantized=True)
    reference_label = rows[0]["label"]
    process_memory = ref.memory_kind.startswith("process")
    return {
        "model": ref.source,
        "reference": comparison.reference_recipe,
        "reference_label": reference_label,
        "reference_dtype": ref.dtype,
        "seed": request.seed,
        "seeds": ref.seeds,
        "classes": ref.class_names,
        "class_ids": ref.class_ids,
        "steps": ref.steps,
        "guidance_scale": ref.guidance_scale,
        "scheduler": ref.scheduler,
        "device": ref.device,
        "memory_kind": ref.memory_kind,
        "image_size": list(ref.images[0].size),
        "recipes": {row["recipe"]: row for row in rows},
        "verdicts": {row["recipe"]: verdict(row, reference_label, process_memory=process_memory) for row in rows[1:]},
    }


def summary_markdown(numbers: dict) -> str:
    """What was run, with the seed actually used, then one verdict line per recipe."""
    head = (
        f"**seed {numbers['seed']}** · {', '.join(numbers['classes'])} · {numbers['steps']} steps · guidance "
        f"{numbers['guidance_scale']:g} · {numbers['scheduler']} · {numbers['device']} · "
        f"{numbers['image_size'][0]}×{numbers['image_size'][1]} px · model `{numbers['model']}` · reference in "
        f"{dtype_name(numbers['reference_dtype'])}"
    )
    lines = [f"- **{line.split(':', 1)[0]}**:{line.split(':', 1)[1]}" for line in numbers["verdicts"].values()]
    return "\n\n".join([head, "\n".join(lines)]) if lines else head


def first_quantized(comparison: Comparison) -> str | None:
    return next((r for r in comparison.results if r != comparison.reference_recipe), None)


def difference_images(a: Sequence[Image.Image], b: Sequence[Image.Image]) -> tuple[list[Image.Image], int, int]:
    """|a − b| per pixel (largest channel) on white: white = identical, red = the largest shown error.

    One gain for all images of a recipe, a power of two so the largest error fills the scale without clipping
    (at most ×64); returns the images, the gain and the largest error in 8-bit levels (0 = identical)."""
    diffs = [
        np.abs(np.asarray(x.convert("RGB"), np.int16) - np.asarray(y.convert("RGB"), np.int16)).max(axis=2)
        for x, y in zip(a, b)
    ]
    largest = int(max((int(d.max()) for d in diffs), default=0))
    gain = 1 if largest == 0 else int(min(MAX_DIFF_GAIN, 2 ** math.floor(math.log2(255 / largest))))
    images = []
    for d in diffs:
        level = np.clip(d.astype(np.int32) * gain, 0, 255).astype(np.uint8)
        white = np.full_like(level, 255)
        images.append(Image.fromarray(np.stack([white, 255 - level, 255 - level], axis=2), "RGB"))
    return images, gain, largest


def _strip_label(row: dict, reference: str) -> str:
    """Column header: the name on its own first line (the difference column is titled from first lines)."""
    label = recipe_label(row, reference)
    lines = label.split(" ", 1) if label.endswith(" reference") else [label]
    lines += [format_seconds(row["latency_s"]), format_bytes(row["weight_bytes"])]
    if row["recipe"] != reference:
        lines.append("PSNR " + ("identical" if row.get("psnr_db") is None else f"{row['psnr_db']:.1f} dB"))
    return "\n".join(lines)


def comparison_strip(comparison: Comparison) -> Image.Image:
    """ONE labelled PNG of the whole comparison, drawn by `render.image_grid`: a row per requested image (class
    and seed), a column per recipe (reference first; latency, weights, PSNR in the header), then where the first
    quantized recipe differs from the reference (`difference_images`: white = identical, its gain and largest
    error in the header).

    Small images are scaled up by an integer factor (nearest neighbour, so pixels stay exact) to leave room
    for the labels; every character is one the bundled font has (`render.drawable`).
    """
    rows = {row["recipe"]: row for row in comparison.rows()}
    ref = comparison.reference
    recipes = list(comparison.results)
    cells = [[comparison.results[recipe].images[i] for recipe in recipes] for i in range(len(ref.images))]
    col_labels = [_strip_label(rows[recipe], comparison.reference_recipe) for recipe in recipes]
    other = first_quantized(comparison)
    if other is not None:
        diffs, gain, largest = difference_images(ref.images, comparison.results[other].images)
        cells = [[*row, diff] for row, diff in zip(cells, diffs)]
        scale = f"x{gain}, max {largest}/255" if largest else "identical"
        col_labels.append(f"{other} - {col_labels[0].splitlines()[0]}\ndifference\n{scale}\nwhite = same")
    return render.image_grid(
        cells,
        row_labels=[f"{name}\nseed {seed}" for name, seed in zip(ref.class_names, ref.seeds)],
        col_labels=col_labels,
        min_tile=STRIP_TILE,
    )


def launch_kwargs() -> dict:
    """Options Gradio 6 takes at launch (css); tests launch with the same so the page looks the same."""
    from dit_demo.app.page.style import CSS

    return {"css": CSS}
