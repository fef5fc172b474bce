"""Writing a gallery folder: native images, amplified differences, the two grids, the chart, results.json,
results.md and index.html."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from PIL import Image

from dit_demo.engine.metrics import amplified_difference
from dit_demo.metrics import METRICS
from dit_demo.reports.charts import scatter_chart
from dit_demo.reports.gallery.config import Gallery
from dit_demo.reports.gallery.pages import recipe_label, render_html, render_markdown
from dit_demo.reports.gallery.planning import shown_rows
from dit_demo.reports.render import image_grid, tile_size, upscale

FILE_NAMES = {"grid": "grid.png", "json": "results.json", "md": "results.md", "html": "index.html"}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "class"


def save_images(gallery: Gallery, out: Path, shown: list[dict], tile: int) -> list[list[Image.Image]]:
    """Every shown image at native size and its |recipe − reference| × gain tile; records their paths in
    `gallery.image_rows`. Returns the difference tiles, a row per shown job."""
    ref = gallery.reference
    for recipe in gallery.recipes:
        (out / "images" / recipe).mkdir(parents=True)
        if recipe != ref:
            (out / "diffs" / recipe).mkdir(parents=True)
    diff_cells: list[list[Image.Image]] = []
    for job in shown:
        i = job["row"]
        stem = f"{i:04d}-{_slug(job['class_name'])}-s{job['seed']}"
        diffs = []
        for recipe in gallery.recipes:
            entry = gallery.image_rows[i]["recipes"][recipe]
            image = gallery.images[recipe][i]
            entry["image"] = f"images/{recipe}/{stem}.png"
            image.save(out / entry["image"], optimize=True)
            if recipe != ref:
                diff = upscale(amplified_difference(gallery.images[ref][i], image, gallery.config.gain), tile)
                entry["diff"] = f"diffs/{recipe}/{stem}.png"
                diff.save(out / entry["diff"], optimize=True)
                diffs.append(diff)
        diff_cells.append(diffs)
    return diff_cells


def save_grids(gallery: Gallery, out: Path, shown: list[dict], tile: int, diff_cells: list) -> dict[str, Path]:
    """grid.png (rows = class × seed, columns = recipes) and, with two recipes or more, diff_grid.png."""
    row_labels = [f"{j['class_name']}\nseed {j['seed']}" for j in shown]
    paths = {"grid": out / FILE_NAMES["grid"]}
    image_grid(
        [[gallery.images[r][j["row"]] for r in gallery.recipes] for j in shown],
        row_labels=row_labels,
        col_labels=[recipe_label(gallery, r) for r in gallery.recipes],
        tile=tile,
    ).save(paths["grid"], optimize=True)
    if len(gallery.recipes) > 1:
        paths["diff_grid"] = out / "diff_grid.png"
        col_labels = [f"{r} x{gallery.config.gain:g}" for r in gallery.recipes[1:]]
        image_grid(diff_cells, row_labels=row_labels, col_labels=col_labels).save(paths["diff_grid"], optimize=True)
    return paths


def save_chart(gallery: Gallery, out: Path) -> dict[str, Path]:
    """chart.png: per-step latency vs transformer weights, one point per recipe (none without timings)."""
    weights, per_step = METRICS["weight_bytes"], METRICS["per_step_s"]
    points = [
        {
            **r,
            "name": recipe_label(gallery, r["recipe"]),
            "weight_mib": weights.number(r["weight_bytes"]),
            "per_step_ms": per_step.number(r["per_step_s"]),
        }
        for r in gallery.recipe_rows.values()
        if r.get("per_step_s")
    ]
    if not points:
        return {}
    path = out / "chart.png"
    scatter_chart(
        points,
        x="weight_mib",
        y="per_step_ms",
        label="name",
        title=f"Latency vs transformer weights — {gallery.environment['machine']}",
        x_label=f"transformer {weights.header}",
        y_label=f"{per_step.header} (denoising)",
    ).save(path, optimize=True)
    return {"chart": path}


def write_gallery(gallery: Gallery, out: str | os.PathLike) -> dict[str, Path]:
    """Write every output file; returns their paths by name. Replaces files of an earlier run in `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for sub in ("images", "diffs"):
        shutil.rmtree(out / sub, ignore_errors=True)
    shown = shown_rows(gallery.jobs, gallery.config.max_rows_shown)
    tile = tile_size(max(gallery.images[gallery.reference][0].size), gallery.config.min_tile)
    diff_cells = save_images(gallery, out, shown, tile)
    paths = {key: out / name for key, name in FILE_NAMES.items()}
    paths.update(save_grids(gallery, out, shown, tile, diff_cells))
    paths.update(save_chart(gallery, out))
    data = gallery.to_json()
    data["files"] = {k: p.name for k, p in paths.items()}
    paths["json"].write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    paths["md"].write_text(render_markdown(gallery, paths), encoding="utf-8")
    paths["html"].write_text(render_html(gallery, paths, tile), encoding="utf-8")
    return paths
