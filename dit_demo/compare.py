"""Reference vs recipes on the same classes and seeds: the comparison the app, gallery and model cards show.

Built only on `generate.generate` and `engine.metrics`, so every surface reports the same figures; the keys it
writes are the vocabulary of `dit_demo.metrics` (label, unit, format of each). Also a bounded cache
of built variants, because quantizing (and calibrating) is the slow part and memory must not grow without limit.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import torch

from dit_demo.embedded import quality
from dit_demo.embedded.classifier import DIGIT_NAMES
from dit_demo.engine.device import free_memory
from dit_demo.engine.generate import GenerationResult, Variant, build_reference, build_variant, generate
from dit_demo.engine.metrics import finite_or_none, mean_value, psnr_values, ssim_values
from dit_demo.engine.model.resolver import ResolvedSource
from dit_demo.engine.model.shipped import default_source
from dit_demo.engine.quant.quantize import CalibrationConfig
from dit_demo.engine.quant.recipes import REFERENCE_RECIPE, get_recipe
from dit_demo.engine.request import SamplingRequest
from dit_demo.engine.timing import SpeedVerdict, Spread, interleaved, speed_verdict


def is_digits_model(variant: Variant) -> bool:
    """The embedded digits DiT (or a folder derived from it): class accuracy and FID apply."""
    names = [variant.id2label[i].split(",")[0].strip() for i in sorted(variant.id2label)]
    return tuple(names) == DIGIT_NAMES


def image_quality(reference_images: Sequence, images: Sequence, device=None) -> dict:
    """Paired PSNR and SSIM of images against the reference made from the same seeds (means over pairs)."""
    return paired_quality(reference_images, images, device)[0]


def paired_quality(reference_images: Sequence, images: Sequence, device=None) -> tuple[dict, list[dict]]:
    """`image_quality` and every pair's own PSNR/SSIM, from one chunked pass over the pairs (so thousands of
    256² images fit in memory and none is scored twice)."""
    psnrs, ssims = psnr_values(reference_images, images, device), ssim_values(reference_images, images, device)
    means = {"psnr_db": finite_or_none(mean_value(psnrs)), "ssim": round(mean_value(ssims), 6)}
    return means, [{"psnr_db": finite_or_none(p), "ssim": round(s, 6)} for p, s in zip(psnrs, ssims)]


def digit_quality(images: Sequence, class_ids: Sequence[int]) -> dict:
    """Predicted digit, confidence and accuracy for images of the digits model (its shipped classifier).

    Empty when the classifier is not installed (a trimmed copy of the package): quality then falls back to PSNR/SSIM.
    """
    try:
        predicted, confidence = quality.digit_predictions(images)
    except (FileNotFoundError, OSError):
        return {}
    expected = torch.tensor(list(class_ids)).numpy()
    return {
        "predicted_digits": [int(p) for p in predicted],
        "confidences": [round(float(c), 4) for c in confidence],
        "digit_accuracy": float((predicted == expected).mean()),
        "digit_confidence": round(float(confidence.mean()), 4),
    }


def ratio(value: float | int | None, base: float | int | None) -> float | None:
    """value ÷ base rounded for tables; None when either is unknown or the base is zero."""
    return round(value / base, 4) if value is not None and base else None


def ratios(result: GenerationResult, reference: GenerationResult, speed: SpeedVerdict | None = None) -> dict:
    """Ratios to the reference; the latency ratio is of the medians when several interleaved runs were timed."""
    return {
        "latency_ratio": round(speed.ratio, 4) if speed else ratio(result.latency_s, reference.latency_s),
        "weight_bytes_ratio": ratio(result.weight_bytes, reference.weight_bytes),
        "peak_memory_ratio": ratio(result.peak_memory_bytes, reference.peak_memory_bytes),
    }


def score(reference: GenerationResult, result: GenerationResult, *, digits: bool) -> dict:
    """Everything that compares one result with the reference of the same request."""
    scores = image_quality(reference.images, result.images)
    if digits:
        scores.update(digit_quality(result.images, result.class_ids))
    return scores


@dataclass
class Comparison:
    """Per-recipe results and quality against the reference for one request."""

    reference_recipe: str
    results: dict[str, GenerationResult]
    quality: dict[str, dict] = field(default_factory=dict)
    latencies: dict[str, Spread] = field(default_factory=dict)  # every timed run of each recipe, interleaved

    @property
    def reference(self) -> GenerationResult:
        return self.results[self.reference_recipe]

    def speed(self, recipe: str) -> SpeedVerdict | None:
        """The recipe's speed against the reference, worded from the spreads (None without spreads)."""
        if recipe not in self.latencies or self.reference_recipe not in self.latencies:
            return None
        return speed_verdict(self.latencies[self.reference_recipe], self.latencies[recipe])

    def rows(self) -> list[dict]:
        """One flat JSON-ready row per recipe: timings, memory, bytes, quality, ratios to the reference."""
        rows = []
        for recipe, result in self.results.items():
            speed = self.speed(recipe)
            row = {**result.metrics(), **self.quality.get(recipe, {}), **ratios(result, self.reference, speed)}
            row["run_memory_bytes"] = result.peak_memory_bytes - result.memory_before_bytes
            if recipe in self.latencies:
                spread = self.latencies[recipe].to_dict()
                row["latency_spread"] = spread
                row["latency_median_s"], row["latency_runs"] = spread["median_s"], spread["runs"]
            if speed is not None and speed.runs > 1 and recipe != self.reference_recipe:  # one run: no verdict
                row["speed_verdict"] = asdict(speed)
            rows.append(row)
        return rows


def compare(
    variants: dict[str, Variant],
    request: SamplingRequest,
    *,
    reference: str = REFERENCE_RECIPE,
    on_result: Callable[[str, GenerationResult], None] | None = None,
    rounds: int = 1,
) -> Comparison:
    """Generate the same request with every variant (reference first) and score each against the reference.

    `rounds` timed runs per recipe back each speed ratio: the first run (whose images are scored) and `rounds - 1`
    repeats, all in the same order (reference, recipe, …, reference, recipe, …) so a busy spell of the machine
    lands on every recipe alike; `Comparison.latencies` holds them and `Comparison.speed` words the verdict.
    """
    if reference not in variants:
        raise ValueError(f"The reference recipe {reference!r} is not among the variants {list(variants)}.")
    order = [reference] + [r for r in variants if r != reference]
    results: dict[str, GenerationResult] = {}
    for recipe in order:
        results[recipe] = generate(variants[recipe], request)
        if on_result is not None:
            on_result(recipe, results[recipe])
    comparison = Comparison(reference_recipe=reference, results=results)
    comparison.latencies = repeat_latencies(variants, request, order, results, rounds=rounds)
    digits = is_digits_model(variants[reference])
    for recipe, result in results.items():
        comparison.quality[recipe] = score(comparison.reference, result, digits=digits)
    return comparison


def repeat_latencies(
    variants: dict[str, Variant],
    request: SamplingRequest,
    order: Sequence[str],
    first: dict[str, GenerationResult],
    *,
    rounds: int,
) -> dict[str, Spread]:
    """Each recipe's first latency plus `rounds - 1` interleaved repeats (`engine.timing.interleaved` keeps the
    order), each sample the sampling time `generate` itself measures (bookkeeping around it excluded)."""
    samples = {recipe: [first[recipe].latency_s] for recipe in order}
    request = dataclasses.replace(request, warmup=False)  # warmed up by the first run already
    if rounds > 1:

        def runner(recipe: str) -> Callable[[], None]:
            return lambda: samples[recipe].append(generate(variants[recipe], request).latency_s)

        interleaved({recipe: runner(recipe) for recipe in order}, rounds=rounds - 1, warmup_rounds=0)
    return {recipe: Spread(tuple(values)) for recipe, values in samples.items()}


class VariantCache:
    """Built variants keyed by (source, recipe, options), least recently used evicted beyond `max_variants`.

    Each source's reference (whatever it was loaded as: bf16, or the recipe of a pre-quantized folder) is stored under
    `REFERENCE_KEY` and evicted last (quantized variants share its VAE). The scheduler is not part of the key: it is
    per-request state that `generate` swaps in (`SamplingRequest.scheduler`), so dpm, ddim and euler share one
    transformer. An evicted variant is dropped from the cache and `on_evict` is told (so holders of derived objects,
    e.g. compiled copies, drop theirs), then garbage is collected and cached CUDA blocks are released.
    Building is thread-safe: concurrent requests for the same variant build it once. *Running* a cached pipeline is
    not: its scheduler keeps per-run state, so callers must not sample with the same variant from two threads at once
    (the app serializes requests).
    """

    REFERENCE_KEY = "__reference__"

    def __init__(
        self,
        max_variants: int = 4,
        device: torch.device | str | None = None,
        calibration: CalibrationConfig | None = None,
        on_evict: Callable[[tuple, Variant], None] | None = None,
        dtype: torch.dtype | None = None,
    ):
        self.max_variants = max_variants
        self.device = device
        self.dtype = dtype  # None: the device's default (bf16 on CUDA, fp32 on CPU); ZeroGPU builds on CPU in bf16
        self.calibration = calibration
        self.on_evict = on_evict
        self._items: OrderedDict[tuple, Variant] = OrderedDict()
        self._lock = threading.RLock()

    def __contains__(self, key: tuple) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def keys(self) -> list[tuple]:
        with self._lock:
            return list(self._items)

    def variants(self) -> list[Variant]:
        with self._lock:
            return list(self._items.values())

    def key(self, source: str | ResolvedSource | None, recipe: str, keep: Sequence[str] = ()) -> tuple:
        source = source.source if isinstance(source, ResolvedSource) else source
        return (source or default_source(), recipe, tuple(sorted(keep)))

    def get(
        self,
        source: str | ResolvedSource | None,
        recipe: str,
        *,
        keep: Sequence[str] = (),
        on_build: Callable[[str], None] | None = None,
    ) -> Variant:
        """The variant, built on first use (`on_build` is told what is about to happen, before it happens)."""
        with self._lock:
            key = self.key(source, recipe, keep)
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            reference = self.reference(source, on_build=on_build)
            if recipe == reference.recipe and not keep:
                return reference
            if on_build:
                note = get_recipe(recipe).build_note(reference.device)
                on_build(f"Quantizing to {recipe}…" + (f" {note}" if note else ""))
            variant = build_variant(reference, recipe, keep=keep, calibration=self.calibration)
            self._store(key, variant)
            return variant

    def reference(
        self, source: str | ResolvedSource | None, *, on_build: Callable[[str], None] | None = None
    ) -> Variant:
        """The source as loaded (built on first use)."""
        with self._lock:
            ref_key = self.key(source, self.REFERENCE_KEY)
            if ref_key in self._items:
                self._items.move_to_end(ref_key)
                return self._items[ref_key]
            if on_build:
                on_build(f"Loading {ref_key[0]}…")
            reference = build_reference(source, device=self.device, dtype=self.dtype)
            self._store(ref_key, reference)
            return reference

    def _store(self, key: tuple, variant: Variant) -> None:
        self._items[key] = variant
        self._items.move_to_end(key)
        evicted = 0
        while len(self._items) > self.max_variants:
            # evict the least recently used non-reference first; references go last
            victim = next((k for k in self._items if k[1] != self.REFERENCE_KEY), next(iter(self._items)))
            if victim == key:
                break
            dropped = self._items.pop(victim)
            if self.on_evict is not None:
                self.on_evict(victim, dropped)
            del dropped
            evicted += 1
        if evicted:
            free_memory()  # quanto modules hold reference cycles: collect now, not at some later gc pass

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            free_memory()


def fid_quality(images: Sequence) -> dict:
    """Classifier-feature FID against the held-out real digits, with the count: FID depends on sample size, so it
    is only comparable between runs with the same number of images."""
    size = quality.image_size(images) or 16  # 28x28 images: the MNIST judge and its held-out images
    scores: dict = {
        "fid_num_images": len(images),
        "fid_feature_dim": quality.judge_for(images).feature_dim
        if len(images)
        else quality.get_classifier().feature_dim,
        "fid_reference": f"{quality.heldout_name(size)} ({len(quality.heldout_digits(size)[1])})",
    }
    try:
        scores["fid"] = finite_or_none(quality.fid(images))
        if scores["fid"] is None:
            scores["fid_error"] = "not finite (too few images for the feature covariance)"
    except (ValueError, RuntimeError) as exc:  # torchmetrics needs ≥ 2 images
        scores["fid"], scores["fid_error"] = None, str(exc)
    return scores
