"""Ahead-of-time packages against torch.compile, as a fresh process sees them (bench/h200-aot/run.sh drives it).

Each phase runs in its own process, so "fresh" means fresh, and appends one JSON record per measurement to
`OUT/records.jsonl` (`python -m dit_demo.reports.bench_aot_table` turns them into results.json and a table):

- `build`:  build the variant, export + AOTInductor-compile its fast transformer forward into OUT/<recipe>.pt2.
- `cold`:   torch.compile (reduce-overhead → whole-step CUDA graphs) in a fresh process with empty caches: the first
            request compiles; its compile artifacts are saved to OUT/<recipe>-cache.bin for the `cache` phase.
- `aot`:    a fresh process loads the package and serves: load time, first request, steady latency.
- `cache`:  a fresh process with empty caches loads the saved compile artifacts, then torch.compile serves.
- `steady`: one process, every recipe as AOT package (with and without step graphs) and as torch.compile, requests
            interleaved round by round; median + spread, forward ms from CUDA events, PSNR/SSIM against eager.

Times are wall-clock seconds around `generate` (which syncs the device); `T_LAUNCH` (the shell's clock when it
started Python) lets a record include interpreter start and imports.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch

from dit_demo.compare import image_quality
from dit_demo.engine.device import sync
from dit_demo.engine.fast import aot
from dit_demo.engine.fast.compile import compile_variant
from dit_demo.engine.fast.compile_cache import load_compile_cache, save_compile_cache
from dit_demo.engine.generate import Variant, build_reference, build_variant, generate
from dit_demo.engine.machine import environment
from dit_demo.engine.request import SamplingRequest
from dit_demo.reports.bench_timing import time_transformer_forward

IMPORTED = time.time()


def _since_launch() -> float | None:
    launch = os.environ.get("T_LAUNCH")
    return round(IMPORTED - float(launch), 3) if launch else None


def request(args, seed: int = 0) -> SamplingRequest:
    return SamplingRequest(labels=(207,) * args.batch, seeds=tuple(range(seed, seed + args.batch)),
                           steps=args.steps, guidance_scale=args.guidance)  # fmt: skip


def record(args, phase: str, recipe: str, **values) -> dict:
    data = {"phase": phase, "recipe": recipe, "model": args.model, "batch": args.batch, **values}
    data = {k: round(v, 5) if isinstance(v, float) else v for k, v in data.items()}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "records.jsonl").open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(data) + "\n")
    print("RECORD", json.dumps(data), flush=True)
    return data


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def build_recipe(args, recipe: str) -> tuple[Variant, float]:
    """Reference + recipe on the GPU (fp8-a8 calibrates here), timed."""

    def make() -> Variant:
        reference = build_reference(args.model, device=args.device)
        return build_variant(reference, recipe)

    return timed(make)


def steady_latency(variant: Variant, args, runs: int) -> list[float]:
    return [generate(variant, request(args)).latency_s for _ in range(runs)]


def phase_build(args) -> None:
    for recipe in args.recipes:
        variant, build_s = build_recipe(args, recipe)
        path = Path(args.out) / f"{recipe}{'-execstack' if args.keep_execstack else ''}.pt2"
        info = aot.build_package(variant, path, batch=args.batch, guidance_scale=args.guidance,
                                 clear_stack=not args.keep_execstack, configs=args.configs)  # fmt: skip
        record(args, "build", recipe, variant_build_s=build_s, export_s=info.export_s, compile_s=info.compile_s,
               package_bytes=info.package_bytes, execstack_kept=args.keep_execstack, label=info.label,
               configs=args.configs)  # fmt: skip


def _first_and_steady(variant: Variant, args) -> dict:
    first = generate(variant, request(args))
    second = generate(variant, request(args, seed=1))
    steady = steady_latency(variant, args, args.runs)
    return {
        "first_request_s": first.latency_s,
        "second_request_s": second.latency_s,
        "steady_s": statistics.median(steady),
        "steady_min_s": min(steady),
        "steady_max_s": max(steady),
        "path": getattr(variant.pipe, "last_path", "pipeline"),
        "compile_mode": variant.compile_mode,
        "peak_memory_bytes": first.peak_memory_bytes,
    }


def phase_cold(args) -> None:
    for recipe in args.recipes:
        variant, build_s = build_recipe(args, recipe)
        variant = compile_variant(variant, "reduce-overhead")
        values = _first_and_steady(variant, args)
        cache_bytes = save_compile_cache(Path(args.out) / f"{recipe}-cache.bin")
        record(args, "cold", recipe, since_launch_s=_since_launch(), variant_build_s=build_s,
               cache_bytes=cache_bytes, **values)  # fmt: skip


def phase_aot(args) -> None:
    for recipe in args.recipes:
        variant, build_s = build_recipe(args, recipe)
        variant, fast_s = timed(lambda: aot.fast_form(variant))  # noqa: B023
        start = time.perf_counter()
        variant = aot.load_package(variant, Path(args.out) / f"{recipe}.pt2", warm=False)
        load_s = time.perf_counter() - start
        _, warm_s = timed(lambda: variant.pipe.sampler.forward(*aot.example_inputs(variant, batch=args.batch,  # noqa: B023
                                                                                   cfg=args.guidance > 1)))  # fmt: skip
        sync(variant.device)
        values = _first_and_steady(variant, args)
        record(args, "aot", recipe, since_launch_s=_since_launch(), variant_build_s=build_s, fast_form_s=fast_s,
               load_s=load_s, kernel_warm_s=warm_s, **values)  # fmt: skip


def phase_cache(args) -> None:
    for recipe in args.recipes:
        variant, build_s = build_recipe(args, recipe)
        loaded, cache_load_s = timed(lambda: load_compile_cache(Path(args.out) / f"{recipe}-cache.bin"))  # noqa: B023
        variant = compile_variant(variant, "reduce-overhead")
        values = _first_and_steady(variant, args)
        record(args, "cache", recipe, since_launch_s=_since_launch(), variant_build_s=build_s,
               cache_load_s=cache_load_s, cache_bytes=loaded, **values)  # fmt: skip


def _siblings(args, recipe: str) -> dict[str, Variant]:
    variant, _ = build_recipe(args, recipe)
    eager = variant
    cells = {"eager": eager}
    cache = Path(args.out) / f"{recipe}-cache.bin"
    if cache.exists():
        load_compile_cache(cache)
    cells["compile"] = compile_variant(eager, "reduce-overhead", inplace=False)
    package = Path(args.out) / f"{recipe}.pt2"
    if package.exists():
        cells["aot"] = aot.load_package(aot.fast_form(eager, inplace=False), package)
        cells["aot-nograph"] = aot.load_package(aot.fast_form(eager, inplace=False), package, graphs=False)
    return cells


def phase_steady(args) -> None:
    cells = {(recipe, kind): v for recipe in args.recipes for kind, v in _siblings(args, recipe).items()}
    images, paths, warm = {}, {}, {}
    for key, variant in cells.items():  # first requests (compile/capture), kept out of the timing
        result, warm[key] = timed(lambda: generate(variant, request(args)))  # noqa: B023
        images[key] = result.images
        paths[key] = getattr(variant.pipe, "last_path", "pipeline")
    times: dict = {key: [] for key in cells if key[1] != "eager"}
    for _ in range(args.runs):  # interleaved: every cell once per round
        for key in times:
            times[key].append(generate(cells[key], request(args)).latency_s)
    reference = times.get(("bf16", "compile"))
    base = statistics.median(reference) if reference else None
    for key, values in times.items():
        recipe, kind = key
        forward_s = time_transformer_forward(cells[key], args.batch, args.guidance, runs=20, steps=args.steps)
        median = statistics.median(values)
        quality = image_quality(images[(recipe, "eager")], images[key])
        record(args, "steady", recipe, kind=kind, steady_s=median, steady_min_s=min(values),
               steady_max_s=max(values), runs=len(values), ratio_to_bf16_compile=median / base if base else None,
               forward_ms=forward_s * 1000, first_in_process_s=warm[key], path=paths[key],
               compile_mode=cells[key].compile_mode, psnr_vs_eager_db=quality["psnr_db"],
               ssim_vs_eager=quality["ssim"])  # fmt: skip


PHASES = {"build": phase_build, "cold": phase_cold, "aot": phase_aot, "cache": phase_cache, "steady": phase_steady}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("phase", choices=sorted(PHASES))
    parser.add_argument("--model", default="dit-xl-2-256-random")
    parser.add_argument("--recipes", default="bf16,int8,fp8-a8", type=lambda s: s.split(","))
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--guidance", type=float, default=4.0)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--device", default=None)
    parser.add_argument("--keep-execstack", action="store_true", help="build: keep the .so's executable-stack flag")
    parser.add_argument("--configs", default=aot.DEFAULT_CONFIGS, choices=sorted(aot.INDUCTOR_CONFIGS))
    parser.add_argument("--out", default="bench-aot-out")
    args = parser.parse_args(argv)
    if args.phase == "build" and not Path(args.out, "environment.json").exists():
        device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        Path(args.out).mkdir(parents=True, exist_ok=True)
        Path(args.out, "environment.json").write_text(json.dumps(environment(device, 1), indent=1), encoding="utf-8")
    PHASES[args.phase](args)


if __name__ == "__main__":
    main()
