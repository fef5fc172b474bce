"""Per-shape choice between the fused W8A16 Triton kernel and the cast + cuBLAS path, from measured GEMM times.

Neither int8 weight-only implementation wins everywhere: the Triton kernel reads int8 weights straight into the
tensor-core loop (no bf16 copy of the weight each step), cuBLAS has the faster main loop. Which one is faster depends
on the GPU and on the layer's (rows, out, in) shape, so the choice is a table measured on the GPU by
`bench/h200-w8a16/gemm.py` (both timed in CUDA graphs, per DiT-XL/2 shape) and looked up when `compile_variant`
sets a layer's kernel (`kernel="auto"` on CUDA). A layer shape the table has not measured takes the measured entry
of the same (out, in) with the nearest row count, up to 2× away; anything else, and a GPU the table does not know,
keeps the cast + cuBLAS path.

Tables: `DIT_DEMO_KERNEL_TABLE` (a JSON file written by gemm.py: how a device call uses a table it measured a minute
earlier), else the tables committed in `MEASURED` (device name → entries), each with the run it came from.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from dit_demo.errors import InvalidRequestError

TABLE_ENV = "DIT_DEMO_KERNEL_TABLE"
KERNELS = ("triton", "torch")
MAX_LOG2_DISTANCE = 1.0  # a measured row count stands for row counts up to 2× away from it, no further

# device name (torch.cuda.get_device_name) → [(rows M, out N, in K, faster kernel)], measured in CUDA graphs.
# NVIDIA H200: bench/h200-w8a16/run2/gemm (torch 2.11, Triton 3.6, 2026-12-03, after the faulty 8-warp SWAP_AB tile
# was removed; every W8A16 output correct; tests check it equals that run's kernel_table.json). A row where the
# autotuner's tile computed wrong results would count as "torch" (run1 had 8 such rows).
MEASURED: Mapping[str, tuple[tuple[int, int, int, str], ...]] = {
    "NVIDIA H200": (
        (512, 3456, 1152, "triton"),
        (512, 1152, 1152, "triton"),
        (512, 4608, 1152, "triton"),
        (512, 1152, 4608, "torch"),
        (2048, 3456, 1152, "triton"),
        (2048, 1152, 1152, "torch"),
        (2048, 4608, 1152, "triton"),
        (2048, 1152, 4608, "torch"),
        (4096, 3456, 1152, "triton"),
        (4096, 1152, 1152, "triton"),
        (4096, 4608, 1152, "triton"),
        (4096, 1152, 4608, "torch"),
        (16384, 3456, 1152, "triton"),
        (16384, 1152, 1152, "triton"),
        (16384, 4608, 1152, "triton"),
        (16384, 1152, 4608, "torch"),
    ),
}


def _entries(raw: Sequence, source: str) -> tuple[tuple[int, int, int, str], ...]:
    entries = []
    for item in raw:
        try:
            m, n, k, kernel = int(item["m"]), int(item["n"]), int(item["k"]), str(item["kernel"])
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidRequestError(f"{source}: each choice needs m, n, k and kernel ({exc})") from exc
        if kernel not in KERNELS:
            raise InvalidRequestError(f"{source}: kernel {kernel!r} is not one of {', '.join(KERNELS)}")
        entries.append((m, n, k, kernel))
    return tuple(entries)


def load_table(path: str | Path) -> tuple[str, tuple[tuple[int, int, int, str], ...]]:
    """(device name, entries) of a table file written by gemm.py: {"device": ..., "choices": [{m, n, k, kernel}]}."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidRequestError(f"{TABLE_ENV}={path}: cannot read a kernel table ({exc})") from exc
    if not isinstance(data, dict) or "device" not in data or not isinstance(data.get("choices"), list):
        raise InvalidRequestError(f"{path}: a kernel table needs 'device' and a 'choices' list")
    return str(data["device"]), _entries(data["choices"], str(path))


def table_for(device_name: str) -> tuple[tuple[int, int, int, str], ...]:
    """The measured entries for this GPU: the env table when it names this GPU, else the committed one, else ()."""
    path = os.environ.get(TABLE_ENV)
    if path:
        name, entries = load_table(path)
        if name == device_name:
            return entries
    return MEASURED.get(device_name, ())


def rows_choice(
    entries: Sequence[tuple[int, int, int, str]], out_features: int, in_features: int
) -> tuple[tuple[int, bool], ...]:
    """One layer's slice of the table: (rows, Triton faster) for its (out, in) shape, sorted by rows."""
    shape = (out_features, in_features)
    return tuple(sorted((m, kernel == "triton") for m, n, k, kernel in entries if (n, k) == shape))


def use_triton(choice: Sequence[tuple[int, bool]], rows: int) -> bool:
    """The measured winner at the nearest row count (log scale; ties to the smaller), if that count is within 2× of
    `rows`; otherwise (or no entries) cast + cuBLAS. Plain Python on ints, so torch.compile resolves it while tracing
    (shapes are static)."""
    if not choice or rows < 1:
        return False
    distance, _rows, faster = min([(abs(math.log2(m) - math.log2(rows)), m, faster) for m, faster in choice])
    return faster and distance <= MAX_LOG2_DISTANCE
