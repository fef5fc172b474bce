"""How `int8-a8-smooth` chooses its scales: measured over the real sampling trajectory, layer by layer.

1. **Statistics.** The full-precision model samples the calibration classes and seeds at several guidance scales over
   every timestep; every linear's per-channel input and output |max| is recorded per forward call (= per timestep).
2. **Candidates.** For every site (`smoothing.SITES`) of every block: no smoothing, or `s = a^α / w^(1-α)` (input
   sites; `w` = the consumers' per-column weight |max|) or `s = a^α` (output sites), where `a` aggregates the
   per-timestep activation |max| over the trajectory by one of: `max` (DiTAS), `mean`, `salience` (PTQ4DiT: timesteps
   weighted by softmax(-ρ), ρ = Spearman correlation of activation and weight salience), for α on a grid.
3. **Criterion.** The same trajectory runs again; on every call each candidate's quantized result is simulated
   (static per-tensor activation scale, per-row weights, both as quanto does them) and its squared error against
   full precision accumulated, relative to the signal. Each site keeps its lowest-error candidate, `none` included.
4. **Static activation scales.** quanto's `Calibration` keeps a momentum average of per-batch |max|, which clips the
   timesteps whose range is above that average; this recipe sets each input/output scale to the trajectory's |max|
   (measured better end to end, see the embedded README).
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from optimum.quanto import qint8
from optimum.quanto.nn import QModuleMixin
from optimum.quanto.tensor import dtype_info

from dit_demo.engine.quant.smoothing import SITES, Site, apply_plan, check_smoothable, divisor, site_name

AGGREGATIONS = ("max", "mean", "salience")


@dataclass(frozen=True)
class SmoothingConfig:
    """The sampling runs whose activations choose the scales, and the search grid."""

    labels: Sequence[int] = (0,)
    seeds: Sequence[int] = (1000, 1001)
    # the criterion runs on other classes and seeds than the statistics, so it sees what the ranges did not cover
    holdout_labels: Sequence[int] = (0,)
    holdout_seeds: Sequence[int] = (2000, 2001)
    steps: int = 25
    guidance_scales: Sequence[float] = (1.0, 2.0, 4.0)
    alphas: Sequence[float] = tuple(round(0.1 * i, 1) for i in range(11))
    aggregations: Sequence[str] = AGGREGATIONS
    rows: int = 256  # rows (tokens) per forward call the criterion simulates
    activations: object = qint8
    weights: object = qint8  # the consumers' weight type (per-row scales), simulated by the criterion

    def to_dict(self) -> dict:
        return {
            "labels": [int(x) for x in self.labels],
            "seeds": [int(x) for x in self.seeds],
            "holdout_labels": [int(x) for x in self.holdout_labels],
            "holdout_seeds": [int(x) for x in self.holdout_seeds],
            "steps": self.steps,
            "guidance_scales": [float(g) for g in self.guidance_scales],
            "alphas": list(self.alphas),
            "aggregations": list(self.aggregations),
            "rows": self.rows,
            "activations": getattr(self.activations, "name", str(self.activations)),
            "weights": getattr(self.weights, "name", str(self.weights)),
        }


@dataclass
class TrajectoryStats:
    """Per forward call, per channel |max| of every linear's input and output ([calls, channels] each)."""

    inputs: dict[str, torch.Tensor] = field(default_factory=dict)
    outputs: dict[str, torch.Tensor] = field(default_factory=dict)


def sample_trajectory(
    pipe, config: SmoothingConfig, hooks: dict[torch.nn.Module, Callable], *, holdout: bool = False
) -> None:
    """Run the real sampler over the config's classes, seeds and guidance scales with forward hooks installed."""
    handles = [module.register_forward_hook(hook) for module, hook in hooks.items()]
    labels = [int(x) for x in (config.holdout_labels if holdout else config.labels)]
    seeds = config.holdout_seeds if holdout else config.seeds
    try:
        with torch.no_grad():
            for guidance in config.guidance_scales:
                generators = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds for _ in labels]
                pipe(
                    class_labels=labels * len(seeds),
                    guidance_scale=float(guidance),
                    generator=generators,
                    num_inference_steps=config.steps,
                    output_type="pt",
                )
    finally:
        for handle in handles:
            handle.remove()


def _channel_absmax(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().reshape(-1, tensor.shape[-1]).abs().amax(0).float()


class StatsRecorder:
    """Forward hooks recording per-call per-channel |max| of every linear's input and output."""

    def __init__(self, transformer: torch.nn.Module):
        self.inputs: dict[str, list] = defaultdict(list)
        self.outputs: dict[str, list] = defaultdict(list)
        layers = (torch.nn.Linear, torch.nn.Conv2d)  # a Conv2d's rows are meaningless, but its overall |max| is right
        self.modules = {m: n for n, m in transformer.named_modules() if isinstance(m, layers)}

    def hooks(self) -> dict[torch.nn.Module, Callable]:
        def hook_for(name: str):
            def hook(module, args, output):
                self.inputs[name].append(_channel_absmax(args[0]))
                self.outputs[name].append(_channel_absmax(output))

            return hook

        return {module: hook_for(name) for module, name in self.modules.items()}

    def stats(self) -> TrajectoryStats:
        stack = lambda d: {k: torch.stack(v).cpu() for k, v in d.items()}  # noqa: E731
        return TrajectoryStats(stack(self.inputs), stack(self.outputs))


def gather_stats(pipe, config: SmoothingConfig) -> TrajectoryStats:
    """Pass 1: per-call per-channel |max| of every linear's input and output in full precision."""
    recorder = StatsRecorder(pipe.transformer)
    sample_trajectory(pipe, config, recorder.hooks())
    return recorder.stats()


def spearman(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Spearman rank correlation of each row of x ([calls, C]) with y ([C])."""
    rank = lambda t: t.argsort(-1).argsort(-1).float()  # noqa: E731
    rx, ry = rank(x), rank(y)[None]
    rx, ry = rx - rx.mean(-1, keepdim=True), ry - ry.mean(-1, keepdim=True)
    return (rx * ry).sum(-1) / (rx.norm(dim=-1) * ry.norm(dim=-1)).clamp(min=1e-12)


def aggregate(per_call: torch.Tensor, how: str, weight_salience: torch.Tensor | None = None) -> torch.Tensor:
    """One per-channel activation range from per-timestep ranges ([calls, C] → [C])."""
    if how == "max":
        return per_call.amax(0)
    if how == "mean":
        return per_call.mean(0)
    if how == "salience":  # PTQ4DiT: timesteps whose salience is least aligned with the weights' count most
        weights = torch.softmax(-spearman(per_call, weight_salience), dim=0)
        return (per_call * weights[:, None]).sum(0)
    raise ValueError(f"unknown aggregation {how!r}")


def normalized(scale: torch.Tensor) -> torch.Tensor:
    """Geometric mean 1 (the overall magnitude is irrelevant to per-tensor quantization), clamped for safety."""
    scale = scale.clamp(min=1e-8)
    return (scale / scale.log().mean().exp()).clamp(1e-4, 1e4)


@dataclass
class Candidate:
    aggregation: str
    alpha: float
    scale: torch.Tensor | None  # None: no smoothing
    error: float = 0.0

    @property
    def label(self) -> str:
        return "none" if self.scale is None else f"{self.aggregation} α={self.alpha:g}"


def site_tensors(block: torch.nn.Module, site: Site, prefix: str, stats: TrajectoryStats):
    """The smoothed tensor's per-call ranges and, for input sites, the consumers' per-column weight |max|."""
    first = prefix + site.layers[0]
    if site.kind == "output":
        return stats.outputs[first], None
    weights = torch.cat([block.get_submodule(layer).weight.detach().float() for layer in site.layers])
    return stats.inputs[first], weights.abs().amax(0).cpu()


def candidates(per_call: torch.Tensor, weight_absmax: torch.Tensor | None, config: SmoothingConfig) -> list:
    found = [Candidate("none", 0.0, None)]
    for how in config.aggregations:
        if how == "salience" and weight_absmax is None:
            continue
        activation = aggregate(per_call, how, weight_absmax).clamp(min=1e-5)
        for alpha in config.alphas:
            if weight_absmax is None:
                if alpha == 0:
                    continue
                scale = activation**alpha
            else:
                scale = activation**alpha / weight_absmax.clamp(min=1e-5) ** (1 - alpha)
            found.append(Candidate(how, float(alpha), normalized(scale)))
    return found


def qmax(qtype) -> float:
    return float(dtype_info(qtype.dtype).max)


def fake_quantize(x: torch.Tensor, scale: torch.Tensor, qtype) -> torch.Tensor:
    """quanto's symmetric quantization (round, clamp) followed by dequantization."""
    info = dtype_info(qtype.dtype)
    data = x / scale
    if qtype.dtype.is_floating_point:
        data = data.clamp(info.min, info.max).to(qtype.dtype).float()
    else:
        data = data.round().clamp(info.min, info.max)
    return data * scale


def fake_quantize_rows(weight: torch.Tensor, qtype) -> torch.Tensor:
    """Per-output-row weights, as quanto's qint8/qfloat8 weights (axis 0, |max| scale)."""
    scale = weight.abs().amax(1, keepdim=True).clamp(min=1e-12) / qmax(qtype)
    return fake_quantize(weight, scale, qtype)


def static_scale(per_call: torch.Tensor, scale: torch.Tensor | None, qtype) -> torch.Tensor:
    """The per-tensor activation scale of a (smoothed) tensor: its |max| over the trajectory."""
    ranges = per_call if scale is None else per_call / scale.to(per_call.device)
    return ranges.amax() / qmax(qtype)


def _rows(tensor: torch.Tensor, limit: int) -> torch.Tensor:
    flat = tensor.detach().reshape(-1, tensor.shape[-1]).float()
    stride = max(1, math.ceil(flat.shape[0] / limit))
    return flat[::stride]


class SiteSearch:
    """Accumulates every candidate's relative error for one site over the trajectory (pass 2)."""

    def __init__(self, block: torch.nn.Module, site: Site, prefix: str, stats: TrajectoryStats, config):
        self.block, self.site, self.prefix, self.config = block, site, prefix, config
        per_call, weight_absmax = site_tensors(block, site, prefix, stats)
        self.candidates = candidates(per_call, weight_absmax, config)
        self.steps = [static_scale(per_call, c.scale, config.activations) for c in self.candidates]
        self.terms: dict[str, list[float]] = defaultdict(lambda: [0.0] * len(self.candidates))
        self.signal: dict[str, float] = defaultdict(float)
        if site.key == "out_in":  # the to_v output is divided by the same s and quantized too
            self.value_steps = [
                static_scale(stats.outputs[prefix + "attn1.to_v"], c.scale, config.activations) for c in self.candidates
            ]

    def hooks(self) -> dict[torch.nn.Module, Callable]:
        first = self.block.get_submodule(self.site.layers[0])
        found = {first: self.observe_output if self.site.kind == "output" else self.observe_input}
        if self.site.key == "out_in":
            found[self.block.attn1.to_v] = self.observe_value
        return found

    def observe_input(self, module, args, output) -> None:
        x = _rows(args[0], self.config.rows)
        qtype = self.config.activations
        for layer in self.site.layers:
            linear = self.block.get_submodule(layer)
            weight, bias = linear.weight.detach().float(), linear.bias
            bias = bias.detach().float() if bias is not None else None
            reference = torch.nn.functional.linear(x, weight, bias)
            self.signal[layer] += float(reference.pow(2).sum())
            for i, (cand, step) in enumerate(zip(self.candidates, self.steps)):
                s = cand.scale.to(x.device) if cand.scale is not None else torch.ones_like(x[0])
                w = fake_quantize_rows(weight * s[None], self.config.weights)
                y = torch.nn.functional.linear(fake_quantize(x / s, step.to(x.device), qtype), w, bias)
                self.terms[layer][i] += float((y - reference).pow(2).sum())

    def _observe_smoothed_output(self, y: torch.Tensor, steps: list[torch.Tensor], term: str) -> None:
        self.signal[term] += float(y.pow(2).sum())
        for i, (cand, step) in enumerate(zip(self.candidates, steps)):
            s = cand.scale.to(y.device) if cand.scale is not None else torch.ones_like(y[0])
            error = (fake_quantize(y / s, step.to(y.device), self.config.activations) - y / s) * s
            self.terms[term][i] += float(error.pow(2).sum())

    def observe_output(self, module, args, output) -> None:
        self._observe_smoothed_output(_rows(output, self.config.rows), self.steps, "output")

    def observe_value(self, module, args, output) -> None:
        self._observe_smoothed_output(_rows(output, self.config.rows), self.value_steps, "value")

    def choose(self) -> Candidate:
        for i, cand in enumerate(self.candidates):
            cand.error = sum(self.terms[t][i] / max(self.signal[t], 1e-30) for t in self.terms)
        return min(self.candidates, key=lambda c: c.error)


def search_plan(pipe, config: SmoothingConfig, wanted: Callable[[str], bool] = lambda name: True):
    """Passes 1-3: the statistics, then each site's best candidate. Returns (stats, plan, per-site summary)."""
    transformer = pipe.transformer
    check_smoothable(transformer)
    stats = gather_stats(pipe, config)
    searches: dict[str, SiteSearch] = {}
    for index, block in enumerate(transformer.transformer_blocks):
        prefix = f"transformer_blocks.{index}."
        for site in SITES:
            if any(wanted(prefix + layer) for layer in site.layers):
                searches[site_name(index, site.key)] = SiteSearch(block, site, prefix, stats, config)
    hooks: dict[torch.nn.Module, Callable] = {}
    for search in searches.values():
        for module, hook in search.hooks().items():
            previous = hooks.get(module)
            hooks[module] = _chain(previous, hook) if previous else hook
    sample_trajectory(pipe, config, hooks, holdout=True)
    plan, summary = {}, {}
    for name, search in searches.items():
        best = search.choose()
        none = search.candidates[0].error
        summary[name] = {"choice": best.label, "relative_error": best.error, "relative_error_none": none}
        if best.scale is not None:
            plan[name] = best.scale
    return stats, plan, summary


def _chain(first: Callable, second: Callable) -> Callable:
    def both(module, args, output):
        first(module, args, output)
        second(module, args, output)

    return both


def smooth_pipeline(pipe, config: SmoothingConfig, wanted: Callable[[str], bool] = lambda name: True):
    """Choose and fold the scales into `pipe.transformer` (float, before quantization). Returns (stats, report)."""
    start = time.perf_counter()
    stats, plan, summary = search_plan(pipe, config, wanted)
    apply_plan(pipe.transformer, plan)
    report = {
        "config": config.to_dict(),
        "sites": summary,
        "smoothed_sites": len(plan),
        "search_s": round(time.perf_counter() - start, 3),
    }
    return stats, report


@torch.no_grad()
def set_static_scales(transformer: torch.nn.Module, stats: TrajectoryStats, plan: dict) -> list[str]:
    """Input/output scales of every activation-quantized module = the trajectory's |max| of its (smoothed) tensors.

    Returns the modules without statistics (left as they were: the caller calibrates them with quanto)."""
    missing = []
    for name, module in transformer.named_modules():
        if not isinstance(module, QModuleMixin) or module.activation_qtype is None:
            continue
        if name not in stats.inputs:
            missing.append(name)
            continue
        for side, (ranges, buffer) in enumerate(((stats.inputs, "input_scale"), (stats.outputs, "output_scale"))):
            scale = static_scale(ranges[name], divisor(plan, name, side), module.activation_qtype)
            current = getattr(module, buffer)
            setattr(module, buffer, scale.to(device=current.device, dtype=current.dtype).reshape(current.shape))
    return missing
