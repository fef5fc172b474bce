"""Shipping torch.compile's caches: the second route to a short first request in a fresh process.

A `torch.compile`d variant compiles in its first request (41–90 s on an H200, DESIGN.md §4b); with a warm Inductor
cache on the same machine that first call took 7 s. `save_compile_cache` writes what this process compiled
(`torch.compiler.save_cache_artifacts`: Inductor FX graphs with their Triton kernels, AOTAutograd, autotuning) to
one file with a `NAME.json` description beside it; `load_compile_cache` checks the file (sha256, torch version,
GPU) and pre-populates the caches of a fresh process (`torch.compiler.load_cache_artifacts`) before its first
compile. Unlike an AOTInductor package (`dit_demo.engine.fast.aot`) Dynamo still traces and Inductor still looks
the graphs up, so the first request is shorter, not compile-free.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from dit_demo.errors import CheckpointError
from dit_demo.units import MIB

FORMAT = "dit-demo-compile-cache/1"
SHIPPED_DIR = "compile-cache"  # where a Space keeps its cache, beside app.py (`dit-demo deploy-space --compile-cache`)


class CompileCacheError(CheckpointError):
    """A compile-cache file that is missing, corrupt, or made by another torch or GPU."""


def _device_name() -> str:
    return torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"


def _capability() -> str:
    """What the cached Triton kernels were built for: an H200 and a ZeroGPU MIG slice of one both report 9.0, while
    their device names differ."""
    return "{}.{}".format(*torch.cuda.get_device_capability()) if torch.cuda.is_available() else "cpu"


def _description(path: Path) -> Path:
    return path.with_suffix(".json")


def save_compile_cache(path: Path | str) -> int:
    """Write every compile artifact of this process so far to `path` (+ `NAME.json`); returns its size in bytes
    (0 and no file when nothing was compiled)."""
    path = Path(path)
    saved = torch.compiler.save_cache_artifacts()
    if saved is None:
        return 0
    data, _info = saved
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    description = {
        "format": FORMAT,
        "torch": torch.__version__,
        "device_name": _device_name(),
        "capability": _capability(),
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    _description(path).write_text(json.dumps(description, indent=1) + "\n", encoding="utf-8")
    return len(data)


def load_compile_cache(path: Path | str) -> int:
    """Pre-populate this process's compile caches from `path` (checked first; CompileCacheError naming the file
    otherwise); returns how many bytes were loaded. Call before the first compile."""
    path = Path(path)
    try:
        description = json.loads(_description(path).read_text(encoding="utf-8"))
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise CompileCacheError(f"{exc.filename}: missing (a compile cache is NAME.bin + NAME.json)") from None
    except ValueError as exc:
        raise CompileCacheError(f"{_description(path)}: not a compile-cache description ({exc})") from None
    if not isinstance(description, dict) or description.get("format") != FORMAT:
        raise CompileCacheError(f"{_description(path)}: not a dit_demo compile-cache description")
    if hashlib.sha256(data).hexdigest() != description.get("sha256"):
        raise CompileCacheError(f"{path}: corrupt or replaced (its sha256 differs from {_description(path).name})")
    device = ("capability", _capability()) if "capability" in description else ("device_name", _device_name())
    for key, here in (("torch", torch.__version__), device):
        if description.get(key) != here:
            raise CompileCacheError(f"{path}: made with {key}={description.get(key)!r}, this process has {here!r}")
    torch.compiler.load_cache_artifacts(data)
    return len(data)


def write_compile_cache(
    model: str,
    *,
    recipes: Sequence[str],
    batches: Sequence[int],
    guidance_scale: float,
    steps: int,
    device: str,
    path: Path,
) -> list[str]:
    """Build `model`'s reference and `recipes` in bf16 on `device` (what ZeroGPU runs), compile each as the app does
    (`compile_variant(..., "reduce-overhead")`), run one request per batch size, and save every compile artifact of
    this process to `path`. Returns one line per step, with its measured time."""
    from dit_demo.engine.fast.compile import compile_variant
    from dit_demo.engine.generate import build_reference, build_variant, generate
    from dit_demo.engine.request import SamplingRequest

    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise CompileCacheError("compile-cache compiles for a GPU: this machine has no CUDA device (--device cpu?)")
    start = time.perf_counter()
    reference = build_reference(model, device=device, dtype=torch.bfloat16 if device != "cpu" else None)
    lines = [f"{model}: loaded in {time.perf_counter() - start:.1f} s on {_device_name()}"]
    for recipe in recipes:
        start = time.perf_counter()
        variant = compile_variant(build_variant(reference, recipe), "reduce-overhead", inplace=False)
        for batch in batches:
            labels = tuple(range(batch))
            request = SamplingRequest(labels, tuple(range(batch)), steps=steps, guidance_scale=guidance_scale)
            generate(variant, request)
        lines.append(f"{recipe}: built and compiled for batch {', '.join(map(str, batches))} in "
                     f"{time.perf_counter() - start:.1f} s")  # fmt: skip
    size = save_compile_cache(path)
    if not size:
        raise CompileCacheError("torch.compile saved no artifacts (nothing was compiled?)")
    lines.append(f"wrote {path} ({size / MIB:.1f} MiB) and {_description(path).name}")
    return lines
