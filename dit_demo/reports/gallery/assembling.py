"""Assembling gathered batch records into a `Gallery`: images in job order, one row per recipe (timings, memory,
sizes, quality) and one row per image. Every quality number comes from `dit_demo.compare`, the one scorer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict

import numpy as np
from PIL import Image

from dit_demo.compare import digit_quality, fid_quality, is_digits_model, paired_quality, ratio
from dit_demo.engine.generate import Variant
from dit_demo.engine.model.labels import display_name
from dit_demo.engine.quant.recipes import RECIPES
from dit_demo.engine.timing import Spread, speed_verdict
from dit_demo.reports.gallery.checkpoint import checkpoint_bytes
from dit_demo.reports.gallery.config import Gallery, GalleryConfig
from dit_demo.reports.gallery.planning import Job

RATIO_KEYS = {
    "latency_ratio": "latency_s",
    "weight_bytes_ratio": "weight_bytes",
    "checkpoint_bytes_ratio": "checkpoint_bytes",
    "peak_memory_ratio": "peak_memory_bytes",
}


def _mean(values: Sequence[float]) -> float | None:
    return round(float(np.mean(values)), 6) if values else None


def batches_by_recipe(recipes: Sequence[str], records: Sequence[dict]) -> dict[str, list[dict]]:
    """Each recipe's gathered batch records in batch order (whichever process made them)."""
    by_recipe: dict[str, list[dict]] = {r: [] for r in recipes}
    for record in records:
        by_recipe[record["recipe"]].append(record)
    return {recipe: sorted(batches, key=lambda r: r["batch"]) for recipe, batches in by_recipe.items()}


def images_in_job_order(batches: Sequence[dict], num_jobs: int, recipe: str) -> list[Image.Image]:
    images = [Image.fromarray(a) for b in batches for a in b["images"]]
    if len(images) != num_jobs:
        raise RuntimeError(f"{recipe}: gathered {len(images)} images for {num_jobs} jobs")
    return images


def performance_row(recipe: str, variant: Variant, batch_metrics: list[dict], timings: Sequence[dict], n: int) -> dict:
    """Timings, memory and sizes of one recipe over its `n` images (batch metrics in batch order)."""
    first = batch_metrics[0]
    latencies = [m["latency_s"] for m in batch_metrics]
    walls = [t["recipes"][recipe]["wall_s"] for t in timings if t["recipes"].get(recipe, {}).get("images")]
    ckpt, ckpt_files = checkpoint_bytes(variant)
    return {
        "recipe": recipe,
        "description": RECIPES[recipe].description if recipe in RECIPES else recipe,
        "device": first["device"],
        "dtype": first["dtype"],
        "num_images": n,
        "num_batches": len(batch_metrics),
        "latency_s": _mean(latencies),
        "latency_median_s": round(float(np.median(latencies)), 6),
        "batch_latencies_s": [round(v, 4) for v in latencies],
        "latency_per_image_s": round(sum(latencies) / n, 6),
        "per_step_s": _mean([m["per_step_s"] for m in batch_metrics]),
        "denoise_s": _mean([m["denoise_s"] for m in batch_metrics]),
        "decode_s": _mean([m["decode_s"] for m in batch_metrics]),
        "images_per_s": round(n / max(walls), 4) if walls and max(walls) > 0 else None,
        "peak_memory_bytes": max(m["peak_memory_bytes"] for m in batch_metrics),
        "memory_kind": first["memory_kind"],
        "weight_bytes": first["weight_bytes"],
        "checkpoint_bytes": ckpt,
        "checkpoint_files": ckpt_files,
        "load_s": first["load_s"],
        "quantize_s": first["quantize_s"],
        "calibrate_s": first["calibrate_s"],
    }


def score_recipe(row: dict, image_rows: list[dict], ref_images: list, images: list, class_ids: list[int], digits: bool):
    """Quality of one recipe against the reference, for the recipe row and per image (in `image_rows`)."""
    recipe = row["recipe"]
    means, pairs = paired_quality(ref_images, images)
    row.update(means)
    for i, quality in enumerate(pairs):
        image_rows[i]["recipes"][recipe] = quality
    if digits:
        row.update(digit_quality(images, class_ids))
        row.update(fid_quality(images))
        for i, (pred, conf) in enumerate(zip(row.pop("predicted_digits"), row.pop("confidences"))):
            image_rows[i]["recipes"][recipe].update({"predicted_digit": pred, "confidence": conf})


def add_ratios(recipe_rows: dict[str, dict], reference: str) -> None:
    """Each recipe's latency, weights, checkpoint and peak memory as a ratio to the reference's."""
    ref_row = recipe_rows[reference]
    for row in recipe_rows.values():
        for key, value in RATIO_KEYS.items():
            row[key] = ratio(row[value], ref_row[value])


def add_speed(recipe_rows: dict[str, dict], reference: str, batches: dict[str, list[dict]]) -> None:
    """Each recipe's speed verdict from its batches' latency per image: the batches ran interleaved (batch 0 with
    every recipe, then batch 1, …), so they are the A B A B … rounds `engine.timing` words verdicts from (per image,
    so a short last batch is comparable); one batch is no verdict."""
    spreads = {r: Spread(tuple(b["metrics"]["latency_s"] / len(b["images"]) for b in batches[r])) for r in recipe_rows}
    for recipe, row in recipe_rows.items():
        row["latency_per_image_spread"] = spreads[recipe].to_dict()
        if recipe != reference and spreads[recipe].runs > 1:
            row["speed_verdict"] = asdict(speed_verdict(spreads[reference], spreads[recipe]))


def assemble(
    config: GalleryConfig,
    variants: dict[str, Variant],
    jobs: Sequence[Job],
    records: Sequence[dict],
    timings: Sequence[dict],
    env: dict,
) -> Gallery:
    """Gathered batches → images in job order, per-recipe and per-image metrics (main process)."""
    recipes = list(variants)
    reference = recipes[0]
    id2label = variants[reference].id2label
    digits = is_digits_model(variants[reference])
    batches = batches_by_recipe(recipes, records)
    images = {recipe: images_in_job_order(batches[recipe], len(jobs), recipe) for recipe in recipes}
    class_ids = [c for c, _ in jobs]
    image_rows = [
        {"row": i, "class_id": c, "class_name": display_name(id2label, c), "seed": s, "recipes": {}}
        for i, (c, s) in enumerate(jobs)
    ]
    recipe_rows: dict[str, dict] = {}
    for recipe in recipes:
        metrics = [b["metrics"] for b in batches[recipe]]
        row = performance_row(recipe, variants[recipe], metrics, timings, len(jobs))
        score_recipe(row, image_rows, images[reference], images[recipe], class_ids, digits)
        recipe_rows[recipe] = row
    add_ratios(recipe_rows, reference)
    add_speed(recipe_rows, reference, batches)
    total_images = sum(t["images"] for t in timings)
    slowest = max((t["wall_s"] for t in timings), default=0.0)
    return Gallery(
        config=config,
        reference=reference,
        recipes=recipes,
        jobs=[{k: r[k] for k in ("row", "class_id", "class_name", "seed")} for r in image_rows],
        images=images,
        recipe_rows=recipe_rows,
        image_rows=image_rows,
        processes=sorted(timings, key=lambda t: t["process_index"]),
        environment=env,
        num_processes=len(timings),
        images_per_s=round(total_images / slowest, 4) if slowest > 0 else None,
        digits=digits,
    )
