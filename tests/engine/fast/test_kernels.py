"""The fused Triton int8 kernels compute what the plain-op `Int8Linear` path computes.

Three levels: every tile configuration under Triton's CPU interpreter (needs triton, which CPU-only torch does not
ship: tests/requirements.txt pins it; numpy >= 2.4 needs a one-line shim of the interpreter, below), the registered
ops against the plain-op path on a CUDA GPU at DiT-XL/2's real layer shapes, and the kernel choice rules everywhere.
"""

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import dit_demo.engine.fast.kernels as kernels
from dit_demo.engine.fast.compile import resolve_kernel
from dit_demo.engine.fast.layers import Int8Linear
from dit_demo.errors import InvalidRequestError

ROOT = Path(__file__).resolve().parents[2]


def _interpreter_unusable() -> str | None:
    if importlib.util.find_spec("triton") is None:
        return "triton is not installed (CPU-only torch does not ship it; tests/requirements.txt pins it)"
    return None


INTERPRETER_CHECK = textwrap.dedent(
    """
    import os, sys
    os.environ["TRITON_INTERPRET"] = "1"
    import torch, triton
    import triton.runtime.interpreter as interpreter

    if hasattr(interpreter, "_patch_lang_tensor"):  # numpy >= 2.4 refuses int() of a 1-element array, which the
        patch = interpreter._patch_lang_tensor     # interpreter does for loop bounds: read the element instead

        def patched(tensor):
            patch(tensor)
            tensor.__index__ = lambda self: int(self.handle.data.reshape(-1)[0])

        interpreter._patch_lang_tensor = patched
    import dit_demo.engine.fast.kernels as K

    torch.manual_seed(0)
    dtype = torch.float16  # the interpreter has no bfloat16 arithmetic
    failures, tiles = [], set()  # the interpreter runs no warps or pipeline stages: a tile is its block sizes, and
    for few_rows in (True, False):  # candidates differing only in num_warps/num_stages run the same, once
        weight_configs = [] if few_rows else K._weight_configs()  # the fused W8A16 kernel's own candidates
        for config in weight_configs + K._configs(True, few_rows):
            meta = dict(config.kwargs)
            int8_dot = config not in weight_configs
            if (tile := (int8_dot, few_rows, *sorted(meta.items()))) in tiles:
                continue
            tiles.add(tile)
            for M, N, Kd in ((2, 100, 72), (17, 130, 300)) if few_rows else ((40, 130, 256), (300, 72, 64)):
                x = torch.randn(M, Kd, dtype=dtype)
                w = torch.randint(-127, 128, (N, Kd), dtype=torch.int8)
                s = (torch.rand(N) * 0.01 + 1e-3).to(dtype)
                b = torch.randn(N, dtype=dtype)
                grid = (triton.cdiv(M, meta["BLOCK_M"]) * triton.cdiv(N, meta["BLOCK_N"]),)
                strides = (Kd, 1, Kd, 1, N, 1)
                for has_bias in (True, False) if not int8_dot else ():
                    y = torch.empty(M, N, dtype=dtype)
                    K._int8_weight_kernel[grid](
                        x, w, s, b if has_bias else s, y, M, N, Kd, *strides, HAS_BIAS=has_bias,
                        EVEN_K=K.even_k(Kd, int8_dot=False), **meta
                    )
                    ref = (x.float() @ w.float().t()) * s.float() + (b.float() if has_bias else 0)
                    err = ((y.float() - ref).abs() / (ref.abs() + 1.0)).max().item()
                    if err > 2e-3:
                        failures.append(("weight", meta, M, N, Kd, has_bias, err))
                if not int8_dot:
                    continue
                si, so = torch.tensor(0.02), torch.tensor(0.05)
                xq = torch.clamp(torch.round(x.float() / si), -128, 127).to(torch.int8)
                for has_bias, has_out in ((True, True), (False, False), (True, False)):
                    y = torch.empty(M, N, dtype=dtype)
                    K._int8_static_kernel[grid](
                        xq, w, s, b if has_bias else s, si, so if has_out else si, y, M, N, Kd, *strides,
                        HAS_BIAS=has_bias, HAS_OUTPUT_SCALE=has_out, INTERPRET=True,
                        EVEN_K=K.even_k(Kd, int8_dot=True), **meta,
                    )
                    ref = ((xq.int() @ w.int().t()).float() * (si * s.float())).to(dtype)
                    if has_bias:
                        ref = ref + b
                    if has_out:
                        ref = (torch.clamp(torch.round(ref.float() / so), -128, 127) * so).to(dtype)
                    if not torch.equal(y, ref):
                        failures.append(("static", meta, M, N, Kd, has_bias, has_out, (y - ref).abs().max().item()))
    for block_m in K._GEMV_BLOCK_M:
        for config in K._gemv_configs(block_m):
            meta = dict(config.kwargs)
            if (tile := ("gemv", block_m, *sorted(meta.items()))) in tiles:
                continue
            tiles.add(tile)
            for M, N, Kd in ((max(1, block_m - 1), 100, 300), (block_m, 37, 1100)):
                x = torch.randn(M, Kd, dtype=dtype)
                w = torch.randint(-127, 128, (N, Kd), dtype=torch.int8)
                s = (torch.rand(N) * 0.01 + 1e-3).to(dtype)
                b = torch.randn(N, dtype=dtype)
                y = torch.empty(M, N, dtype=dtype)
                grid = (triton.cdiv(N, meta["BLOCK_N"]),)
                K._int8_weight_gemv_kernel[grid](
                    x, w, s, b, y, M, N, Kd, Kd, 1, Kd, 1, N, 1, HAS_BIAS=True, BLOCK_M=block_m, **meta
                )
                ref = (x.float() @ w.float().t()) * s.float() + b.float()
                err = ((y.float() - ref).abs() / (ref.abs() + 1.0)).max().item()
                if err > 2e-3:
                    failures.append(("gemv", block_m, meta, M, N, Kd, err))
    print("TILES", len(tiles), "FAILURES", failures)
    sys.exit(1 if failures else 0)
    """
)


@pytest.mark.skipif(_interpreter_unusable() is not None, reason=str(_interpreter_unusable()))
def test_every_tile_configuration_under_the_triton_interpreter():
    """Masks, grouped ordering, strides and epilogues of both kernels, for each autotuning candidate's tile."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", INTERPRETER_CHECK], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def test_kernel_choice_on_cpu():
    cpu = torch.device("cpu")
    assert resolve_kernel("auto", cpu) == "torch"
    assert resolve_kernel("torch", cpu) == "torch"
    for kernel in ("triton", "mixed"):
        with pytest.raises(InvalidRequestError, match="CUDA"):
            resolve_kernel(kernel, cpu)
    with pytest.raises(InvalidRequestError, match="Unknown linear kernel"):
        resolve_kernel("cutlass", cpu)


def test_triton_layers_fall_back_to_plain_ops_for_cpu_inputs():
    """A layer marked "triton" still serves a CPU tensor (e.g. a model moved off the GPU), through the plain path."""
    generator = torch.Generator().manual_seed(0)
    weight = torch.randint(-127, 128, (24, 16), dtype=torch.int8, generator=generator)
    layer = Int8Linear(weight, torch.rand(24, generator=generator) * 0.01, torch.randn(24, generator=generator))
    x = torch.randn(3, 16, generator=generator)
    expected = layer(x)
    layer.kernel = "triton"
    assert torch.equal(layer(x), expected)
    assert "kernel=triton" in repr(layer)


def _dit_layer(out_features: int, in_features: int, activations: bool, seed: int) -> Int8Linear:
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randint(-127, 128, (out_features, in_features), dtype=torch.int8, generator=generator)
    scale = (torch.rand(out_features, generator=generator) * 2e-4 + 1e-4).to(torch.bfloat16)
    bias = (torch.randn(out_features, generator=generator) * 0.02).to(torch.bfloat16)
    input_scale = torch.tensor(3.0 / 127) if activations else None
    output_scale = torch.tensor(0.5 / 127) if activations else None
    return Int8Linear(weight, scale, bias, input_scale, output_scale).cuda()


@pytest.mark.cuda
@pytest.mark.skipif(not kernels.available(), reason="needs a CUDA GPU and triton (recorded in bench/README.md)")
@pytest.mark.parametrize("activations", [False, True], ids=["w8", "w8a8"])
@pytest.mark.parametrize(
    "rows,out_features,in_features",
    [(2, 6912, 1152), (512, 3456, 1152), (512, 1152, 4608), (2048, 4608, 1152), (9, 100, 72)],
    ids=["adaln-2rows", "qkv-512", "fc2-512", "fc1-2048", "odd-9rows"],
)
def test_triton_kernels_match_plain_ops_on_cuda(activations, rows, out_features, in_features):
    layer = _dit_layer(out_features, in_features, activations, seed=rows + out_features)
    x = torch.randn(rows, in_features, device="cuda", generator=torch.Generator("cuda").manual_seed(1))
    x = (x * 0.5).to(torch.bfloat16)
    layer.kernel = "torch"
    expected = layer(x).float()
    layer.kernel = "triton"
    got = layer(x).float()
    assert got.dtype == expected.dtype and got.shape == expected.shape
    if activations:
        # The kernel's own arithmetic, written out in fp32: integer accumulation is exact, so this must agree
        # to the last bit but for rare fp32 contraction differences.
        si, so, sw = layer.input_scale, layer.output_scale, layer.scale.float()
        xq = torch.clamp(torch.round(x.float() / si), -128, 127)
        acc = (xq.double() @ layer.weight.double().t()).float()
        exact = (acc * (si * sw)).to(torch.bfloat16).float()
        exact = (exact + layer.bias.float()).to(torch.bfloat16).float()
        exact = (torch.clamp(torch.round(exact / so), -128, 127) * so).to(torch.bfloat16).float()
        mismatched = ((got - exact).abs() > 0).float().mean().item()
        tuned = {key: str(getattr(k, "best_config", None)) for key, k in kernels._STATIC_KERNELS.items()}
        assert mismatched < 1e-3, (mismatched, (got - exact).abs().max().item(), tuned)
        # Against the plain path: `_int_mm` from 17 rows (same integers: one output step at most); below that a bf16
        # matmul of the fake-quantized x, whose own rounding can move an output by up to two steps.
        steps = 1 if rows >= 17 else 2
        assert (got - expected).abs().max().item() <= so.item() * steps * 1.01
    else:
        # fp32 accumulation in another order and a fp32 (not bf16) scale multiply: bf16-level agreement.
        tolerance = 0.02 * expected.abs().max().item()
        assert (got - expected).abs().max().item() <= tolerance
