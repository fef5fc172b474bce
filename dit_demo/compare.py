"""Reference vs recipes on the same classes and seeds: the comparison the app, gallery and model cards show.

Built only on `generate.generate` and `metrics`, so every surface reports the same figures. Also a bounded cache
of built variants, because quantizing (and calibrating) is the slow part and memory must not grow without limit.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from .generate import GenerationResult, Variant, build_reference, build_variant, generate
from .metrics import finite_or_none, psnr, ssim
from .quantize import REFERENCE_RECIPE, CalibrationConfig

DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def is_digits_model(variant: Variant) -> bool:
    """The embedded digits DiT (or a folder derived from it): class accuracy and FID apply."""
    names = [variant.id2label[i].split(",")[0].strip() for i in sorted(variant.id2label)]
    return tuple(names) == DIGIT_NAMES


def digit_scores(result: GenerationResult) -> dict:
    """Predicted digit, confidence and accuracy for images of the digits model (its shipped classifier).

    Empty when the classifier is not installed (a trimmed copy of the package): quality then falls back to PSNR/SSIM.
    """
    from .embedded.quality import digit_predictions

    try:
        predicted, confidence = digit_predictions(result.images)
    except (FileNotFoundError, OSError):
        return {}
    return {
        "predicted_digits": [int(p) for p in predicted],
        "confidences": [round(float(c), 4) for c in confidence],
        "digit_accuracy": float((predicted == torch.tensor(result.class_ids).numpy()).mean()),
    }


@dataclass
class Comparison:
    """Per-recipe results and quality against the reference for one request."""

    reference_recipe: str
    results: dict[str, GenerationResult]
    quality: dict[str, dict] = field(default_factory=dict)

    @property
    def reference(self) -> GenerationResult:
        return self.results[self.reference_recipe]

    def rows(self) -> list[dict]:
        """One flat JSON-ready row per recipe: timings, memory, bytes, quality, ratios to the reference."""
        ref = self.reference
        rows = []
        for recipe, result in self.results.items():
            row = {**result.metrics(), **self.quality.get(recipe, {})}
            row["latency_ratio"] = round(result.latency_s / ref.latency_s, 4) if ref.latency_s else None
            row["weight_bytes_ratio"] = round(result.weight_bytes / ref.weight_bytes, 4) if ref.weight_bytes else None
            row["run_memory_bytes"] = result.peak_memory_bytes - result.memory_before_bytes
            row["peak_memory_ratio"] = (
                round(result.peak_memory_bytes / ref.peak_memory_bytes, 4) if ref.peak_memory_bytes else None
            )
            rows.append(row)
        return rows


def compare(
    variants: dict[str, Variant],
    labels: Sequence[str | int],
    *,
    reference: str = REFERENCE_RECIPE,
    seed: int = 0,
    seeds: Sequence[int] | None = None,
    steps: int = 25,
    guidance_scale: float = 4.0,
    scheduler: str | None = None,
    warmup: bool = False,
    on_result: Callable[[str, GenerationResult], None] | None = None,
) -> Comparison:
    """Generate the same request with every variant (reference first) and score each against the reference."""
    if reference not in variants:
        raise ValueError(f"The reference recipe {reference!r} is not among the variants {list(variants)}.")
    order = [reference] + [r for r in variants if r != reference]
    results: dict[str, GenerationResult] = {}
    for recipe in order:
        results[recipe] = generate(
            variants[recipe],
            labels,
            seed=seed,
            seeds=seeds,
            steps=steps,
            guidance_scale=guidance_scale,
            scheduler=scheduler,
            warmup=warmup,
        )
        if on_result is not None:
            on_result(recipe, results[recipe])
    comparison = Comparison(reference_recipe=reference, results=results)
    digits = is_digits_model(variants[reference])
    for recipe, result in results.items():
        scores = {
            "psnr_db": finite_or_none(psnr(comparison.reference.images, result.images)),
            "ssim": round(ssim(comparison.reference.images, result.images), 6),
        }
        if digits:
            scores.update(digit_scores(result))
        comparison.quality[recipe] = scores
    return comparison


class VariantCache:
    """Built variants keyed by (source, recipe, options), least recently used evicted beyond `max_variants`.

    Each source's reference (whatever it was loaded as: bf16, or the recipe of a pre-quantized folder) is stored under
    `REFERENCE_KEY` and evicted last (quantized variants share its VAE). Building is thread-safe: concurrent requests
    for the same variant build it once. *Running* a cached pipeline is not: its scheduler keeps per-run state, so
    callers must not sample with the same variant from two threads at once (the app serializes requests).
    """

    REFERENCE_KEY = "__reference__"

    def __init__(
        self,
        max_variants: int = 4,
        device: torch.device | str | None = None,
        calibration: CalibrationConfig | None = None,
    ):
        self.max_variants = max_variants
        self.device = device
        self.calibration = calibration
        self._items: OrderedDict[tuple, Variant] = OrderedDict()
        self._lock = threading.RLock()

    def __contains__(self, key: tuple) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def key(self, source: str | None, recipe: str, keep: Sequence[str] = (), scheduler: str | None = None) -> tuple:
        return (source or "embedded", recipe, tuple(sorted(keep)), scheduler)

    def get(
        self,
        source: str | None,
        recipe: str,
        *,
        keep: Sequence[str] = (),
        scheduler: str | None = None,
        on_build: Callable[[str], None] | None = None,
    ) -> Variant:
        """The variant, built on first use (`on_build` is told what is about to happen, before it happens)."""
        with self._lock:
            key = self.key(source, recipe, keep, scheduler)
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            reference = self.reference(source, scheduler=scheduler, on_build=on_build)
            if recipe == reference.recipe and not keep:
                return reference
            if on_build:
                from .quantize import get_recipe

                note = get_recipe(recipe).build_note(reference.device)
                on_build(f"Quantizing to {recipe}…" + (f" {note}" if note else ""))
            variant = build_variant(reference, recipe, keep=keep, calibration=self.calibration)
            self._store(key, variant)
            return variant

    def reference(
        self, source: str | None, *, scheduler: str | None = None, on_build: Callable[[str], None] | None = None
    ) -> Variant:
        """The source as loaded (built on first use)."""
        with self._lock:
            ref_key = self.key(source, self.REFERENCE_KEY, (), scheduler)
            if ref_key in self._items:
                self._items.move_to_end(ref_key)
                return self._items[ref_key]
            if on_build:
                on_build(f"Loading {source or 'embedded'}…")
            reference = build_reference(source, device=self.device, scheduler=scheduler)
            self._store(ref_key, reference)
            return reference

    def _store(self, key: tuple, variant: Variant) -> None:
        self._items[key] = variant
        self._items.move_to_end(key)
        while len(self._items) > self.max_variants:
            # evict the least recently used non-reference first; references go last
            victim = next((k for k in self._items if k[1] != self.REFERENCE_KEY), next(iter(self._items)))
            if victim == key:
                break
            del self._items[victim]
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
