"""The CPU benchmark: does a recipe make a CPU host (a free Space, a laptop) faster than full precision?

Per model × threads × batch, the fp32 reference and every recipe are timed **interleaved** (ref, a, b, ref, a, b, …)
over several rounds, so a machine that gets busier mid-run slows all of them alike; each cell reports the median
and the min–max range, the ratio to fp32 and a verdict worded from the ranges (`engine.timing`). Two timings:
one transformer forward with the request's real shapes (CFG doubles the rows), and — for models small enough — the
whole sampling call. Quality: PSNR of the forward output (and of the sampled images) against fp32 on the same input.
The 1-minute load average is recorded before and after each cell: a loaded machine is visible in the data.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from dit_demo.engine.generate import Variant, build_reference, build_variant, generate
from dit_demo.engine.machine import environment
from dit_demo.engine.metrics import psnr
from dit_demo.engine.request import SamplingRequest
from dit_demo.engine.threads import use_threads
from dit_demo.engine.timing import interleaved, machine_load, speed_verdict
from dit_demo.errors import InvalidRequestError
from dit_demo.reports.bench_timing import forward_inputs


@dataclass(frozen=True)
class CpuBenchConfig:
    models: tuple[str, ...] = ("embedded", "dit-xl-2-256-random")
    recipes: tuple[str, ...] = ("bf16", "int8", "int8-dynamic")
    batches: tuple[int, ...] = (1, 4)
    threads: tuple[int, ...] = (1, 2)
    rounds: int = 5
    steps: int = 25
    guidance: float = 4.0
    sample_models: tuple[str, ...] = ("embedded",)  # whole sampling timed too (XL/2 on a CPU: minutes per call)
    out: str = "bench-cpu-out"
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.recipes or self.recipes[0] != "bf16":
            raise InvalidRequestError("recipes: the first must be bf16 (the fp32 reference on a CPU)")
        for name, values in (("batches", self.batches), ("threads", self.threads)):
            if not values or any(int(v) < 1 for v in values):
                raise InvalidRequestError(f"{name}: whole numbers of at least 1, got {list(values)}")
        if self.rounds < 2:
            raise InvalidRequestError(f"rounds: at least 2 for a spread, got {self.rounds}")


def _forward_psnr(output: torch.Tensor, reference: torch.Tensor) -> float | None:
    mse = (output.float() - reference.float()).pow(2).mean().item()
    peak = (reference.max() - reference.min()).item()
    return None if mse == 0 else round(10 * math.log10(peak**2 / mse), 2)


def bench_cell(variants: dict[str, Variant], *, model: str, threads: int, batch: int, config: CpuBenchConfig) -> dict:
    """One (model, threads, batch) cell: interleaved forward (and sampling) timings of every recipe, on exactly
    `threads` threads (pinned: `generate` would otherwise apply the engine's thread policy)."""
    with use_threads(threads):
        return _cell(variants, model=model, threads=threads, batch=batch, config=config)


def _cell(variants: dict[str, Variant], *, model: str, threads: int, batch: int, config: CpuBenchConfig) -> dict:
    reference = variants["bf16"]
    inputs = forward_inputs(reference, batch, config.guidance)
    load_before = machine_load()
    with torch.inference_mode():
        outputs = {name: v.pipe.transformer(**inputs).sample for name, v in variants.items()}
        forward = interleaved(
            {name: (lambda v=v: v.pipe.transformer(**inputs)) for name, v in variants.items()},
            rounds=config.rounds,
            warmup_rounds=1,
        )
    cell: dict = {"model": model, "threads": threads, "batch": batch, "load_before": load_before, "recipes": {}}
    sampled = {}
    if model in config.sample_models:
        request = SamplingRequest.create(
            list(range(batch)), seed=0, steps=config.steps, guidance_scale=config.guidance, max_batch=max(batch, 1)
        )
        sampled = {name: generate(v, request).images for name, v in variants.items()}
        sampling = interleaved(
            {name: (lambda v=v: generate(v, request)) for name, v in variants.items()},
            rounds=config.rounds,
            warmup_rounds=0,
        )
    for name in variants:
        row = {"forward": forward[name].to_dict()}
        if name != "bf16":
            row["forward_verdict"] = asdict(speed_verdict(forward["bf16"], forward[name]))
            row["forward_psnr_db"] = _forward_psnr(outputs[name], outputs["bf16"])
        if sampled:
            row["sampling"] = sampling[name].to_dict()
            if name != "bf16":
                row["sampling_verdict"] = asdict(speed_verdict(sampling["bf16"], sampling[name]))
                row["psnr_db"] = round(psnr(sampled[name], sampled["bf16"]), 2)
        row["weight_bytes"] = variants[name].report.weight_bytes_after
        cell["recipes"][name] = row
    cell["load_after"] = machine_load()
    return cell


def run_cpu_bench(config: CpuBenchConfig) -> dict:
    """Every cell, written to `config.out` (results.json + results.md) after each one."""
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    record = {
        "environment": environment(torch.device("cpu"), 1),
        "config": asdict(config),
        "cells": [],
    }
    for model in config.models:
        reference = build_reference(model, device="cpu")
        variants = {"bf16": reference, **{r: build_variant(reference, r) for r in config.recipes if r != "bf16"}}
        for variant in variants.values():
            variant.pipe.set_progress_bar_config(disable=True)  # a log of timings, not of progress bars
        for threads in config.threads:
            for batch in config.batches:
                record["cells"].append(bench_cell(variants, model=model, threads=threads, batch=batch, config=config))
                write_outputs(record, out)
        del variants, reference
    return record


def write_outputs(record: dict, out: Path) -> None:
    (out / "results.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    (out / "results.md").write_text(markdown(record), encoding="utf-8")


def _range(timing: dict) -> str:
    return f"{timing['median_s']:.3f} s ({timing['min_s']:.3f}–{timing['max_s']:.3f})"


def _ratio(verdict: dict | None) -> str:
    if not verdict:
        return "—"
    return f"{verdict['ratio']:.2f}× ({verdict['ratio_low']:.2f}–{verdict['ratio_high']:.2f}) {verdict['direction']}"


def markdown(record: dict) -> str:
    env = record["environment"]
    lines = [
        f"# CPU benchmark — {env.get('machine', 'CPU')}",
        "",
        f"torch {env.get('torch', '?')}; {record['config']['rounds']} interleaved rounds per cell; times are medians "
        "with the min–max range; ratio = recipe / fp32 of the same cell (range: most to least favourable pairing); "
        "'faster'/'slower' only where the ranges do not overlap. Load = 1-minute load average before → after.",
        "",
        "| model | threads | batch | recipe | forward | × fp32 (forward) | sampling | × fp32 (sampling) "
        "| PSNR dB | load |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for cell in record["cells"]:
        for name, row in cell["recipes"].items():
            label = "fp32 (reference)" if name == "bf16" else name
            quality = row.get("psnr_db", row.get("forward_psnr_db"))
            lines.append(
                f"| {cell['model']} | {cell['threads']} | {cell['batch']} | {label} | {_range(row['forward'])} "
                f"| {_ratio(row.get('forward_verdict'))} | {_range(row['sampling']) if 'sampling' in row else '—'} "
                f"| {_ratio(row.get('sampling_verdict'))} | {'—' if quality is None else quality} "
                f"| {cell['load_before']} → {cell['load_after']} |"
            )
    return "\n".join(lines) + "\n"
