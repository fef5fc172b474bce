"""Where does a digits sampling run spend its time on this CPU, fp32 vs `int8-dynamic`, and can int8 pay there?

Three measurements on the embedded digits DiT (25 DPM steps, guidance 4, one thread, interleaved rounds):

1. `torch.profiler` over one whole sampling run per recipe: self CPU time by op category (fp32 GEMMs, int8 GEMMs
   with their per-call activation quantization, attention, norms, elementwise, VAE convolutions, copies/layout) and
   the time outside any op (Python, module calls, the scheduler).
2. Every Linear shape the transformer runs (rows × in → out, rows as captured from a real step), fp32 `nn.Linear`
   vs a dynamic int8 Linear, interleaved calls: where int8 GEMMs pay by shape.
3. Whole sampling runs, interleaved: fp32, the `int8-dynamic` recipe, int8 only where (2) says it is faster, and
   int8 with Q/K/V fused into one GEMM (one activation quantization instead of three) — PSNR vs fp32 for each.

`python bench/cpu-int8/sampling_profile.py --out bench/cpu-int8/profile` writes profile.json and profile.md there.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
import warnings
from collections import defaultdict
from pathlib import Path

import torch

from dit_demo.engine.fast.fusion import fuse_qkv
from dit_demo.engine.generate import build_reference, build_variant, generate
from dit_demo.engine.machine import environment
from dit_demo.engine.metrics import psnr_values
from dit_demo.engine.model.sources import sibling_pipeline
from dit_demo.engine.quant.dynamic import quantize_dynamic_int8
from dit_demo.engine.quant.quantize import exclusion_patterns
from dit_demo.engine.request import SamplingRequest
from dit_demo.engine.threads import use_threads
from dit_demo.engine.timing import interleaved, machine_load, speed_verdict

# op names (namespace and leading underscores dropped) → category; anything else is "other ops"
INT8 = ("quantized::", "quantize_per", "fbgemm", "choose_qparams", "dequantize")
GEMM = {"addmm", "mm", "linear", "matmul"}
ATTENTION = ("scaled_dot_product", "softmax", "bmm", "baddbmm")
CONV = ("conv", "upsample")
ELEMENTWISE = {"add", "mul", "sub", "div", "gelu", "silu", "tanh", "exp", "sin", "cos", "pow", "clamp", "neg", "rsub",
               "sigmoid", "sqrt", "rsqrt", "where", "fill", "zero", "arange", "lerp", "addcmul", "abs", "round",
               "minimum", "maximum", "lt", "gt", "eq", "ne", "ge", "le", "mean", "sum", "var", "log",
               "erf"}  # fmt: skip
LAYOUT = {"t", "to", "view", "reshape", "permute", "transpose", "cat", "chunk", "split", "split_with_sizes", "clone",
          "copy", "contiguous", "empty", "empty_like", "empty_strided", "stack", "expand", "index", "slice", "select",
          "unsqueeze", "squeeze", "as_strided", "to_copy", "detach", "flatten", "unbind", "alias", "unflatten",
          "repeat", "repeat_interleave", "resize", "zeros", "ones", "full", "new_zeros", "new_empty", "lift_fresh",
          "item", "local_scalar_dense", "is_nonzero", "result_type", "broadcast_tensors"}  # fmt: skip


def category(op: str) -> str:
    if any(f in op for f in INT8):
        return "int8 GEMM + activation quantization"
    base = op.split("::")[-1].lstrip("_").rstrip("_")
    if base in GEMM:
        return "fp32 GEMM"
    if any(base.startswith(f) for f in ATTENTION):
        return "attention"
    if any(f in base for f in CONV):
        return "convolution (VAE)"
    if "norm" in base:
        return "normalization"
    if base in ELEMENTWISE:
        return "elementwise"
    if base in LAYOUT:
        return "copies / layout"
    return "other ops"


def profile_once(pipe, request: SamplingRequest) -> dict:
    """One whole sampling run under torch.profiler: self CPU ms and calls per category, wall ms, op names seen."""
    start = time.perf_counter()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        generate(pipe, request)
    wall_ms = (time.perf_counter() - start) * 1e3
    ms: dict[str, float] = defaultdict(float)
    calls: dict[str, int] = defaultdict(int)
    other: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        if event.key.startswith(("ProfilerStep", "## ")):
            continue
        label = category(event.key)
        ms[label] += event.self_cpu_time_total / 1e3
        calls[label] += event.count
        if label == "other ops":
            other[event.key] += event.self_cpu_time_total / 1e3
    return {"wall_ms": wall_ms, "ms": ms, "calls": calls, "other": other}


def profile_runs(pipes: dict, request: SamplingRequest, rounds: int) -> dict[str, dict]:
    """`rounds` profiled runs per pipeline, interleaved (after one warm run each); medians per category."""
    for pipe in pipes.values():
        generate(pipe, request)
    runs: dict[str, list[dict]] = {name: [] for name in pipes}
    for _ in range(rounds):
        for name, pipe in pipes.items():
            runs[name].append(profile_once(pipe, request))
    out = {}
    for name, done in runs.items():
        labels = sorted({label for run in done for label in run["ms"]})
        cats = {
            label: {"ms": round(statistics.median(r["ms"].get(label, 0.0) for r in done), 1),
                    "calls": done[0]["calls"].get(label, 0)}
            for label in labels
        }  # fmt: skip
        wall = statistics.median(r["wall_ms"] for r in done)
        in_ops = sum(c["ms"] for c in cats.values())
        others = sorted(done[0]["other"].items(), key=lambda kv: -kv[1])[:5]
        out[name] = {
            "wall_ms": round(wall, 1),
            "in_ops_ms": round(in_ops, 1),
            "outside_ops_ms": round(wall - in_ops, 1),
            "op_calls": sum(c["calls"] for c in cats.values()),
            "categories": cats,
            "largest_other_ops_ms": {k: round(v, 1) for k, v in others},
            "runs": rounds,
        }
    return out


def linear_shapes(pipe, request: SamplingRequest) -> dict[str, tuple[int, int, int]]:
    """{layer name: (rows, in, out)} as the transformer's Linear layers see them in a real sampling step."""
    shapes: dict[str, tuple[int, int, int]] = {}

    def record(name: str):
        def hook(module, args, output) -> None:  # returns None: the layer's output is left as it is
            shapes.setdefault(name, (args[0].numel() // module.in_features, module.in_features, module.out_features))

        return hook

    linears = [(n, m) for n, m in pipe.transformer.named_modules() if type(m) is torch.nn.Linear]
    hooks = [module.register_forward_hook(record(name)) for name, module in linears]
    try:
        generate(pipe, SamplingRequest.create(list(request.labels), seed=0, steps=1))
    finally:
        for hook in hooks:
            hook.remove()
    return shapes


def shape_timings(shapes: set[tuple[int, int, int]], rounds: int, calls: int) -> dict[str, dict]:
    """fp32 vs dynamic int8 Linear per (rows, in, out): ms per call, interleaved rounds of `calls` calls each."""
    out = {}
    for rows, n_in, n_out in sorted(shapes):
        torch.manual_seed(0)
        fp32 = torch.nn.Linear(n_in, n_out).eval()
        int8 = copy.deepcopy(fp32)
        holder = torch.nn.Sequential(int8)
        quantize_dynamic_int8(holder)
        x = torch.randn(rows, n_in)

        def many(layer, x=x):
            for _ in range(calls):
                layer(x)

        with torch.inference_mode():
            runners = {"fp32": lambda a=fp32: many(a), "int8": lambda b=holder[0]: many(b)}
            spreads = interleaved(runners, rounds=rounds)
        verdict = speed_verdict(spreads["fp32"], spreads["int8"])
        out[f"{rows}x{n_in}->{n_out}"] = {
            "rows": rows,
            "in": n_in,
            "out": n_out,
            "fp32_us": round(spreads["fp32"].median / calls * 1e6, 2),
            "int8_us": round(spreads["int8"].median / calls * 1e6, 2),
            "ratio": round(verdict.ratio, 3),
            "verdict": verdict.direction,
            "spread": f"{verdict.ratio_low:.2f}–{verdict.ratio_high:.2f}",
        }
    return out


def candidates(reference, shapes: dict, timings: dict) -> dict:
    """The int8 variants to time against fp32 (pipelines beside the reference's)."""
    built = {"fp32": reference.pipe, "int8-dynamic": build_variant(reference, "int8-dynamic").pipe}
    patterns = exclusion_patterns(reference.pipe.transformer)
    # "pays": the shape's int8 median is below fp32's (the strict verdict is given per shape in the table; on a
    # shared machine it rarely separates calls this short, so the whole-run verdict below is what decides)
    paying = [n for n, (r, i, o) in shapes.items() if timings[f"{r}x{i}->{o}"]["ratio"] < 1.0]
    if paying:
        selective = copy.deepcopy(reference.pipe.transformer)
        quantized = quantize_dynamic_int8(selective, exclude=patterns, include=paying)
        label = f"int8 only where its median beats fp32 ({len(quantized)} of {len(shapes)} Linear layers)"
        built[label] = sibling_pipeline(reference.pipe, selective)
    fused = copy.deepcopy(reference.pipe.transformer)
    fuse_qkv(fused)
    quantize_dynamic_int8(fused, exclude=patterns)
    built["int8-dynamic + fused QKV"] = sibling_pipeline(reference.pipe, fused)
    return built


def sampling_times(pipes: dict, request: SamplingRequest, rounds: int) -> dict[str, dict]:
    """Whole sampling runs, interleaved; PSNR of each candidate's images vs fp32's."""
    base = generate(pipes["fp32"], request).images
    psnr = {n: statistics.mean(psnr_values(generate(p, request).images, base)) for n, p in pipes.items() if n != "fp32"}
    spreads = interleaved({n: (lambda p=p: generate(p, request)) for n, p in pipes.items()}, rounds=rounds)
    rows = {}
    for name, spread in spreads.items():
        row = {**spread.to_dict(), "psnr_db": round(psnr[name], 2) if name in psnr else None}
        if name != "fp32":
            verdict = speed_verdict(spreads["fp32"], spread)
            row.update(verdict.__dict__, phrase=verdict.phrase("fp32"))
        rows[name] = row
    return rows


def markdown(record: dict) -> str:
    env = record["environment"]
    lines = [
        "# Digits sampling on the CPU: where the time goes (fp32 vs int8-dynamic)",
        "",
        f"Machine: {env.get('machine')}, torch {env.get('torch')}, {record['threads']} thread; "
        f"{record['steps']} steps, guidance {record['guidance']}; load average {record['load_before']} → "
        f"{record['load_after']} (1 min, 2 cores, shared). `python bench/cpu-int8/sampling_profile.py`.",
    ]
    for batch, part in record["batches"].items():
        runs = next(iter(part["profile"].values()))["runs"]
        lines += ["", f"## Batch {batch}: sampling under torch.profiler (self CPU ms, median of {runs} runs)", ""]
        names = list(part["profile"])
        lines += ["| category | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
        cats = sorted({c for p in part["profile"].values() for c in p["categories"]})
        for cat in cats:
            cells = []
            for name in names:
                entry = part["profile"][name]["categories"].get(cat)
                cells.append(f"{entry['ms']:.0f} ({entry['calls']} calls)" if entry else "—")
            lines.append(f"| {cat} | " + " | ".join(cells) + " |")
        for key, label in (
            ("in_ops_ms", "all ops"),
            ("outside_ops_ms", "outside ops (Python, module calls, scheduler, and the profiler's own cost)"),
            ("wall_ms", "wall, profiled"),
        ):
            lines.append(f"| **{label}** | " + " | ".join(f"{part['profile'][n][key]:.0f}" for n in names) + " |")
        unprofiled = " | ".join(f"{part['sampling'][n]['median_s'] * 1e3:.0f}" for n in names)
        lines.append(f"| **wall, not profiled (median of the timed runs below)** | {unprofiled} |")
        gemm = {n: sum(v["ms"] for k, v in part["profile"][n]["categories"].items() if "GEMM" in k) for n in names}
        share = " | ".join(f"{gemm[n] / part['profile'][n]['in_ops_ms']:.0%}" for n in names)
        lines.append(f"| **GEMMs' share of the time in ops** | {share} |")
        lines += ["", f"Linear shapes (rows × in → out) at batch {batch}: µs per call, interleaved", ""]
        lines += [
            "| shape | layers | fp32 µs | int8 µs | × fp32 | range | verdict |",
            "|---|---:|---:|---:|---:|---|---|",
        ]
        for shape, row in part["shapes"].items():
            lines.append(
                f"| {shape} | {row['layers']} | {row['fp32_us']} | {row['int8_us']} | {row['ratio']:.2f} | "
                f"{row['spread']} | {row['verdict']} |"
            )
        lines += ["", f"Whole sampling runs at batch {batch}, interleaved ({record['rounds']} rounds)", ""]
        lines += [
            "| variant | median s | min–max s | × fp32 | PSNR vs fp32 | verdict |",
            "|---|---:|---|---:|---:|---|",
        ]
        for name, row in part["sampling"].items():
            ratio = f"{row['ratio']:.2f}" if "ratio" in row else "—"
            psnr = f"{row['psnr_db']:.1f} dB" if row["psnr_db"] is not None else "—"
            lines.append(
                f"| {name} | {row['median_s']:.3f} | {row['min_s']:.3f}–{row['max_s']:.3f} | {ratio} | {psnr} | "
                f"{row.get('phrase', 'reference')} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--batches", default="1,4")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--guidance", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile-rounds", type=int, default=3)
    parser.add_argument("--shape-rounds", type=int, default=7)
    parser.add_argument("--shape-calls", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="bench/cpu-int8/profile")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    record = {"model": args.model, "steps": args.steps, "guidance": args.guidance, "rounds": args.rounds,
              "threads": args.threads, "load_before": machine_load(), "batches": {}}  # fmt: skip
    with use_threads(args.threads):
        reference = build_reference(args.model, device="cpu")
        record["environment"] = environment(torch.device("cpu"), 1)
        labels = sorted(reference.id2label)
        for batch in [int(b) for b in args.batches.split(",")]:
            request = SamplingRequest.create(
                [labels[i % len(labels)] for i in range(batch)], seed=0, steps=args.steps,
                guidance_scale=args.guidance,
            )  # fmt: skip
            shapes = linear_shapes(reference.pipe, request)
            timings = shape_timings(set(shapes.values()), args.shape_rounds, args.shape_calls)
            for shape in timings.values():
                shape["layers"] = sum(1 for s in shapes.values() if s == (shape["rows"], shape["in"], shape["out"]))
            pipes = candidates(reference, shapes, timings)
            profiles = profile_runs({n: pipes[n] for n in ("fp32", "int8-dynamic")}, request, args.profile_rounds)
            record["batches"][str(batch)] = {
                "profile": profiles,
                "shapes": timings,
                "sampling": sampling_times(pipes, request, args.rounds),
            }
            print(f"batch {batch} done, load {machine_load()}", flush=True)
    record["load_after"] = machine_load()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "profile.json").write_text(json.dumps(record, indent=2) + "\n")
    (out / "profile.md").write_text(markdown(record))
    print(markdown(record))


if __name__ == "__main__":
    main()
