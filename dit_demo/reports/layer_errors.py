"""Which layers and which timesteps carry a recipe's quantization error: a per-layer, per-timestep table.

For each recipe the quantized model is compared with its own full-precision twin (the reference, or for a smoothed
recipe the reference with the same smoothing folded in, which computes the same function) while the twin samples
the request:

* **layer error**: every quantized layer is fed the twin layer's exact input at every timestep, so the number is
  that layer's own error (input, weight and output quantization), not what it inherited from earlier layers.
  Outputs divided by a smoothing scale are multiplied back first, so every recipe is measured on the same tensor.
* **prediction error**: at every timestep the quantized transformer gets the twin's inputs (latents, timestep,
  classes) and its noise prediction is compared with the twin's: per-timestep error without the sampler compounding it.

Values are SNR in dB: 10·log10(Σ reference² / Σ error²) — higher is better, +6 dB halves the error.
"""

from __future__ import annotations

import copy
import datetime
import json
import math
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from optimum.quanto import quantization_map

from dit_demo.engine.generate import Variant, build_reference, build_variant, initial_generators
from dit_demo.engine.machine import machine_description
from dit_demo.engine.model.labels import resolve_labels, spread_ids
from dit_demo.engine.model.sources import sibling_pipeline
from dit_demo.engine.quant.quantize import CalibrationConfig
from dit_demo.engine.quant.smoothing import apply_plan, divisor, plan_of
from dit_demo.engine.request import SamplingRequest
from dit_demo.reports.tables import markdown_table

PREDICTION = "noise prediction"


def snr_db(signal: float, error: float) -> float | None:
    """None when the error is exactly zero (identical)."""
    if error <= 0:
        return None
    return round(10 * math.log10(max(signal, 1e-30) / error), 2)


@dataclass
class LayerErrors:
    """One recipe's table: per layer and per timestep SNR (dB) against its full-precision twin."""

    recipe: str
    timesteps: list[int] = field(default_factory=list)
    layers: list[str] = field(default_factory=list)
    per_step: dict[str, list[float | None]] = field(default_factory=dict)  # layer (or PREDICTION) → per step
    overall: dict[str, float | None] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


class _Sums:
    def __init__(self) -> None:
        self.sums: dict[tuple[str, int], list[float]] = defaultdict(lambda: [0.0, 0.0])

    def add(self, key: str, step: int, reference: torch.Tensor, other: torch.Tensor, weight=None) -> None:
        reference, other = reference.detach().float(), _plain(other).float()
        if weight is not None:
            reference, other = reference * weight, other * weight
        cell = self.sums[(key, step)]
        cell[0] += float(reference.pow(2).sum())
        cell[1] += float((other - reference).pow(2).sum())

    def table(self, keys: Sequence[str], steps: int) -> tuple[dict, dict]:
        per_step = {k: [snr_db(*self.sums[(k, s)]) for s in range(steps)] for k in keys}
        overall = {}
        for k in keys:
            signal = sum(self.sums[(k, s)][0] for s in range(steps))
            overall[k] = snr_db(signal, sum(self.sums[(k, s)][1] for s in range(steps)))
        return per_step, overall


def _plain(tensor) -> torch.Tensor:
    return tensor.dequantize() if hasattr(tensor, "dequantize") and type(tensor) is not torch.Tensor else tensor


def full_precision_twin(reference: Variant, variant: Variant):
    """The reference pipeline with the variant's smoothing folded in (the reference itself when there is none)."""
    plan = plan_of(variant.pipe.transformer)
    if not plan:
        return reference.pipe
    twin = copy.deepcopy(reference.pipe.transformer)
    apply_plan(twin, plan)
    pipe = sibling_pipeline(reference.pipe, twin)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def measure(reference: Variant, variant: Variant, request: SamplingRequest) -> LayerErrors:
    """Sample `request` with the twin and measure every quantized layer and the prediction at every timestep."""
    twin = full_precision_twin(reference, variant)
    quantized = variant.pipe.transformer
    plan = plan_of(quantized)
    names = [n for n in quantization_map(quantized)]
    q_modules = dict(quantized.named_modules())
    sums, state, timesteps = _Sums(), {"step": -1}, []

    def layer_hook(name: str):
        def hook(module, args, output):
            with torch.no_grad():
                result = q_modules[name](args[0])
            scale = divisor(plan, name, 1)
            weight = scale.to(output.device, torch.float32) if scale is not None else None
            sums.add(name, state["step"], output, result, weight)

        return hook

    def before(module, args, kwargs):
        state["step"] += 1
        timestep = kwargs.get("timestep", args[1] if len(args) > 1 else 0)
        timesteps.append(int(torch.as_tensor(timestep).reshape(-1)[0]))

    def after(module, args, kwargs, output):
        with torch.no_grad():
            result = quantized(*args, **kwargs)
        sums.add(PREDICTION, state["step"], output[0], result[0])

    modules = dict(twin.transformer.named_modules())
    handles = [modules[name].register_forward_hook(layer_hook(name)) for name in names]
    handles.append(twin.transformer.register_forward_pre_hook(before, with_kwargs=True))
    handles.append(twin.transformer.register_forward_hook(after, with_kwargs=True))
    try:
        with torch.no_grad():
            twin(
                class_labels=resolve_labels(list(request.labels), reference.id2label),
                guidance_scale=request.guidance_scale,
                generator=initial_generators(request.seeds),
                num_inference_steps=request.steps,
                output_type="pt",
            )
    finally:
        for handle in handles:
            handle.remove()
    per_step, overall = sums.table([*names, PREDICTION], len(timesteps))
    return LayerErrors(variant.recipe, timesteps, names, per_step, overall)


def layer_errors(reference: Variant, recipes: Sequence[str], request: SamplingRequest, **build) -> list[LayerErrors]:
    """One table per recipe (built from `reference` with `build_variant(**build)`)."""
    return [measure(reference, build_variant(reference, recipe, **build), request) for recipe in recipes]


def short(name: str) -> str:
    return name.replace("transformer_blocks.", "").replace("attn1.", "")


def _bins(steps: int, count: int) -> list[range]:
    count = max(1, min(count, steps))
    edges = [round(i * steps / count) for i in range(count + 1)]
    return [range(edges[i], edges[i + 1]) for i in range(count)]


def binned(errors: LayerErrors, key: str, span: range) -> float | None:
    """SNR over a range of steps, from the per-step SNRs (energy-weighted: the mean of the error ratios)."""
    ratios = [10 ** (-v / 10) for v in (errors.per_step[key][s] for s in span) if v is not None]
    return round(-10 * math.log10(sum(ratios) / len(ratios)), 2) if ratios else None


def summary_rows(results: Sequence[LayerErrors]) -> list[dict]:
    """Per layer: overall SNR per recipe, and the change from the first recipe to the last."""
    keys = [*results[0].layers, PREDICTION]
    rows = []
    for key in keys:
        row = {"layer": short(key)}
        for result in results:
            row[result.recipe] = result.overall.get(key)
        first, last = row[results[0].recipe], row[results[-1].recipe]
        if len(results) > 1 and first is not None and last is not None:
            row["change dB"] = round(last - first, 2)
        rows.append(row)
    return rows


def grid_rows(errors: LayerErrors, bins: int) -> tuple[list[dict], list[tuple[str, str]]]:
    """Layers × timestep ranges (sampling order: noisiest first)."""
    spans = _bins(len(errors.timesteps), bins)
    columns = [("layer", "layer"), ("all", "all steps")]
    for span in spans:
        first, last = span[0], span[-1]
        columns.append(
            (f"s{first}", f"steps {first + 1}-{last + 1} (t {errors.timesteps[first]}…{errors.timesteps[last]})")
        )
    rows = []
    for key in [*errors.layers, PREDICTION]:
        row = {"layer": short(key), "all": errors.overall.get(key)}
        row.update({f"s{span[0]}": binned(errors, key, span) for span in spans})
        rows.append(row)
    return rows, columns


def worst_rows(results: Sequence[LayerErrors], count: int = 8) -> list[dict]:
    """The layers with the lowest SNR of each recipe (where the error is)."""
    rows = []
    for result in results:
        ranked = sorted((v, k) for k, v in result.overall.items() if v is not None and k != PREDICTION)
        for value, key in ranked[:count]:
            worst = min(range(len(result.timesteps)), key=lambda s: result.per_step[key][s] or math.inf)
            rows.append(
                {
                    "recipe": result.recipe,
                    "layer": short(key),
                    "SNR dB": value,
                    "worst step": worst + 1,
                    "its SNR dB": result.per_step[key][worst],
                }
            )
    return rows


def markdown(results: Sequence[LayerErrors], request: SamplingRequest, *, bins: int = 5, header: str = "") -> str:
    """The whole report: summary per layer, the worst layers, and a layers × timesteps grid per recipe."""
    parts = [header] if header else []
    parts.append(
        f"{len(request.labels)} images (classes {', '.join(map(str, request.labels))}; seeds {request.seeds[0]}..), "
        f"{request.steps} steps, guidance {request.guidance_scale:g}. SNR in dB against the full-precision twin "
        "(higher is better): each layer fed the twin's exact input; the noise prediction with the twin's inputs.\n"
    )
    parts += ["### Per layer, all timesteps\n", markdown_table(summary_rows(results))]
    parts += ["### Lowest-SNR layers\n", markdown_table(worst_rows(results))]
    for result in results:
        rows, columns = grid_rows(result, bins)
        parts += [f"### {result.recipe}: layers × timesteps\n", markdown_table(rows, columns)]
    return "\n".join(parts)


def machine_line(device: torch.device | str) -> str:
    info = machine_description(device)
    where = info.get("gpu") or f"{info['cpu']}, {info['torch_threads']} threads, no GPU"
    return f"{where}, torch {info['torch']}"


def run_layer_errors(
    *,
    out: str | os.PathLike,
    model: str | None = "embedded",
    recipes: Sequence[str] = ("int8-a8", "int8-a8-smooth"),
    labels: Sequence[str | int] | None = None,
    images: int = 8,
    seed: int = 0,
    steps: int = 25,
    guidance: float = 4.0,
    bins: int = 5,
    device: str | None = None,
    threads: int | None = None,
    calibration_steps: int = 25,
) -> list[LayerErrors]:
    """`dit-demo layer-errors`: measure, then write layer_errors.json and layer_errors.md to `out`."""
    if threads:
        torch.set_num_threads(threads)
    reference = build_reference(model, device=device)
    reference.pipe.set_progress_bar_config(disable=True)
    if labels is None:
        labels = list(spread_ids(len(reference.id2label) or 1000, images))
    request = SamplingRequest.create(list(labels), seed=seed, steps=steps, guidance_scale=guidance)
    results = layer_errors(reference, recipes, request, calibration=CalibrationConfig(steps=calibration_steps))
    where = machine_line(reference.device)
    header = (
        f"## Quantization error per layer and timestep — {reference.source}\n\n"
        f"{where}; {datetime.date.today().isoformat()}; `dit-demo layer-errors`.\n"
    )
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    record = {
        "source": reference.source,
        "machine": machine_description(reference.device),
        "request": {"labels": list(request.labels), "seeds": list(request.seeds), "steps": steps, "guidance": guidance},
        "results": [r.to_dict() for r in results],
    }
    (folder / "layer_errors.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    text = markdown(results, request, bins=bins, header=header)
    (folder / "layer_errors.md").write_text(text, encoding="utf-8")
    print(text)
    return results
