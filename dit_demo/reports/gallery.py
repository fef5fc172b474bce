"""Comparison galleries: the same classes and seeds through every recipe, side by side, with the numbers.

    python -m dit_demo.reports.gallery --model embedded --recipes bf16,int8,int8-a8 --labels all --seeds 0,1 \
        --steps 25 --guidance 4 --out gallery/embedded

writes to DIR: `grid.png` (rows = class × seed, columns = recipes, reference first), `diff_grid.png` and
`diffs/<recipe>/*.png` (|recipe − reference| × gain), `images/<recipe>/*.png` (native resolution),
`chart.png` (per-step latency vs transformer weights), `index.html` (self-contained, sortable table, opens
from disk), `results.json` (config, environment, per-recipe and per-image metrics) and `results.md`.

Why multi-process: FID needs thousands of images. Under Hugging Face Accelerate every process takes a disjoint
share of fixed-size batches of (class, seed) jobs, builds its own variants on its own device, and the main
process gathers and writes. Batches are laid out before splitting and every image has its own seed, so the
gathered images equal a one-process run's (bit-identical on CPU with the same torch threads per process:
CPU kernels split reductions by thread count); only timings differ. On GPUs::

    accelerate launch --multi_gpu --num_processes 4 -m dit_demo.reports.gallery --per-class 100 --out DIR

On CPU, `accelerate launch --cpu` starts ONE process (accelerate's simple launcher); for several CPU processes
use the torchrun launcher with the CPU flag in the environment::

    ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 --num_machines 1 \
        --mixed_precision no --dynamo_backend no -m dit_demo.reports.gallery ...
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from dit_demo.cli.commands import human_bytes
from dit_demo.compare import digit_quality, fid_quality, image_quality, is_digits_model, ratio
from dit_demo.engine.generate import Variant, build_reference, build_variant, generate
from dit_demo.engine.labels import display_name, resolve_labels, spread_ids
from dit_demo.engine.machine import environment
from dit_demo.engine.metrics import amplified_difference
from dit_demo.engine.quantize import RECIPES, CalibrationConfig
from dit_demo.engine.request import MAX_BATCH, SamplingRequest
from dit_demo.engine.serialization import save_transformer
from dit_demo.engine.sources import SCHEDULERS
from dit_demo.errors import DemoError, InvalidRequestError
from dit_demo.reports.render import (
    html_page,
    html_table,
    image_grid,
    markdown_table,
    scatter_chart,
    tile_size,
    upscale,
)

DEFAULT_RECIPES = ("bf16", "int8", "int8-a8")


@dataclass
class GalleryConfig:
    """What to generate; everything a rerun needs (it is written to results.json verbatim)."""

    source: str = "embedded"
    recipes: list[str] = field(default_factory=lambda: list(DEFAULT_RECIPES))
    labels: list[str | int] | None = None  # None: all classes of a ≤ 10-class model, else 4 spread ids
    seeds: list[int] = field(default_factory=lambda: [0, 1])
    steps: int = 25
    guidance_scale: float = 4.0
    scheduler: str | None = None
    batch_size: int = 8
    calibration_steps: int = 25
    warmup: bool = True
    gain: float = 8.0
    min_tile: int = 96
    max_rows_shown: int = 50
    device: str | None = None
    machine: str | None = None


@dataclass
class Gallery:
    """Gathered results of a gallery run (main process only)."""

    config: GalleryConfig
    reference: str
    recipes: list[str]
    jobs: list[dict]  # one per grid row: row, class_id, class_name, seed
    images: dict[str, list[Image.Image]]  # recipe → images in job order
    recipe_rows: dict[str, dict]
    image_rows: list[dict]
    processes: list[dict]
    environment: dict
    num_processes: int
    images_per_s: float | None
    digits: bool

    def to_json(self) -> dict:
        return {
            "config": asdict(self.config),
            "environment": self.environment,
            "reference": self.reference,
            "num_processes": self.num_processes,
            "images_per_s": self.images_per_s,
            "num_images": sum(len(v) for v in self.images.values()),
            "processes": self.processes,
            "recipes": self.recipe_rows,
            "images": self.image_rows,
        }


# ------------------------------------------------------------------------------------------------ planning


def plan_jobs(class_ids: Sequence[int], seeds: Sequence[int]) -> list[tuple[int, int]]:
    """Grid rows in order: every seed of the first class, then of the next (class × seed)."""
    return [(int(c), int(s)) for c in class_ids for s in seeds]


def plan_batches(jobs: Sequence[tuple[int, int]], batch_size: int) -> list[tuple[int, list[tuple[int, int]]]]:
    """Fixed batches of jobs, laid out before any split across processes, so each image is computed in the same
    batch (same shapes, same kernels) whatever the process count — the reason gathered results are identical."""
    if batch_size < 1:
        raise InvalidRequestError(f"batch size must be ≥ 1, got {batch_size}.")
    return [(i // batch_size, list(jobs[i : i + batch_size])) for i in range(0, len(jobs), batch_size)]


def shown_rows(jobs: Sequence[dict], limit: int) -> list[dict]:
    """At most `limit` rows for the grid and page, taking seeds round-robin over classes (every class appears
    before any gets a third seed), in row order. Metrics always cover every job; this only keeps pictures small
    when an evaluation asks for many images per class (FID)."""
    if limit >= len(jobs):
        return list(jobs)
    rank: dict[int, int] = {}
    keyed = []
    for job in jobs:
        rank[job["class_id"]] = rank.get(job["class_id"], -1) + 1
        keyed.append((rank[job["class_id"]], job["row"], job))
    return sorted((job for _, _, job in sorted(keyed, key=lambda k: k[:2])[:limit]), key=lambda j: j["row"])


def default_labels(reference: Variant) -> list[int]:
    """Every class of a small label set (the digits), else four classes spread over the label space."""
    ids = sorted(reference.id2label)
    return ids if len(ids) <= 10 else [ids[i] for i in spread_ids(len(ids), 4)]


def ordered_recipes(recipes: Sequence[str], reference: str) -> list[str]:
    """Reference first, duplicates dropped, unknown names refused before any work."""
    for name in recipes:
        if name not in RECIPES and name != reference:
            raise InvalidRequestError(f"Unknown recipe {name!r}: choose from {', '.join(RECIPES)}.")
    rest = [r for r in dict.fromkeys(recipes) if r != reference]
    return [reference, *rest]


# ------------------------------------------------------------------------------------------------ environment


def make_state(device: str | None = None):
    """Accelerate's process state: one process without `accelerate launch`, N with it. CPU when asked for, when
    ACCELERATE_USE_CPU is set (PartialState itself ignores that flag) or when there is no GPU."""
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    cpu = (device or "").startswith("cpu") or parse_flag_from_env("ACCELERATE_USE_CPU") or not torch.cuda.is_available()
    return PartialState(cpu=cpu)


# ------------------------------------------------------------------------------------------------ generation


def build_variants(reference: Variant, recipes: Sequence[str], calibration: CalibrationConfig) -> dict[str, Variant]:
    variants = {}
    for recipe in recipes:
        variant = reference if recipe == reference.recipe else build_variant(reference, recipe, calibration=calibration)
        variant.pipe.set_progress_bar_config(disable=True)  # one gallery bar instead of one per batch
        variants[recipe] = variant
    return variants


def generate_share(
    variants: dict[str, Variant],
    batches: Sequence[tuple[int, list[tuple[int, int]]]],
    config: GalleryConfig,
    process_index: int = 0,
    progress: bool = True,
) -> tuple[list[dict], dict]:
    """Generate this process's batches with every variant. Returns per-batch records (images as uint8 arrays,
    picklable for `gather_object`) and this process's timings (seconds per recipe, warm-up excluded).

    Recipes are interleaved batch by batch (batch 0 with every recipe, then batch 1, ...), so a burst of load
    from anything else on the machine falls on all recipes alike instead of on whichever ran at that moment.
    """
    records: list[dict] = []
    per_recipe: dict[str, dict] = {recipe: {"images": 0, "wall_s": 0.0} for recipe in variants}
    total = len(variants) * sum(len(jobs) for _, jobs in batches)
    bar = tqdm(
        total=total,
        desc=f"gallery[{process_index}]",
        unit="img",
        position=process_index,
        disable=not progress or total == 0,
        leave=False,
    )
    if config.warmup and batches:
        for variant in variants.values():
            _run(variant, batches[0][1], config)
    loop_start = time.perf_counter()
    for index, jobs in batches:
        for recipe, variant in variants.items():
            start = time.perf_counter()
            result = _run(variant, jobs, config)
            per_recipe[recipe]["wall_s"] += time.perf_counter() - start
            per_recipe[recipe]["images"] += len(jobs)
            records.append(
                {
                    "recipe": recipe,
                    "batch": index,
                    "process": process_index,
                    "images": [np.asarray(image.convert("RGB")) for image in result.images],
                    "metrics": result.metrics(),
                }
            )
            bar.update(len(jobs))
    wall = time.perf_counter() - loop_start
    bar.close()
    for entry in per_recipe.values():
        entry["wall_s"] = round(entry["wall_s"], 6)
    images = sum(v["images"] for v in per_recipe.values())
    timing = {
        "process_index": process_index,
        "device": str(next(iter(variants.values())).device) if variants else None,
        "torch_num_threads": torch.get_num_threads(),
        "images": images,
        "batches": len(batches),
        "wall_s": round(wall, 6),
        "images_per_s": round(images / wall, 4) if wall > 0 else None,
        "recipes": per_recipe,
    }
    return records, timing


def _run(variant: Variant, jobs: Sequence[tuple[int, int]], config: GalleryConfig):
    request = SamplingRequest(
        labels=tuple(c for c, _ in jobs),
        seeds=tuple(s for _, s in jobs),
        steps=config.steps,
        guidance_scale=config.guidance_scale,
        max_batch=max(config.batch_size, MAX_BATCH),
    )
    return generate(variant, request)


def checkpoint_bytes(variant: Variant) -> tuple[int, list[str]]:
    """Measured size of the saved transformer folder (config, safetensors, quanto map), not an estimate."""
    with tempfile.TemporaryDirectory(prefix="gallery-ckpt-") as tmp:
        folder = Path(tmp) / "transformer"
        save_transformer(variant.pipe.transformer, folder)
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        return sum(p.stat().st_size for p in files), [p.name for p in files]


# ------------------------------------------------------------------------------------------------ assembly


def _mean(values: Sequence[float]) -> float | None:
    return round(float(np.mean(values)), 6) if values else None


def assemble(
    config: GalleryConfig,
    variants: dict[str, Variant],
    jobs: Sequence[tuple[int, int]],
    records: Sequence[dict],
    timings: Sequence[dict],
    env: dict,
) -> Gallery:
    """Gathered batches → images in job order, per-recipe and per-image metrics (main process)."""
    recipes = list(variants)
    reference = recipes[0]
    id2label = variants[reference].id2label
    digits = is_digits_model(variants[reference])
    by_recipe: dict[str, list[dict]] = {r: [] for r in recipes}
    for record in records:
        by_recipe[record["recipe"]].append(record)
    images: dict[str, list[Image.Image]] = {}
    for recipe in recipes:
        batches = sorted(by_recipe[recipe], key=lambda r: r["batch"])
        images[recipe] = [Image.fromarray(a) for b in batches for a in b["images"]]
        if len(images[recipe]) != len(jobs):
            raise RuntimeError(f"{recipe}: gathered {len(images[recipe])} images for {len(jobs)} jobs")
    class_ids = [c for c, _ in jobs]
    ref_images = images[reference]
    image_rows = [
        {"row": i, "class_id": c, "class_name": display_name(id2label, c), "seed": s, "recipes": {}}
        for i, (c, s) in enumerate(jobs)
    ]
    recipe_rows: dict[str, dict] = {}
    for recipe in recipes:
        batch_metrics = [r["metrics"] for r in sorted(by_recipe[recipe], key=lambda r: r["batch"])]
        first = batch_metrics[0]
        walls = [t["recipes"][recipe]["wall_s"] for t in timings if t["recipes"].get(recipe, {}).get("images")]
        total_latency = sum(m["latency_s"] for m in batch_metrics)
        ckpt, ckpt_files = checkpoint_bytes(variants[recipe])
        row = {
            "recipe": recipe,
            "description": RECIPES[recipe].description if recipe in RECIPES else recipe,
            "device": first["device"],
            "dtype": first["dtype"],
            "num_images": len(jobs),
            "num_batches": len(batch_metrics),
            "latency_s": _mean([m["latency_s"] for m in batch_metrics]),
            "latency_median_s": round(float(np.median([m["latency_s"] for m in batch_metrics])), 6),
            "batch_latencies_s": [round(m["latency_s"], 4) for m in batch_metrics],
            "latency_per_image_s": round(total_latency / len(jobs), 6),
            "per_step_s": _mean([m["per_step_s"] for m in batch_metrics]),
            "denoise_s": _mean([m["denoise_s"] for m in batch_metrics]),
            "decode_s": _mean([m["decode_s"] for m in batch_metrics]),
            "images_per_s": round(len(jobs) / max(walls), 4) if walls and max(walls) > 0 else None,
            "peak_memory_bytes": max(m["peak_memory_bytes"] for m in batch_metrics),
            "memory_kind": first["memory_kind"],
            "weight_bytes": first["weight_bytes"],
            "checkpoint_bytes": ckpt,
            "checkpoint_files": ckpt_files,
            "load_s": first["load_s"],
            "quantize_s": first["quantize_s"],
            "calibrate_s": first["calibrate_s"],
            **image_quality(ref_images, images[recipe]),
        }
        for i, (ref_image, image) in enumerate(zip(ref_images, images[recipe])):
            image_rows[i]["recipes"][recipe] = image_quality([ref_image], [image])
        if digits:
            row.update(digit_quality(images[recipe], class_ids))
            row.update(fid_quality(images[recipe]))
            for i, (pred, conf) in enumerate(zip(row.pop("predicted_digits"), row.pop("confidences"))):
                image_rows[i]["recipes"][recipe].update({"predicted_digit": pred, "confidence": conf})
        recipe_rows[recipe] = row
    ref_row = recipe_rows[reference]
    for row in recipe_rows.values():
        row["latency_ratio"] = ratio(row["latency_s"], ref_row["latency_s"])
        row["weight_bytes_ratio"] = ratio(row["weight_bytes"], ref_row["weight_bytes"])
        row["checkpoint_bytes_ratio"] = ratio(row["checkpoint_bytes"], ref_row["checkpoint_bytes"])
        row["peak_memory_ratio"] = ratio(row["peak_memory_bytes"], ref_row["peak_memory_bytes"])
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


def run_gallery(
    config: GalleryConfig, state=None, progress: bool = True, reference: Variant | None = None
) -> Gallery | None:
    """Generate a gallery on this process's share and gather; the main process gets the Gallery, others None.

    `reference`: an already loaded full-precision variant to reuse (one process only; `config.source` is then
    just its name in the results), so callers that hold a model need not load it twice.
    """
    from accelerate.utils import gather_object

    state = state or make_state(config.device)
    device = torch.device("cpu") if state.device.type == "cpu" else state.device
    if config.scheduler and config.scheduler not in SCHEDULERS:
        raise InvalidRequestError(f"Unknown scheduler {config.scheduler!r}: choose one of {', '.join(SCHEDULERS)}.")
    if reference is None:
        reference = build_reference(config.source, device=device, scheduler=config.scheduler)
    elif state.num_processes > 1:
        raise ValueError("A prebuilt reference cannot be shared across processes; let each process load the source.")
    else:
        device = reference.device
    recipes = ordered_recipes(config.recipes, reference.recipe)
    labels = config.labels if config.labels else default_labels(reference)
    class_ids = resolve_labels(labels, reference.id2label)
    if not config.seeds:
        raise InvalidRequestError("No seeds: give --seeds or --per-class.")
    jobs = plan_jobs(class_ids, config.seeds)
    calibration = CalibrationConfig(steps=config.calibration_steps, guidance_scale=max(config.guidance_scale, 1.0))
    variants = build_variants(reference, recipes, calibration)
    batches = plan_batches(jobs, config.batch_size)
    with state.split_between_processes(batches) as share:
        mine = list(share)
    records, timing = generate_share(variants, mine, config, state.process_index, progress)
    if state.num_processes > 1:
        records = gather_object(records)
        timings = gather_object([timing])
        # Everything left is the main process's alone. Leave the process group, or torchmetrics' FID would try
        # to sync its state with processes that have already finished (gloo: "Connection closed by peer").
        state.wait_for_everyone()
        state.destroy_process_group()
    else:
        timings = [timing]
    if not state.is_main_process:
        return None
    env = environment(device, state.num_processes, config.machine)
    return assemble(config, variants, jobs, records, timings, env)


# ------------------------------------------------------------------------------------------------ writing


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "class"


METRIC_COLUMNS: list[tuple[str, str]] = [
    ("recipe", "recipe"),
    ("latency_s", "latency / batch (s)"),
    ("latency_median_s", "median (s)"),
    ("per_step_s", "per step"),
    ("latency_per_image_s", "per image (s)"),
    ("images_per_s", "images/s"),
    ("peak_memory_bytes", "peak memory"),
    ("weight_bytes", "transformer weights"),
    ("checkpoint_bytes", "checkpoint"),
    ("psnr_db", "PSNR (dB)"),
    ("ssim", "SSIM"),
]
DIGIT_COLUMNS: list[tuple[str, str]] = [("digit_accuracy", "class accuracy"), ("fid", "FID")]
BYTE_FORMATS = {k: human_bytes for k in ("peak_memory_bytes", "weight_bytes", "checkpoint_bytes")}


def metric_columns(digits: bool) -> list[tuple[str, str]]:
    return METRIC_COLUMNS + (DIGIT_COLUMNS if digits else [])


def metric_formats() -> dict:
    return {
        **BYTE_FORMATS,
        "psnr_db": lambda v: f"{v:.2f}",
        "ssim": lambda v: f"{v:.4f}",
        "digit_accuracy": lambda v: f"{100 * v:.1f} %",
        "fid": lambda v: f"{v:.2f}",
        "latency_s": lambda v: f"{v:.3f}",
        "latency_median_s": lambda v: f"{v:.3f}",
        "per_step_s": lambda v: f"{1000 * v:.1f} ms",
        "latency_per_image_s": lambda v: f"{v:.4f}",
        "images_per_s": lambda v: f"{v:.2f}",
    }


def write_gallery(gallery: Gallery, out: str | os.PathLike) -> dict[str, Path]:
    """Write every output file; returns their paths by name. Replaces files of an earlier run in `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for sub in ("images", "diffs"):
        shutil.rmtree(out / sub, ignore_errors=True)
    config = gallery.config
    shown = shown_rows(gallery.jobs, config.max_rows_shown)
    side = max(gallery.images[gallery.reference][0].size)
    tile = tile_size(side, config.min_tile)
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
                diff = upscale(amplified_difference(gallery.images[ref][i], image, config.gain), tile)
                entry["diff"] = f"diffs/{recipe}/{stem}.png"
                diff.save(out / entry["diff"], optimize=True)
                diffs.append(diff)
        diff_cells.append(diffs)
    row_labels = [f"{j['class_name']}\nseed {j['seed']}" for j in shown]
    names = {"grid": "grid.png", "json": "results.json", "md": "results.md", "html": "index.html"}
    paths = {key: out / name for key, name in names.items()}
    grid = image_grid(
        [[gallery.images[r][j["row"]] for r in gallery.recipes] for j in shown],
        row_labels=row_labels,
        col_labels=gallery.recipes,
        tile=tile,
    )
    grid.save(paths["grid"], optimize=True)
    if len(gallery.recipes) > 1:
        paths["diff_grid"] = out / "diff_grid.png"
        image_grid(
            diff_cells, row_labels=row_labels, col_labels=[f"{r} x{config.gain:g}" for r in gallery.recipes[1:]]
        ).save(paths["diff_grid"], optimize=True)
    rows = list(gallery.recipe_rows.values())
    chart_points = [
        {**r, "weight_mb": r["weight_bytes"] / 2**20, "per_step_ms": 1000 * r["per_step_s"]}
        for r in rows
        if r.get("per_step_s")
    ]
    if chart_points:
        paths["chart"] = out / "chart.png"
        scatter_chart(
            chart_points,
            x="weight_mb",
            y="per_step_ms",
            label="recipe",
            title=f"Latency vs transformer weights — {gallery.environment['machine']}",
            x_label="transformer weights (MB)",
            y_label="ms per denoising step",
        ).save(paths["chart"], optimize=True)
    data = gallery.to_json()
    data["files"] = {k: p.name for k, p in paths.items()}
    paths["json"].write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    paths["md"].write_text(render_markdown(gallery, paths), encoding="utf-8")
    paths["html"].write_text(render_html(gallery, paths, tile), encoding="utf-8")
    return paths


def _summary(gallery: Gallery) -> tuple[str, str]:
    c, env = gallery.config, gallery.environment
    classes = ", ".join(dict.fromkeys(j["class_name"] for j in gallery.jobs))
    seeds = ", ".join(str(s) for s in c.seeds)
    what = (
        f"source {c.source}; {len(gallery.jobs)} images per recipe (classes {classes}; seeds {seeds}); "
        f"{c.steps} steps, guidance {c.guidance_scale:g}, batch {c.batch_size}" + ("" if c.warmup else ", no warm-up")
    )
    where = (
        f"{env['machine']}; {gallery.num_processes} process(es), {env['torch_num_threads']} torch thread(s) each; "
        f"torch {env['torch']}, diffusers {env['diffusers']}, optimum-quanto {env['optimum_quanto']}, "
        f"accelerate {env['accelerate']}; {env['date']}"
    )
    return what, where


def _notes(gallery: Gallery) -> list[str]:
    ref_row = gallery.recipe_rows[gallery.reference]
    notes = [
        f"Reference: `{gallery.reference}` ({ref_row['dtype']} on {ref_row['device']}). PSNR/SSIM compare each "
        "image with the reference's image of the same class and seed; a missing PSNR means identical images.",
        f"Latency: mean (and median) wall time of one batch (up to {gallery.config.batch_size} images, CFG doubles "
        "the rows), warm-up excluded, recipes interleaved batch by batch; per step = denoising time / steps; "
        "images/s = images / the slowest process's time on that recipe (top line: all images / slowest process's "
        "wall time).",
        f"Peak memory: {ref_row['memory_kind']} (on CPU the whole process, all loaded variants included).",
        "Checkpoint: measured bytes of the saved transformer folder (safetensors + config + quanto map).",
    ]
    disturbed = [r for r, row in gallery.recipe_rows.items() if row["latency_s"] > 1.5 * row["latency_median_s"] > 0]
    if disturbed:
        notes.append(
            f"Timing warning: for {', '.join(disturbed)} the mean batch latency exceeds 1.5× the median — some "
            "batches were slowed by other load on the machine; the median is the better estimate here."
        )
    if gallery.digits:
        n = ref_row.get("fid_num_images")
        notes.append(
            f"Class accuracy: the shipped digit classifier's verdict. FID: classifier-feature Fréchet distance of "
            f"the {n} generated images per recipe against {ref_row.get('fid_reference')}; it depends on the "
            "sample count — compare only runs of the same size (ask for more with --per-class N)."
        )
        dim = ref_row.get("fid_feature_dim") or 0
        if n is not None and n <= dim:
            notes.append(
                f"FID warning: {n} images per recipe are not more than the judge's {dim} features, so the feature "
                "covariance is singular and FID is ill-conditioned (indicative only; use more images)."
            )
    return notes


def render_markdown(gallery: Gallery, paths: dict[str, Path]) -> str:
    what, where = _summary(gallery)
    lines = [
        "# Quantization gallery",
        "",
        f"**Machine:** {where}",
        "",
        f"**Run:** {what}",
        "",
        markdown_table(list(gallery.recipe_rows.values()), metric_columns(gallery.digits), metric_formats()),
        *[f"- {note}" for note in _notes(gallery)],
        "",
    ]
    if gallery.num_processes > 1:
        lines += [
            f"Processes: {gallery.num_processes}, aggregate {gallery.images_per_s} images/s.",
            "",
            markdown_table(
                gallery.processes,
                [
                    ("process_index", "process"),
                    ("device", "device"),
                    ("images", "images"),
                    ("wall_s", "wall s"),
                    ("images_per_s", "images/s"),
                ],
            ),
        ]
    lines += [f"![grid]({paths['grid'].name})", ""]
    if "diff_grid" in paths:
        lines += [f"![differences]({paths['diff_grid'].name})", ""]
    if "chart" in paths:
        lines += [f"![latency vs weights]({paths['chart'].name})", ""]
    return "\n".join(lines)


PAGE_STYLE = """
.images td { text-align: center; vertical-align: top; font-size: 12px; }
.images img { image-rendering: pixelated; display: block; margin: 0 auto 2px; }
.pair { display: inline-block; margin: 0 2px; }
.bad { color: #b00; font-weight: bold; }
"""


def render_html(gallery: Gallery, paths: dict[str, Path], tile: int) -> str:
    """The self-contained page: summary, sortable metrics table, chart, and every shown image with its diff."""
    what, where = _summary(gallery)
    esc = html.escape
    parts = [
        "<h1>Quantization gallery</h1>",
        f"<p><b>Machine:</b> {esc(where)}</p>",
        f"<p><b>Run:</b> {esc(what)}</p>",
        "<h2>Metrics per recipe</h2><p>Click a column header to sort.</p>",
        html_table(
            list(gallery.recipe_rows.values()), metric_columns(gallery.digits), metric_formats(), table_id="metrics"
        ),
        "<ul>" + "".join(f"<li>{esc(n)}</li>" for n in _notes(gallery)) + "</ul>",
    ]
    if "chart" in paths:
        parts.append(f'<p><img src="{paths["chart"].name}" alt="latency vs transformer weights"></p>')
    shown = shown_rows(gallery.jobs, gallery.config.max_rows_shown)
    parts.append(
        f"<h2>Images</h2><p>{len(shown)} of {len(gallery.jobs)} rows shown; under each image: PSNR/SSIM vs "
        f"{esc(gallery.reference)}"
        + (" and the judge's digit" if gallery.digits else "")
        + f"; right: |difference| × {gallery.config.gain:g}. Also as "
        f'<a href="{paths["grid"].name}">one grid</a>'
        + (f' and <a href="{paths["diff_grid"].name}">a difference grid</a>' if "diff_grid" in paths else "")
        + ".</p>"
    )
    head = "".join(f"<th>{esc(r)}</th>" for r in gallery.recipes)
    body = []
    for job in shown:
        row = gallery.image_rows[job["row"]]
        cells = []
        for recipe in gallery.recipes:
            entry = row["recipes"][recipe]
            value = entry["psnr_db"]
            sort = "" if value is None else repr(value)
            if recipe == gallery.reference:
                caption = "reference"
            else:
                caption = ("identical" if value is None else f"{value:.1f} dB") + f" · {entry['ssim']:.4f}"
            if "predicted_digit" in entry:
                ok = entry["predicted_digit"] == row["class_id"]
                caption += f'<br><span class="{"" if ok else "bad"}">→ {entry["predicted_digit"]}</span>'
            imgs = f'<span class="pair"><img src="{entry["image"]}" width="{tile}" alt="{esc(recipe)}"></span>'
            if "diff" in entry:
                imgs += f'<span class="pair"><img src="{entry["diff"]}" width="{tile}" alt="difference"></span>'
            cells.append(f'<td data-sort="{sort}">{imgs}{caption}</td>')
        label = f"{esc(row['class_name'])}<br>seed {row['seed']}"
        body.append(f'<tr><td data-sort="{row["row"]}">{label}</td>{"".join(cells)}</tr>')
    parts.append(
        '<table class="sortable images"><thead><tr><th>class · seed</th>'
        + head
        + "</tr></thead><tbody>\n"
        + "\n".join(body)
        + "\n</tbody></table>"
    )
    parts.append('<p>Raw numbers: <a href="results.json">results.json</a>, <a href="results.md">results.md</a>.</p>')
    return html_page("Quantization gallery", "\n".join(parts), style=PAGE_STYLE)


# ------------------------------------------------------------------------------------------------ CLI


def _split(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def _seeds(text: str) -> list[int]:
    try:
        return [int(s) for s in _split(text)]
    except ValueError as exc:
        raise InvalidRequestError(f"--seeds takes whole numbers separated by commas, got {text!r}.") from exc


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dit_demo.reports.gallery",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", default="embedded", help="embedded | tiny-random | Hub id | folder | ...")
    parser.add_argument("--recipes", default=",".join(DEFAULT_RECIPES), help=f"comma list of {', '.join(RECIPES)}")
    parser.add_argument(
        "--labels",
        default=None,
        help="comma list of class names or ids, or 'all' (default: all "
        "classes of a ≤ 10-class model, else 4 spread classes)",
    )
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument("--seeds", default=None, help="comma list of seeds, one grid row per class × seed (default 0,1)")
    seeds.add_argument("--per-class", type=int, default=None, help="N images per class: seeds --seed … --seed+N-1")
    parser.add_argument("--seed", type=int, default=0, help="first seed for --per-class")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--guidance", type=float, default=4.0)
    parser.add_argument("--scheduler", default=None, choices=list(SCHEDULERS))
    parser.add_argument("--batch-size", type=int, default=8, help="images per generate() call (fixed layout)")
    parser.add_argument("--calibration-steps", type=int, default=25, help="sampling steps to calibrate int8-a8")
    parser.add_argument("--no-warmup", action="store_true", help="time the first batch cold")
    parser.add_argument("--gain", type=float, default=8.0, help="amplification of difference tiles")
    parser.add_argument("--tile", type=int, default=96, help="minimum tile size in the grid (NEAREST upscaling)")
    parser.add_argument("--max-rows-shown", type=int, default=50, help="rows in the grid and page (metrics: all)")
    parser.add_argument("--device", default=None, help="cpu | cuda (default: accelerate's device for this process)")
    parser.add_argument("--machine", default=None, help="machine name for the results (default: detected)")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads per process (CPU results are bit-identical "
        "between runs with the same thread count; default: torch's / OMP_NUM_THREADS)",
    )
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--out", required=True, help="output folder")
    return parser


def config_from_args(args: argparse.Namespace) -> GalleryConfig:
    labels = None if args.labels in (None, "", "all") else _split(args.labels)
    if args.per_class is not None:
        if args.per_class < 1:
            raise InvalidRequestError(f"--per-class must be ≥ 1, got {args.per_class}.")
        seeds = [args.seed + i for i in range(args.per_class)]
    else:
        seeds = _seeds(args.seeds) if args.seeds is not None else [0, 1]
    return GalleryConfig(
        source=args.model,
        recipes=_split(args.recipes),
        labels=labels,
        seeds=seeds,
        steps=args.steps,
        guidance_scale=args.guidance,
        scheduler=args.scheduler,
        batch_size=args.batch_size,
        calibration_steps=args.calibration_steps,
        warmup=not args.no_warmup,
        gain=args.gain,
        min_tile=args.tile,
        max_rows_shown=args.max_rows_shown,
        device=args.device,
        machine=args.machine,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    threads = torch.get_num_threads()
    if args.threads is not None:
        torch.set_num_threads(max(1, args.threads))
    try:
        config = config_from_args(args)
        gallery = run_gallery(config, progress=not args.no_progress)
        if gallery is None:
            return 0
        paths = write_gallery(gallery, args.out)
    except DemoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        torch.set_num_threads(threads)
    rows = list(gallery.recipe_rows.values())
    print(markdown_table(rows, metric_columns(gallery.digits), metric_formats()))
    print(f"{gallery.num_processes} process(es), {gallery.images_per_s} images/s; wrote {paths['html']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
