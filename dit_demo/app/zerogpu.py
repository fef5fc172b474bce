"""ZeroGPU (the Spaces GPU tier, H200 MIG slices), following what the real `spaces` 0.51.3 package does.

`spaces`, read from its source: with SPACES_ZERO_GPU=true, `import spaces` patches torch (CUDA is emulated in the
main process: `.to("cuda")` leaves the data on the CPU behind a stand-in tensor that says `cuda`), `launch()` packs
every such tensor to disk, and each call of an `@spaces.GPU` function asks the device API to /schedule (with the
duration), forks a worker (or reuses an idle one), pickles the arguments in and the result out, and in the worker
moves the packed tensors to the real GPU. An exception other than `gr.Error` reaches the caller as its class name
only. So on ZeroGPU the app
  * builds before launch, on the CPU and in bf16 (the dtype the GPU runs: quanto cannot change a quantized
    weight's dtype later), the default model's reference and the default recipes only (`start_up`);
  * hands the plain-tensor modules (the reference transformer, the VAE) to `spaces` with `.to("cuda")`: they are
    packed and moved into every worker. quanto's tensor subclasses cannot pass that emulation (its stand-in of a
    `WeightQBytesTensor` has no `_qtype`), so quantized transformers stay on the CPU and are moved in the worker;
  * keeps all of it as module-level state (`STATE.service`), which every forked worker inherits: the GPU function
    (`dit_demo.app.gpu_call`) receives only the request, never a pipeline;
  * builds other recipes on first use inside the GPU function, from the reference already on the GPU. Such a
    recipe lives as long as that worker, so every call that needs it asks for its build time again.
Anywhere else (no `spaces` package, or SPACES_ZERO_GPU not true) the decorator is the identity and nothing changes.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from types import SimpleNamespace

import torch

from dit_demo.engine.generate import Variant
from dit_demo.engine.model.serialization import is_quantized
from dit_demo.engine.quant.recipes import REFERENCE_RECIPE

log = logging.getLogger("dit_demo.app")

ZERO_GPU_ENV = "SPACES_ZERO_GPU"  # what the `spaces` package reads (spaces.config.Config.zero_gpu)
RUN_DTYPE = torch.bfloat16  # what the ZeroGPU slice (an H200 MIG) runs; built in it, so no dtype change is needed

# What the GPU function needs, reachable from every forked worker (set before launch, read inside the GPU call);
# `resident`: the (model, recipe) pairs built before launch, which every worker has without building them.
# `compile_seconds`: (model, recipe) -> the last first-compiled-request time a worker measured (duration estimates).
STATE = SimpleNamespace(service=None, resident=set(), problems=[], compile_seconds={})


def _spaces():
    try:
        import spaces  # type: ignore[import-not-found]  # preinstalled on Spaces; imported before CUDA starts
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


def gpu(duration: int | Callable[..., int] | None = None) -> Callable[[Callable], Callable]:
    """`@spaces.GPU(duration=...)` on ZeroGPU (a callable duration is asked per call), the identity elsewhere."""
    if not active():
        return lambda fn: fn
    return _spaces().GPU(duration=duration)


def device() -> torch.device | None:
    """Where the app's models run on ZeroGPU (`cuda`); None elsewhere (the usual default applies)."""
    return torch.device("cuda") if active() else None


def hand_to_spaces(variant: Variant, target: torch.device) -> list[str]:
    """Move the pipeline's plain-tensor modules to `target` (on ZeroGPU: `spaces` packs and moves them); modules
    holding quanto tensors stay where they are (moved inside the GPU function). Returns the names moved."""
    moved = []
    for name in ("transformer", "vae"):
        module = getattr(variant.pipe, name, None)
        if module is not None and not is_quantized(module):
            module.to(target)
            moved.append(name)
    return moved


def move(variant: Variant, target: torch.device) -> None:
    """Inside the GPU function: the whole pipeline on the GPU, device only (it was built in the run dtype)."""
    variant.pipe.to(target)


def _problem(message: str) -> None:
    STATE.problems.append(message)
    log.error("ZeroGPU start-up: %s", message)


def start_up(service, recipes: Sequence[str]) -> list[Variant]:
    """Before launch: the default model's reference and `recipes`, on the CPU in bf16; then the plain-tensor
    modules handed to `spaces`. Failures are recorded (`STATE.problems`, shown on the page) and logged, never
    raised: the app serves anyway, and a recipe that failed here is built on first use."""
    cache = service.cache
    STATE.service = service
    cache.device, cache.dtype = torch.device("cpu"), RUN_DTYPE
    cache.max_variants = max(cache.max_variants, 1 + len(recipes))
    built: list[Variant] = []
    try:
        start = time.perf_counter()
        reference = cache.reference(service.default_model)
        built.append(reference)
        log.info("ZeroGPU start-up: %s loaded in %.1f s", service.default_model, time.perf_counter() - start)
    except Exception as exc:
        _problem(f"loading {service.default_model} failed ({type(exc).__name__}: {exc}); requests load it on the GPU")
        log.debug(traceback.format_exc())
        return built
    STATE.resident.add((service.default_model, reference.recipe))
    for recipe in recipes if reference.recipe == REFERENCE_RECIPE else ():
        if recipe == REFERENCE_RECIPE:
            continue
        try:
            start = time.perf_counter()
            built.append(cache.get(service.default_model, recipe))
            service.record_build(service.default_model, recipe, time.perf_counter() - start)
            STATE.resident.add((service.default_model, recipe))
        except Exception as exc:
            _problem(f"{recipe} could not be built ({type(exc).__name__}: {exc}); it is built on first use")
    try:
        moved = hand_to_spaces(reference, torch.device(service.device))
        log.info(
            "ZeroGPU start-up: %s built (%s); %s handed to spaces",
            service.default_model,
            ", ".join(v.recipe for v in built),
            ", ".join(moved) or "nothing",
        )
    except Exception as exc:  # the worker moves them itself then
        _problem(f"handing {service.default_model} to spaces failed ({type(exc).__name__}: {exc})")
    return built


def start_preload(service, recipes: Sequence[str]) -> threading.Thread:
    """The ZeroGPU preload: synchronous (before launch packs the tensors), never raises; returns a finished thread
    for callers that join the usual background preload."""
    try:
        start_up(service, recipes)
    except Exception as exc:  # a bug in start-up itself: still serve, and say so
        _problem(f"start-up failed ({type(exc).__name__}: {exc})")
    thread = threading.Thread(target=lambda: None, name="dit-demo-preload")
    thread.start()
    thread.join()
    return thread


def built_before_launch(model: str, recipe: str) -> bool:
    return (model, recipe) in STATE.resident
