"""End to end, interleaved: compiled bf16 vs int8 (per-shape W8A16) vs int8-a8 vs fp8-a8, and diagnostic variants.

All variants of one setting live in one process at once (built through the project's own `build_variant`,
`compile_variant` — step graphs, fused QKV — and warmed up), then `engine.timing.interleaved` times them in the
same order every round, so each ratio to bf16 compiled comes with the range the rounds allow (min/max). Also per
variant: the transformer forward (replay of its captured forward graph, median of 20), PSNR vs the bf16 eager
images of the same seeds, and a kernel profile of the captured step grouped by category (`--profile`).

A variant is skipped, and said so, when its estimated warm-up would pass the setting's deadline
(`--deadline-s`, seconds from the start of the process), so a device call's time limit never loses the timings.
With all variants resident, `max_memory_allocated` is not a variant's own peak; each variant's is estimated as
what it left allocated after build + warm-up (weights, step graphs' pools) plus the transient of one request
(`memory_kind` says so). Besides results.json, each setting's recipes (not the diagnostic variants) are written
as a `dit-demo bench`-format record, `<model>-b<batch>/results.json`, which the app's benchmark tab reads.

    python bench/h200-w8a16/e2e.py --out OUT --setting dit-xl-2-256-random:1:250 \
        --setting dit-xl-2-512-random:1:420:bf16,int8,fp8-a8,int8-cast
"""

from __future__ import annotations

import argparse
import json
import re
import time
import traceback
from pathlib import Path

import torch

from dit_demo.compare import image_quality
from dit_demo.engine.device import free_memory
from dit_demo.engine.fast.compile import compile_variant, warm_up
from dit_demo.engine.generate import generate
from dit_demo.engine.machine import environment
from dit_demo.engine.quant.quantize import CalibrationConfig
from dit_demo.engine.timing import interleaved, speed_verdict
from dit_demo.reports.bench import BenchConfig, batch_request, build_fresh
from dit_demo.reports.bench_timing import captured_replayer, time_transformer_forward

# name → (recipe, int8 kernel, fp8 epilogue (None = the default), seconds of build + compile + capture to expect;
# the H200 cells of bench/h200-b256 and h200-b512 took 23–47 s of warm-up plus ~1 s (int8) to ~9 s (fp8-a8,
# calibration) of build). The recipes' own rows: bf16, int8, int8-a8, fp8-a8; the rest are diagnostics.
VARIANTS = {
    "bf16": ("bf16", "auto", None, 40),
    "int8": ("int8", "auto", None, 60),
    "int8-a8": ("int8-a8", "auto", None, 65),
    "fp8-a8": ("fp8-a8", "auto", None, 60),
    "int8-cast": ("int8", "torch", None, 50),
    "fp8-a8-tensorwise": ("fp8-a8", "auto", "tensorwise", 60),
}
RECIPE_ROWS = ("bf16", "int8", "int8-a8", "fp8-a8")
CATEGORIES = (  # kernel-name patterns → category, first match wins (attention before GEMM: cuDNN's names say sm90)
    ("W8A16 Triton", r"_int8_weight_kernel"),
    ("int8 GEMV Triton", r"_int8_weight_gemv"),
    ("attention (cuDNN flash)", r"flash|fmha|sdpa_sm|cudnn_generated"),
    ("GEMM (cuBLAS)", r"nvjet|gemm|xmma|cutlass|cublas"),
    ("weight casts (int8 → bf16)", r"^triton_poi_fused__to_copy_\d+$"),
)


def category(name: str) -> str:
    for label, pattern in CATEGORIES:
        if re.search(pattern, name, re.IGNORECASE):
            return label
    return "other (Inductor: norm, modulate, GELU, scale/bias, quantize, attention prep; sampler)"


def profile_step(variant, batch: int, guidance: float, steps: int, runs: int = 3) -> dict:
    """Device µs per captured step by kernel category, plus the top kernels."""
    from torch.profiler import ProfilerActivity, profile

    replay = captured_replayer(variant, batch, guidance, steps, "step")
    if replay is None:
        return {"error": "no captured step graph"}
    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(runs):
            replay()
        torch.cuda.synchronize()
    events = [e for e in prof.key_averages() if e.self_device_time_total > 0]
    totals: dict[str, float] = {}
    for e in events:
        label = category(e.key)
        totals[label] = totals.get(label, 0.0) + e.self_device_time_total / runs
    events.sort(key=lambda e: e.self_device_time_total, reverse=True)
    return {
        "us_per_step": {k: round(v, 1) for k, v in sorted(totals.items(), key=lambda kv: -kv[1])},
        "total_us_per_step": round(sum(totals.values()), 1),
        "top": [
            {"name": e.key[:100], "us_per_step": round(e.self_device_time_total / runs, 1), "calls": e.count // runs}
            for e in events[:15]
        ],
    }


def int8_kernels(variant) -> dict:
    """How many int8 linears run which kernel at this request's rows (what the per-shape table chose)."""
    from dit_demo.engine.fast.layers import Int8Linear

    layers = [m for m in variant.pipe.transformer.modules() if isinstance(m, Int8Linear)]
    return {
        "layers": len(layers),
        "kernel": sorted({layer.kernel for layer in layers}),
        "with_table": sum(1 for layer in layers if layer.rows_choice),
    }


def fp8_epilogues(variant, epilogue: str | None) -> list[str]:
    """Put every fp8 tensor-core layer on `epilogue` (None: leave the default); the epilogues now in use."""
    from dit_demo.engine.fast.fp8 import Fp8Linear

    layers = [m for m in variant.pipe.transformer.modules() if isinstance(m, Fp8Linear) and m.scaled_mm]
    if epilogue is not None:
        for layer in layers:
            layer.enable_scaled_mm(epilogue=epilogue)
    return sorted({str(layer.epilogue) for layer in layers})


def allocated(device: str) -> int:
    return int(torch.cuda.memory_allocated()) if device == "cuda" else 0


def run_setting(
    model: str, batch: int, names: list[str], deadline: float, start: float, rounds: int, profile: bool, device: str
) -> dict:
    config = BenchConfig(model=model, recipes=("bf16",))
    request = batch_request(config, batch)
    calibration = CalibrationConfig(steps=config.steps, guidance_scale=config.guidance)
    setting: dict = {"model": model, "batch": batch, "steps": config.steps, "guidance": config.guidance, "cells": {}}
    variants, reference_images = {}, None
    for name in names:
        recipe, kernel, epilogue, estimate = VARIANTS[name]
        cell: dict = {"recipe": recipe, "kernel": kernel}
        setting["cells"][name] = cell
        if variants and time.perf_counter() - start + estimate > deadline:
            cell["skipped"] = f"its ~{estimate} s warm-up would pass this setting's deadline ({deadline:.0f} s)"
            continue
        try:
            t0, before = time.perf_counter(), allocated(device)
            variant = build_fresh(model, recipe, device, calibration)
            cell["build_s"] = round(time.perf_counter() - t0, 1)
            if reference_images is None:  # bf16 first: its eager images are every PSNR's reference
                reference_images = generate(variant, request).images
            compile_variant(variant, "reduce-overhead", kernel=kernel, fuse=True)
            cell["compile_mode"] = variant.compile_mode
            cell["fp8_epilogue"] = fp8_epilogues(variant, epilogue)  # before the first call compiles
            cell["warmup_s"] = round(warm_up(variant, lambda v=variant: generate(v, request), runs=1), 1)
            cell["int8_linears"] = int8_kernels(variant)
            cell["resident_bytes"] = allocated(device) - before
            variants[name] = variant
        except Exception as exc:  # one failing variant must not lose the others
            cell["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
            traceback.print_exc()
        print(f"[e2e] {model} b{batch} {name}: {cell}", flush=True)
    runners = {name: (lambda v=v: generate(v, request)) for name, v in variants.items()}
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    spreads = interleaved(runners, rounds=rounds, warmup_rounds=1, sync=sync)
    for name, variant in variants.items():
        cell = setting["cells"][name]
        cell["latency"] = spreads[name].to_dict()
        if "bf16" in spreads:
            verdict = speed_verdict(spreads["bf16"], spreads[name])
            cell["vs_bf16_compiled"] = {
                "ratio": round(verdict.ratio, 4),
                "low": round(verdict.ratio_low, 4),
                "high": round(verdict.ratio_high, 4),
                "verdict": verdict.direction,
            }
        result = generate(variant, request)
        cell["path"] = getattr(variant.pipe, "last_path", "pipeline")
        cell["forward_s"] = time_transformer_forward(variant, batch, config.guidance, runs=20, steps=config.steps)
        cell["per_step_s"] = result.per_step_s
        cell["weight_bytes"] = result.weight_bytes
        cell["transient_bytes"] = result.peak_memory_bytes - result.memory_before_bytes
        cell["peak_memory_bytes"] = cell["resident_bytes"] + cell["transient_bytes"]
        cell.update(image_quality(reference_images, result.images))
        if profile and device == "cuda":
            cell["profile"] = profile_step(variant, batch, config.guidance, config.steps)
    variant = None
    del variants, runners
    torch._dynamo.reset()
    free_memory()
    return setting


def bench_record(setting: dict, environment: dict, rounds: int) -> dict:
    """The setting's recipe cells as a `dit-demo bench` record (the benchmark tab's format): latency = median of the
    interleaved rounds with their range, ratios to this process's compiled bf16, peak = resident + transient."""
    cells = {n: c for n, c in setting["cells"].items() if n in RECIPE_ROWS and "latency" in c}
    base = cells.get("bf16")
    rows = []
    for c in cells.values():
        row = {
            "recipe": c["recipe"],
            "compile": "reduce-overhead",
            "batch": setting["batch"],
            "model": setting["model"],
            "kernel": c["kernel"],
            "capture": "step",
            "fuse": True,
            "compile_mode": c.get("compile_mode"),
            "warmup_s": c.get("warmup_s"),
            "latency_s": c["latency"]["median_s"],
            "latency_min_s": c["latency"]["min_s"],
            "latency_max_s": c["latency"]["max_s"],
            "per_step_s": c.get("per_step_s"),
            "forward_s": c.get("forward_s"),
            "peak_memory_bytes": c["peak_memory_bytes"],
            "memory_kind": "cuda_resident_after_warmup_plus_request_transient",
            "weight_bytes": c["weight_bytes"],
            "path": c.get("path"),
            "psnr_db": c.get("psnr_db"),
            "ssim": c.get("ssim"),
            "ok": True,
        }
        if base is not None:
            for key, value, reference in (
                ("latency", "latency_s", base["latency"]["median_s"]),
                ("peak_memory", "peak_memory_bytes", base["peak_memory_bytes"]),
            ):
                ratio = round(row[value] / reference, 4) if reference else None  # no CUDA allocator: no memory
                row[f"{key}_vs_bf16_same_mode"] = row[f"{key}_vs_bf16_best_compiled"] = ratio
            row["weight_bytes_vs_bf16"] = round(row["weight_bytes"] / base["weight_bytes"], 4)
        rows.append(row)
    config = {
        "model": setting["model"],
        "recipes": [r["recipe"] for r in rows],
        "batches": [setting["batch"]],
        "compile_modes": ["reduce-overhead"],
        "steps": setting["steps"],
        "guidance": setting["guidance"],
        "runs": rounds,
        "warmup_runs": 1,
        "interleaved": True,
        "tool": "bench/h200-w8a16/e2e.py",
    }
    return {"environment": environment, "config": config, "rows": rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument(
        "--setting",
        action="append",
        required=True,
        help=f"model:batch:deadline_s[:names] (repeatable; names comma-separated from {', '.join(VARIANTS)}, in the "
        "order to build them, bf16 first; default all)",
    )
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--device", default="cuda", help="cpu: a dry run of the plumbing (tiny-random model)")
    args = parser.parse_args()
    start = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    record = {"environment": environment(torch.device(args.device), num_processes=1), "settings": []}
    for spec in args.setting:
        model, batch, deadline, *rest = spec.split(":")
        names = rest[0].split(",") if rest else list(VARIANTS)
        if names[0] != "bf16" or any(name not in VARIANTS for name in names):
            parser.error(f"--setting {spec}: variants are {', '.join(VARIANTS)}, bf16 first")
        try:
            record["settings"].append(
                run_setting(model, int(batch), names, float(deadline), start, args.rounds, args.profile, args.device)
            )
        except Exception as exc:
            record["settings"].append({"model": model, "batch": int(batch), "error": f"{type(exc).__name__}: {exc}"})
            traceback.print_exc()
        (out / "results.json").write_text(json.dumps(record, indent=2, default=str), encoding="utf-8")
        setting = record["settings"][-1]
        if "cells" in setting:
            folder = out / f"{setting['model']}-b{setting['batch']}"
            folder.mkdir(exist_ok=True)
            table = bench_record(setting, record["environment"], args.rounds)
            (folder / "results.json").write_text(json.dumps(table, indent=2, default=str), encoding="utf-8")
        print(json.dumps(record["settings"][-1], indent=1, default=str)[:6000], flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
