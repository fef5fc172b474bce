"""Why did loading an AOTInductor package in a fresh process segfault (DESIGN.md §6)? One case per process.

    python bench/h200-aot/diag.py CASE PACKAGE.pt2
CASE: repro (diffusers imported first, CUDA untouched before the load: the 2026-12-03 crash), cuda-first (CUDA
initialised before anything else), no-diffusers (torch only), cpu-inputs (a correct load, then CPU tensors fed to the
CUDA model: AOTInductor does not check its inputs), fp32-inputs (float32 instead of bf16). The package must hold its
weights (built with `bench_aot build --weights-inside`); inputs come from its NAME.json. Prints one DIAG line.
"""

import json
import sys
import time
from pathlib import Path

case, package = sys.argv[1], Path(sys.argv[2])
start = time.perf_counter()
if case == "cuda-first":
    import torch

    torch.zeros(1, device="cuda")
if case not in ("no-diffusers",):
    import diffusers  # noqa: F401
import torch  # noqa: E402

info = json.loads(package.with_suffix(".json").read_text())
t0 = time.perf_counter()
model = torch._inductor.aoti_load_package(str(package))
load_s = time.perf_counter() - t0
print(f"DIAG-LOADED {case} load_s={load_s:.2f}", flush=True)
device = "cpu" if case == "cpu-inputs" else "cuda"
dtype = torch.float32 if case == "fp32-inputs" else getattr(torch, info["dtype"])
rows, size = info["rows"], info["sample_size"]
inputs = (
    torch.randn(rows, info["in_channels"], size, size, device=device, dtype=dtype),
    torch.full((rows,), 500, device=device, dtype=torch.long),
    torch.arange(rows, device=device),
    torch.randn(rows, info["columns"], device=device, dtype=dtype) * 0.1,
)
out = model(*inputs)
out = out[0] if isinstance(out, (list, tuple)) else out
torch.cuda.synchronize()
finite = bool(torch.isfinite(out.float()).all())
print(
    f"DIAG {case} ok load_s={load_s:.2f} total_s={time.perf_counter() - start:.2f} out={tuple(out.shape)} "
    f"finite={finite}",
    flush=True,
)
