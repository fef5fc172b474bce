"""What the UI and the `/generate` API send, checked once before any model is loaded.

`Request` wraps the one `SamplingRequest` that then travels app → compare → generate unchanged, plus what only
the app needs (which model, which recipes, whether to compile).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from dit_demo.app.offered import peek_id2label
from dit_demo.engine.labels import parse_choice, resolve_labels
from dit_demo.engine.quantize import RECIPES, REFERENCE_RECIPE
from dit_demo.engine.request import MAX_BATCH, MAX_SEED, SamplingRequest, whole_number
from dit_demo.engine.sources import SCHEDULERS, resolve_source
from dit_demo.errors import InvalidRequestError


def _whole(value, name: str):
    """Gradio sends numbers as floats: accept 25.0 for 25, leave anything else to the core validators."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if value is None:
        raise InvalidRequestError(f"{name} is empty: give a whole number.")
    return value


def _model(model: str | None) -> str:
    model = (model or "").strip()
    if not model:
        raise InvalidRequestError("No model given: pick one from the list or type a folder / Hub id.")
    resolve_source(model)  # raises ModelLoadError for strings that are neither folder, Hub id nor known name
    return model


def _recipes(recipes: Sequence[str] | None) -> list[str]:
    chosen = [r for r in dict.fromkeys(recipes or []) if r != REFERENCE_RECIPE]
    unknown = [r for r in chosen if r not in RECIPES]
    if unknown:
        raise InvalidRequestError(f"Unknown recipe(s) {unknown}: choose from {', '.join(RECIPES)}.")
    return chosen


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
        model = _model(model)
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
        return cls(model, sampling, _recipes(recipes), bool(compile_gpu))
