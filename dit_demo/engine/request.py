"""One sampling request, validated once where it enters (app, CLI, gallery, benchmark) and then trusted.

`SamplingRequest` flows one way — app → compare → generate — so the same six sampling arguments are not re-listed
(and re-checked) at every layer. Every error names the field, its allowed type and range.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from dit_demo.engine.model.labels import parse_choice
from dit_demo.errors import InvalidRequestError

MAX_SEED = 2**32 - 1
MAX_STEPS = 1000
MAX_BATCH = int(os.environ.get("DIT_DEMO_MAX_BATCH", "16"))
DEFAULT_STEPS = 25
DEFAULT_GUIDANCE = 4.0


def whole_number(value: object, field: str, low: int, high: int) -> int:
    """An int in [low, high]; integral floats (Gradio sends 25.0) and numpy integers are accepted."""
    if isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidRequestError(f"{field} must be a whole number from {low} to {high}, got {value!r}.")
    if not low <= int(value) <= high:
        raise InvalidRequestError(f"{field} must be a whole number from {low} to {high}, got {int(value)}.")
    return int(value)


def finite_number(value: object, field: str, low: float, high: float | None = None, hint: str = "") -> float:
    """A finite float in [low, high] (NaN and ±inf refused by name)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InvalidRequestError(f"{field} must be a number ≥ {low:g}{hint}, got {value!r}.")
    value = float(value)
    upper = f" and ≤ {high:g}" if high is not None else ""
    if not math.isfinite(value) or value < low or (high is not None and value > high):
        raise InvalidRequestError(f"{field} must be a finite number ≥ {low:g}{upper}{hint}, got {value!r}.")
    return value


def seeds_for(seed: int, count: int) -> list[int]:
    """Image i of a request uses seed + i, so any image can be regenerated alone and compared pixel by pixel."""
    return [(seed + i) % (MAX_SEED + 1) for i in range(count)]


@dataclass(frozen=True)
class SamplingRequest:
    """What to sample — one image per label, image i from seeds[i] — checked on construction.

    Build it with `SamplingRequest.create(labels, seed=…)`; constructing it directly validates the same way.
    """

    labels: tuple[str | int, ...]
    seeds: tuple[int, ...]
    steps: int = DEFAULT_STEPS
    guidance_scale: float = DEFAULT_GUIDANCE
    scheduler: str | None = None
    warmup: bool = False
    max_batch: int = MAX_BATCH

    def __post_init__(self) -> None:
        labels = tuple(parse_choice(label) for label in self.labels)
        if not labels:
            raise InvalidRequestError("No class selected: give at least one class name or id.")
        max_batch = whole_number(self.max_batch, "max_batch", 1, 10**6)
        if len(labels) > max_batch:
            raise InvalidRequestError(
                f"Too many images in one request: {len(labels)} classes > {max_batch}. Split the request."
            )
        seeds = tuple(whole_number(s, "seed", 0, MAX_SEED) for s in self.seeds)
        if len(seeds) != len(labels):
            raise InvalidRequestError(f"{len(seeds)} seeds for {len(labels)} classes: give one seed per image.")
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "seeds", seeds)
        object.__setattr__(self, "max_batch", max_batch)
        object.__setattr__(self, "steps", whole_number(self.steps, "steps", 1, MAX_STEPS))
        guidance = finite_number(self.guidance_scale, "guidance scale", 1.0, hint=" (1 = no guidance)")
        object.__setattr__(self, "guidance_scale", guidance)
        object.__setattr__(self, "scheduler", self.scheduler or None)
        object.__setattr__(self, "warmup", bool(self.warmup))

    @classmethod
    def create(
        cls,
        labels: Sequence[str | int] | str | int,
        *,
        seed: int = 0,
        seeds: Sequence[int] | None = None,
        steps: int = DEFAULT_STEPS,
        guidance_scale: float = DEFAULT_GUIDANCE,
        scheduler: str | None = None,
        warmup: bool = False,
        max_batch: int = MAX_BATCH,
    ) -> SamplingRequest:
        """One image per label; without `seeds`, image i uses `seed + i`."""
        if isinstance(labels, (str, int, np.integer)):
            labels = [labels]  # a bare string must not be split into characters
        labels = list(labels)
        if seeds is None:
            seeds = seeds_for(whole_number(seed, "seed", 0, MAX_SEED), len(labels))
        return cls(tuple(labels), tuple(seeds), steps, guidance_scale, scheduler, warmup, max_batch)

    @property
    def seed(self) -> int:
        """The first image's seed (the one a UI shows)."""
        return self.seeds[0]

    def replace(self, **changes) -> SamplingRequest:
        """A copy with some fields changed (validated again, since the change is new input)."""
        return replace(self, **changes)

    def head(self, count: int = 1, steps: int | None = None) -> SamplingRequest:
        """The first `count` images, optionally with fewer steps: for warm-ups of the same shapes."""
        return replace(self, labels=self.labels[:count], seeds=self.seeds[:count], steps=steps or self.steps)
