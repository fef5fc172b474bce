"""Everything behind the Gradio app except its layout: defaults, handlers, error mapping, formatting, charts.

`app.py` only lays out components and wires them to the functions here, so this module can be unit-tested
without a browser and the same handler serves the UI and the `/generate` API endpoint. Heavy work (loading,
quantizing) happens lazily on the first request, or in `DemoService.preload` started after launch.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import logging
import os
import random
import tempfile
import threading
import time
import traceback
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
import pandas as pd
import torch
from PIL import Image, ImageDraw, ImageFont

from dit_demo import compare as compare_module
from dit_demo.compare import Comparison, VariantCache
from dit_demo.engine.device import default_device
from dit_demo.engine.generate import Variant, generate
from dit_demo.engine.labels import choices, display_name, imagenet_id2label, parse_choice, resolve_labels
from dit_demo.engine.metrics import amplified_difference
from dit_demo.engine.quantize import RECIPES, REFERENCE_RECIPE
from dit_demo.engine.request import MAX_BATCH, MAX_SEED, SamplingRequest, whole_number
from dit_demo.engine.sources import (
    EMBEDDED_MODEL_DIR,
    KNOWN_HUB_MODELS,
    QMAP_NAME,
    SCHEDULERS,
    resolve_source,
)
from dit_demo.errors import DemoError, InvalidRequestError
from dit_demo.reports.render import hstrip

log = logging.getLogger("dit_demo.app")

ROOT = Path(__file__).resolve().parents[2]
GALLERY_DIR = ROOT / "gallery" / "embedded"
BENCH_README = ROOT / "bench" / "README.md"
MODEL_ENV = "DIT_DEMO_MODEL"
FALLBACK_MODEL = "tiny-random"  # only until the embedded digits model is present
COMPARE_RECIPES: list[str] = [r for r in RECIPES if r != REFERENCE_RECIPE]
DEFAULT_RECIPES = ["int8"]
DEFAULT_STEPS = 25
DEFAULT_GUIDANCE = 4.0
UI_MAX_STEPS = 100
UI_MAX_GUIDANCE = 15.0
DIFF_GAIN = 8.0
QUEUE_SIZE = int(os.environ.get("DIT_DEMO_QUEUE_SIZE", "64"))
MAX_VARIANTS = int(os.environ.get("DIT_DEMO_MAX_VARIANTS", "4"))
COMPILE_MODE = "reduce-overhead"
STRIP_TILE = 128  # smallest tile side in the downloadable PNG: 16-pixel digits are scaled up, pixel-exact
STRIP_PAD, STRIP_HEADER, STRIP_SIDE = 8, 58, 120  # its margins: between tiles, label rows on top, row labels

CSS = """
#gallery img, #slider img, #diff img, #precomputed-grid img, #precomputed-chart img { image-rendering: pixelated; }
"""

INTRO = f"""# DiT × optimum-quanto: same seed, every recipe, measured
Pick a model, classes and recipes; the {REFERENCE_RECIPE} reference and each quantized recipe render the **same seed**
side by side, with latency, memory, weight bytes and PSNR/SSIM against the reference. Quantized variants are built
on first use and cached."""


# ---------------------------------------------------------------------------------------------------------------
# Defaults and model metadata (cheap: never loads weights)


def embedded_available() -> bool:
    """The shipped digits model is present (it is the default whenever it is)."""
    return (EMBEDDED_MODEL_DIR / "model_index.json").is_file()


def default_model(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> str:
    """`--model` flag, then `DIT_DEMO_MODEL`, then the embedded digits model (or `tiny-random` until it exists)."""
    if argv is not None:
        parser = argparse.ArgumentParser(add_help=False)
        parser.add_argument("--model", default=None)
        known, _ = parser.parse_known_args(list(argv))
        if known.model:
            return known.model.strip()
    environ = os.environ if environ is None else environ
    if environ.get(MODEL_ENV, "").strip():
        return environ[MODEL_ENV].strip()
    return "embedded" if embedded_available() else FALLBACK_MODEL


def model_choices(current: str) -> list[str]:
    """What the model picker offers; any other folder or Hub id can be typed in."""
    options = [current]
    if embedded_available():
        options.append("embedded")
    options += [*KNOWN_HUB_MODELS, "dit-xl-2-256-random", "tiny-random"]
    return list(dict.fromkeys(options))


def _id2label_from_index(path: Path) -> dict[int, str] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8")).get("id2label")
    except (OSError, ValueError):
        return None
    return {int(k): v for k, v in data.items()} if data else None


def _hub_cached_file(repo_id: str, filename: str) -> str | None:
    """A file of a Hub repo if it is already in the local cache (no network)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo_id, filename)
    except Exception:  # malformed ids and cache oddities: just "not known"
        return None
    return found if isinstance(found, str) else None


def peek_id2label(source: str) -> tuple[dict[int, str], bool]:
    """A source's class names without loading weights, and whether they are authoritative.

    Folders and the embedded model carry them in model_index.json; Hub repos only if cached; anything else is
    assumed to be ImageNet (every DiT checkpoint on the Hub is), which is then not authoritative.
    """
    try:
        info = resolve_source(source)
    except DemoError:
        return imagenet_id2label(), False
    if info.kind == "random":
        return imagenet_id2label(), True
    if info.path:
        labels = _id2label_from_index(Path(info.path) / "model_index.json")
        return (labels, True) if labels else (imagenet_id2label(), False)
    cached = _hub_cached_file(info.source, "model_index.json")
    labels = _id2label_from_index(Path(cached)) if cached else None
    return (labels, True) if labels else (imagenet_id2label(), False)


def class_choices(source: str) -> list[str]:
    """Picker entries ("207: golden retriever") for the model's own classes."""
    return choices(peek_id2label(source)[0])


def default_classes(source: str) -> list[str]:
    """Two digits for the digits model, a golden retriever for ImageNet."""
    id2label, _ = peek_id2label(source)
    entries = choices(id2label)
    if compare_module.DIGIT_NAMES == tuple(display_name(id2label, i) for i in sorted(id2label)):
        return [entries[3], entries[7]]
    return [entries[207]] if len(entries) > 207 else entries[:1]


def example_rows(source: str) -> list[list]:
    """gr.Examples rows (classes, seed, steps, guidance, recipes) valid for the default model."""
    id2label, _ = peek_id2label(source)
    entries = choices(id2label)
    if len(entries) >= 1000:
        picks = [[entries[207]], [entries[88], entries[279]], [entries[980]]]
    else:
        picks = [entries[i : i + 2] for i in range(0, min(len(entries), 9), 4)]
    recipe_sets = [["int8"], ["int8", "int8-a8"], ["int8", "int4"]]
    return [[p, i, DEFAULT_STEPS, DEFAULT_GUIDANCE, recipe_sets[i % 3]] for i, p in enumerate(picks)]


def prequantized_recipe(source: str) -> str | None:
    """The recipe a pre-quantized folder or cached Hub repo was saved with (None for full-precision sources)."""
    from dit_demo.engine.serialization import read_metadata

    try:
        info = resolve_source(source)
    except DemoError:
        return None
    folder: Path | None = None
    if info.kind == "folder" and info.prequantized:
        folder = Path(info.path)
    elif info.kind == "hub":
        qmap = _hub_cached_file(info.source, f"transformer/{QMAP_NAME}")
        if qmap:
            folder = Path(qmap).parent.parent
    if folder is None:
        return None
    return ((read_metadata(folder) or {}).get("recipe")) or "prequantized"


def model_note(source: str) -> str:
    """One line under the model picker: what the source is and what comparing it means."""
    source = (source or "").strip()
    try:
        info = resolve_source(source)
    except DemoError as exc:
        return f"⚠️ {exc}"
    id2label, _ = peek_id2label(source)
    kind = {
        "embedded": "the shipped digits DiT (16×16, trained on scikit-learn digits)",
        "random": "seeded random weights (draws noise: for speed/memory only)",
        "folder": "a local pipeline folder",
        "hub": "a Hugging Face Hub repo (downloaded on first use)",
    }[info.kind]
    note = f"**{info.source}**: {kind}; {len(id2label)} classes."
    saved = prequantized_recipe(source)
    if saved:
        note += f" Pre-quantized ({saved}): shown alone, no {REFERENCE_RECIPE} reference to compare against."
    if info.kind == "random" and not embedded_available():
        note += " (The embedded digits model is not in this checkout yet; it becomes the default once it is.)"
    return note


def on_model_change(source: str) -> tuple[dict, str]:
    """New model → its own class list (and a valid default selection) plus a note about the source."""
    return gr.update(choices=class_choices(source), value=default_classes(source)), model_note(source)


# ---------------------------------------------------------------------------------------------------------------
# GPU hooks: ZeroGPU decorator, optional fast path


def _spaces_gpu(duration: int = 120) -> Callable[[Callable], Callable]:
    """`spaces.GPU` where the package exists (Hugging Face Spaces), a no-op elsewhere."""
    try:
        import spaces  # type: ignore[import-not-found]
    except ImportError:
        return lambda fn: fn
    return spaces.GPU(duration=duration)


def fast_module():
    """`dit_demo.engine.fast` if it exists and exposes `compile_variant(variant, mode)`, else None."""
    try:
        module = importlib.import_module("dit_demo.engine.fast")
    except ImportError:
        return None
    return module if callable(getattr(module, "compile_variant", None)) else None


def fast_compile_available() -> bool:
    """Show the "compile (GPU)" checkbox only where compiling can work."""
    return fast_module() is not None and torch.cuda.is_available()


@_spaces_gpu(duration=180)
def run_comparison(
    variants: dict[str, Variant], request: SamplingRequest, *, reference: str, cold: Sequence[Variant] = ()
) -> Comparison:
    """The device-bound part of a request (the only function ZeroGPU needs to hold a GPU for).

    `cold` variants were never run: one 2-step image each first, so one-time costs (allocator, thread pools,
    kernel selection) do not land on whichever recipe happens to run first and skew the latency comparison.
    """
    for variant in cold:
        generate(variant, request.head(1, steps=2).replace(warmup=False))
    return compare_module.compare(variants, request, reference=reference)


SMALL_MODEL_PARAMS = 20_000_000


def cpu_threads(variants: Sequence[Variant], environ: Mapping[str, str] | None = None) -> int | None:
    """Threads to sample with on CPU (None: leave torch's setting alone).

    A small model's matmuls are too small to split: on 2 busy cores, 2 OpenMP threads made the 2.9 M-parameter
    digits DiT 8-40× slower per step than 1 thread (spin-waiting on a core someone else holds). Large models
    keep torch's default. `DIT_DEMO_CPU_THREADS` overrides.
    """
    environ = os.environ if environ is None else environ
    if environ.get("DIT_DEMO_CPU_THREADS", "").strip():
        return max(1, int(environ["DIT_DEMO_CPU_THREADS"]))
    if not variants or any(v.device.type != "cpu" for v in variants):
        return None
    params = max(sum(p.numel() for p in v.pipe.transformer.parameters()) for v in variants)
    return 1 if params < SMALL_MODEL_PARAMS else None


@contextmanager
def thread_budget(variants: Sequence[Variant]) -> Iterator[None]:
    """Apply `cpu_threads` for one request and restore torch's setting after (requests run one at a time)."""
    threads = cpu_threads(variants)
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


# ---------------------------------------------------------------------------------------------------------------
# Errors


def _free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


@contextmanager
def user_errors() -> Iterator[None]:
    """Every failure becomes a `gr.Error` a person can act on; the server keeps serving the next request."""
    try:
        yield
    except gr.Error:
        raise
    except DemoError as exc:
        raise gr.Error(str(exc), print_exception=False) from exc
    except torch.OutOfMemoryError as exc:
        _free_memory()
        raise gr.Error(
            "Out of memory while generating. Reduce the number of classes (images per request), compare fewer "
            "recipes at once, lower the resolution (DiT-XL-2-256 instead of -512), or try again when the GPU is "
            "less busy.",
            print_exception=False,
        ) from exc
    except Exception as exc:  # anything unforeseen: say what it was, log the traceback, keep serving
        log.error("Unexpected error in a request:\n%s", traceback.format_exc())
        _free_memory()
        raise gr.Error(f"Unexpected error: {type(exc).__name__}: {exc}", print_exception=False) from exc


# ---------------------------------------------------------------------------------------------------------------
# Request parsing


def _whole(value, name: str):
    """Gradio sends numbers as floats: accept 25.0 for 25, leave anything else to the core validators."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if value is None:
        raise InvalidRequestError(f"{name} is empty: give a whole number.")
    return value


@dataclass
class Request:
    """One validated comparison request, as the UI and API send it."""

    model: str
    sampling: SamplingRequest
    recipes: list[str]
    compile: bool = False

    @property
    def labels(self) -> tuple:
        return self.sampling.labels

    @property
    def seed(self) -> int:
        return self.sampling.seed

    @classmethod
    def parse(
        cls,
        model: str | None,
        classes: Sequence[str | int] | str | None,
        seed,
        randomize: bool,
        steps,
        guidance_scale,
        scheduler: str | None,
        recipes: Sequence[str] | None,
        compile_gpu: bool = False,
        *,
        max_batch: int = MAX_BATCH,
    ) -> Request:
        """Check everything that can be checked before any model is loaded."""
        model = (model or "").strip()
        if not model:
            raise InvalidRequestError("No model given: pick one from the list or type a folder / Hub id.")
        resolve_source(model)  # raises ModelLoadError for strings that are neither folder, Hub id nor known name
        if isinstance(classes, str):  # API callers may send one name instead of a list
            classes = [classes]
        labels = [parse_choice(c) for c in (classes or [])]
        seed = random.randint(0, MAX_SEED) if randomize else whole_number(_whole(seed, "seed"), "seed", 0, MAX_SEED)
        if scheduler and scheduler not in SCHEDULERS:
            raise InvalidRequestError(f"Unknown scheduler {scheduler!r}: choose one of {', '.join(SCHEDULERS)}.")
        sampling = SamplingRequest.create(
            labels,
            seed=seed,
            steps=_whole(steps, "steps"),
            guidance_scale=guidance_scale,
            scheduler=scheduler or None,
            warmup=bool(compile_gpu),
            max_batch=max_batch,
        )
        id2label, authoritative = peek_id2label(model)
        if authoritative:
            resolve_labels(labels, id2label)  # unknown names fail here, with suggestions, before loading
        chosen = [r for r in dict.fromkeys(recipes or []) if r != REFERENCE_RECIPE]
        unknown = [r for r in chosen if r not in RECIPES]
        if unknown:
            raise InvalidRequestError(f"Unknown recipe(s) {unknown}: choose from {', '.join(RECIPES)}.")
        return cls(model, sampling, chosen, bool(compile_gpu))


# ---------------------------------------------------------------------------------------------------------------
# Formatting


def _mb(value: int | None) -> float | None:
    return None if value is None else round(value / 2**20, 3)


def caption(row: dict, index: int) -> str:
    """Gallery caption: recipe, class, and the numbers that matter at a glance."""
    parts = [f"{row['recipe']} · {row['class_names'][index]} (seed {row['seeds'][index]})"]
    parts.append(f"{row['latency_s']:.2f} s · {_mb(row['weight_bytes']):.2f} MB weights")
    if row.get("psnr_db") is not None:
        parts.append(f"PSNR {row['psnr_db']:.1f} dB · SSIM {row['ssim']:.3f}")
    elif row["recipe"] != REFERENCE_RECIPE:
        parts.append("identical to reference")
    if row.get("predicted_digits"):
        parts.append(f"reads as {row['predicted_digits'][index]} ({100 * row['confidences'][index]:.0f} %)")
    return " · ".join(parts)


TABLE_COLUMNS = {
    "recipe": "recipe",
    "latency_s": "latency s",
    "per_step_ms": "ms / step",
    "weights_mb": "weights MB",
    "peak_memory_mb": "peak MB",
    "quantize_s": "quantize s",
    "calibrate_s": "calibrate s",
    "compile_mode": "compile",
    "warmup_s": "warm-up s",
    "psnr_db": "PSNR dB",
    "ssim": "SSIM",
    "digits": "predicted digit (confidence)",
}


def table_headers() -> list[str]:
    """Column titles of the table before the first run (the digits column appears only for the digits model)."""
    return [title for key, title in TABLE_COLUMNS.items() if key != "digits"]


def table_frame(rows: Sequence[dict]) -> pd.DataFrame:
    """The per-recipe table shown under the images (human units; the JSON keeps raw numbers)."""
    records = []
    for row in rows:
        record = {
            "recipe": row["recipe"],
            "latency_s": round(row["latency_s"], 3),
            "per_step_ms": round(1000 * row["per_step_s"], 2),
            "weights_mb": _mb(row["weight_bytes"]),
            "peak_memory_mb": _mb(row["peak_memory_bytes"]),
            "quantize_s": round(row["quantize_s"], 3),
            "calibrate_s": round(row["calibrate_s"], 3),
            "compile_mode": row.get("compile_mode", "none"),
            "warmup_s": None if row.get("warmup_s") is None else round(row["warmup_s"], 2),
            "psnr_db": row.get("psnr_db"),
            "ssim": row.get("ssim"),
        }
        if "predicted_digits" in row:
            record["digits"] = ", ".join(
                f"{d} ({100 * c:.0f}%)" for d, c in zip(row["predicted_digits"], row["confidences"])
            )
        records.append(record)
    frame = pd.DataFrame.from_records(records)
    return frame.rename(columns=TABLE_COLUMNS)


def chart_frame(rows: Sequence[dict]) -> pd.DataFrame:
    """Latency vs memory per recipe, one point each (the chart's data)."""
    return pd.DataFrame(
        {
            "recipe": [r["recipe"] for r in rows],
            "latency_s": [round(r["latency_s"], 4) for r in rows],
            "weights_mb": [_mb(r["weight_bytes"]) for r in rows],
            "peak_memory_mb": [_mb(r["peak_memory_bytes"]) for r in rows],
        }
    )


def numbers_json(comparison: Comparison, request: Request) -> dict:
    """What the API returns next to the images: the request as run and every metric per recipe."""
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


def display_scale(image: Image.Image, min_side: int = 256) -> Image.Image:
    """Pixel-exact integer upscaling for on-page views: a 16-pixel digit stays crisp instead of a speck."""
    factor = max(1, -(-min_side // max(image.size)))
    return image if factor == 1 else image.resize((image.width * factor, image.height * factor), Image.NEAREST)


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow built without FreeType
        return ImageFont.load_default()


def first_quantized(comparison: Comparison) -> str | None:
    return next((r for r in comparison.results if r != comparison.reference_recipe), None)


def comparison_strip(comparison: Comparison, gain: float = DIFF_GAIN) -> Image.Image:
    """ONE labelled PNG of the whole comparison: a row per image, columns reference, recipes, difference.

    Small images are scaled up by an integer factor (nearest neighbour, so pixels stay exact) to leave room
    for the labels.
    """
    rows = {row["recipe"]: row for row in comparison.rows()}
    ref = comparison.reference
    other = first_quantized(comparison)
    columns: list[tuple[str, list[Image.Image]]] = []
    for recipe, result in comparison.results.items():
        row = rows[recipe]
        label = f"{recipe}\n{row['latency_s']:.2f} s, {_mb(row['weight_bytes']):.1f} MB"
        if recipe != comparison.reference_recipe:
            label += "\nPSNR " + ("identical" if row.get("psnr_db") is None else f"{row['psnr_db']:.1f} dB")
        columns.append((label, result.images))
    if other is not None:
        diffs = [amplified_difference(a, b, gain) for a, b in zip(ref.images, comparison.results[other].images)]
        columns.append((f"|{comparison.reference_recipe} − {other}| ×{gain:g}", diffs))
    width, height = ref.images[0].size
    scale = max(1, -(-STRIP_TILE // max(width, height)))
    tile_w, tile_h = width * scale, height * scale
    pad, header, side = STRIP_PAD, STRIP_HEADER, STRIP_SIDE
    font = _font(13)
    canvas = Image.new(
        "RGB",
        (side + len(columns) * (tile_w + pad) + pad, header + len(ref.images) * (tile_h + pad) + pad),
        "white",
    )
    draw = ImageDraw.Draw(canvas)
    for c, (label, images) in enumerate(columns):
        x = side + pad + c * (tile_w + pad)
        draw.multiline_text((x, 6), label, fill="black", font=font, spacing=2)
        for r, image in enumerate(images):
            tile = image.convert("RGB").resize((tile_w, tile_h), Image.Resampling.NEAREST)
            canvas.paste(tile, (x, header + r * (tile_h + pad)))
    for r, (name, seed) in enumerate(zip(ref.class_names, ref.seeds)):
        draw.multiline_text((pad, header + r * (tile_h + pad) + 4), f"{name}\nseed {seed}", fill="black", font=font)
    return canvas


# ---------------------------------------------------------------------------------------------------------------
# The service: cached variants + the request handler


@dataclass
class ComparisonState:
    """What the follow-up views (slider, difference, table, chart) need from the last comparison."""

    comparison: Comparison
    rows: list[dict] = field(default_factory=list)


class DemoService:
    """Holds the bounded variant cache and handles requests; one per app (tests make their own)."""

    def __init__(
        self,
        default_model: str | None = None,
        *,
        device: torch.device | str | None = None,
        max_variants: int = MAX_VARIANTS,
        calibration=None,
        output_dir: str | Path | None = None,
        max_batch: int = MAX_BATCH,
    ):
        self.default_model = default_model or default_model_from_env()
        self.device = torch.device(device) if device is not None else default_device()
        self.cache = VariantCache(max_variants=max_variants, device=self.device, calibration=calibration)
        self.max_batch = max_batch
        self._compiled: OrderedDict[tuple, Variant] = OrderedDict()
        self._compile_lock = threading.Lock()
        self._run_lock = threading.Lock()
        self._warm: weakref.WeakSet = weakref.WeakSet()  # pipelines that have run once (see run_comparison)
        self.output_dir = Path(output_dir or tempfile.mkdtemp(prefix="dit-demo-app-"))
        self.output_dir.mkdir(parents=True, exist_ok=True)

    # -- variants ---------------------------------------------------------------------------------------------

    def variants(self, request: Request, notify: Callable[[str], None] | None = None) -> tuple[str, dict[str, Variant]]:
        """The reference recipe and every requested variant, built once (the cache says what it builds)."""
        saved = prequantized_recipe(request.model)
        if saved:
            variant = self.cache.get(request.model, saved, on_build=notify)
            return variant.recipe, {variant.recipe: variant}
        variants = {REFERENCE_RECIPE: self.cache.get(request.model, REFERENCE_RECIPE, on_build=notify)}
        for recipe in request.recipes:
            variants[recipe] = self.cache.get(request.model, recipe, on_build=notify)
        if request.compile:
            variants = {r: self._compile(request.model, r, v, notify) for r, v in variants.items()}
        return (REFERENCE_RECIPE if REFERENCE_RECIPE in variants else next(iter(variants))), variants

    def _compile(self, model: str, recipe: str, variant: Variant, notify: Callable[[str], None] | None) -> Variant:
        fast = fast_module()
        if fast is None or variant.device.type != "cuda":
            raise InvalidRequestError(
                "compile (GPU) needs a CUDA GPU and dit_demo.engine.fast; untick it to run eagerly."
            )
        key = (model, recipe, COMPILE_MODE)
        with self._compile_lock:
            if key not in self._compiled:
                if notify:
                    notify(f"Compiling {recipe} ({COMPILE_MODE}); the first run includes a warm-up.")
                self._compiled[key] = fast.compile_variant(variant, COMPILE_MODE, inplace=False)
                while len(self._compiled) > self.cache.max_variants:
                    self._compiled.popitem(last=False)
            self._compiled.move_to_end(key)
            return self._compiled[key]

    def preload(self, recipes: Sequence[str] = DEFAULT_RECIPES) -> None:
        """Load the default model, build the default recipes and run each once, ahead of the first visitor.

        Runs in a background thread after launch; a request arriving meanwhile waits on the same lock.
        """
        try:
            start = time.perf_counter()
            id2label, _ = peek_id2label(self.default_model)
            sampling = SamplingRequest.create([min(id2label)], seed=0, steps=2, guidance_scale=DEFAULT_GUIDANCE)
            request = Request(self.default_model, sampling, list(recipes))
            with self._run_lock:
                _, variants = self.variants(request)
                with thread_budget(list(variants.values())):
                    for variant in variants.values():
                        if variant.pipe not in self._warm:
                            generate(variant, sampling)
                            self._warm.add(variant.pipe)
            log.info(
                "Preloaded %s (%s) in %.2f s", self.default_model, ", ".join(variants), time.perf_counter() - start
            )
        except Exception as exc:  # a failed preload is reported by the first request instead
            log.warning("Preloading %s failed: %s", self.default_model, exc)

    def start_preload(self, recipes: Sequence[str] = DEFAULT_RECIPES) -> threading.Thread:
        thread = threading.Thread(target=self.preload, args=(list(recipes),), name="dit-demo-preload", daemon=True)
        thread.start()
        return thread

    # -- the handler ------------------------------------------------------------------------------------------

    def compare(self, request: Request, notify: Callable[[str], None] | None = None) -> Comparison:
        """Build (cached) and run one request; raises DemoError / OutOfMemoryError for the caller to map."""
        with self._run_lock:  # one pipeline must never sample in two threads at once (stateful schedulers)
            return self._compare_locked(request, notify)

    def _compare_locked(self, request: Request, notify: Callable[[str], None] | None) -> Comparison:
        reference, variants = self.variants(request, notify)
        cold = [] if request.compile else [v for v in variants.values() if v.pipe not in self._warm]
        with thread_budget(list(variants.values())):
            comparison = run_comparison(variants, request.sampling, reference=reference, cold=cold)
        self._warm.update(v.pipe for v in cold)
        return comparison

    def generate(
        self,
        model: str,
        classes: list[str],
        seed: float,
        randomize_seed: bool,
        steps: float,
        guidance_scale: float,
        scheduler: str,
        recipes: list[str],
        compile_gpu: bool = False,
        progress: gr.Progress = gr.Progress(track_tqdm=True),
    ) -> tuple[list[tuple[Image.Image, str]], dict, str, str, ComparisonState]:
        """The `/generate` endpoint: gallery, numbers JSON, summary, the one-PNG download, and state for views."""
        with user_errors():
            request = Request.parse(
                model,
                classes,
                seed,
                randomize_seed,
                steps,
                guidance_scale,
                scheduler,
                recipes,
                compile_gpu,
                max_batch=self.max_batch,
            )
            progress(0, desc="Preparing models…")
            comparison = self.compare(request, notify=_notify)
            numbers = numbers_json(comparison, request)
            rows = list(numbers["recipes"].values())
            items = [
                (result.images[i], caption(numbers["recipes"][recipe], i))
                for i in range(len(comparison.reference.images))
                for recipe, result in comparison.results.items()
            ]
            strip_path = self._save(comparison_strip(comparison), f"comparison-seed{request.seed}")
        return items, numbers, summary_markdown(numbers), strip_path, ComparisonState(comparison, rows)

    def _save(self, image: Image.Image, stem: str) -> str:
        """A PNG in this service's output folder (older files pruned: the folder does not grow without bound)."""
        files = sorted(self.output_dir.glob("*.png"), key=lambda p: p.stat().st_mtime)
        for old in files[:-64]:
            old.unlink(missing_ok=True)
        path = self.output_dir / f"{stem}-{uuid.uuid4().hex[:8]}.png"
        image.save(path, format="PNG")
        return str(path)


def default_model_from_env() -> str:
    return default_model(None)


def _notify(message: str) -> None:
    """Tell the visitor (toast) and the log what is about to take time, before it does."""
    log.info(message)
    try:
        gr.Info(message, duration=8)
    except Exception:  # outside a request (preload, unit tests): the log line is enough
        pass


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
        slider = (display_scale(hstrip(ref.images, "black")), display_scale(hstrip(quantized, "black")))
        diffs = [amplified_difference(a, b, DIFF_GAIN) for a, b in zip(ref.images, quantized)]
        diff = display_scale(hstrip(diffs, "black"))
    columns = gr.update(columns=len(comparison.results))
    return slider, diff, table_frame(state.rows), chart_frame(state.rows), columns


# ---------------------------------------------------------------------------------------------------------------
# Pre-computed gallery and benchmark tabs


def gallery_markdown(folder: Path = GALLERY_DIR) -> str:
    """results.md of the pre-computed gallery, or how to make it."""
    results = folder / "results.md"
    if results.is_file():
        return results.read_text(encoding="utf-8")
    return (
        "No pre-computed comparison yet. Create it (CPU, a few minutes) with\n\n"
        "```bash\npython -m dit_demo.reports.gallery --model embedded --recipes bf16,int8,int8-a8 --labels all --seeds 0,1 "
        "--steps 25 --guidance 4 --out gallery/embedded\n```\n\n"
        "It writes `grid.png`, `results.json`, `results.md` and `index.html` there; restart the app to show them."
    )


def gallery_grid(folder: Path = GALLERY_DIR, name: str = "grid.png") -> str | None:
    """A picture of the pre-computed gallery (grid.png, chart.png), if it was made."""
    grid = folder / name
    return str(grid) if grid.is_file() else None


def bench_markdown(path: Path = BENCH_README) -> str | None:
    return path.read_text(encoding="utf-8") if path.is_file() else None


def launch_kwargs() -> dict:
    """Options Gradio 6 takes at launch (css); tests launch with the same so the page looks the same."""
    return {"css": CSS}


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (tests and the startup measurement launch on it)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(demo: gr.Blocks, host: str = "127.0.0.1", port: int | None = None) -> Iterator[str]:
    """Run the real app on a local port for the duration of a `with` block; yields its URL."""
    demo.launch(
        prevent_thread_lock=True, server_name=host, server_port=port or free_port(host), quiet=True, **launch_kwargs()
    )
    try:
        yield demo.local_url
    finally:
        demo.close()
