"""THE one generation path: load → (quantize) → sample → time → measure. The app, gallery, benchmark and Hub
scripts all call `build_reference`, `build_variant` and `generate`, so every surface reports the same figures."""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from diffusers import DiTPipeline
from PIL import Image

from dit_demo.engine.device import default_device, default_dtype, memory_in_use, peak_memory, reset_peak_memory, sync
from dit_demo.engine.model.labels import display_name, resolve_labels
from dit_demo.engine.model.loading import load_pipeline
from dit_demo.engine.model.resolver import ResolvedSource, resolve_source
from dit_demo.engine.model.serialization import is_quantized, stored_dtype
from dit_demo.engine.model.sources import set_scheduler
from dit_demo.engine.quant.quantize import CalibrationConfig, QuantizationReport, derive_pipeline, module_weight_bytes
from dit_demo.engine.quant.recipes import REFERENCE_RECIPE, get_recipe
from dit_demo.engine.request import SamplingRequest
from dit_demo.engine.threads import thread_policy
from dit_demo.errors import InvalidRequestError


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
    storage_dtype: torch.dtype | None = None  # how the source stores its float weights (save kept tensors so)
    folder: Path | None = None  # the source's local folder (a Hub snapshot for Hub ids); None for in-memory sources
    resolved: ResolvedSource | None = None  # what the source was resolved to (None for a bare in-memory pipeline)

    @property
    def prequantized(self) -> bool:
        """Loaded already quantized: its build times are the folder's history, not something that happened here."""
        return self.resolved is not None and self.resolved.prequantized and self.recipe == self.resolved.recipe

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
    prequantized: bool = False  # loaded as saved: quantize_s / calibrate_s are 0, nothing was built in this run
    extra: dict = field(default_factory=dict)

    def metrics(self) -> dict:
        """JSON-ready numbers (no images)."""
        data = {k: v for k, v in self.__dict__.items() if k != "images"}
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in data.items()}


@contextmanager
def _decode_clock(pipe: DiTPipeline, device: torch.device):
    """Timestamp of "VAE decode starts", so sampling and decoding are timed apart without editing DiTPipeline.

    The hook sits on the VAE decoder, never on the transformer, which may be compiled (a hook there would be
    traced into the graph or force recompiles).
    """
    marks: dict[str, float] = {}

    def decode_start(*_args) -> None:
        sync(device)
        marks.setdefault("decode", time.perf_counter())

    handle = pipe.vae.decoder.register_forward_pre_hook(decode_start)
    try:
        yield marks
    finally:
        handle.remove()


def build_reference(
    source: str | ResolvedSource | None = None,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    scheduler: str | None = None,
) -> Variant:
    """Load a source once (a string is resolved here; callers that already resolved it pass the `ResolvedSource`).
    Its recipe is `bf16` unless the folder (local or a Hub snapshot) was saved quantized by this project: then its
    saved recipe and report come with it, with no quantize/calibrate time of this run (the saved times stay in
    `resolved.metadata`)."""
    device = torch.device(device) if device is not None else default_device()
    start = time.perf_counter()
    resolved = resolve_source(source, fetch=True)
    pipe = load_pipeline(resolved, device=device, dtype=dtype or default_dtype(device), scheduler=scheduler)
    sync(device)
    load_s = time.perf_counter() - start
    recipe = REFERENCE_RECIPE
    report = QuantizationReport(recipe=recipe)
    if resolved.prequantized or is_quantized(pipe.transformer):
        recipe = resolved.recipe or "prequantized"
        report = QuantizationReport.from_dict({"recipe": recipe, **((resolved.metadata or {}).get("report") or {})})
        report.quantize_s = report.calibrate_s = 0.0
    report.weight_bytes_after = module_weight_bytes(pipe.transformer)
    if not report.weight_bytes_before:
        report.weight_bytes_before = report.weight_bytes_after
    pipe.set_progress_bar_config(leave=False)
    folder = resolved.folder
    return Variant(
        pipe=pipe,
        recipe=recipe,
        source=resolved.source,
        report=report,
        load_s=load_s,
        storage_dtype=stored_dtype(folder / "transformer") if folder else None,
        folder=folder,
        resolved=resolved,
    )


def build_variant(
    reference: Variant,
    recipe: str,
    *,
    keep: Sequence[str] = (),
    exclude: Sequence[str] = (),
    calibration: CalibrationConfig | None = None,
) -> Variant:
    """Quantize a copy of the reference (the reference itself for `bf16`)."""
    spec = get_recipe(recipe)
    if recipe == reference.recipe:
        return reference
    if is_quantized(reference.pipe.transformer) and spec.backend != "torch-dynamic":
        raise InvalidRequestError(
            f"{reference.source} is already quantized ({reference.recipe}); load the full-precision model to "
            f"build {recipe}."
        )
    with thread_policy([reference.pipe.transformer]):  # calibration samples: same policy as `generate`
        pipe, report = derive_pipeline(reference.pipe, recipe, keep=keep, exclude=exclude, calibration=calibration)
    pipe.set_progress_bar_config(leave=False)
    return Variant(
        pipe=pipe,
        recipe=recipe,
        source=reference.source,
        report=report,
        load_s=reference.load_s,
        storage_dtype=reference.storage_dtype,
        folder=reference.folder,
        resolved=reference.resolved,
    )


def initial_generators(seeds: Sequence[int]) -> list[torch.Generator]:
    """CPU generators: the same seed gives the same initial noise on every device and for every recipe."""
    return [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]


def generate(variant: Variant | DiTPipeline, request: SamplingRequest) -> GenerationResult:
    """Sample one image per label of the (already validated) request, timed and measured. `request.warmup` runs the
    same shapes once first (compile, kernel autotuning, CUDA graphs) and reports its time separately. CPU threads
    follow `engine.threads` (1 for small models)."""
    if isinstance(variant, DiTPipeline):
        variant = Variant(
            pipe=variant, recipe="unknown", source="in-memory", report=QuantizationReport(recipe="unknown"), load_s=0.0
        )
    id2label = variant.id2label
    class_ids = resolve_labels(list(request.labels), id2label)
    seeds = list(request.seeds)
    pipe = variant.pipe
    if request.scheduler:
        set_scheduler(pipe, request.scheduler)
    device = pipe.transformer.device

    def run() -> list[Image.Image]:
        output = pipe(
            class_labels=class_ids,
            guidance_scale=request.guidance_scale,
            generator=initial_generators(seeds),
            num_inference_steps=request.steps,
            output_type="np",
        )
        return pipe.numpy_to_pil(output.images)

    with thread_policy([pipe.transformer]):
        warmup_s = None
        if request.warmup:
            start = time.perf_counter()
            run()
            sync(device)
            warmup_s = time.perf_counter() - start
            variant.warmup_s = warmup_s
        reset_peak_memory(device)
        memory_before = memory_in_use(device)
        sync(device)
        with _decode_clock(pipe, device) as marks:
            start = time.perf_counter()
            images = run()
            sync(device)
            end = time.perf_counter()
    peak, memory_kind = peak_memory(device)
    denoise_s = marks.get("decode", end) - start  # noise + every sampling step (the noise itself is negligible)
    return GenerationResult(
        images=images,
        class_ids=class_ids,
        class_names=[display_name(id2label, i) for i in class_ids],
        seeds=seeds,
        recipe=variant.recipe,
        source=variant.source,
        steps=request.steps,
        guidance_scale=request.guidance_scale,
        scheduler=type(pipe.scheduler).__name__,
        latency_s=end - start,
        denoise_s=denoise_s,
        per_step_s=denoise_s / request.steps,
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
        prequantized=variant.prequantized,
    )
