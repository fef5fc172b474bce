"""The fast GPU path: compile-friendly quantized linears, fused QKV, and the whole denoising step in CUDA graphs.

quanto's modules dequantize every weight on every call and its activation-quantized tensors break torch.compile.
After quantization (the saved format stays quanto's), `compile_variant` swaps each frozen qint8 `QLinear` for an
`Int8Linear` and each qfloat8 one for an `Fp8Linear` (plain torch ops that Inductor fuses; `dit_demo.engine.fast.
layers`, `dit_demo.engine.fast.fp8`), stores the per-block class-label tables as int8 rows, fuses each attention's
q/k/v into one GEMM (`dit_demo.engine.fast.fusion`; by default together with step capture), compiles the
transformer with Inductor and — the default on a GPU — captures the whole denoising step (transformer + guidance +
sampler update) and the VAE decode as CUDA graphs (`dit_demo.engine.fast.capture`; H200 numbers in bench/README.md).
`capture="forward"` keeps the older arrangement: `torch.compile`'s own CUDA graphs around the transformer forward
only, the pipeline's Python loop between forwards.

On a CUDA GPU with Triton, `kernel="triton"` runs the int8 linears as fused kernels from `dit_demo.engine.fast.kernels`
instead. The default (`"auto"`) is `"shape"` on a GPU with a measured kernel table (`dit_demo.engine.fast.
kernel_choice`: per layer shape, the fused W8A16 kernel where it beat cast + cuBLAS in CUDA graphs on that GPU), and
the plain-op path everywhere else (on the H100 cuBLAS beat the older kernels at every DiT-XL/2 layer shape).
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable

import torch
from optimum.quanto import qint8
from optimum.quanto.nn import QLinear

import dit_demo.engine.fast.kernel_choice as kernel_choice
import dit_demo.engine.fast.kernels as kernels
from dit_demo.engine.fast.capture import CapturedDiTPipeline
from dit_demo.engine.fast.fp8 import Fp8Linear, is_fp8_qlinear
from dit_demo.engine.fast.fusion import fuse_qkv
from dit_demo.engine.fast.layers import Int8Embedding, Int8Linear
from dit_demo.engine.generate import Variant
from dit_demo.engine.model.sources import sibling_pipeline
from dit_demo.errors import InvalidRequestError

COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
# mixed: Triton GEMV for ≤ 16 rows, plain ops above; shape: per layer shape from the measured table (kernel_choice)
LINEAR_KERNELS = ("auto", "triton", "mixed", "shape", "torch")
CAPTURE_MODES = ("auto", "step", "forward")  # auto: step on a GPU when compiling, forward otherwise
# Inductor without its own CUDA graphs, so the whole step can be captured around it
NO_CUDAGRAPHS = {"reduce-overhead": "default", "max-autotune": "max-autotune-no-cudagraphs"}
# Dynamo keeps at most `recompile_limit` (8) compiled entries per code object, then runs that code eagerly for good. A
# process holding several compiled variants (the app, the benchmarks) compiles the same diffusers code once per
# variant, and a graph break inside a transformer block adds one entry per block (each block's conditioning slice
# offset is a static int): on the H200 the fifth variant of one process fell back to eager from block 9 on (int8
# 1.69×, int8-a8 4.45× bf16, bench/h200-w8a16 run3). The limits are raised, never lowered.
RECOMPILE_LIMIT = 512


def allow_many_compiled_variants() -> None:
    """Raise Dynamo's per-code-object and accumulated recompile limits to `RECOMPILE_LIMIT` (process-wide)."""
    config = torch._dynamo.config
    config.recompile_limit = max(config.recompile_limit, RECOMPILE_LIMIT)
    config.accumulated_recompile_limit = max(config.accumulated_recompile_limit, RECOMPILE_LIMIT)


def _replace_submodule(root: torch.nn.Module, name: str, new: torch.nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    setattr(root.get_submodule(parent_name) if parent_name else root, attr, new)


def convert_embeddings(module: torch.nn.Module) -> int:
    """Swap every `nn.Embedding` in `module` for an `Int8Embedding`, in place; returns how many."""
    targets = [(name, child) for name, child in module.named_modules() if type(child) is torch.nn.Embedding]
    for name, child in targets:
        _replace_submodule(module, name, Int8Embedding(child))
    return len(targets)


def _device_table(device: torch.device) -> tuple:
    if device.type != "cuda" or not kernels.available():
        return ()
    return kernel_choice.table_for(torch.cuda.get_device_name(device))


def resolve_kernel(kernel: str, device: torch.device) -> str:
    """ "auto" → "shape" (the measured per-shape choice) on a GPU whose kernel table exists, else the plain-op path
    (on the H100 it beat the older Triton kernels end to end, bench/README.md); "triton" / "mixed" / "shape" stay
    selectable."""
    if kernel not in LINEAR_KERNELS:
        raise InvalidRequestError(f"Unknown linear kernel {kernel!r}: choose one of {', '.join(LINEAR_KERNELS)}.")
    if kernel == "auto":
        return "shape" if _device_table(device) else "torch"
    if kernel in ("triton", "mixed", "shape") and not (device.type == "cuda" and kernels.available()):
        raise InvalidRequestError(f"kernel={kernel!r} needs a CUDA GPU and triton; use kernel='torch' here.")
    return kernel


def convert_to_fast_linears(module: torch.nn.Module) -> int:
    """Swap every frozen qint8 `QLinear` in `module` for an `Int8Linear` (plain-op kernel until `compile_variant`
    picks one) and every frozen qfloat8 one for an `Fp8Linear`, in place; returns how many."""
    targets = [
        (name, child)
        for name, child in module.named_modules()
        if isinstance(child, QLinear)
        and child.weight_qtype == qint8
        and child.frozen
        and child.activation_qtype in (None, qint8)
    ]
    for name, child in targets:
        _replace_submodule(module, name, Int8Linear.from_qlinear(child))
    fp8 = [(name, child) for name, child in module.named_modules() if is_fp8_qlinear(child)]
    for name, child in fp8:
        _replace_submodule(module, name, Fp8Linear.from_qlinear(child))
    return len(targets) + len(fp8)


def assign_rows_choice(module: torch.nn.Module, table: tuple) -> int:
    """Give every `Int8Linear` in `module` its shape's slice of the measured kernel table; returns how many have
    at least one measured row count."""
    layers = [m for m in module.modules() if isinstance(m, Int8Linear)]
    for layer in layers:
        layer.rows_choice = kernel_choice.rows_choice(table, layer.out_features, layer.in_features)
    return sum(1 for layer in layers if layer.rows_choice)


def structural_copy(module: torch.nn.Module) -> torch.nn.Module:
    """A new module tree sharing every parameter and buffer: swapping layers or compiling it leaves `module` as it
    was, at no memory cost (quanto's weight tensors cannot be deep-copied anyway)."""
    memo = {id(t): t for t in [*module.parameters(), *module.buffers()]}
    return copy.deepcopy(module, memo)


def resolve_capture(capture: str, mode: str, device: torch.device) -> str:
    """ "auto" → "step" when compiling on a GPU (the whole step in CUDA graphs), "forward" otherwise."""
    if capture not in CAPTURE_MODES:
        raise InvalidRequestError(f"Unknown capture {capture!r}: choose one of {', '.join(CAPTURE_MODES)}.")
    if capture == "auto":
        return "step" if mode != "none" and device.type == "cuda" else "forward"
    return capture


def _fast_layers(transformer: torch.nn.Module, kernel: str, fast_linears: bool) -> str:
    """Swap in the fast layers and pick their kernels; returns the label suffix ("" for a float model)."""
    if fast_linears:
        convert_to_fast_linears(transformer)
    int8 = [m for m in transformer.modules() if isinstance(m, Int8Linear)]
    for layer in int8:
        layer.kernel = kernel
    fp8 = [m for m in transformer.modules() if isinstance(m, Fp8Linear)]
    tensor_cores = [layer.enable_scaled_mm() for layer in fp8]
    if int8 or fp8:  # a quantized model: its label tables go int8 too (a bf16 reference is left exactly as it is)
        convert_embeddings(transformer)
    names = {"triton": "+int8-triton", "mixed": "+int8-mixed", "shape": "+int8-per-shape", "torch": "+int8-linears"}
    label = names[kernel] if int8 else ""
    if fp8:
        label += "+fp8-scaled-mm" if any(tensor_cores) else "+fp8-emulated"
    return label


def compile_variant(
    variant: Variant,
    mode: str = "reduce-overhead",
    *,
    fast_linears: bool = True,
    kernel: str = "auto",
    fullgraph: bool = False,
    inplace: bool = True,
    capture: str = "auto",
    fuse: bool | None = None,
) -> Variant:
    """Make a variant fast: fast int8/fp8 linears and int8 label tables, fused QKV (`fuse`; None = with step
    capture, the combination measured fastest on the H200), Inductor, and (`capture="step"`, the default on a GPU
    when compiling) the whole denoising step in CUDA graphs.

    `mode` is torch.compile's; with step capture the modes that bring their own CUDA graphs (reduce-overhead,
    max-autotune) compile without them and the step graphs take their place. `kernel` picks the int8 linears'
    implementation (`LINEAR_KERNELS`; "auto" = the measured per-shape choice where a table exists, else plain ops).
    `inplace=False` leaves the eager variant usable (the app keeps both) and returns a sibling with its own
    transformer and scheduler (the VAE is shared). The first call afterwards compiles and captures (tens of
    seconds on a GPU host); run `warm_up` to pay that up front.
    """
    if mode not in COMPILE_MODES:
        raise InvalidRequestError(f"Unknown compile mode {mode!r}: choose one of {', '.join(COMPILE_MODES)}.")
    device = variant.pipe.transformer.device
    kernel = resolve_kernel(kernel, device)
    capture = resolve_capture(capture, mode, device)
    if not inplace:
        sibling = sibling_pipeline(variant.pipe, structural_copy(variant.pipe.transformer))
        sibling.set_progress_bar_config(leave=False)
        variant = dataclasses.replace(variant, pipe=sibling)
    transformer = variant.pipe.transformer
    label = _fast_layers(transformer, kernel, fast_linears)
    if fuse is None:
        fuse = capture == "step"
    if fuse and fuse_qkv(transformer):
        label = "+fused-qkv" + label
    if kernel == "shape":  # after fusing: the fused QKV layer looks up its own (out, in) shape
        assign_rows_choice(transformer, _device_table(device))
    if capture == "step":
        variant.pipe = CapturedDiTPipeline.wrap(variant.pipe)
        label = "+step-graph" + label
    if mode != "none":
        allow_many_compiled_variants()
        compile_mode = NO_CUDAGRAPHS.get(mode, mode) if capture == "step" else mode
        transformer.compile(mode=compile_mode, fullgraph=fullgraph, dynamic=False)
    variant.compile_mode = mode + label
    variant.warmup_s = None
    return variant


def warm_up(variant: Variant, run: Callable[[], object], *, runs: int = 2) -> float:
    """Run the real request shape `runs` times (compile, autotune, CUDA-graph capture) and record the time."""
    start = time.perf_counter()
    for _ in range(runs):
        run()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    variant.warmup_s = time.perf_counter() - start
    return variant.warmup_s
