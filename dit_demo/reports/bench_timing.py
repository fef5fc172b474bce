"""How the benchmark times and profiles one transformer forward (see `dit_demo.reports.bench`).

A variant whose whole denoising step runs as CUDA graphs (`compile_variant(..., capture="step")`) is timed and
profiled through its own captured graphs: the forward alone, as the step runs it (conditioning served from the
request's tables), and — for the profile — the whole captured step. Other variants are called directly, as before
(torch.compile's reduce-overhead mode replays its own graph for such a call).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch

from dit_demo.engine.device import sync
from dit_demo.engine.fast.slot import median_replay_seconds
from dit_demo.engine.generate import Variant


def captured_replayer(variant: Variant, batch: int, guidance_scale: float, steps: int, which: str):
    """A replay of the variant's captured forward ("forward") or step ("step") graph, or None."""
    sampler = getattr(variant.pipe, "sampler", None)
    return None if sampler is None else sampler.replayer(batch, guidance_scale, steps, which)


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


def _timed_forward(transformer: torch.nn.Module, inputs: dict) -> float:
    """Seconds of one forward: CUDA events on a GPU, the wall clock on CPU."""
    if transformer.device.type != "cuda":
        t0 = time.perf_counter()
        transformer(**inputs)
        return time.perf_counter() - t0
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    transformer(**inputs)
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / 1000


def time_transformer_forward(
    variant: Variant, batch: int, guidance_scale: float, runs: int = 20, steps: int | None = None
) -> float:
    """Median seconds of one transformer forward with the request's real shapes (CFG doubles the rows); a
    step-captured variant's from its captured forward graph (`steps`: the request shape it was captured for)."""
    replay = captured_replayer(variant, batch, guidance_scale, steps, "forward") if steps else None
    if replay is not None:
        return median_replay_seconds(replay, runs)
    inputs = forward_inputs(variant, batch, guidance_scale)
    times = []
    with torch.no_grad():
        for i in range(runs + 3):
            _mark_step()
            elapsed = _timed_forward(variant.pipe.transformer, inputs)
            if i >= 3:
                times.append(elapsed)
    return statistics.median(times)


def profile_transformer_forward(
    variant: Variant, batch: int, guidance_scale: float, runs: int, path: Path, steps: int | None = None
) -> list:
    """Where a forward's device time goes: torch.profiler over `runs` forwards (a step-captured variant: `runs`
    replays of its whole captured step), the kernel table written to `path`, the top kernels (name, share of device
    time, µs per forward) returned for results.json."""
    from torch.profiler import ProfilerActivity, profile

    replay = captured_replayer(variant, batch, guidance_scale, steps, "step") if steps else None
    if replay is None:
        inputs = forward_inputs(variant, batch, guidance_scale)

        def replay() -> None:
            _mark_step()
            variant.pipe.transformer(**inputs)

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with torch.no_grad(), profile(activities=activities) as prof:
        for _ in range(runs):
            replay()
        sync(variant.device)
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
