"""THE one generation path: load → (quantize) → sample → time → measure. The app, gallery, benchmark and Hub
scripts all call `build_reference`, `build_variant` and `generate`, so every surface reports the same figures."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from diffusers import DiTPipeline
from PIL import Image

from .errors import InvalidRequestError
from .labels import display_name, parse_choice, resolve_labels
from .models import default_device, default_dtype, load_pipeline, resolve_source, set_scheduler
from .quantize import (
    REFERENCE_RECIPE,
    CalibrationConfig,
    QuantizationReport,
    derive_pipeline,
    get_recipe,
    module_weight_bytes,
)
from .serialization import is_quantized, read_metadata

MAX_SEED = 2**32 - 1
MAX_STEPS = 1000
MAX_BATCH = int(os.environ.get("DIT_DEMO_MAX_BATCH", "16"))


@dataclass
class Variant:
    """A ready pipeline for one recipe, with how long it took to get there."""

    pipe: DiTPipeline
    recipe: str
    source: str
    report: QuantizationReport
    load_s: float
    compile_mode: str = "none"
    warmup_s: float | None = None

    @property
    def device(self) -> torch.device:
        return self.pipe.transformer.device

    @property
    def id2label(self) -> dict[int, str]:
        return {int(k): v for k, v in (self.pipe.config.get("id2label") or {}).items()}


@dataclass
class GenerationResult:
    """Images plus every number a UI, card or table shows about how they were made."""

    images: list[Image.Image]
    class_ids: list[int]
    class_names: list[str]
    seeds: list[int]
    recipe: str
    source: str
    steps: int
    guidance_scale: float
    scheduler: str
    latency_s: float
    denoise_s: float
    per_step_s: float
    decode_s: float
    peak_memory_bytes: int
    memory_kind: str
    memory_before_bytes: int  # in use when the run started (other resident models included): peak − this = the run
    weight_bytes: int
    load_s: float
    quantize_s: float
    calibrate_s: float
    device: str
    dtype: str
    compile_mode: str = "none"
    warmup_s: float | None = None
    extra: dict = field(default_factory=dict)

    def metrics(self) -> dict:
        """JSON-ready numbers (no images)."""
        data = {k: v for k, v in self.__dict__.items() if k != "images"}
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in data.items()}


def validate_request(
    labels: Sequence[str | int], seeds: Sequence[int], steps: int, guidance_scale: float, max_batch: int = MAX_BATCH
) -> None:
    """Reject bad input with a message a person can act on, before any work starts."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not 1 <= steps <= MAX_STEPS:
        raise InvalidRequestError(f"steps must be a whole number from 1 to {MAX_STEPS}, got {steps!r}.")
    if (
        isinstance(guidance_scale, bool)
        or not isinstance(guidance_scale, (int, float, np.floating))
        or not (math.isfinite(guidance_scale) and guidance_scale >= 1)
    ):
        raise InvalidRequestError(f"guidance scale must be a number ≥ 1 (1 = no guidance), got {guidance_scale!r}.")
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= MAX_SEED:
            raise InvalidRequestError(f"seed must be a whole number from 0 to {MAX_SEED} (2**32-1), got {seed!r}.")
    if not labels:
        raise InvalidRequestError("No class selected: give at least one class name or id.")
    if len(labels) > max_batch:
        raise InvalidRequestError(f"Too many images in one request: {len(labels)} > {max_batch}. Split the request.")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak_memory(device: torch.device) -> None:
    """CUDA: allocator peak. CPU: the kernel's resident-set high-water mark (VmHWM), reset via clear_refs."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass


def memory_in_use(device: torch.device) -> int:
    """Allocated device memory (CUDA) or resident set size (CPU) right now."""
    if device.type == "cuda":
        return int(torch.cuda.memory_allocated(device))
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def peak_memory(device: torch.device) -> tuple[int, str]:
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device)), "cuda_max_memory_allocated"
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024, "process_peak_rss"
    except OSError:
        pass
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024, "process_peak_rss_lifetime"


@contextmanager
def _decode_clock(pipe: DiTPipeline, device: torch.device):
    """Timestamp of "VAE decode starts", so sampling and decoding are timed apart without editing DiTPipeline.

    The hook sits on the VAE decoder, never on the transformer, which may be compiled (a hook there would be
    traced into the graph or force recompiles).
    """
    marks: dict[str, float] = {}

    def decode_start(*_args) -> None:
        _sync(device)
        marks.setdefault("decode", time.perf_counter())

    handle = pipe.vae.decoder.register_forward_pre_hook(decode_start)
    try:
        yield marks
    finally:
        handle.remove()


def build_reference(
    source: str | None = None,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    scheduler: str | None = None,
) -> Variant:
    """Load a source once; its recipe is `bf16` unless the folder was saved quantized by this project."""
    device = torch.device(device) if device is not None else default_device()
    start = time.perf_counter()
    pipe = load_pipeline(source, device=device, dtype=dtype or default_dtype(device), scheduler=scheduler)
    _sync(device)
    load_s = time.perf_counter() - start
    info = resolve_source(source)
    recipe = REFERENCE_RECIPE
    report = QuantizationReport(recipe=recipe)
    if is_quantized(pipe.transformer):
        metadata = (read_metadata(info.path) if info.path else None) or {}
        recipe = metadata.get("recipe", "prequantized")
        report = QuantizationReport.from_dict({"recipe": recipe, **(metadata.get("report") or {})})
    report.weight_bytes_after = module_weight_bytes(pipe.transformer)
    if not report.weight_bytes_before:
        report.weight_bytes_before = report.weight_bytes_after
    pipe.set_progress_bar_config(leave=False)
    return Variant(pipe=pipe, recipe=recipe, source=info.source, report=report, load_s=load_s)


def build_variant(
    reference: Variant,
    recipe: str,
    *,
    keep: Sequence[str] = (),
    exclude: Sequence[str] = (),
    calibration: CalibrationConfig | None = None,
) -> Variant:
    """Quantize a copy of the reference (the reference itself for `bf16`)."""
    get_recipe(recipe)
    if recipe == reference.recipe:
        return reference
    if is_quantized(reference.pipe.transformer):
        raise InvalidRequestError(
            f"{reference.source} is already quantized ({reference.recipe}); load the full-precision model to "
            f"build {recipe}."
        )
    pipe, report = derive_pipeline(reference.pipe, recipe, keep=keep, exclude=exclude, calibration=calibration)
    pipe.set_progress_bar_config(leave=False)
    return Variant(pipe=pipe, recipe=recipe, source=reference.source, report=report, load_s=reference.load_s)


def seeds_for(seed: int, count: int) -> list[int]:
    """Image i of a request uses seed + i, so any image can be regenerated alone and compared pixel by pixel."""
    return [(seed + i) % (MAX_SEED + 1) for i in range(count)]


def initial_generators(seeds: Sequence[int]) -> list[torch.Generator]:
    """CPU generators: the same seed gives the same initial noise on every device and for every recipe."""
    return [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]


def generate(
    variant: Variant | DiTPipeline,
    labels: Sequence[str | int],
    *,
    seed: int = 0,
    seeds: Sequence[int] | None = None,
    steps: int = 25,
    guidance_scale: float = 4.0,
    scheduler: str | None = None,
    warmup: bool = False,
    max_batch: int = MAX_BATCH,
) -> GenerationResult:
    """Sample one image per label, timed and measured. `warmup` runs the same shapes once first (compile,
    kernel autotuning, CUDA graphs) and reports its time separately."""
    if isinstance(variant, DiTPipeline):
        variant = Variant(
            pipe=variant, recipe="unknown", source="in-memory", report=QuantizationReport(recipe="unknown"), load_s=0.0
        )
    labels = [parse_choice(label) for label in labels]
    seeds = list(seeds) if seeds is not None else None
    if seeds is not None and len(seeds) != len(labels):
        raise InvalidRequestError(f"{len(seeds)} seeds for {len(labels)} labels: give one seed per image.")
    validate_request(labels, seeds if seeds is not None else [seed], steps, guidance_scale, max_batch)
    id2label = variant.id2label
    class_ids = resolve_labels(labels, id2label)
    seeds = seeds if seeds is not None else seeds_for(seed, len(class_ids))
    pipe = variant.pipe
    if scheduler:
        set_scheduler(pipe, scheduler)
    device = pipe.transformer.device

    def run() -> list[Image.Image]:
        output = pipe(
            class_labels=class_ids,
            guidance_scale=float(guidance_scale),
            generator=initial_generators(seeds),
            num_inference_steps=int(steps),
            output_type="np",
        )
        return pipe.numpy_to_pil(output.images)

    warmup_s = None
    if warmup:
        start = time.perf_counter()
        run()
        _sync(device)
        warmup_s = time.perf_counter() - start
        variant.warmup_s = warmup_s
    reset_peak_memory(device)
    memory_before = memory_in_use(device)
    _sync(device)
    with _decode_clock(pipe, device) as marks:
        start = time.perf_counter()
        images = run()
        _sync(device)
        end = time.perf_counter()
    peak, memory_kind = peak_memory(device)
    denoise_s = marks.get("decode", end) - start  # noise + every sampling step (the noise itself is negligible)
    return GenerationResult(
        images=images,
        class_ids=class_ids,
        class_names=[display_name(id2label, i) for i in class_ids],
        seeds=list(seeds),
        recipe=variant.recipe,
        source=variant.source,
        steps=int(steps),
        guidance_scale=float(guidance_scale),
        scheduler=type(pipe.scheduler).__name__,
        latency_s=end - start,
        denoise_s=denoise_s,
        per_step_s=denoise_s / int(steps),
        decode_s=end - marks.get("decode", end),
        peak_memory_bytes=peak,
        memory_kind=memory_kind,
        memory_before_bytes=memory_before,
        weight_bytes=module_weight_bytes(pipe.transformer),
        load_s=variant.load_s,
        quantize_s=variant.report.quantize_s,
        calibrate_s=variant.report.calibrate_s,
        device=str(device),
        dtype=str(pipe.transformer.dtype).replace("torch.", ""),
        compile_mode=variant.compile_mode,
        warmup_s=warmup_s if warmup_s is not None else variant.warmup_s,
    )
