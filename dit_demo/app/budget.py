"""Per-request time budget (hosted mode) and the timed warm-up run, around the one generation path.

The budget is checked twice: before sampling from what this server measured per image-step (a request that would
take too long is refused at once), and during sampling, before every step (a request that runs long is stopped).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from dit_demo.app import zerogpu
from dit_demo.engine.device import sync
from dit_demo.engine.generate import Variant, generate
from dit_demo.engine.quant.quantize import CalibrationConfig
from dit_demo.engine.quant.recipes import REFERENCE_RECIPE, get_recipe
from dit_demo.engine.request import SamplingRequest
from dit_demo.errors import InvalidRequestError


class BudgetExceededError(InvalidRequestError):
    """A request ran past the server's sampling-time budget (hosted mode)."""


@contextmanager
def time_budget(variants: Sequence[Variant], seconds: float | None) -> Iterator[None]:
    """Stop sampling once `seconds` have passed: each pipeline's step loop (its progress bar, which
    `gr.Progress(track_tqdm=True)` follows too) checks the clock before every step. No-op without a budget."""
    if seconds is None:
        yield
        return
    end = time.perf_counter() + seconds
    pipes = list({id(v.pipe): v.pipe for v in variants}.values())

    def limited(pipe, recipe: str):
        bar = type(pipe).progress_bar.__get__(pipe)

        def progress_bar(iterable=None, total=None):
            count = len(iterable) if hasattr(iterable, "__len__") else total
            for step, item in enumerate(bar(iterable=iterable, total=total)):
                if time.perf_counter() > end:
                    raise BudgetExceededError(
                        f"This request ran past this server's time budget of {seconds:g} s per request (seconds) "
                        f"while sampling {recipe} (step {step + 1} of {count}): ask for fewer steps, classes or "
                        "recipes."
                    )
                yield item

        return progress_bar

    recipes = {id(v.pipe): v.recipe for v in variants}
    for pipe in pipes:
        pipe.progress_bar = limited(pipe, recipes[id(pipe)])
    try:
        yield
    finally:
        for pipe in pipes:
            pipe.__dict__.pop("progress_bar", None)


def warm_up(variant: Variant, request: SamplingRequest) -> float:
    """One 2-step image: one-time costs (kernel builds such as the fp8 JIT or the int4 C++ extension, allocator,
    thread pools) land here, are reported as the variant's warm-up time and stay out of its latency."""
    start = time.perf_counter()
    generate(variant, request.head(1, steps=2).replace(warmup=False))
    sync(variant.device)
    seconds = time.perf_counter() - start
    if variant.compile_mode == "none":
        variant.warmup_s = seconds
    return seconds


def pending_builds(service, model: str, recipes: Sequence[str]) -> list[str]:
    """The recipes this request would build first: not cached here, or on ZeroGPU not built before launch (a GPU
    worker keeps what it builds only for its own lifetime, so such a build is counted on every call)."""
    if zerogpu.active():
        return [r for r in recipes if not zerogpu.built_before_launch(model, r)]
    cache = service.cache
    keys = {r: cache.key(model, cache.REFERENCE_KEY if r == REFERENCE_RECIPE else r) for r in recipes}
    return [r for r in recipes if keys[r] not in cache]


def build_estimate(service, model: str, recipe: str) -> float | None:
    """Seconds building `recipe` of `model` should take, from what this server measured: its own last build;
    else, for a calibrated recipe, a measured weight-only build plus its calibration's image-steps at the measured
    bf16 cost per image-step; else a measured weight-only build. None when nothing measured applies."""
    measured = service.build_seconds
    if (model, recipe) in measured:
        return measured[(model, recipe)]
    spec = get_recipe(recipe)
    if not spec.quantized:
        return 0.0
    weight_only = [s for (m, r), s in measured.items() if m == model and not get_recipe(r).needs_calibration]
    base = min(weight_only) if weight_only else None
    if not spec.needs_calibration or base is None:
        return base
    per_image_step = service.seconds_per_image_step(model).get(REFERENCE_RECIPE)
    if per_image_step is None or spec.smooth:  # smoothing's search runs a variable number of passes
        return None
    calibration = service.cache.calibration or CalibrationConfig()
    image_steps = calibration.num_labels * len(calibration.seeds) * calibration.steps
    return base + image_steps * per_image_step
