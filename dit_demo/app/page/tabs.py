"""The page's fixed text and the pre-computed gallery tab (the GPU benchmark tab is `bench_tab`), rendered from
results.json (tables, verdicts, charts, difference tiles) rather than from Markdown written for a repository: no
relative links that would 404 on the page, and the same units and labels as the compare tab."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from html import escape
from pathlib import Path

from PIL import Image

from dit_demo.app.config import GALLERY_DIR
from dit_demo.app.page.html import difference_images, image_grid_html
from dit_demo.app.page.views import dtype_name, verdict
from dit_demo.metrics import METRICS
from dit_demo.reports.charts import scatter_svg
from dit_demo.reports.tables import metric_table

log = logging.getLogger("dit_demo.app")

TITLE = "DiT × quanto: same seed, every recipe"

INTRO = """# DiT × optimum-quanto: same seed, every recipe, measured
Pick a model, classes and recipes: the full-precision reference (fp32 on a CPU, bf16 on a GPU) and each quantized
recipe render the **same seed** side by side, with latency, memory, weight bytes and PSNR/SSIM against the reference
and a one-line verdict per recipe. Quantized variants are built on first use and cached."""

GALLERY_COMMAND = "dit-demo gallery --shipped"


def read_record(path: Path) -> dict | None:
    """A results.json, or None when it is missing or unreadable (the tab then says so instead of failing)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _verdict_list(lines: list[str]) -> str:
    items = "".join(
        f"<li><b>{escape(line.split(': ', 1)[0])}</b>: {escape(line.split(': ', 1)[1])}</li>" for line in lines
    )
    return f'<ul class="dq-verdicts">{items}</ul>'


# -- the pre-computed gallery --------------------------------------------------------------------------------


def _gallery_rows(record: Mapping) -> list[dict]:
    reference = record["reference"]
    rows = []
    for recipe, row in record["recipes"].items():
        label = f"{dtype_name(row.get('dtype'))} reference" if recipe == reference else recipe
        rows.append({**row, "label": label})
    return rows


GALLERY_METRICS = (
    "latency_per_image_s",
    "latency_ratio",
    "per_step_s",
    "weight_bytes",
    "checkpoint_bytes",
    "psnr_db",
    "ssim",
    "digit_accuracy",
    "fid",
)


def gallery_table(rows: list[dict]) -> str:
    records = [{**r, "psnr_db": "—", "ssim": "—"} if i == 0 else r for i, r in enumerate(rows)]
    note = "FID: lower is closer to the real digits; it depends on the number of images."
    return metric_table(records, GALLERY_METRICS, [r["label"] for r in rows], note=note, table_id="dq-gallery-table")


def _picked(record: Mapping, per_class: int = 1) -> list[dict]:
    """The first `per_class` images of every class (the gallery holds several seeds per class)."""
    seen: dict[int, int] = {}
    picked = []
    for entry in record.get("images", []):
        if seen.get(entry["class_id"], 0) < per_class:
            seen[entry["class_id"]] = seen.get(entry["class_id"], 0) + 1
            picked.append(entry)
    return picked


def _open(folder: Path, entry: Mapping, recipe: str) -> Image.Image | None:
    path = folder / str(entry["recipes"].get(recipe, {}).get("image", ""))
    return Image.open(path).convert("RGB") if path.is_file() and path.suffix == ".png" else None


def gallery_grids(record: Mapping, rows: list[dict], folder: Path) -> str:
    """One seed per class by every recipe, then where each quantized recipe differs (gain and largest error)."""
    reference = record["reference"]
    picked = _picked(record)
    recipes = list(record["recipes"])
    images = {r: [_open(folder, e, r) for e in picked] for r in recipes}
    if not picked or any(im is None for im in images[reference]):
        return ""
    labels = [f"{e['class_name']} (seed {e['seed']})" for e in picked]
    grid_rows = [(label, [images[r][i] for r in recipes]) for i, label in enumerate(labels)]
    grid = image_grid_html([r["label"].replace(" reference", "") for r in rows], grid_rows)
    heads, columns = [], []
    for recipe in recipes[1:]:
        if any(im is None for im in images[recipe]):
            continue
        diffs, gain, largest = difference_images(images[reference], images[recipe])
        heads.append(f"{recipe} ×{gain}, max {largest}/255" if largest else f"{recipe}: identical")
        columns.append(diffs)
    diff_grid = image_grid_html(heads, [(lab, [c[i] for c in columns]) for i, lab in enumerate(labels)])
    return (
        f"<h3>One seed per class, every recipe</h3>"
        f'<p class="dq-note">First column: the {escape(rows[0]["label"])}.</p>{grid}'
        "<h3>Where each recipe differs from the reference</h3>"
        '<p class="dq-note">|recipe − reference| per pixel, white = identical, red = the largest error shown; each '
        "column's gain and largest error (in 8-bit levels) head it.</p>"
        f"{diff_grid}"
    )


def gallery_html(folder: Path = GALLERY_DIR) -> str:
    """The pre-computed comparison of the embedded model, from its results.json, or how to make it."""
    record = read_record(folder / "results.json")
    if record is None:
        return (
            "<p>No pre-computed gallery in this copy. Make it (CPU, a few minutes) with "
            f"<code>{GALLERY_COMMAND}</code>, then restart the app.</p>"
        )
    config, env = record["config"], record["environment"]
    rows = _gallery_rows(record)
    process_memory = str(rows[0].get("memory_kind", "")).startswith("process")
    verdicts = [verdict(r, rows[0]["label"], process_memory=process_memory, where=" there") for r in rows[1:]]
    intro = (
        f"<p>Made with <code>{GALLERY_COMMAND}</code> on {escape(env['machine'])} "
        f"(torch {escape(env['torch'])}, diffusers {escape(env['diffusers'])}, optimum-quanto "
        f"{escape(env['optimum_quanto'])}): model <code>{escape(config['source'])}</code>, {record['num_images']} "
        f"images ({record['num_images'] // max(len(rows), 1)} per recipe), {config['steps']} steps, guidance "
        f"{config['guidance_scale']:g}. PSNR and SSIM compare each image with the reference's image of the same class "
        "and seed; digit accuracy and FID come from the shipped digits classifier.</p>"
    )
    chart = gallery_chart(rows)
    return intro + _verdict_list(verdicts) + gallery_table(rows) + chart + gallery_grids(record, rows, folder)


def gallery_chart(rows: list[dict]) -> str:
    """Latency per image vs transformer weights, one point per recipe."""
    latency, weights = METRICS["latency_per_image_s"], METRICS["weight_bytes"]
    points = [
        {
            "x": latency.number(r["latency_per_image_s"]),
            "y": weights.number(r["weight_bytes"]),
            "label": r["label"],
            "x_text": latency.text(r["latency_per_image_s"]) + " per image",
            "y_text": weights.text(r["weight_bytes"]) + " weights",
        }
        for r in rows
    ]
    return scatter_svg(points, latency.header, f"transformer {weights.header}", "Latency vs weights")
