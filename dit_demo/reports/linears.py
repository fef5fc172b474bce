"""`dit-demo linears`: the linears of one real transformer forward, timed kernel by kernel (CUDA).

The end-to-end benchmark says whether int8 wins; this says where. One forward of the quantized model records every
int8 linear call (rows M, in K, out N, how many per forward); each distinct shape is then timed alone, with its real
int8 weights and scales, compiled by Inductor as in the model and replayed under CUDA graphs (no launch overhead):

- `bf16`: `F.linear` with the dequantized bf16 weight (cuBLAS) — what the bf16 model runs;
- `w8 torch` / `w8 triton`: weight-only int8, plain ops (cast kernel + cuBLAS) vs the fused Triton kernel;
- `w8a8 torch` / `w8a8 triton`: static int8 activations (scale = max|x| / 127), `torch._int_mm` (needs ≥ 17 rows)
  vs the fused Triton kernel, both including the activation quantization (its own kernel here; in the model
  Inductor fuses it into the layer that produces x).

The per-forward totals (Σ calls × time) show how much of the forward's device time the linears are, per kernel.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path

import torch

from dit_demo.engine.fast.compile import convert_to_fast_linears
from dit_demo.engine.fast.layers import Int8Linear
from dit_demo.engine.generate import build_reference, build_variant
from dit_demo.engine.machine import environment
from dit_demo.errors import InvalidRequestError
from dit_demo.reports.bench_timing import forward_inputs

KERNELS = ("bf16", "w8 torch", "w8 triton", "w8a8 torch", "w8a8 triton")


def record_linear_calls(transformer: torch.nn.Module, inputs: dict) -> tuple[Counter, dict]:
    """(M, K, N) → calls per forward, and one real layer per shape, from hooks on every `Int8Linear`."""
    calls: Counter = Counter()
    layers: dict = {}

    def hook(module: Int8Linear, args: tuple) -> None:
        shape = (args[0].reshape(-1, module.in_features).shape[0], module.in_features, module.out_features)
        calls[shape] += 1
        layers.setdefault(shape, module)

    handles = [m.register_forward_pre_hook(hook) for m in transformer.modules() if isinstance(m, Int8Linear)]
    try:
        with torch.no_grad():
            transformer(**inputs)
    finally:
        for handle in handles:
            handle.remove()
    return calls, layers


def _timer() -> Callable[[Callable[[], object]], float]:
    import triton.testing

    return lambda fn: triton.testing.do_bench_cudagraph(fn, rep=100)  # milliseconds, median


def time_shape(layer: Int8Linear, rows: int, time_ms: Callable) -> dict[str, float | None]:
    """Milliseconds per call of each kernel for one layer shape, on random activations of the real row count."""
    generator = torch.Generator("cuda").manual_seed(rows)
    x = torch.randn(rows, layer.in_features, device="cuda", generator=generator).to(torch.bfloat16)
    dense = (layer.weight.to(torch.bfloat16) * layer.scale.to(torch.bfloat16)[:, None]).contiguous()
    weight_only = Int8Linear(layer.weight, layer.scale, layer.bias)
    static = Int8Linear(layer.weight, layer.scale, layer.bias, x.abs().max().float() / 127, torch.tensor(0.05))
    static = static.cuda()
    results: dict[str, float | None] = {}

    def compiled_time(fn: Callable[[], torch.Tensor]) -> float:
        # Inductor fuses the plain ops (cast, scales, quantization) as it does in the model; one compile per cell
        # (reset first: Dynamo would otherwise stop compiling after 8 module instances and silently run eager).
        torch._dynamo.reset()
        compiled = torch.compile(fn, dynamic=False)
        compiled()  # compile and autotune outside the timed graph
        return time_ms(compiled)

    with torch.no_grad():
        results["bf16"] = compiled_time(lambda: torch.nn.functional.linear(x, dense, layer.bias))
        for name, module in (("w8", weight_only), ("w8a8", static)):
            for kernel in ("torch", "triton"):
                module.kernel = kernel
                results[f"{name} {kernel}"] = compiled_time(lambda module=module: module(x))
    return results


def run_linears(
    *, model: str = "dit-xl-2-256-random", batch: int = 1, guidance: float = 4.0, out: str = "bench-out"
) -> dict:
    """Time every linear shape of one int8 forward of `model`; writes linears.json and linears.md to `out`."""
    if not torch.cuda.is_available():
        raise InvalidRequestError("`dit-demo linears` times CUDA kernels: run it on a GPU host.")
    config = {"model": model, "batch": batch, "guidance": guidance, "out": out}
    reference = build_reference(model, device="cuda")
    variant = build_variant(reference, "int8")
    del reference
    convert_to_fast_linears(variant.pipe.transformer)
    calls, layers = record_linear_calls(variant.pipe.transformer, forward_inputs(variant, batch, guidance))
    time_ms = _timer()
    rows = []
    for (m, k, n), count in sorted(calls.items()):
        timings = time_shape(layers[(m, k, n)], m, time_ms)
        rows.append({"rows": m, "in": k, "out": n, "calls_per_forward": count, "ms": timings})
        print(f"[linears] M={m} K={k} N={n} ×{count}: " + ", ".join(f"{a} {b:.4f}" for a, b in timings.items()))
    totals = {kernel: sum(r["calls_per_forward"] * r["ms"][kernel] for r in rows) for kernel in KERNELS}
    env = environment(torch.device("cuda"), num_processes=1)
    record = {"environment": env, "config": config, "shapes": rows, "totals": totals}
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    table = markdown(rows, totals, env, config)
    (folder / "linears.json").write_text(json.dumps(record, indent=2, default=str), encoding="utf-8")
    (folder / "linears.md").write_text(table, encoding="utf-8")
    print(table, flush=True)
    return record


def markdown(rows: list[dict], totals: dict, env: Mapping, config: Mapping) -> str:
    """The per-shape table; `config` is the record's `config` block (`model`, `batch`, `guidance`)."""
    header = " | ".join(f"{k} µs" for k in KERNELS)
    lines = [
        f"Linears of one `{config['model']}` forward, batch {config['batch']}, guidance {config['guidance']}; "
        f"{env['machine']}, torch {env['torch']}; µs per call (CUDA graphs, median), totals per forward in ms.",
        "",
        f"| rows M | in K | out N | calls | {header} | w8 triton × bf16 | w8a8 triton × bf16 |",
        "|" + "---|" * (6 + len(KERNELS)),
    ]
    for r in rows:
        ms = r["ms"]
        cells = " | ".join(f"{ms[k] * 1000:.1f}" for k in KERNELS)
        lines.append(
            f"| {r['rows']} | {r['in']} | {r['out']} | {r['calls_per_forward']} | {cells} "
            f"| {ms['w8 triton'] / ms['bf16']:.2f} | {ms['w8a8 triton'] / ms['bf16']:.2f} |"
        )
    total_cells = " | ".join(f"**{totals[k]:.3f} ms**" for k in KERNELS)
    lines.append(
        f"| all | | | {sum(r['calls_per_forward'] for r in rows)} | {total_cells} "
        f"| {totals['w8 triton'] / totals['bf16']:.2f} | {totals['w8a8 triton'] / totals['bf16']:.2f} |"
    )
    return "\n".join(lines) + "\n"
