"""The one `@spaces.GPU` function on ZeroGPU, its duration, and the main-process side of a call.

The main process never samples on ZeroGPU: it checks the budgets, asks for a duration computed from the request,
and calls `run_on_gpu(request, seconds)`; `spaces` forks the worker, pickles those two arguments in (a few hundred
bytes: the pipelines are module-level state the worker inherits, `zerogpu.STATE`) and the `GpuOutcome` out.

Duration (seconds the slice is held): images × steps × timed runs (`timing_rounds`) × the measured seconds per
image-step of every recipe, the
cold runs (one 2-step image each), a build allowance for each recipe not built before launch (its measured build
time, else the budget's estimate, else `BUILD_FALLBACK_SECONDS`) and the worker's start (`START_SECONDS`), with a
margin. Until a recipe has been measured, `DIT_DEMO_GPU_SECONDS` (default 60, `spaces`' own default) is asked for.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
import torch

from dit_demo.app import zerogpu
from dit_demo.app.budget import warm_up
from dit_demo.app.inputs import Request
from dit_demo.app.running import run_comparison, user_errors
from dit_demo.compare import Comparison
from dit_demo.engine.generate import Variant
from dit_demo.engine.quant.recipes import REFERENCE_RECIPE
from dit_demo.engine.request import SamplingRequest
from dit_demo.errors import DemoError

DURATION_ENV = "DIT_DEMO_GPU_SECONDS"  # asked for until the request's recipes have been measured
MAX_DURATION_ENV = "DIT_DEMO_GPU_MAX_SECONDS"  # the most one call asks for
DEFAULT_DURATION = 60  # spaces.zero.client.DEFAULT_SCHEDULE_DURATION
DEFAULT_MAX_DURATION = 300
MIN_DURATION = 10
START_SECONDS = 5.0  # fork + moving the packed tensors, before the function body runs (an allowance, not measured)
BUILD_FALLBACK_SECONDS = 30.0  # a first-use build nobody has measured or estimated yet (an allowance)
WORKER_ERROR_TITLE = "ZeroGPU worker error"  # spaces.zero.wrappers: a failure in the worker outside the function
MARGIN = 1.5  # ZeroGPU may abort a call that runs past its duration
AOT_DIR_ENV = "DIT_DEMO_AOT_DIR"  # folder of ahead-of-time packages shipped with the Space (see `ahead_of_time`)
COMPILE_CACHE_ENV = "DIT_DEMO_COMPILE_CACHE"  # torch.compile's caches shipped with the Space (`dit-demo compile-cache`)
# A first compiled request from a shipped cache, until this server has timed one: 9.0–11.6 s on an H200 (bench/h200-aot
# run 3) with room for the MIG slice's smaller share of the card (an allowance, not a measurement).
COMPILE_FALLBACK_SECONDS = 20.0
_LOADED: dict[tuple, Variant] = {}  # packages loaded / variants compiled in this worker (lost with it)
_CACHES: dict[str, str | None] = {}  # compile caches this worker loaded: path -> None, or why it was refused


@dataclass
class GpuOutcome:
    """What comes back from the worker (pickled): the comparison, what it built and how long that took."""

    comparison: Comparison
    built_s: dict[str, float] = field(default_factory=dict)
    compiled_s: dict[str, float] = field(default_factory=dict)  # first (compiling) run of a variant compiled here
    notes: list[str] = field(default_factory=list)
    worker_pid: int = 0


def _env_seconds(name: str, default: int, environ: Mapping[str, str] | None) -> int:
    value = (os.environ if environ is None else environ).get(name, "").strip()
    return int(value) if value else default


def _recipes(request: Request) -> list[str]:
    return [REFERENCE_RECIPE, *[r for r in request.recipes if r != REFERENCE_RECIPE]]


def request_seconds(service, request: Request | GpuRequest, environ: Mapping[str, str] | None = None) -> int:
    """The duration to ask for: from the request and what this server measured (see the module docstring)."""
    ceiling = _env_seconds(MAX_DURATION_ENV, DEFAULT_MAX_DURATION, environ)
    fallback = min(_env_seconds(DURATION_ENV, DEFAULT_DURATION, environ), ceiling)
    if service is None:
        return fallback
    measured = service.seconds_per_image_step(request.model)
    costs = [measured.get(r) for r in _recipes(request)]
    if any(c is None for c in costs):
        return fallback
    sampling = sum(costs) * request.sampling.steps * request.images * getattr(service, "timing_rounds", 1)
    cold = sum(costs) * 2  # warm-ups: one 2-step image per recipe (an upper bound: warm pipelines skip it)
    builds = 0.0
    for recipe in _recipes(request):
        if not zerogpu.built_before_launch(request.model, recipe):
            estimate = service.build_estimate(request.model, recipe)
            builds += BUILD_FALLBACK_SECONDS if estimate is None else estimate
    compiles = 0.0
    if request.compile:  # a worker compiles each recipe once from the shipped cache (which worker is not known here)
        for recipe in _recipes(request):
            compiles += zerogpu.STATE.compile_seconds.get((request.model, recipe), COMPILE_FALLBACK_SECONDS)
    total = START_SECONDS + MARGIN * (sampling + cold + builds + compiles)
    return int(min(ceiling, max(MIN_DURATION, math.ceil(total))))


@dataclass(frozen=True)
class GpuRequest:
    """What crosses into the worker (pickled): the request's fields, not its resolved source (the worker resolves
    the model again from its name: a source's metadata and 1,000 class names need not travel)."""

    model: str
    sampling: SamplingRequest
    recipes: tuple[str, ...]
    compile: bool

    @classmethod
    def of(cls, request: Request) -> GpuRequest:
        return cls(request.model, request.sampling, tuple(request.recipes), request.compile)

    @property
    def images(self) -> int:
        return len(self.sampling.labels)

    def request(self) -> Request:
        return Request(self.model, self.sampling, list(self.recipes), self.compile)


def _duration(call: GpuRequest, seconds: float | None = None) -> int:
    """`spaces` calls this with the GPU function's arguments, in the main process, before scheduling."""
    return request_seconds(zerogpu.STATE.service, call)


def _package_for(folder: Path, variant: Variant, rows: int) -> Path | None:
    """The first package in `folder` whose description matches the variant's recipe and the request's rows."""
    from dit_demo.engine.fast import aot

    for path in sorted(folder.glob("*.pt2")):
        try:
            info = aot.PackageInfo.read(path)
        except aot.PackageError:
            continue
        if info.recipe == variant.recipe and info.source == variant.source and info.rows == rows:
            return path
    return None


def ahead_of_time(variant: Variant, sampling: SamplingRequest, notes: list[str]) -> Variant | None:
    """The variant sampling through an ahead-of-time package (`dit_demo.engine.fast.aot`), or None (run eagerly).

    Packages are looked up in the folder `DIT_DEMO_AOT_DIR` names (built ahead on the same GPU type and torch with
    `dit_demo.engine.fast.aot.build_package`, shipped with the Space) by recipe, source and rows per forward. The
    loaded copy is kept for this worker's lifetime; the cached variant itself is left eager. Nothing is compiled in
    a call (a per-call `torch.compile` costs 41–90 s of warm-up on the H200); a package that does not load is a note.
    Opt-in (no folder, no attempt): on torch 2.11 + CUDA 13.0 AOTInductor's loader segfaulted in a fresh process for
    every package form tried, torch's own included (bench/h200-aot run 3), which would end the worker.
    """
    folder = aot_folder()
    if not folder:
        return None
    rows = len(sampling.labels) * (2 if sampling.guidance_scale > 1 else 1)
    path = _package_for(Path(folder), variant, rows) if Path(folder).is_dir() else None
    if path is None:
        notes.append(f"{variant.recipe}: no ahead-of-time package for {rows} rows in {AOT_DIR_ENV}")
        return None
    key = (variant.source, variant.recipe, str(path))
    if key not in _LOADED:
        from dit_demo.engine.fast import aot

        try:
            aot.check_package(path, variant)  # before copying the variant into its fast form
            _LOADED[key] = aot.load_package(aot.fast_form(variant, inplace=False), path)
        except DemoError as exc:
            notes.append(f"{variant.recipe}: eager ({exc})")
            return None
    return _LOADED[key]


def aot_folder(environ: Mapping[str, str] | None = None) -> str:
    """The AOT package folder the Space owner named (`DIT_DEMO_AOT_DIR`), or ""."""
    return (os.environ if environ is None else environ).get(AOT_DIR_ENV, "").strip()


def shipped_compile_cache(environ: Mapping[str, str] | None = None) -> Path | None:
    """The compile cache this Space ships: `DIT_DEMO_COMPILE_CACHE`, else the first `compile-cache/*.bin` beside
    app.py (where `dit-demo deploy-space --compile-cache` puts it); None when there is none."""
    from dit_demo.app.config import ROOT

    value = (os.environ if environ is None else environ).get(COMPILE_CACHE_ENV, "").strip()
    if value:
        return Path(value)
    from dit_demo.engine.fast.compile_cache import SHIPPED_DIR

    found = sorted((ROOT / SHIPPED_DIR).glob("*.bin"))
    return found[0] if found else None


def compiled_from_cache(variant: Variant, notes: list[str]) -> Variant | None:
    """The variant compiled as `compile_variant(..., "reduce-overhead")` after this worker loaded the shipped compile
    cache (once), or None (run eagerly, with a note saying why). Compilation itself happens in the first request,
    from the cache: seconds instead of the 26–57 s of a cold compile on an H200 (bench/h200-aot run 3)."""
    path = shipped_compile_cache()
    if path is None:
        notes.append(f"{variant.recipe}: eager (this Space ships no compile cache; a cold torch.compile would take "
                     "26–57 s of the call on an H200, bench/h200-aot)")  # fmt: skip
        return None
    key = (variant.source, variant.recipe, "compile", str(path))
    if key in _LOADED:
        return _LOADED[key]
    if str(path) not in _CACHES:
        from dit_demo.engine.fast.compile_cache import load_compile_cache

        try:
            load_compile_cache(path)
            _CACHES[str(path)] = None
        except DemoError as exc:
            _CACHES[str(path)] = str(exc)
    if _CACHES[str(path)] is not None:
        notes.append(f"{variant.recipe}: eager ({_CACHES[str(path)]})")
        return None
    from dit_demo.engine.fast.compile import compile_variant

    _LOADED[key] = compile_variant(variant, "reduce-overhead", inplace=False)
    return _LOADED[key]


def _variants(service, request: Request, target: torch.device, built_s: dict[str, float]) -> dict[str, Variant]:
    """The request's variants on the GPU, in this worker; recipes not built yet are built here and timed."""
    cache = service.cache
    cache.device, cache.dtype = target, zerogpu.RUN_DTYPE  # first-use builds: on the GPU, from the reference
    reference = cache.reference(request.resolved)
    zerogpu.move(reference, target)
    if reference.recipe != REFERENCE_RECIPE:  # pre-quantized: shown alone
        return {reference.recipe: reference}
    variants = {REFERENCE_RECIPE: reference}
    for recipe in request.recipes:
        known = cache.key(request.model, recipe) in cache
        start = time.perf_counter()
        variants[recipe] = cache.get(request.resolved, recipe)
        if not known:
            built_s[recipe] = time.perf_counter() - start
        zerogpu.move(variants[recipe], target)
    return variants


def _on_gpu(call: GpuRequest, seconds: float | None = None) -> GpuOutcome:
    """Runs in `spaces`' forked worker: the pipelines come from module-level state, not from the arguments."""
    service = zerogpu.STATE.service
    with user_errors():  # in the worker: spaces passes only gr.Error messages back, other errors by class name
        request = call.request()
        if service is None:
            raise DemoError("ZeroGPU: the app's start-up did not run in this process; restart the Space.")
        target = torch.device("cuda")
        outcome = GpuOutcome(comparison=None, worker_pid=os.getpid())  # type: ignore[arg-type]
        variants = _variants(service, request, target, outcome.built_s)
        if request.compile:  # an AOT package where the Space ships one that loads, else the shipped compile cache
            for recipe, variant in list(variants.items()):
                fast = ahead_of_time(variant, request.sampling, outcome.notes)
                variants[recipe] = fast or compiled_from_cache(variant, outcome.notes) or variant
                if variants[recipe] is not variant and variants[recipe].pipe not in service.warm:
                    start = time.perf_counter()  # compiles (from the cache) or captures: timed apart from sampling
                    warm_up(variants[recipe], request.sampling)
                    outcome.compiled_s[recipe] = time.perf_counter() - start
                    service.warm.add(variants[recipe].pipe)
        cold = [v for v in variants.values() if v.pipe not in service.warm]
        reference = REFERENCE_RECIPE if REFERENCE_RECIPE in variants else next(iter(variants))
        outcome.comparison = run_comparison(
            variants, request.sampling, reference=reference, cold=cold, seconds=seconds, rounds=service.timing_rounds
        )
        service.warm.update(v.pipe for v in cold)
        return outcome


run_on_gpu = zerogpu.gpu(duration=_duration)(_on_gpu)


def compare(service, request: Request, notify: Callable[[str], None] | None = None) -> Comparison:
    """Main process: budgets, then one GPU call; what the worker measured and built is recorded here."""
    zerogpu.STATE.service = service  # forked into the worker with everything it references
    service.check_time_budget(request)
    if notify:
        pending = [r for r in request.recipes if not zerogpu.built_before_launch(request.model, r)]
        if pending:
            notify(f"Building {', '.join(pending)} on the GPU first (not built at start-up).")
    try:
        outcome = run_on_gpu(GpuRequest.of(request), service.limits.max_seconds)
    except gr.Error as exc:
        if getattr(exc, "title", None) != WORKER_ERROR_TITLE:
            raise
        raise gr.Error(  # spaces passes a worker's own failure as its class name only: say what that means
            f"The GPU worker failed before or while running this request ({exc.message}); the Space's log has the "
            "traceback. Try again; if it keeps failing, the Space needs a restart.",
            title=WORKER_ERROR_TITLE,
            print_exception=False,
        ) from exc
    for recipe, seconds in outcome.built_s.items():
        service.record_build(request.model, recipe, seconds)
    for recipe, seconds in outcome.compiled_s.items():
        zerogpu.STATE.compile_seconds[(request.model, recipe)] = seconds
    for note in outcome.notes:
        if notify:
            notify(note)
    return outcome.comparison
