"""ZeroGPU (the free Spaces GPU tier, H200 slices): what changes when the `spaces` package reports it.

On ZeroGPU a GPU is attached only while a function decorated with `@spaces.GPU` runs. Tensors moved to `cuda` at
start-up (before `demo.launch()`) are packed and restored for every call; state created inside a call is not kept.
So there the app
  * builds the default model's reference and every offered recipe at start-up, outside any GPU function and
    synchronously before launch: on the CPU (quantizing, calibrating: no GPU is attached yet), then moves each
    finished pipeline to `cuda` in the GPU dtype (bf16) — no warm-up generation, which would need the GPU;
  * decorates only the generation (`service.run_comparison`) with `@spaces.GPU(duration=...)`.
Anywhere else (no `spaces` package, or `SPACES_ZERO_GPU` not true) nothing changes: the decorator is the identity
and the preload runs in its background thread as before.

Verified offline with a stand-in `spaces` module: the decision, what is built at start-up (and where), and that
the decorated function only samples. Not verifiable here: a real ZeroGPU slice — packing quanto's tensor
subclasses, the `duration` needed on an H200 MIG slice, fp8/int4 kernels there.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence

import torch

from dit_demo.engine.device import default_dtype
from dit_demo.engine.generate import Variant
from dit_demo.engine.quant.recipes import REFERENCE_RECIPE

log = logging.getLogger("dit_demo.app")

ZERO_GPU_ENV = "SPACES_ZERO_GPU"  # what the `spaces` package reads (spaces.config.Config.zero_gpu)
DURATION_ENV = "DIT_DEMO_GPU_SECONDS"  # seconds one generation may hold the GPU (default below)
DEFAULT_DURATION = 120


def _spaces():
    try:
        import spaces  # type: ignore[import-not-found]  # preinstalled on Spaces; import it before CUDA starts
    except ImportError:
        return None
    return spaces


def active(environ: Mapping[str, str] | None = None) -> bool:
    """True on ZeroGPU: the `spaces` package is importable and reports it (its Config, else SPACES_ZERO_GPU)."""
    spaces = _spaces()
    if spaces is None:
        return False
    config = getattr(getattr(spaces, "config", None), "Config", None)
    if config is not None and hasattr(config, "zero_gpu"):
        return bool(config.zero_gpu)
    value = (os.environ if environ is None else environ).get(ZERO_GPU_ENV, "")
    return value.strip().lower() in ("1", "t", "true")


def duration(environ: Mapping[str, str] | None = None) -> int:
    value = (os.environ if environ is None else environ).get(DURATION_ENV, "").strip()
    return int(value) if value else DEFAULT_DURATION


def gpu(seconds: int | None = None) -> Callable[[Callable], Callable]:
    """`@spaces.GPU(duration=...)` on ZeroGPU, the identity elsewhere."""
    if not active():
        return lambda fn: fn
    return _spaces().GPU(duration=seconds or duration())


def device() -> torch.device | None:
    """Where the app's models live on ZeroGPU (`cuda`); None elsewhere (the usual default applies)."""
    return torch.device("cuda") if active() else None


def move(variant: Variant, target: torch.device) -> None:
    """A pipeline built on the CPU, moved to the GPU in its dtype there (quanto's tensors included)."""
    variant.pipe.to(target, default_dtype(target))


def start_up(service, recipes: Sequence[str]) -> list[Variant]:
    """Build the default model's reference and `recipes` now, on the CPU, then move them to `service.device`.

    The cache keeps them (its capacity is raised to hold them all), so no request builds a variant inside the GPU
    function, where it would be lost after the call. A pre-quantized default is loaded alone."""
    cache, target = service.cache, torch.device(service.device)
    cache.max_variants = max(cache.max_variants, 1 + len(recipes))
    cache.device = torch.device("cpu")
    built: list[Variant] = []
    try:
        reference = cache.reference(service.default_model)
        built.append(reference)
        for recipe in recipes if reference.recipe == REFERENCE_RECIPE else ():
            if recipe == REFERENCE_RECIPE:
                continue
            try:
                built.append(cache.get(service.default_model, recipe))
            except Exception as exc:  # one recipe that cannot be built here must not stop the Space
                log.warning(
                    "ZeroGPU start-up: %s could not be built (%s); it is built on first use instead", recipe, exc
                )
    except Exception as exc:  # as the usual preload: the first request reports it
        log.warning("ZeroGPU start-up: loading %s failed: %s", service.default_model, exc)
    finally:
        cache.device = target  # anything built later (another model) goes straight to the GPU device
    if target.type != "cpu":
        for variant in built:
            move(variant, target)
    log.info("ZeroGPU start-up: %s built (%s) on %s", service.default_model, ", ".join(v.recipe for v in built), target)
    return built


def start_preload(service, recipes: Sequence[str]) -> threading.Thread:
    """The ZeroGPU preload: synchronous (before launch packs the tensors); returns a finished thread for callers
    that join the usual background preload."""
    from dit_demo.app.offered import COMPARE_RECIPES

    start_up(service, list(dict.fromkeys([*recipes, *COMPARE_RECIPES])))
    thread = threading.Thread(target=lambda: None, name="dit-demo-preload")
    thread.start()
    thread.join()
    return thread
