"""The one CPU thread policy for sampling and building small models (app, CLI, library alike).

A small model's matmuls are too small to split across threads: on this project's 2-core CPU machine, shared with
other jobs, torch's default of 2 OpenMP threads made the 2.9 M-parameter embedded digits DiT several times slower
per step than 1 thread (threads spin-wait at barriers on a core someone else holds). Measured interleaved with
`bench/cpu-threads/measure.py` (10 steps, batch 1, 5 rounds, 1-minute load average 4.5 on 2 cores, torch 2.13 CPU):
whole call ÷ steps (decode included), 1 thread 25.3 ms/step (24.9–30.5), 2 threads 154.2 ms/step (121.1–173.2):
2 threads 6.1× slower, ranges apart (issue 24 saw 1,074 ms/step on 2 threads vs 193 on 1, a busier machine). So a
model whose weights take under `SMALL_MODEL_BYTES` (20 M fp32 parameters; counted in storage bytes so that int8
and dynamically quantized copies of a large model stay large) runs on 1 thread on CPU; large models (DiT-XL, 675 M
parameters) keep torch's default, where splitting pays. `DIT_DEMO_CPU_THREADS` overrides for every model, and
`use_threads(n)` pins a count for a block of work (a benchmark comparing thread counts).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar

import torch

from dit_demo.engine.quant.quantize import module_weight_bytes

CPU_THREADS_ENV = "DIT_DEMO_CPU_THREADS"
SMALL_MODEL_BYTES = 80_000_000  # 20 M parameters in fp32
_PINNED: ContextVar[int | None] = ContextVar("dit_demo_cpu_threads", default=None)


def cpu_threads(transformers: Sequence[torch.nn.Module], environ: Mapping[str, str] | None = None) -> int | None:
    """Threads to run these transformers with on CPU; None: leave torch's setting alone (GPU, large models)."""
    if _PINNED.get() is not None:
        return _PINNED.get()
    value = (os.environ if environ is None else environ).get(CPU_THREADS_ENV, "").strip()
    if value:
        return max(1, int(value))
    if not transformers or any(_device_type(t) != "cpu" for t in transformers):
        return None
    return 1 if max(module_weight_bytes(t) for t in transformers) < SMALL_MODEL_BYTES else None


def _device_type(module: torch.nn.Module) -> str:
    tensor = next(iter([*module.parameters(), *module.buffers()]), None)
    return "cpu" if tensor is None else tensor.device.type


@contextmanager
def thread_policy(transformers: Sequence[torch.nn.Module]) -> Iterator[None]:
    """Apply `cpu_threads` for one piece of work and restore torch's setting after."""
    threads = cpu_threads(transformers)
    previous = torch.get_num_threads()
    if threads is not None and threads != previous:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)


@contextmanager
def use_threads(threads: int) -> Iterator[None]:
    """Run a block on exactly `threads` CPU threads, the policy included (it would otherwise pick its own)."""
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    token, previous = _PINNED.set(threads), torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        _PINNED.reset(token)
        torch.set_num_threads(previous)
