"""GEMM µs at DiT-XL/2's token-linear shapes: bf16 cuBLAS vs int8 cast + cuBLAS vs the fused W8A16 Triton kernel.

Each implementation is one call of what the fast path runs for y = x · Wᵀ · s + b (bf16 x [M, K], int8 W [N, K],
per-output-channel bf16 s, bf16 b), replayed in a CUDA graph (`triton.testing.do_bench_cudagraph`, median):

- bf16:        F.linear(x, W_bf16, b)                  cuBLAS with the bias in its epilogue (the bf16 model)
- cast+mm:     addcmul(b, x @ W.to(bf16)ᵀ, s)          the int8 plain path: cast kernel, cuBLAS, scale+bias kernel
- w8a16:       dit_demo::int8_weight_linear            one Triton kernel, int8 read in the main loop (autotuned)

Before timing, the kernel's output is checked against an fp32 reference (max error relative to the output's
range, which must stay below 1 %, bf16-level). Writes gemm.json (every cell, the autotuned config, the errors),
gemm.md (the table) and kernel_table.json (per shape the faster of w8a16 and cast+mm: what `kernel="auto"` reads
through DIT_DEMO_KERNEL_TABLE in the end-to-end run of the same device call).

    python bench/h200-w8a16/gemm.py --out OUT [--rows 512,2048,4096,16384]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import triton

import dit_demo.engine.fast.kernels as kernels

# (out N, in K, name): XL/2's token linears (hidden 1152, MLP 4608); QKV fused into one 3456-wide projection.
SHAPES = ((3456, 1152, "qkv"), (1152, 1152, "attn out"), (4608, 1152, "fc1"), (1152, 4608, "fc2"))
ROWS = (512, 2048, 4096, 16384)  # CFG doubles the batch: 256² b1, 512² b1, 256² b8, 512² b8


def bench_us(fn) -> float:
    return triton.testing.do_bench_cudagraph(fn, rep=30, return_mode="median") * 1e3


def one_shape(m: int, n: int, k: int) -> dict:
    gen = torch.Generator("cuda").manual_seed(m + n + k)
    x = (torch.randn(m, k, device="cuda", generator=gen) * 0.5).to(torch.bfloat16)
    w = torch.randint(-127, 128, (n, k), device="cuda", dtype=torch.int8, generator=gen)
    s = (torch.rand(n, device="cuda", generator=gen) * 2e-4 + 1e-4).to(torch.bfloat16)
    b = (torch.randn(n, device="cuda", generator=gen) * 0.02).to(torch.bfloat16)
    w_bf16 = (w.float() * s.float()[:, None]).to(torch.bfloat16)
    reference = (x.float() @ w.float().t()) * s.float() + b.float()
    scale = reference.abs().max().item()
    start = time.perf_counter()
    fused = kernels.int8_weight_linear(x, w, s, b)  # the first call autotunes for this (M, N, K)
    torch.cuda.synchronize()
    tune_s = time.perf_counter() - start
    cast = torch.addcmul(b, x @ w.to(torch.bfloat16).t(), s)
    row = {
        "m": m,
        "n": n,
        "k": k,
        "autotune_s": round(tune_s, 2),
        "w8a16_max_err_rel": (fused.float() - reference).abs().max().item() / scale,
        "cast_mm_max_err_rel": (cast.float() - reference).abs().max().item() / scale,
        "w8a16_config": str(getattr(kernels._WEIGHT_KERNEL, "best_config", None)),
    }
    row["ok"] = row["w8a16_max_err_rel"] < 1e-2
    row["bf16_us"] = bench_us(lambda: F.linear(x, w_bf16, b))
    row["cast_mm_us"] = bench_us(lambda: torch.addcmul(b, x @ w.to(torch.bfloat16).t(), s))
    row["w8a16_us"] = bench_us(lambda: kernels.int8_weight_linear(x, w, s, b))
    row["w8a16_vs_bf16"] = row["w8a16_us"] / row["bf16_us"]
    row["cast_mm_vs_bf16"] = row["cast_mm_us"] / row["bf16_us"]
    # a kernel that is wrong never wins; ties go to cuBLAS
    row["faster"] = "triton" if row["ok"] and row["w8a16_us"] < row["cast_mm_us"] else "torch"
    return row


def markdown(rows: list[dict], device: str) -> str:
    head = (
        f"GEMM µs per call, CUDA-graph replay (median), {device}, torch {torch.__version__}, triton "
        f"{triton.__version__}. y = x·Wᵀ·s + b, bf16 x [M, K], int8 W [N, K].\n\n"
        "| shape | M | N | K | bf16 cuBLAS µs | int8 cast+mm µs | W8A16 Triton µs | W8A16 × bf16 | cast+mm × bf16 "
        "| chosen | W8A16 max err (rel.) |\n|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    names = {(n, k): name for n, k, name in SHAPES}
    lines = [
        f"| {names.get((r['n'], r['k']), '')} | {r['m']} | {r['n']} | {r['k']} | {r['bf16_us']:.1f} | "
        f"{r['cast_mm_us']:.1f} | {r['w8a16_us']:.1f} | {r['w8a16_vs_bf16']:.2f} | {r['cast_mm_vs_bf16']:.2f} | "
        f"{r['faster']} | {r['w8a16_max_err_rel']:.1e} |"
        for r in rows
    ]
    return head + "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--rows", default=",".join(map(str, ROWS)))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.cuda.get_device_name()
    rows = []
    for m in (int(v) for v in args.rows.split(",")):
        for n, k, name in SHAPES:
            try:
                row = one_shape(m, n, k)
            except Exception as exc:  # a failing cell (compile error, OOM) is recorded; cuBLAS stays chosen
                row = {"m": m, "n": n, "k": k, "ok": False, "faster": "torch", "error": f"{type(exc).__name__}: {exc}"}
            rows.append(row)
            print(name, json.dumps(row), flush=True)
            versions = {"device": device, "torch": torch.__version__, "triton": triton.__version__}
            (out / "gemm.json").write_text(json.dumps({**versions, "rows": rows}, indent=2))
            choices = [{"m": r["m"], "n": r["n"], "k": r["k"], "kernel": r["faster"]} for r in rows]
            table = {"device": device, "source": "bench/h200-w8a16/gemm.py", "choices": choices}
            (out / "kernel_table.json").write_text(json.dumps(table, indent=2))
    timed = [r for r in rows if "bf16_us" in r]
    (out / "gemm.md").write_text(markdown(timed, device))
    print(markdown(timed, device), flush=True)
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
