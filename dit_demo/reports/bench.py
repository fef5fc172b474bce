"""Honest speed / memory numbers for every recipe, as ratios to bf16 in the same run (`dit-demo bench`).

Method (bench/README.md states it with each table): one process, each variant built fresh and alone on the device
(so peak memory is its own), warm-up first (compile, autotune, CUDA-graph capture), a device sync, median of ≥ 5
timed end-to-end runs through the one generation path, transformer-forward latency by CUDA events, peak memory
after a reset, weight bytes, and quality against the bf16 eager images of the same seeds through
`dit_demo.compare.image_quality`.

Each row's quality keys are the vocabulary's `psnr_db` and `ssim`. results.json files written before the rename
(the committed `bench/*/results.json`) call PSNR `psnr_vs_bf16_db`; `row_psnr_db` and therefore `markdown` and
`markdown_from_record` read both, so those files still render.
"""

from __future__ import annotations

import json
import statistics
import time
import traceback
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from dit_demo.compare import image_quality
from dit_demo.engine.device import default_device, free_memory, memory_in_use, sync
from dit_demo.engine.fast.compile import CAPTURE_MODES, COMPILE_MODES, LINEAR_KERNELS, compile_variant, warm_up
from dit_demo.engine.generate import Variant, build_reference, build_variant, generate
from dit_demo.engine.machine import environment
from dit_demo.engine.quant.quantize import CalibrationConfig
from dit_demo.engine.quant.recipes import REFERENCE_RECIPE, get_recipe
from dit_demo.engine.request import SamplingRequest
from dit_demo.errors import InvalidRequestError
from dit_demo.metrics import METRICS, canonical
from dit_demo.reports.bench_timing import profile_transformer_forward, time_transformer_forward
from dit_demo.reports.charts import scatter_chart
from dit_demo.reports.tables import markdown_table
from dit_demo.units import format_bytes


@dataclass(frozen=True)
class BenchConfig:
    """What to measure. Checked on construction; the bf16 recipe and the eager mode are moved to the front (every
    ratio is to the bf16 eager row of the same batch, so it runs first)."""

    model: str = "dit-xl-2-256-random"
    recipes: tuple[str, ...] = ("bf16", "int8", "int8-a8")
    batches: tuple[int, ...] = (1,)
    compile_modes: tuple[str, ...] = ("none", "reduce-overhead")
    kernels: tuple[str, ...] = ("auto",)  # int8 linear kernels of the compiled int8 cells: one cell each
    captures: tuple[str, ...] = ("auto",)  # compiled cells: what CUDA graphs capture (engine.fast.CAPTURE_MODES)
    fuse: tuple[bool | None, ...] = (None,)  # compiled cells: fused QKV off / on / None = compile_variant's default
    eager_recipes: tuple[str, ...] | None = None  # recipes that also get an eager cell (None: all; bf16 always)
    steps: int = 25
    guidance: float = 4.0
    seed: int = 0
    runs: int = 5
    warmup_runs: int = 2
    forward_runs: int = 20
    device: str | None = None
    fast_linears: bool = True  # False: compile quanto's own modules instead of swapping in Int8Linear
    fullgraph: bool = False
    profile: int = 0  # also profile this many forwards per cell (kernel tables in `out`)
    out: str = "bench-out"

    def __post_init__(self) -> None:
        for kernel in self.kernels:
            if kernel not in LINEAR_KERNELS:
                raise InvalidRequestError(f"unknown kernel {kernel!r}; choose from {', '.join(LINEAR_KERNELS)}")
        for recipe in self.recipes:
            get_recipe(recipe)
        for mode in self.compile_modes:
            if mode not in COMPILE_MODES:
                raise InvalidRequestError(f"unknown compile mode {mode!r}; choose from {', '.join(COMPILE_MODES)}")
        if REFERENCE_RECIPE not in self.recipes or "none" not in self.compile_modes:
            raise InvalidRequestError("the bf16 eager baseline must be part of the run (ratios are to it)")
        for capture in self.captures:
            if capture not in CAPTURE_MODES:
                raise InvalidRequestError(f"unknown capture {capture!r}; choose from {', '.join(CAPTURE_MODES)}")
        if not self.batches or not self.kernels or not self.captures or not self.fuse:
            raise InvalidRequestError("give at least one batch size, kernel, capture and fuse choice")
        recipes = (REFERENCE_RECIPE, *(r for r in self.recipes if r != REFERENCE_RECIPE))
        object.__setattr__(self, "recipes", recipes)
        object.__setattr__(self, "compile_modes", ("none", *(m for m in self.compile_modes if m != "none")))
        object.__setattr__(self, "batches", tuple(self.batches))
        object.__setattr__(self, "kernels", tuple(self.kernels))
        object.__setattr__(self, "captures", tuple(self.captures))
        object.__setattr__(self, "fuse", tuple(None if f is None else bool(f) for f in self.fuse))
        if self.eager_recipes is not None:
            object.__setattr__(self, "eager_recipes", tuple(self.eager_recipes))

    def cells(self) -> Iterator[tuple[int, str, str, str]]:
        """(batch, compile mode, recipe, kernel) in run order: per batch, eager first, bf16 first in each mode."""
        for batch in self.batches:
            for mode in self.compile_modes:
                for recipe in self.recipes:
                    eager = mode == "none" and recipe != REFERENCE_RECIPE
                    if eager and self.eager_recipes is not None and recipe not in self.eager_recipes:
                        continue
                    # Kernels only differ for compiled int8 layers: bf16 and eager quanto cells run once.
                    several = mode != "none" and recipe != REFERENCE_RECIPE and self.fast_linears
                    for kernel in self.kernels if several else self.kernels[:1]:
                        yield batch, mode, recipe, kernel

    def options(self, mode: str) -> list[tuple[str, bool | None]]:
        """(capture, fuse) of each cell for a compile mode: every combination when compiled, one when eager."""
        if mode == "none":
            return [("auto", None)]
        return [(capture, fuse) for capture in self.captures for fuse in self.fuse]


def device_label(env: Mapping) -> str:
    return env["machine"]


def row_psnr_db(row: Mapping) -> float | None:
    """PSNR vs bf16 of a row: `psnr_db`, or `psnr_vs_bf16_db` in results.json files written before the rename."""
    return canonical(row).get("psnr_db")


def build_fresh(model: str, recipe: str, device: str | None, calibration: CalibrationConfig) -> Variant:
    """A variant alone on the device: built by `build_variant` from a freshly loaded reference, which is then dropped
    (the build briefly holds both transformers; the measured runs see only the variant's)."""
    reference = build_reference(model, device=device)
    reference.pipe.set_progress_bar_config(disable=True)  # keep logs readable; timing is unaffected
    variant = build_variant(reference, recipe, calibration=calibration)
    variant.pipe.set_progress_bar_config(disable=True)
    del reference
    free_memory()
    return variant


def batch_request(config: BenchConfig, batch: int) -> SamplingRequest:
    """The request every cell of one batch size runs (labels spread over the classes, seeds from `config.seed`)."""
    labels = [(7 * i + 1) % 1000 for i in range(batch)]
    return SamplingRequest.create(
        labels, seed=config.seed, steps=config.steps, guidance_scale=config.guidance, max_batch=max(batch, 1)
    )


def measure(variant: Variant, request: SamplingRequest, config: BenchConfig) -> tuple[dict, list]:
    """Warm up, then time `config.runs` end-to-end runs and the transformer forward; the last run's images."""
    warmup_s = warm_up(variant, lambda: generate(variant, request), runs=config.warmup_runs)
    results = [generate(variant, request) for _ in range(config.runs)]
    latencies = [r.latency_s for r in results]
    numbers = {
        "warmup_s": warmup_s,
        "latency_s": statistics.median(latencies),
        "latency_min_s": min(latencies),
        "latency_max_s": max(latencies),
        "per_step_s": statistics.median(r.per_step_s for r in results),
        "decode_s": statistics.median(r.decode_s for r in results),
        "peak_memory_bytes": max(r.peak_memory_bytes for r in results),
        "memory_kind": results[0].memory_kind,
        "weight_bytes": results[0].weight_bytes,
        "quantize_s": variant.report.quantize_s,
        "calibrate_s": variant.report.calibrate_s,
        "dtype": results[0].dtype,
        "forward_s": time_transformer_forward(
            variant, len(request.labels), config.guidance, runs=config.forward_runs, steps=config.steps
        ),
        "path": getattr(variant.pipe, "last_path", "pipeline"),
    }
    numbers["step_over_forward"] = numbers["per_step_s"] / numbers["forward_s"]
    return numbers, results[-1].images


def bench_one(
    config: BenchConfig,
    recipe: str,
    compile_mode: str,
    request: SamplingRequest,
    reference_images: list | None,
    kernel: str = "auto",
    capture: str = "auto",
    fuse: bool | None = None,
) -> tuple[dict, list | None]:
    """Build, warm up, time and measure one (recipe, compile mode, batch, int8 kernel, capture, fuse) cell."""
    batch = len(request.labels)
    row: dict = {"recipe": recipe, "compile": compile_mode, "batch": batch, "model": config.model, "kernel": kernel}
    row.update(capture=capture, fuse=fuse)
    calibration = CalibrationConfig(steps=config.steps, guidance_scale=config.guidance)
    variant = None
    try:
        start = time.perf_counter()
        variant = build_fresh(config.model, recipe, config.device, calibration)
        sync(variant.device)
        row["build_s"] = time.perf_counter() - start
        if compile_mode != "none":
            compile_variant(
                variant,
                compile_mode,
                fast_linears=config.fast_linears,
                kernel=kernel,
                fullgraph=config.fullgraph,
                capture=capture,
                fuse=fuse,
            )
        row["compile_mode"] = variant.compile_mode
        row["capture"] = "step" if "+step-graph" in variant.compile_mode else "forward"
        row["fuse"] = "+fused-qkv" in variant.compile_mode
        row["memory_after_load_bytes"] = memory_in_use(variant.device) if variant.device.type == "cuda" else None
        numbers, images = measure(variant, request, config)
        row.update(numbers)
        if config.profile:
            name = f"profile-b{batch}-{recipe}-{variant.compile_mode}.txt".replace("+", "-")
            row["profile_file"] = name
            row["profile_top"] = profile_transformer_forward(
                variant, batch, config.guidance, config.profile, Path(config.out) / name, steps=config.steps
            )
        if reference_images is None:
            reference_images = images
        row.update(image_quality(reference_images, images))
        row["ok"] = True
    except Exception as exc:  # one failing cell (fp8 kernel build, OOM, compile error) must not lose the others
        row["ok"] = False
        row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
        traceback.print_exc()
    finally:
        variant = None  # drop the last reference before freeing device memory
        torch._dynamo.reset()
        free_memory()
    return row, reference_images


def _setting(row: Mapping) -> tuple:
    """Compile mode, capture and QKV fusion: a bf16 row with the same setting is the "same mode" baseline."""
    return row["compile"], row.get("capture", "forward"), bool(row.get("fuse", False))


def add_ratios(rows: list[dict]) -> None:
    """Every ratio is to a bf16 row of the same run and batch: eager, same setting, and best compiled."""
    for row in rows:
        same_batch = [r for r in rows if r["batch"] == row["batch"] and r["recipe"] == REFERENCE_RECIPE and r["ok"]]
        eager = next((r for r in same_batch if r["compile"] == "none"), None)
        same_mode = next((r for r in same_batch if _setting(r) == _setting(row)), None)
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


# The committed table's columns: how the cell ran, then metric keys (headers and formats from `dit_demo.metrics`).
TABLE_COLUMNS: list = [
    "batch",
    "recipe",
    "compile",
    "latency_s",
    "latency_vs_bf16_eager",
    "latency_vs_bf16_same_mode",
    "latency_vs_bf16_best_compiled",
    "forward_s",
    "per_step_s",
    "step_over_forward",
    "peak_memory_bytes",
    "peak_memory_vs_bf16_same_mode",
    "weight_bytes",
    "psnr_db",
    "warmup_s",
]


def _table_record(row: Mapping) -> dict:
    """A row under the vocabulary's keys; a failed cell says why where its latency would be."""
    if not row["ok"]:
        return {"batch": row["batch"], "recipe": row["recipe"], "compile": row["compile"], "psnr_db": "—",
                "latency_s": f"failed: {row['error'][:80]}"}  # fmt: skip
    return {**canonical(row), "compile": row.get("compile_mode", row["compile"])}


def markdown(rows: list[Mapping], env: Mapping, config: Mapping) -> str:
    """The committed table: absolute numbers plus ratios to bf16 of the same run. `config` is a results.json
    `config` block (`model`, `steps`, `guidance`, `runs`, `warmup_runs`: the same names in old and new files)."""
    head = (
        f"Model `{config['model']}`, {config['steps']} DPM-Solver steps, guidance {config['guidance']}, median of "
        f"{config['runs']} runs after {config['warmup_runs']} warm-up runs. Device: {device_label(env)}; "
        f"torch {env['torch']}, diffusers {env['diffusers']}, optimum-quanto {env['optimum_quanto']}; {env['date']}."
    )
    return head + "\n\n" + markdown_table([_table_record(r) for r in rows], TABLE_COLUMNS)


def markdown_from_record(record: Mapping) -> str:
    """The table of a results.json record, new or written before the `psnr_db` rename."""
    return markdown(record["rows"], record["environment"], record["config"])


def chart(rows: list[dict], path: Path, title: str) -> None:
    """Latency vs peak memory, one labelled point per (recipe, compile mode, batch)."""
    memory, latency = METRICS["peak_memory_bytes"], METRICS["latency_s"]
    points = [
        {
            "memory_mib": memory.number(r["peak_memory_bytes"]),
            "latency_s": r["latency_s"],
            "label": f"{r['recipe']} {r.get('compile_mode', r['compile'])} b{r['batch']}",
        }
        for r in rows
        if r["ok"]
    ]
    if points:
        scatter_chart(
            points,
            x="memory_mib",
            y="latency_s",
            label="label",
            title=title,
            x_label=memory.header,
            y_label=f"end-to-end {latency.header}",
            size=(900, 560),
        ).save(path)


def write_outputs(rows: list[dict], env: dict, config: BenchConfig) -> tuple[dict, str]:
    """results.json + results.md + latency_vs_memory.png in `config.out`, with ratios recomputed over all rows."""
    add_ratios(rows)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    record = {"environment": env, "config": asdict(config), "rows": rows}
    (out / "results.json").write_text(json.dumps(record, indent=2, default=str), encoding="utf-8")
    table = markdown_from_record(record)
    (out / "results.md").write_text(table, encoding="utf-8")
    chart(rows, out / "latency_vs_memory.png", f"{config.model} on {device_label(env)}")
    return record, table


def _status(row: Mapping) -> str:
    if not row["ok"]:
        return row["error"]
    return f"{row['latency_s']:.3f} s, fwd {row['forward_s'] * 1e3:.2f} ms, {format_bytes(row['peak_memory_bytes'])}"


def run_bench(config: BenchConfig) -> dict:
    """Every cell of `config`, one after the other; the outputs are rewritten after each cell (a timeout keeps what
    ran). Returns the results.json record."""
    env = environment(torch.device(config.device) if config.device else default_device(), num_processes=1)
    rows: list[dict] = []
    record, table = {}, ""
    requests = {batch: batch_request(config, batch) for batch in config.batches}
    reference_images: dict[int, list | None] = {}
    for batch, mode, recipe, kernel in config.cells():
        for capture, fuse in config.options(mode):
            print(f"[bench] batch {batch} {recipe} compile={mode} kernel={kernel} capture={capture} fuse={fuse}")
            images = reference_images.get(batch)
            row, reference_images[batch] = bench_one(
                config, recipe, mode, requests[batch], images, kernel, capture=capture, fuse=fuse
            )
            rows.append(row)
            print(f"[bench]   -> {_status(row)}", flush=True)
            record, table = write_outputs(rows, env, config)
    print(table, flush=True)
    return record
