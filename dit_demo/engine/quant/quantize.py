"""How a recipe (engine/quant/recipes.py) is applied with optimum-quanto: exclusions, calibration, smoothing, and a
measured report."""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from fnmatch import fnmatch

import torch
from diffusers import DiTPipeline
from optimum.quanto import Calibration, freeze, quantization_map, quantize
from optimum.quanto.tensor import QTensor

from dit_demo.engine.device import sync
from dit_demo.engine.model.labels import spread_ids
from dit_demo.engine.model.sources import sibling_pipeline
from dit_demo.engine.quant.dynamic import dequantized_copy, packed_weight_bytes, quantize_dynamic_int8
from dit_demo.engine.quant.recipes import DEFAULT_EXCLUDE, KEEP_GROUPS, Recipe, get_recipe
from dit_demo.engine.quant.smoothing import plan_of
from dit_demo.engine.quant.smoothing_search import SmoothingConfig, TrajectoryStats, set_static_scales, smooth_pipeline
from dit_demo.errors import InvalidRequestError


@dataclass
class CalibrationConfig:
    """The sampling runs that set int8 activation ranges: several classes and seeds over the whole trajectory."""

    labels: Sequence[int] | None = None  # None: evenly spread over the model's classes
    num_labels: int = 4
    seeds: Sequence[int] = (1000, 1001)  # disjoint from the seeds people look at (0, 1, 2, ...)
    steps: int = 25
    guidance_scale: float = 4.0
    momentum: float = 0.9


@dataclass
class QuantizationReport:
    """What a recipe did to the transformer, measured."""

    recipe: str
    quantized_modules: list[str] = field(default_factory=list)
    kept_modules: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    include: list[str] | None = None
    weights_only: list[str] = field(default_factory=list)
    weight_bytes_before: int = 0
    weight_bytes_after: int = 0
    quantize_s: float = 0.0
    calibrate_s: float = 0.0
    calibration: dict | None = None
    smoothing: dict | None = None  # smoothed recipes: the chosen scale per site and its measured error

    @property
    def compression(self) -> float:
        return self.weight_bytes_before / max(self.weight_bytes_after, 1)

    @classmethod
    def from_dict(cls, data: dict) -> QuantizationReport:
        """Inverse of `to_dict` (derived keys such as `compression` are dropped), e.g. from a saved folder."""
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def to_dict(self) -> dict:
        data = asdict(self)
        data["compression"] = round(self.compression, 4)
        data["num_quantized"] = len(self.quantized_modules)
        data["num_kept"] = len(self.kept_modules)
        return data


def tensor_storage_bytes(tensor: torch.Tensor) -> int:
    """Real bytes held by a tensor; quanto tensors count their int data, scales and shifts (recursively)."""
    if isinstance(tensor, QTensor) or (
        type(tensor) not in (torch.Tensor, torch.nn.Parameter) and hasattr(tensor, "__tensor_flatten__")
    ):
        names, _ = tensor.__tensor_flatten__()
        return sum(tensor_storage_bytes(getattr(tensor, name)) for name in names)
    return tensor.numel() * tensor.element_size()


def module_weight_bytes(module: torch.nn.Module) -> int:
    """Parameters plus buffers (quanto's activation scales live in buffers) plus the int8 weights packed inside
    dynamic int8 layers, in real storage bytes."""
    seen: set[int] = set()
    total = 0
    for tensor in [*module.parameters(), *module.buffers()]:
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        total += tensor_storage_bytes(tensor)
    return total + packed_weight_bytes(module)


def weightless_norms(module: torch.nn.Module) -> list[str]:
    """LayerNorms without affine weights: quanto would wrap them for activations and then fail to save."""
    return [
        name
        for name, m in module.named_modules()
        if isinstance(m, torch.nn.LayerNorm) and getattr(m, "weight", None) is None
    ]


def exclusion_patterns(
    transformer: torch.nn.Module, keep: Sequence[str] = (), exclude: Sequence[str] = ()
) -> list[str]:
    """Default exclusions + named keep groups + user patterns (fnmatch on full module names)."""
    unknown = [g for g in keep if g not in KEEP_GROUPS]
    if unknown:
        raise InvalidRequestError(f"Unknown keep group(s) {unknown}: choose from {', '.join(KEEP_GROUPS)}.")
    patterns = list(DEFAULT_EXCLUDE) + weightless_norms(transformer)
    for group in keep:
        patterns += KEEP_GROUPS[group]
    return patterns + [p for p in exclude if p not in patterns]


def quantizable_modules(module: torch.nn.Module) -> list[str]:
    return [name for name, m in module.named_modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]


def calibrate(pipe: DiTPipeline, config: CalibrationConfig) -> dict:
    """Run the real sampler under quanto's Calibration so activation ranges cover every timestep.

    `streamline=False`: streamlining decides per module at run time which outputs stay float, and that decision is
    not saved, so a reloaded model would differ; without it, the saved scales reproduce the model bit for bit.
    """
    num_classes = len(set(pipe.labels.values())) or pipe.transformer.config.num_embeds_ada_norm
    labels = list(config.labels) if config.labels is not None else list(spread_ids(num_classes, config.num_labels))
    generators = [torch.Generator("cpu").manual_seed(int(s)) for s in config.seeds for _ in labels]
    with torch.no_grad(), Calibration(momentum=config.momentum, streamline=False):
        pipe(
            class_labels=labels * len(config.seeds),
            guidance_scale=config.guidance_scale,
            generator=generators,
            num_inference_steps=config.steps,
            output_type="pt",
        )
    return {
        "labels": labels,
        "seeds": list(config.seeds),
        "steps": config.steps,
        "guidance_scale": config.guidance_scale,
        "momentum": config.momentum,
    }


def smooth_for_recipe(
    pipe: DiTPipeline, spec: Recipe, config: CalibrationConfig, wanted
) -> tuple[TrajectoryStats, dict]:
    """Choose and fold the smoothing scales on the calibration classes and seeds, at guidance 1, 2, 4 (+ the
    calibration's own), every timestep (engine/quant/smoothing_search.py)."""
    num_classes = len(set(pipe.labels.values())) or pipe.transformer.config.num_embeds_ada_norm
    labels = list(config.labels) if config.labels is not None else list(spread_ids(num_classes, config.num_labels))
    offset = max(1, num_classes // (2 * len(labels)))  # held-out classes between the calibration ones
    smoothing = SmoothingConfig(
        labels=labels,
        seeds=tuple(config.seeds),
        holdout_labels=[(label + offset) % num_classes for label in labels],
        holdout_seeds=tuple(int(seed) + 1000 for seed in config.seeds),
        steps=config.steps,
        guidance_scales=tuple(sorted({1.0, 2.0, 4.0, float(config.guidance_scale)})),
        activations=spec.activations,
        weights=spec.weights,
    )
    return smooth_pipeline(pipe, smoothing, wanted)


def trajectory_scales(pipe: DiTPipeline, stats: TrajectoryStats, config: CalibrationConfig, smoothing: dict) -> dict:
    """Static activation scales = the smoothed trajectory's |max| (quanto's Calibration for anything unmeasured)."""
    transformer = pipe.transformer
    if set_static_scales(transformer, stats, plan_of(transformer)):
        calibrate(pipe, config)
        set_static_scales(transformer, stats, plan_of(transformer))
    return {"method": "trajectory |max|", **smoothing["config"]}


def quantize_pipeline(
    pipe: DiTPipeline,
    recipe: str,
    *,
    keep: Sequence[str] = (),
    exclude: Sequence[str] = (),
    include: Sequence[str] | None = None,
    calibration: CalibrationConfig | None = None,
) -> QuantizationReport:
    """Quantize `pipe.transformer` in place with a named recipe and return what was done, measured."""
    spec = get_recipe(recipe)
    transformer = pipe.transformer
    report = QuantizationReport(recipe=recipe, weight_bytes_before=module_weight_bytes(transformer))
    if not spec.quantized:
        report.weight_bytes_after = report.weight_bytes_before
        report.kept_modules = quantizable_modules(transformer)
        return report
    patterns = exclusion_patterns(transformer, keep, exclude)
    report.exclude, report.include = patterns, list(include) if include else None
    device = next(transformer.parameters()).device
    if not spec.runs_here(device):
        raise InvalidRequestError(
            f"recipe: {recipe} runs on {' or '.join(spec.runs_on)} only, not on {device.type}; pick another recipe."
        )
    if spec.backend == "torch-dynamic":
        start = time.perf_counter()
        report.quantized_modules = quantize_dynamic_int8(transformer, exclude=patterns, include=include)
        report.quantize_s = time.perf_counter() - start
        report.kept_modules = [n for n in quantizable_modules(transformer) if n not in set(report.quantized_modules)]
        report.weight_bytes_after = module_weight_bytes(transformer)
        return report
    stats, smooth_s = None, 0.0
    if spec.smooth:
        float_inputs = [*patterns, *spec.weights_only]
        wanted = lambda name: not _matches(name, float_inputs) and (not include or _matches(name, include))  # noqa: E731
        stats, report.smoothing = smooth_for_recipe(pipe, spec, calibration or CalibrationConfig(), wanted)
        smooth_s = report.smoothing["search_s"]
    start = time.perf_counter()
    quantize(
        transformer,
        weights=spec.weights,
        activations=spec.activations,
        include=report.include,
        exclude=patterns + list(spec.weights_only),
    )
    if spec.activations is not None and spec.weights_only:
        # second pass: the same layers' int8 weights with float activations (user include/exclude still apply)
        report.weights_only = [
            name
            for name in quantizable_modules(transformer)
            if _matches(name, spec.weights_only) and (include is None or _matches(name, include))
        ]
        if report.weights_only:
            weights = spec.weights_only_qtype or spec.weights
            quantize(transformer, weights=weights, include=report.weights_only, exclude=patterns)
    if spec.needs_calibration:
        report.quantize_s = time.perf_counter() - start
        cal_start = time.perf_counter()
        if stats is not None:
            report.calibration = trajectory_scales(pipe, stats, calibration or CalibrationConfig(), report.smoothing)
        else:
            report.calibration = calibrate(pipe, calibration or CalibrationConfig())
        report.calibrate_s = time.perf_counter() - cal_start + smooth_s
        start = time.perf_counter()
    freeze(transformer)
    sync(next(transformer.parameters()).device)
    report.quantize_s += time.perf_counter() - start
    qmap = quantization_map(transformer)
    report.quantized_modules = sorted(qmap)
    report.kept_modules = [n for n in quantizable_modules(transformer) if n not in qmap]
    report.weight_bytes_after = module_weight_bytes(transformer)
    return report


def _matches(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch(name, pattern) for pattern in patterns)


def derive_pipeline(pipe: DiTPipeline, recipe: str, **kwargs) -> tuple[DiTPipeline, QuantizationReport]:
    """A quantized sibling of `pipe`: own transformer copy and scheduler, shared VAE, same labels.

    The reference pipeline is left untouched, so an app can show both side by side.
    """
    if get_recipe(recipe).backend == "torch-dynamic":
        transformer = dequantized_copy(pipe.transformer)  # also from a saved quanto int8 folder (exact float weights)
    else:
        transformer = copy.deepcopy(pipe.transformer)
    sibling = sibling_pipeline(pipe, transformer)
    report = quantize_pipeline(sibling, recipe, **kwargs)
    return sibling, report
