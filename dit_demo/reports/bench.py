"""`python -m dit_demo.reports.bench`: honest speed / memory numbers for every recipe, as ratios to bf16 in the same run.

Method (see DESIGN.md §4): one process, each variant built fresh and alone on the device (so peak memory is its
own), warm-up first (compile, autotune, CUDA-graph capture), `torch.cuda.synchronize()`, median of ≥ 5 timed
end-to-end runs through the one generation path, transformer-forward latency by CUDA events, peak memory after
`reset_peak_memory_stats()`, weight bytes, PSNR vs the bf16 eager images of the same seeds.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

import torch

from dit_demo.engine.device import default_device
from dit_demo.engine.fast import COMPILE_MODES, LINEAR_KERNELS, compile_variant, warm_up
from dit_demo.engine.generate import Variant, build_reference, generate
from dit_demo.engine.machine import environment
from dit_demo.engine.metrics import finite_or_none, psnr
from dit_demo.engine.quantize import REFERENCE_RECIPE, CalibrationConfig, get_recipe, quantize_pipeline
from dit_demo.engine.request import SamplingRequest
from dit_demo.reports.render import scatter_chart


def device_label(env: dict) -> str:
    return env["machine"]


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _free() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def build_fresh(model: str, recipe: str, device: str | None, calibration: CalibrationConfig) -> Variant:
    """A variant alone on the device: the reference is loaded and quantized in place, never kept beside it."""
    variant = build_reference(model, device=device)
    variant.pipe.set_progress_bar_config(disable=True)  # keep logs readable; timing is unaffected
    if recipe != REFERENCE_RECIPE:  # the reference's own report already says bf16, weights before = after
        variant.report = quantize_pipeline(variant.pipe, recipe, calibration=calibration)
        variant.recipe = recipe
    return variant


def forward_inputs(variant: Variant, batch: int, guidance_scale: float) -> dict:
    """One transformer call's inputs with the request's real shapes (CFG doubles the rows)."""
    transformer = variant.pipe.transformer
    config = transformer.config
    rows = batch * (2 if guidance_scale > 1 else 1)
    device, dtype = transformer.device, transformer.dtype
    generator = torch.Generator("cpu").manual_seed(0)
    latents = torch.randn(rows, config.in_channels, config.sample_size, config.sample_size, generator=generator)
    return {
        "hidden_states": latents.to(device=device, dtype=dtype),
        "timestep": torch.full((rows,), 500, device=device, dtype=torch.long),
        "class_labels": torch.arange(rows, device=device) % 1000,
    }


def _mark_step() -> None:
    if hasattr(torch.compiler, "cudagraph_mark_step_begin"):
        torch.compiler.cudagraph_mark_step_begin()


def time_transformer_forward(variant: Variant, batch: int, guidance_scale: float, runs: int = 20) -> float:
    """Median seconds of one transformer forward with the request's real shapes (CFG doubles the rows)."""
    pipe = variant.pipe
    inputs = forward_inputs(variant, batch, guidance_scale)
    device = pipe.transformer.device
    times = []
    with torch.no_grad():
        for i in range(runs + 3):
            _mark_step()
            if device.type == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                pipe.transformer(**inputs)
                end.record()
                end.synchronize()
                elapsed = start.elapsed_time(end) / 1000
            else:
                t0 = time.perf_counter()
                pipe.transformer(**inputs)
                elapsed = time.perf_counter() - t0
            if i >= 3:
                times.append(elapsed)
    return statistics.median(times)


def profile_transformer_forward(variant: Variant, batch: int, guidance_scale: float, runs: int, path: Path) -> list:
    """Where a forward's device time goes: torch.profiler over `runs` forwards, the kernel table written to `path`,
    the top kernels (name, share of device time, µs per forward) returned for results.json."""
    from torch.profiler import ProfilerActivity, profile

    inputs = forward_inputs(variant, batch, guidance_scale)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with torch.no_grad(), profile(activities=activities) as prof:
        for _ in range(runs):
            _mark_step()
            variant.pipe.transformer(**inputs)
        _sync()
    key = "self_device_time_total" if torch.cuda.is_available() else "self_cpu_time_total"
    events = [e for e in prof.key_averages() if getattr(e, key) > 0]
    events.sort(key=lambda e: getattr(e, key), reverse=True)
    total = sum(getattr(e, key) for e in events) or 1.0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(prof.key_averages().table(sort_by=key, row_limit=40, max_name_column_width=90), encoding="utf-8")
    return [
        {
            "name": e.key[:120],
            "share": round(getattr(e, key) / total, 4),
            "us_per_forward": round(getattr(e, key) / runs, 1),
            "calls_per_forward": round(e.count / runs, 1),
        }
        for e in events[:12]
    ]


def bench_one(
    model: str,
    recipe: str,
    compile_mode: str,
    batch: int,
    args: argparse.Namespace,
    reference_images: list | None,
    kernel: str = "auto",
) -> tuple[dict, list | None]:
    """Build, warm up, time and measure one (recipe, compile mode, batch, int8 kernel) cell."""
    row: dict = {"recipe": recipe, "compile": compile_mode, "batch": batch, "model": model, "kernel": kernel}
    labels = [(7 * i + 1) % 1000 for i in range(batch)]
    calibration = CalibrationConfig(steps=args.steps, guidance_scale=args.guidance)
    variant = None
    try:
        start = time.perf_counter()
        variant = build_fresh(model, recipe, args.device, calibration)
        _sync()
        row["build_s"] = time.perf_counter() - start
        if compile_mode != "none":
            compile_variant(
                variant, compile_mode, fast_linears=not args.no_fast_linears, kernel=kernel, fullgraph=args.fullgraph
            )
        row["compile_mode"] = variant.compile_mode
        row["memory_after_load_bytes"] = torch.cuda.memory_allocated() if torch.cuda.is_available() else None

        sampling = SamplingRequest.create(
            labels, seed=args.seed, steps=args.steps, guidance_scale=args.guidance, max_batch=max(batch, 1)
        )

        def request():
            return generate(variant, sampling)

        row["warmup_s"] = warm_up(variant, request, runs=args.warmup_runs)
        results = [request() for _ in range(args.runs)]
        latencies = [r.latency_s for r in results]
        row.update(
            latency_s=statistics.median(latencies),
            latency_min_s=min(latencies),
            latency_max_s=max(latencies),
            per_step_s=statistics.median(r.per_step_s for r in results),
            decode_s=statistics.median(r.decode_s for r in results),
            peak_memory_bytes=max(r.peak_memory_bytes for r in results),
            memory_kind=results[0].memory_kind,
            weight_bytes=results[0].weight_bytes,
            quantize_s=variant.report.quantize_s,
            calibrate_s=variant.report.calibrate_s,
            dtype=results[0].dtype,
        )
        row["forward_s"] = time_transformer_forward(variant, batch, args.guidance, runs=args.forward_runs)
        if args.profile:
            name = f"profile-b{batch}-{recipe}-{variant.compile_mode}.txt".replace("+", "-")
            row["profile_file"] = name
            row["profile_top"] = profile_transformer_forward(
                variant, batch, args.guidance, args.profile, Path(args.out) / name
            )
        images = results[-1].images
        if reference_images is None:
            reference_images = images
        row["psnr_vs_bf16_db"] = finite_or_none(psnr(reference_images, images))
        row["ok"] = True
    except Exception as exc:  # one failing cell (fp8 kernel build, OOM, compile error) must not lose the others
        row["ok"] = False
        row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
        traceback.print_exc()
    finally:
        variant = None  # drop the last reference before freeing device memory
        torch._dynamo.reset()
        _free()
    return row, reference_images


def add_ratios(rows: list[dict]) -> None:
    """Every ratio is to a bf16 row of the same run and batch: eager, same compile mode, and best compiled."""
    for row in rows:
        same_batch = [r for r in rows if r["batch"] == row["batch"] and r["recipe"] == REFERENCE_RECIPE and r["ok"]]
        eager = next((r for r in same_batch if r["compile"] == "none"), None)
        same_mode = next((r for r in same_batch if r["compile"] == row["compile"]), None)
        compiled = [r for r in same_batch if r["compile"] != "none"]
        best = min(compiled, key=lambda r: r["latency_s"]) if compiled else None
        if not row["ok"]:
            continue
        for name, base in (("vs_bf16_eager", eager), ("vs_bf16_same_mode", same_mode), ("vs_bf16_best_compiled", best)):
            if base:
                row[f"latency_{name}"] = round(row["latency_s"] / base["latency_s"], 4)
                row[f"peak_memory_{name}"] = round(row["peak_memory_bytes"] / base["peak_memory_bytes"], 4)
        if same_mode:
            row["forward_vs_bf16_same_mode"] = round(row["forward_s"] / same_mode["forward_s"], 4)
            row["weight_bytes_vs_bf16"] = round(row["weight_bytes"] / same_mode["weight_bytes"], 4)


def _fmt(value, spec: str, scale: float = 1.0) -> str:
    return "—" if value is None else format(value * scale, spec)


def markdown(rows: list[dict], env: dict, args: argparse.Namespace) -> str:
    """The committed table: absolute numbers plus ratios to bf16 of the same run."""
    lines = [
        f"Model `{args.model}`, {args.steps} DPM-Solver steps, guidance {args.guidance}, median of {args.runs} runs "
        f"after {args.warmup_runs} warm-up runs. Device: {device_label(env)}; torch {env['torch']}, diffusers "
        f"{env['diffusers']}, optimum-quanto {env['optimum_quanto']}; {env['date']}.",
        "",
        "| batch | recipe | compile | end-to-end s | × bf16 eager | × bf16 same mode | × best bf16 compiled "
        "| forward ms | ms / step | peak GB | × bf16 peak | weights MB | PSNR vs bf16 dB | warm-up s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if not r["ok"]:
            lines.append(
                f"| {r['batch']} | {r['recipe']} | {r['compile']} | failed: {r['error'][:80]} | | | | | | | | | | |"
            )
            continue
        psnr_text = "identical" if r.get("psnr_vs_bf16_db") is None else f"{r['psnr_vs_bf16_db']:.1f}"
        lines.append(
            f"| {r['batch']} | {r['recipe']} | {r.get('compile_mode', r['compile'])} | {r['latency_s']:.3f} "
            f"| {_fmt(r.get('latency_vs_bf16_eager'), '.2f')} | {_fmt(r.get('latency_vs_bf16_same_mode'), '.2f')} "
            f"| {_fmt(r.get('latency_vs_bf16_best_compiled'), '.2f')} | {r['forward_s'] * 1000:.2f} "
            f"| {r['per_step_s'] * 1000:.1f} | {r['peak_memory_bytes'] / 1e9:.2f} "
            f"| {_fmt(r.get('peak_memory_vs_bf16_same_mode'), '.2f')} | {r['weight_bytes'] / 1e6:.1f} "
            f"| {psnr_text} | {r['warmup_s']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def chart(rows: list[dict], path: Path, title: str) -> None:
    """Latency vs peak memory, one labelled point per (recipe, compile mode, batch)."""
    points = [
        {
            "memory_gb": r["peak_memory_bytes"] / 1e9,
            "latency_s": r["latency_s"],
            "label": f"{r['recipe']} {r['compile']} b{r['batch']}",
        }
        for r in rows
        if r["ok"]
    ]
    if points:
        scatter_chart(
            points,
            x="memory_gb",
            y="latency_s",
            label="label",
            title=title,
            x_label="peak memory (GB)",
            y_label="end-to-end latency (s)",
            size=(900, 560),
        ).save(path)


def parse_list(text: str, cast=str) -> list:
    return [cast(item.strip()) for item in text.split(",") if item.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dit_demo.reports.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", default="dit-xl-2-256-random")
    parser.add_argument("--recipes", default="bf16,int8,int8-a8")
    parser.add_argument("--batch", default="1")
    parser.add_argument(
        "--compile", default="none,reduce-overhead", help=f"comma-separated: {', '.join(COMPILE_MODES)}"
    )
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--guidance", type=float, default=4.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup-runs", type=int, default=2)
    parser.add_argument("--forward-runs", type=int, default=20)
    parser.add_argument("--device", default=None)
    parser.add_argument(
        "--no-fast-linears", action="store_true", help="compile quanto's own modules instead of swapping in Int8Linear"
    )
    parser.add_argument(
        "--kernels",
        default="auto",
        help="comma-separated int8 linear kernels for the compiled int8 cells "
        f"({', '.join(LINEAR_KERNELS)}; auto = plain torch ops, the measured H100 winner): one cell each",
    )
    parser.add_argument(
        "--eager-recipes",
        default="all",
        help="comma-separated recipes that also get an eager (compile none) cell; bf16 always does (default: all)",
    )
    parser.add_argument("--fullgraph", action="store_true", help="fail instead of allowing graph breaks")
    parser.add_argument(
        "--profile", type=int, default=0, metavar="N", help="also profile N forwards per cell (kernel tables in --out)"
    )
    parser.add_argument("--out", default="bench-out")
    return parser


def run(args: argparse.Namespace) -> dict:
    recipes, batches = parse_list(args.recipes), parse_list(args.batch, int)
    modes, kernel_choices = parse_list(args.compile), parse_list(args.kernels)
    eager_recipes = None if args.eager_recipes == "all" else set(parse_list(args.eager_recipes))
    for kernel in kernel_choices:
        if kernel not in LINEAR_KERNELS:
            raise SystemExit(f"error: unknown kernel {kernel!r}; choose from {', '.join(LINEAR_KERNELS)}")
    for recipe in recipes:
        get_recipe(recipe)
    for mode in modes:
        if mode not in COMPILE_MODES:
            raise SystemExit(f"error: unknown compile mode {mode!r}; choose from {', '.join(COMPILE_MODES)}")
    if REFERENCE_RECIPE not in recipes or "none" not in modes:
        raise SystemExit("error: the bf16 eager baseline must be part of the run (ratios are to it)")
    recipes = [REFERENCE_RECIPE] + [r for r in recipes if r != REFERENCE_RECIPE]
    modes = ["none"] + [m for m in modes if m != "none"]
    env = environment(torch.device(args.device) if args.device else default_device(), num_processes=1)
    rows: list[dict] = []
    record, table = {}, ""
    for batch in batches:
        reference_images = None
        for mode in modes:
            for recipe in recipes:
                if mode == "none" and recipe != REFERENCE_RECIPE and eager_recipes is not None:
                    if recipe not in eager_recipes:
                        continue
                # Kernels only differ for compiled int8 layers: bf16 and eager quanto cells run once.
                several = mode != "none" and recipe != REFERENCE_RECIPE and not args.no_fast_linears
                for kernel in kernel_choices if several else kernel_choices[:1]:
                    print(f"[bench] batch {batch} {recipe} compile={mode} kernel={kernel} ...", flush=True)
                    row, reference_images = bench_one(args.model, recipe, mode, batch, args, reference_images, kernel)
                    rows.append(row)
                    status = (
                        f"{row['latency_s']:.3f} s, fwd {row['forward_s'] * 1e3:.2f} ms, "
                        f"{row['peak_memory_bytes'] / 1e9:.2f} GB"
                        if row["ok"]
                        else row["error"]
                    )
                    print(f"[bench]   -> {status}", flush=True)
                    record, table = write_outputs(rows, env, args)  # after every cell: a timeout keeps what ran
    print(table, flush=True)
    return record


def write_outputs(rows: list[dict], env: dict, args: argparse.Namespace) -> tuple[dict, str]:
    """results.json + results.md + latency_vs_memory.png in --out, with ratios recomputed over all rows."""
    add_ratios(rows)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    record = {"environment": env, "config": vars(args), "rows": rows}
    (out / "results.json").write_text(json.dumps(record, indent=2, default=str), encoding="utf-8")
    table = markdown(rows, env, args)
    (out / "results.md").write_text(table, encoding="utf-8")
    chart(rows, out / "latency_vs_memory.png", f"{args.model} on {device_label(env)}")
    return record, table


def main(argv: Sequence[str] | None = None) -> int:
    run(build_parser().parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
