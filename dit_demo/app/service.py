"""The service behind the page and `/generate`: the variant cache, one request at a time, GPU hooks, error mapping.

Heavy work (loading, quantizing) happens lazily on the first request, or in `DemoService.preload` started after
launch. Every failure reaches the visitor as a `gr.Error` they can act on; the server keeps serving.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import gradio as gr
import torch
from PIL import Image

from dit_demo.app import config, gpu_call, zerogpu
from dit_demo.app.budget import BudgetExceededError, build_estimate, pending_builds, warm_up
from dit_demo.app.inputs import FIELDS, Request
from dit_demo.app.page.views import ComparisonState, caption, comparison_strip, numbers_json, summary_markdown
from dit_demo.app.running import run_comparison, user_errors
from dit_demo.compare import Comparison, VariantCache
from dit_demo.engine.device import default_device
from dit_demo.engine.generate import Variant
from dit_demo.engine.model.resolver import ResolvedSource, resolve_source
from dit_demo.engine.quant.quantize import CalibrationConfig
from dit_demo.engine.quant.recipes import REFERENCE_RECIPE
from dit_demo.engine.request import DEFAULT_GUIDANCE, MAX_BATCH, SamplingRequest
from dit_demo.engine.threads import thread_policy
from dit_demo.errors import DemoError, InvalidRequestError, ModelLoadError

log = logging.getLogger("dit_demo.app")


def _notify(message: str) -> None:
    """Tell the visitor (toast) and the log what is about to take time, before it does."""
    log.info(message)
    try:
        gr.Info(message, duration=8)
    except Exception:  # outside a request (preload, unit tests): the log line is enough
        pass


# ---------------------------------------------------------------------------------------------------------------
# GPU hooks: optional fast path, CPU thread policy (ZeroGPU's GPU function: dit_demo.app.gpu_call)


def fast_module():
    """`dit_demo.engine.fast.compile` if it imports and exposes `compile_variant(variant, mode)`, else None."""
    try:
        from dit_demo.engine.fast import compile as fast
    except ImportError:
        return None
    return fast if callable(getattr(fast, "compile_variant", None)) else None


def fast_compile_available() -> bool:
    """Show the "compile (GPU)" checkbox only where it can work: a CUDA GPU in this process, or ZeroGPU when the
    Space ships a compile cache or AOT packages (a cold compile inside a call would take most of its window)."""
    if zerogpu.active():
        cache = gpu_call.shipped_compile_cache()
        return (cache is not None and cache.is_file()) or bool(gpu_call.aot_folder())
    return fast_module() is not None and torch.cuda.is_available()


def compile_label() -> str:
    if zerogpu.active():
        return "compile (GPU): from this Space's shipped compile cache (first call compiles, 9–12 s on an H200)"
    return config.COMPILE_LABEL


@contextmanager
def thread_budget(variants: Sequence[Variant]) -> Iterator[None]:
    """The engine's CPU thread policy (`dit_demo.engine.threads`) over a whole request, warm-ups included."""
    with thread_policy([v.pipe.transformer for v in variants]):
        yield


# ---------------------------------------------------------------------------------------------------------------
# The service: cached variants + the request handler


class DemoService:
    """Holds the bounded variant cache and handles requests; one per app (tests make their own)."""

    def __init__(
        self,
        default_model: str | None = None,
        *,
        device: torch.device | str | None = None,
        max_variants: int | None = None,
        calibration=None,
        output_dir: str | Path | None = None,
        max_batch: int = MAX_BATCH,
        hosted: bool | None = None,
        allowed_models: Sequence[str] | None = None,
        limits: config.Limits | None = None,
        timing_rounds: int | None = None,
    ):
        self.default_model = config.default_model(default_model)
        self.limits = limits or config.limits(self.default_model, hosted_mode=hosted, allowed_models=allowed_models)
        self.device = torch.device(device) if device is not None else (zerogpu.device() or default_device())
        max_variants = config.max_variants() if max_variants is None else max_variants
        if calibration is None and (steps := config.calibration_steps()) is not None:
            calibration = CalibrationConfig(steps=steps)
        self.cache = VariantCache(
            max_variants=max_variants, device=self.device, calibration=calibration, on_evict=self._evicted
        )
        self.max_batch = max_batch
        # timed runs per recipe behind each speed verdict (the first, whose images are shown, and repeats)
        self.timing_rounds = config.timing_rounds() if timing_rounds is None else max(1, timing_rounds)
        self._seconds_per_image_step: dict[tuple[str, str], float] = {}  # measured: for the time-budget estimate
        self.build_seconds: dict[tuple[str, str], float] = {}  # measured first builds (budget and GPU duration)
        self._compiled: OrderedDict[tuple, Variant] = OrderedDict()
        self._compile_lock = threading.Lock()
        self.problems: list[str] = []  # what the preload could not do (shown on the page)
        self._run_lock = threading.Lock()
        self.warm: weakref.WeakSet = weakref.WeakSet()  # pipelines that have run once (see run_comparison)
        self.output_dir = Path(output_dir or tempfile.mkdtemp(prefix="dit-demo-app-"))
        self.output_dir.mkdir(parents=True, exist_ok=True)

    # -- variants ---------------------------------------------------------------------------------------------

    def variants(self, request: Request, notify: Callable[[str], None] | None = None) -> tuple[str, dict[str, Variant]]:
        """The reference recipe and every requested variant, built once (the cache says what it builds)."""
        source = request.resolved  # resolved once when the request was checked; the cache loads from it
        saved = self._loaded_as(source, notify)
        if saved:
            variant = self.cache.get(source, saved, on_build=notify)
            return variant.recipe, {variant.recipe: variant}
        variants = {REFERENCE_RECIPE: self.cache.get(source, REFERENCE_RECIPE, on_build=notify)}
        for recipe in request.recipes:
            variants[recipe] = self.cache.get(source, recipe, on_build=notify)
        if request.compile:
            variants = {r: self._compile(request.model, r, v, notify) for r, v in variants.items()}
        return (REFERENCE_RECIPE if REFERENCE_RECIPE in variants else next(iter(variants))), variants

    def _evicted(self, key: tuple, variant: Variant) -> None:
        """The cache dropped a variant: drop what was derived from it too, so its memory really comes back."""
        model, recipe = key[0], key[1]
        for compiled_key in [k for k in self._compiled if k[:2] == (model, recipe)]:
            del self._compiled[compiled_key]
        self._seconds_per_image_step.pop((model, variant.recipe), None)
        self.warm.discard(variant.pipe)

    def _compile(self, model: str, recipe: str, variant: Variant, notify: Callable[[str], None] | None) -> Variant:
        fast = fast_module()
        if fast is None or variant.device.type != "cuda":
            raise InvalidRequestError(
                "compile (GPU) needs a CUDA GPU and dit_demo.engine.fast.compile; untick it to run eagerly."
            )
        mode = config.COMPILE_MODE
        key = (model, recipe, mode)
        with self._compile_lock:
            if key not in self._compiled:
                if notify:
                    notify(f"Compiling {recipe} ({mode}); the first run includes a warm-up.")
                self._compiled[key] = fast.compile_variant(variant, mode, inplace=False)
                while len(self._compiled) > self.cache.max_variants:
                    self._compiled.popitem(last=False)
            self._compiled.move_to_end(key)
            return self._compiled[key]

    def preload(self, recipes: Sequence[str] = config.DEFAULT_RECIPES) -> None:
        """Load the default model, build the default recipes and run each once, ahead of the first visitor.

        Runs in a background thread after launch; a request arriving meanwhile waits on the same lock.
        """
        try:
            start = time.perf_counter()
            resolved = resolve_source(self.default_model)
            sampling = SamplingRequest.create(
                [min(resolved.id2label)], seed=0, steps=2, guidance_scale=DEFAULT_GUIDANCE
            )
            request = Request(resolved.source, sampling, list(recipes), resolved=resolved)
            with self._run_lock:
                _, variants = self.variants(request)
                with thread_budget(list(variants.values())):
                    for variant in variants.values():
                        if variant.pipe not in self.warm:
                            warm_up(variant, sampling)
                            self.warm.add(variant.pipe)
            seconds = time.perf_counter() - start
            log.info("Preloaded %s (%s) in %.2f s", self.default_model, ", ".join(variants), seconds)
        except Exception as exc:  # the page says it too; the first request reports it again
            log.warning("Preloading %s failed: %s", self.default_model, exc)
            self.problems.append(f"loading {self.default_model} failed ({type(exc).__name__}: {exc})")

    def _loaded_as(self, model: ResolvedSource, notify: Callable[[str], None] | None) -> str | None:
        """The saved recipe of a pre-quantized source (folder or Hub id, cached or not), None for full precision:
        the loaded reference knows it from the folder's metadata, and it is loaded (once, cached) anyway."""
        reference = self.cache.reference(model, on_build=notify)
        return reference.recipe if reference.recipe != REFERENCE_RECIPE else None

    def start_preload(self, recipes: Sequence[str] = config.DEFAULT_RECIPES) -> threading.Thread:
        """Never raises: a failure is logged and shown on the page (`startup_note`), and the app serves."""
        if zerogpu.active():  # built now, before launch, outside the GPU function (see dit_demo.app.zerogpu)
            return zerogpu.start_preload(self, recipes)
        thread = threading.Thread(target=self.preload, args=(list(recipes),), name="dit-demo-preload", daemon=True)
        thread.start()
        return thread

    # -- the handler ------------------------------------------------------------------------------------------

    def compare(self, request: Request, notify: Callable[[str], None] | None = None) -> Comparison:
        """Build (cached) and run one request; raises DemoError / OutOfMemoryError for the caller to map."""
        with self._run_lock:  # one pipeline must never sample in two threads at once (stateful schedulers)
            return self._compare_locked(request, notify)

    def _compare_locked(self, request: Request, notify: Callable[[str], None] | None) -> Comparison:
        if zerogpu.active():  # sampled in spaces' worker; this process only checks, schedules and records
            comparison = gpu_call.compare(self, request, notify)
            self._record_latency(request.model, comparison)
            return comparison
        reference, variants = self.variants(request, notify)
        self.check_time_budget(request, list(variants))
        cold = [] if request.compile else [v for v in variants.values() if v.pipe not in self.warm]
        with thread_budget(list(variants.values())):
            comparison = run_comparison(
                variants,
                request.sampling,
                reference=reference,
                cold=cold,
                seconds=self.limits.max_seconds,
                rounds=self.timing_rounds,
            )
        self.warm.update(v.pipe for v in cold)
        self._record_latency(request.model, comparison)
        return comparison

    def sample(self, request: Request) -> dict[str, list[Image.Image]]:
        """Each variant's images, sampled once without timing repeats or scores: the blind test's cheap rounds
        (`dit_demo.app.blind`). On ZeroGPU the one GPU path (`compare`) samples them."""
        if zerogpu.active():
            return {r: res.images for r, res in self.compare(request).results.items()}
        from dit_demo.engine.generate import generate

        with self._run_lock:
            _, variants = self.variants(request)
            with thread_budget(list(variants.values())):
                images = {r: generate(v, request.sampling).images for r, v in variants.items()}
            self.warm.update(v.pipe for v in variants.values())
            return images

    def _record_latency(self, model: str, comparison: Comparison) -> None:
        for recipe, result in comparison.results.items():
            image_steps = max(1, result.steps * len(result.images))
            self._seconds_per_image_step[(model, recipe)] = result.latency_s / image_steps

    def record_build(self, model: str, recipe: str, seconds: float) -> None:
        self.build_seconds[(model, recipe)] = seconds

    def seconds_per_image_step(self, model: str) -> dict[str, float]:
        """Measured sampling cost per recipe of `model` (latest run)."""
        return {r: s for (m, r), s in self._seconds_per_image_step.items() if m == model}

    def build_estimate(self, model: str, recipe: str) -> float | None:
        return build_estimate(self, model, recipe)

    def compile_option(self) -> tuple[str, bool]:
        """The compile checkbox's label and whether the page shows it (`fast_compile_available`)."""
        return compile_label(), fast_compile_available()

    def startup_note(self) -> str:
        """What failed at start-up, for the page (empty when nothing did)."""
        problems = list(zerogpu.STATE.problems) + list(self.problems)
        return "\n".join(f"⚠️ Start-up: {p}" for p in problems)

    # -- budgets ----------------------------------------------------------------------------------------------

    def estimated_seconds(self, request: Request, recipes: Sequence[str] | None = None) -> float | None:
        """Sampling seconds this request should take, from the last measured runs (None until all were run): every
        recipe `timing_rounds` times (the repeats behind the speed verdicts), plus building what is not built yet."""
        if recipes is None:
            saved = request.resolved.recipe
            recipes = [saved] if saved else [REFERENCE_RECIPE, *request.recipes]
        costs = [self._seconds_per_image_step.get((request.model, r)) for r in recipes]
        if not costs or any(c is None for c in costs):
            return None
        builds = [self.build_estimate(request.model, r) for r in pending_builds(self, request.model, recipes)]
        sampling = sum(costs) * request.sampling.steps * request.images * self.timing_rounds
        return sampling + sum(b for b in builds if b is not None)

    def check_time_budget(self, request: Request, recipes: Sequence[str] | None = None) -> None:
        """Refuse, before sampling, a request whose measured cost is over the seconds budget (hosted mode)."""
        budget = self.limits.max_seconds
        estimate = None if budget is None else self.estimated_seconds(request, recipes)
        if estimate is not None and estimate > budget:
            runs = 1 + len(request.recipes) if recipes is None else len(recipes)
            raise BudgetExceededError(
                f"This request would take about {estimate:.0f} s ({request.sampling.steps} steps × "
                f"{request.images} images × {runs} recipes × {self.timing_rounds} timed runs as measured here, plus "
                f"building the recipes not built yet), over this server's time budget of {budget:g} s per request "
                "(seconds): use fewer steps, classes or recipes."
            )

    def validate(self, *values) -> list[dict]:
        """Gradio's validator for `/generate`: runs before the request is queued, so a bad field (an unknown
        model included) is refused at once, each message shown under its own control / named by the API."""
        request, errors = Request.check(*values, limits=self.limits, max_batch=self.max_batch)
        if request is not None:
            try:
                self.check_time_budget(request)
            except DemoError as exc:
                errors["steps"] = str(exc)
        return [gr.validate(field not in errors, errors.get(field, "")) for field in FIELDS]

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
                limits=self.limits,
                max_batch=self.max_batch,
            )
            progress(0, desc="Preparing models…")
            try:
                comparison = self.compare(request, notify=_notify)
            except ModelLoadError as exc:  # the source named in `model` could not be loaded: say which field
                raise type(exc)(str(exc) if str(exc).startswith("model") else f"model: {exc}") from exc
            numbers = numbers_json(comparison, request)
            rows = list(numbers["recipes"].values())
            items = [
                (result.images[i], caption(numbers["recipes"][recipe], i, numbers["reference"]))
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
