"""Named quantization recipes over optimum-quanto, default exclusions, calibration and a measured report."""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from fnmatch import fnmatch

import torch
from diffusers import DiTPipeline
from optimum.quanto import Calibration, freeze, qfloat8, qint4, qint8, quantization_map, quantize
from optimum.quanto.tensor import QTensor

from dit_demo.engine.device import sync
from dit_demo.engine.model.labels import spread_ids
from dit_demo.engine.model.sources import sibling_pipeline
from dit_demo.engine.quant.smoothing import plan_of
from dit_demo.engine.quant.smoothing_search import SmoothingConfig, TrajectoryStats, set_static_scales, smooth_pipeline
from dit_demo.errors import InvalidRequestError


@dataclass(frozen=True)
class Recipe:
    """A named precision setting; `bf16` is the reference every other recipe is compared against."""

    name: str
    weights: object | None
    activations: object | None
    description: str
    weights_only: tuple[str, ...] = ()  # layers whose weights are quantized but whose activations stay float
    smooth: bool = False  # fold per-channel smoothing into the model first (engine/smoothing.py)
    weights_only_qtype: object | None = None  # their weight type, when not `weights` (fp8-a8: int8, see RECIPES)

    @property
    def quantized(self) -> bool:
        return self.weights is not None

    @property
    def needs_calibration(self) -> bool:
        return self.activations is not None

    def build_note(self, device: torch.device | str) -> str | None:
        """What the first build will do that takes long, so a UI can say it before doing it."""
        device_type = torch.device(device).type
        if self.name == "fp8-a8":
            return _fp8_a8_note(device)
        if self.name == "fp8" and device_type == "cuda":
            return "fp8 on CUDA JIT-compiles quanto's Marlin kernel on first use (about 2 minutes on an H100)."
        if self.name == "int4" and device_type == "cpu":
            return "int4 on CPU compiles quanto's C++ extension on first use (about 30-60 s)."
        if self.smooth:
            return (
                f"{self.name} samples the calibration classes at guidance 1, 2 and 4 twice to choose its smoothing "
                "and activation scales first."
            )
        if self.needs_calibration:
            return "int8-a8 calibrates activation ranges by sampling a few classes and seeds first."
        return None


def _fp8_a8_note(device: torch.device | str) -> str:
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available() and torch.cuda.get_device_capability(device) >= (8, 9):
        return "fp8-a8 calibrates activation ranges first; compiled, it runs fp8 GEMMs on the tensor cores."
    return (
        "fp8-a8: this device has no fp8 tensor cores (CPU, or a GPU older than Ada/Hopper), so it runs through "
        "quanto's emulation (fp8 values upcast to float) - slower than bf16 here; int8 is the faster choice."
    )


RECIPES: dict[str, Recipe] = {
    "bf16": Recipe("bf16", None, None, "reference: bfloat16 on GPU, float32 on CPU"),
    "int8": Recipe("int8", qint8, None, "int8 weights (per-channel scales), activations in the reference dtype"),
    # The adaLN modulation and the timestep/class embedders turn (t, y) into per-channel shift/scale/gate: one
    # per-tensor int8 scale for their outputs wipes out the conditioning (digits: 20 dB and 3× FID at guidance 1-2),
    # so they keep float activations and int8 weights only.
    "int8-a8": Recipe(
        "int8-a8",
        qint8,
        qint8,
        "int8 weights + int8 activations with calibrated static scales",
        weights_only=("transformer_blocks.*.norm1.linear", "transformer_blocks.*.norm1.emb*"),
    ),
    # int8-a8 after SmoothQuant-style channel smoothing chosen per layer on the sampling trajectory and folded into
    # the adaLN modulation, V projection and gates (engine/smoothing.py), with trajectory-|max| activation scales.
    "int8-a8-smooth": Recipe(
        "int8-a8-smooth",
        qint8,
        qint8,
        "int8-a8 with per-channel smoothing folded into adaLN/V/gates, activation scales from the trajectory",
        weights_only=("transformer_blocks.*.norm1.linear", "transformer_blocks.*.norm1.emb*"),
        smooth=True,
    ),
    "fp8": Recipe("fp8", qfloat8, None, "float8 e4m3 weights"),
    # Hopper's w8a8: the token layers run fp8 x fp8 on the tensor cores (engine/fp8.py). The conditioning layers
    # keep float activations, as in int8-a8, with int8 weights: quanto would give fp8 weight-only layers its Marlin
    # kernel, a ~2-minute CUDA build (DESIGN.md §3), and they run once per request on the fast path anyway.
    "fp8-a8": Recipe(
        "fp8-a8",
        qfloat8,
        qfloat8,
        "float8 e4m3 weights (per-channel scales) + static float8 activations, calibrated",
        weights_only=("transformer_blocks.*.norm1.linear", "transformer_blocks.*.norm1.emb*"),
        weights_only_qtype=qint8,
    ),
    "int4": Recipe("int4", qint4, None, "int4 weights (group-wise scales)"),
}
REFERENCE_RECIPE = "bf16"

# Patterns relative to the transformer. The final projection is kept in full precision (it writes the noise
# prediction directly) and so is the patch embedding (a tiny Conv2d whose input is the raw latent).
DEFAULT_EXCLUDE: tuple[str, ...] = ("proj_out*", "pos_embed*")
KEEP_GROUPS: dict[str, tuple[str, ...]] = {
    "adaln": ("transformer_blocks.*.norm1.linear",),
    "embedders": ("transformer_blocks.*.norm1.emb*",),
    "attention": ("transformer_blocks.*.attn1.*",),
    "mlp": ("transformer_blocks.*.ff.*",),
}


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise InvalidRequestError(f"Unknown recipe {name!r}: choose one of {', '.join(RECIPES)}.")
    return RECIPES[name]


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
    """Parameters plus buffers (quanto's activation scales live in buffers), in real storage bytes."""
    seen: set[int] = set()
    total = 0
    for tensor in [*module.parameters(), *module.buffers()]:
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        total += tensor_storage_bytes(tensor)
    return total


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
    calibration's own), every timestep (engine/smoothing_search.py)."""
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
    sibling = sibling_pipeline(pipe, copy.deepcopy(pipe.transformer))
    report = quantize_pipeline(sibling, recipe, **kwargs)
    return sibling, report
