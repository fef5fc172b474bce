"""What the UI and the `/generate` API send, checked once before any model is loaded.

Every field is checked on its own and a bad one is named with its allowed type and range ("steps must be a whole
number from 1 to 100, got 'ten' (text)."): strings, NaN, ±inf, lists where a number belongs and numbers where a
list belongs all get such a message, never a generic error. `field_errors` returns the messages per field (the
page shows each under its control); `Request.parse` raises them as one `InvalidRequestError`.

`Request` wraps the one `SamplingRequest` that then travels app → compare → generate unchanged, plus what only
the app needs (which model, which recipes, whether to compile).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from dit_demo.app.config import UI_MAX_GUIDANCE, UI_MAX_STEPS, Limits
from dit_demo.app.offered import COMPARE_RECIPES
from dit_demo.engine.model.labels import parse_choice, resolve_labels
from dit_demo.engine.model.names import SCHEDULER_NAMES
from dit_demo.engine.model.resolver import ResolvedSource, resolve_source, shown
from dit_demo.engine.quant.recipes import RECIPES, REFERENCE_RECIPE
from dit_demo.engine.request import MAX_BATCH, MAX_SEED, SamplingRequest
from dit_demo.errors import DemoError, InvalidRequestError

# The /generate parameters, in order (the API names them so; messages use the same names).
FIELDS = (
    "model",
    "classes",
    "seed",
    "randomize_seed",
    "steps",
    "guidance_scale",
    "scheduler",
    "recipes",
    "compile_gpu",
)
DEFAULT_SCHEDULER = "dpm"


def describe(value: object) -> str:
    """`value` as a message shows it: its repr and, in words, what it is."""
    if isinstance(value, bool):
        kind = "true/false"
    elif isinstance(value, (int, np.integer)):
        kind = "whole number"
    elif isinstance(value, (float, np.floating)):
        kind = "number" if math.isfinite(value) else "not a finite number"
    elif isinstance(value, str):
        kind = "text"
    elif value is None:
        return "nothing (null)"
    elif isinstance(value, (list, tuple)):
        kind = f"list of {len(value)}"
    elif isinstance(value, dict):
        kind = "object"
    else:
        kind = type(value).__name__
    text = repr(value)
    return f"{text if len(text) <= 60 else text[:57] + '...'} ({kind})"


def whole(value: object, field: str, low: int, high: int) -> int:
    """An int in [low, high]; integral floats (Gradio sends 25.0) and numpy integers count as whole numbers."""
    if isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer():
        value = int(value)
    if value is None:
        raise InvalidRequestError(f"{field} is empty: give a whole number from {low} to {high}.")
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= int(value) <= high:
        raise InvalidRequestError(f"{field} must be a whole number from {low} to {high}, got {describe(value)}.")
    return int(value)


def number(value: object, field: str, low: float, high: float, hint: str = "") -> float:
    """A finite float in [low, high]."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not ok or not math.isfinite(float(value)) or not low <= float(value) <= high:
        raise InvalidRequestError(f"{field} must be a number from {low:g} to {high:g}{hint}, got {describe(value)}.")
    return float(value)


def flag(value: object, field: str) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise InvalidRequestError(f"{field} must be true or false, got {describe(value)}.")


def check_model(model: object, limits: Limits) -> ResolvedSource:
    """The model resolved once for the whole request (a saved folder's metadata is read now: a corrupt file is
    named before queueing); too long a string is refused before it reaches the filesystem, never echoed whole."""
    offered = ", ".join(limits.allowed_models or ())
    if not isinstance(model, str) or not model.strip():
        kinds = f"one of {offered}" if limits.allowed_models else "'embedded', a Hub id (owner/name) or a folder"
        raise InvalidRequestError(f"model must be text naming a model ({kinds}), got {describe(model)}.")
    model = model.strip()
    if not limits.allows(model):  # before anything touches the source: refused at once, nothing loaded
        raise InvalidRequestError(f"model {shown(model)} is not offered on this server: choose one of {offered}.")
    try:
        return resolve_source(model)
    except DemoError as exc:
        raise type(exc)(f"model: {exc}") from exc


def check_class_items(classes: object, max_images: int) -> list[str | int]:
    """The class list's shape and item types (names or ids are resolved against the model afterwards)."""
    if isinstance(classes, (str, int, np.integer)) and not isinstance(classes, bool):
        classes = [classes]  # API callers may send one name or id instead of a list
    expected = f"a list of 1 to {max_images} class names (text) or ids (whole numbers)"
    if not isinstance(classes, (list, tuple)):
        raise InvalidRequestError(f"classes must be {expected}, got {describe(classes)}.")
    if not classes:
        raise InvalidRequestError(f"classes: No class selected: give {expected}.")
    if len(classes) > max_images:
        raise InvalidRequestError(
            f"classes: Too many images in one request: {len(classes)} classes > {max_images} (one image per "
            f"class; this server allows 1 to {max_images}). Split the request."
        )
    labels: list[str | int] = []
    for index, item in enumerate(classes):
        if isinstance(item, (float, np.floating)) and math.isfinite(item) and float(item).is_integer():
            item = int(item)
        if isinstance(item, bool) or not isinstance(item, (str, int, np.integer)) or item == "":
            raise InvalidRequestError(
                f"classes[{index}] must be a class name (text) or id (whole number), got {describe(item)}."
            )
        labels.append(parse_choice(item))
    return labels


def check_classes(model: ResolvedSource | None, labels: list[str | int]) -> None:
    """Names and ids against the model's own classes, when they are known without loading it."""
    if model is None:
        return
    id2label = dict(model.id2label)
    if model.labels_known:
        try:
            resolve_labels(labels, id2label)  # unknown names fail here, with suggestions, before loading
        except InvalidRequestError as exc:
            raise InvalidRequestError(f"classes: {exc} (ids: whole numbers from 0 to {len(id2label) - 1})") from exc


def check_scheduler(scheduler: object) -> str:
    if scheduler is None or scheduler == "":
        return DEFAULT_SCHEDULER
    if not isinstance(scheduler, str) or scheduler not in SCHEDULER_NAMES:
        names = ", ".join(SCHEDULER_NAMES)
        raise InvalidRequestError(f"scheduler must be one of {names} (text), got {describe(scheduler)}.")
    return scheduler


def check_recipes(recipes: object) -> list[str]:
    if recipes is None:
        return []
    if isinstance(recipes, str):
        recipes = [recipes]
    expected = f"a list of recipe names ({', '.join(COMPARE_RECIPES)}; {REFERENCE_RECIPE} is always the reference)"
    if not isinstance(recipes, (list, tuple)) or not all(isinstance(r, str) for r in recipes):
        raise InvalidRequestError(f"recipes must be {expected}, got {describe(recipes)}.")
    chosen = [r for r in dict.fromkeys(recipes) if r != REFERENCE_RECIPE]
    unknown = [r for r in chosen if r not in RECIPES]
    if unknown:
        raise InvalidRequestError(f"recipes: Unknown recipe(s) {unknown}: choose from {', '.join(RECIPES)}.")
    return chosen


def check_budget(images: int, steps: int, limits: Limits) -> None:
    """steps × images against the hosted budget (images alone are capped by `check_class_items`)."""
    if limits.max_step_images is not None and steps * images > limits.max_step_images:
        raise InvalidRequestError(
            f"steps × images = {steps} × {images} = {steps * images} is over this server's budget of "
            f"{limits.max_step_images} per request (steps, classes): use fewer steps or classes."
        )


class _Checks:
    """Runs one check per field, keeping the value or the message."""

    def __init__(self) -> None:
        self.failures: dict[str, DemoError] = {}

    def __call__(self, field: str, check: Callable, *args):
        try:
            return check(*args)
        except DemoError as exc:  # InvalidRequestError, or ModelLoadError for a source that cannot be resolved
            self.failures.setdefault(field, exc)
        return None


@dataclass
class Request:
    """One validated comparison request, as the UI and API send it, with its model resolved once (`resolved`)."""

    model: str
    sampling: SamplingRequest
    recipes: list[str]
    compile: bool = False
    resolved: ResolvedSource | None = None  # None only when built by hand: resolved then, once

    def __post_init__(self) -> None:
        if self.resolved is None:
            self.resolved = resolve_source(self.model)

    @property
    def labels(self) -> tuple:
        return self.sampling.labels

    @property
    def seed(self) -> int:
        return self.sampling.seed

    @property
    def images(self) -> int:
        return len(self.sampling.labels)

    @classmethod
    def check(
        cls,
        model: object,
        classes: object,
        seed: object,
        randomize: object,
        steps: object,
        guidance_scale: object,
        scheduler: object,
        recipes: object,
        compile_gpu: object = False,
        *,
        limits: Limits | None = None,
        max_batch: int = MAX_BATCH,
    ) -> tuple[Request | None, dict[str, str]]:
        """The request, or None and a message per bad field (each names its field, type and range)."""
        request, failures = cls._check(
            model, classes, seed, randomize, steps, guidance_scale, scheduler, recipes, compile_gpu, limits, max_batch
        )
        return request, {field: str(failures[field]) for field in FIELDS if field in failures}

    @classmethod
    def _check(
        cls, model, classes, seed, randomize, steps, guidance_scale, scheduler, recipes, compile_gpu, limits, max_batch
    ) -> tuple[Request | None, dict[str, DemoError]]:
        limits = limits or Limits()
        max_images = limits.max_images or max_batch
        checks = _Checks()
        resolved = checks("model", check_model, model, limits)
        labels = checks("classes", check_class_items, classes, max_images)
        randomize = checks("randomize_seed", flag, randomize, "randomize_seed")
        if randomize:
            seed = random.randint(0, MAX_SEED)
        seed = checks("seed", whole, seed, "seed", 0, MAX_SEED)
        steps = checks("steps", whole, steps, "steps", 1, UI_MAX_STEPS)
        guidance = checks(
            "guidance_scale", number, guidance_scale, "guidance_scale", 1.0, UI_MAX_GUIDANCE, " (1 = no guidance)"
        )
        scheduler = checks("scheduler", check_scheduler, scheduler)
        recipes = checks("recipes", check_recipes, recipes)
        compile_gpu = checks("compile_gpu", flag, compile_gpu, "compile_gpu")
        if labels is not None:
            checks("classes", check_classes, resolved, labels)
            if steps is not None:
                checks("steps", check_budget, len(labels), steps, limits)
        if checks.failures:
            return None, checks.failures
        sampling = SamplingRequest.create(
            labels,
            seed=seed,
            steps=steps,
            guidance_scale=guidance,
            scheduler=scheduler,
            warmup=compile_gpu,
            max_batch=max_images,
        )
        return cls(resolved.source, sampling, recipes, compile_gpu, resolved), {}

    @classmethod
    def parse(cls, *values: object, limits: Limits | None = None, max_batch: int = MAX_BATCH) -> Request:
        """Check everything that can be checked before any model is loaded; raise every bad field's message."""
        if len(values) not in (len(FIELDS) - 1, len(FIELDS)):
            raise InvalidRequestError(argument_count_message(len(values)))
        values = (*values, False)[: len(FIELDS)]
        request, failures = cls._check(*values, limits or Limits(), max_batch)
        if request is None:
            first = next(iter(failures.values()))
            message = "\n".join(str(failures[f]) for f in FIELDS if f in failures)
            raise first if len(failures) == 1 else type(first)(message)
        return request


def argument_count_message(got: int, endpoint: str = "/generate") -> str:
    return f"{endpoint} takes {len(FIELDS)} values ({', '.join(FIELDS)}), got {got}."
