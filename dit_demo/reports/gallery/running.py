"""Running a gallery under Hugging Face Accelerate: every process takes a disjoint share of the fixed batches,
builds its own variants on its own device, generates, and the main process gathers records and timings.

Without `accelerate launch` there is one process and nothing is gathered. Batches are laid out before the
split and every image has its own seed, so gathered images equal a one-process run's (bit-identical on CPU with
the same torch threads per process); only timings differ.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from dit_demo.engine.generate import GenerationResult, Variant, build_reference, build_variant, generate
from dit_demo.engine.machine import environment
from dit_demo.engine.model.labels import resolve_labels
from dit_demo.engine.model.sources import SCHEDULERS
from dit_demo.engine.quant.quantize import CalibrationConfig
from dit_demo.engine.request import MAX_BATCH, SamplingRequest
from dit_demo.engine.timing import machine_load
from dit_demo.errors import InvalidRequestError
from dit_demo.reports.gallery.assembling import assemble
from dit_demo.reports.gallery.config import Gallery, GalleryConfig
from dit_demo.reports.gallery.planning import Job, ordered_recipes, plan_batches, plan_jobs, requested_labels

Batch = tuple[int, list[Job]]  # (batch index, jobs)


def make_state(device: str | None = None):
    """Accelerate's process state: one process without `accelerate launch`, N with it. CPU when asked for, when
    ACCELERATE_USE_CPU is set (PartialState itself ignores that flag) or when there is no GPU."""
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    cpu = (device or "").startswith("cpu") or parse_flag_from_env("ACCELERATE_USE_CPU") or not torch.cuda.is_available()
    return PartialState(cpu=cpu)


def build_variants(reference: Variant, recipes: Sequence[str], calibration: CalibrationConfig) -> dict[str, Variant]:
    variants = {}
    for recipe in recipes:
        variant = reference if recipe == reference.recipe else build_variant(reference, recipe, calibration=calibration)
        variant.pipe.set_progress_bar_config(disable=True)  # one gallery bar instead of one per batch
        variants[recipe] = variant
    return variants


def sample(variant: Variant, jobs: Sequence[Job], config: GalleryConfig) -> GenerationResult:
    """One batch of jobs through the one sampling path."""
    request = SamplingRequest(
        labels=tuple(c for c, _ in jobs),
        seeds=tuple(s for _, s in jobs),
        steps=config.steps,
        guidance_scale=config.guidance_scale,
        max_batch=max(config.batch_size, MAX_BATCH),
    )
    return generate(variant, request)


def generate_share(
    variants: dict[str, Variant],
    batches: Sequence[Batch],
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
            sample(variant, batches[0][1], config)
    loop_start = time.perf_counter()
    for index, jobs in batches:
        for recipe, variant in variants.items():
            start = time.perf_counter()
            result = sample(variant, jobs, config)
            per_recipe[recipe]["wall_s"] += time.perf_counter() - start
            per_recipe[recipe]["images"] += len(jobs)
            records.append(_record(recipe, index, process_index, result))
            bar.update(len(jobs))
    wall = time.perf_counter() - loop_start
    bar.close()
    return records, _timing(variants, batches, per_recipe, wall, process_index)


def _record(recipe: str, batch: int, process_index: int, result: GenerationResult) -> dict:
    return {
        "recipe": recipe,
        "batch": batch,
        "process": process_index,
        "images": [np.asarray(image.convert("RGB")) for image in result.images],
        "metrics": result.metrics(),
    }


def _timing(variants: dict, batches: Sequence[Batch], per_recipe: dict, wall: float, process_index: int) -> dict:
    for entry in per_recipe.values():
        entry["wall_s"] = round(entry["wall_s"], 6)
    images = sum(v["images"] for v in per_recipe.values())
    return {
        "process_index": process_index,
        "device": str(next(iter(variants.values())).device) if variants else None,
        "torch_num_threads": torch.get_num_threads(),
        "images": images,
        "batches": len(batches),
        "wall_s": round(wall, 6),
        "images_per_s": round(images / wall, 4) if wall > 0 else None,
        "recipes": per_recipe,
    }


def gather(state, records: list[dict], timing: dict) -> tuple[list[dict], list[dict]]:
    """Every process's records and timings on every process (one process: its own)."""
    if state.num_processes <= 1:
        return records, [timing]
    from accelerate.utils import gather_object

    records = gather_object(records)
    timings = gather_object([timing])
    # Everything left is the main process's alone. Leave the process group, or torchmetrics' FID would try
    # to sync its state with processes that have already finished (gloo: "Connection closed by peer").
    state.wait_for_everyone()
    state.destroy_process_group()
    return records, timings


def _reference(config: GalleryConfig, state, reference: Variant | None) -> Variant:
    if config.scheduler and config.scheduler not in SCHEDULERS:
        raise InvalidRequestError(f"Unknown scheduler {config.scheduler!r}: choose one of {', '.join(SCHEDULERS)}.")
    if reference is None:
        device = torch.device("cpu") if state.device.type == "cpu" else state.device
        return build_reference(config.source, device=device, scheduler=config.scheduler)
    if state.num_processes > 1:
        raise ValueError("A prebuilt reference cannot be shared across processes; let each process load the source.")
    return reference


def run_gallery(
    config: GalleryConfig, state=None, progress: bool = True, reference: Variant | None = None
) -> Gallery | None:
    """Generate a gallery on this process's share and gather; the main process gets the Gallery, others None.

    `reference`: an already loaded full-precision variant to reuse (one process only; `config.source` is then
    just its name in the results), so callers that hold a model need not load it twice.
    """
    state = state or make_state(config.device)
    reference = _reference(config, state, reference)
    recipes = ordered_recipes(config.recipes, reference.recipe)
    class_ids = resolve_labels(requested_labels(config.labels, reference), reference.id2label)
    if not config.seeds:
        raise InvalidRequestError("No seeds: give --seeds or --per-class.")
    jobs = plan_jobs(class_ids, config.seeds)
    calibration = CalibrationConfig(steps=config.calibration_steps, guidance_scale=max(config.guidance_scale, 1.0))
    variants = build_variants(reference, recipes, calibration)
    load_before = machine_load()  # the 1-minute load average: a shared machine is visible next to its timings
    with state.split_between_processes(plan_batches(jobs, config.batch_size)) as share:
        mine = list(share)
    records, timings = gather(state, *generate_share(variants, mine, config, state.process_index, progress))
    if not state.is_main_process:
        return None
    env = environment(reference.device, state.num_processes, config.machine)
    env["load_average"] = [load_before, machine_load()]  # before and after the timed batches
    return assemble(config, variants, jobs, records, timings, env)
