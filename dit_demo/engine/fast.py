"""The fast GPU path: compile-friendly int8 linears + torch.compile / CUDA graphs, with a timed warm-up.

quanto's modules dequantize every weight on every call and its int8-activation tensors break torch.compile.
Here, after quantization (the saved format stays quanto's), each frozen qint8 `QLinear` is swapped for an
`Int8Linear` holding the same int8 weights and scales and computing with plain torch ops that Inductor fuses:
- weights only (`int8`): `(x @ W_int8ᵀ) * scale` — the int8→bf16 cast is fused into the matmul when Inductor can;
- int8 activations (`int8-a8`, M > 16 rows): the calibrated static input scale quantizes x, `torch._int_mm` runs on
  int8 tensor cores, and the output is fake-quantized with the calibrated output scale, as quanto does. The 2-row
  adaLN / timestep layers (M ≤ 16, below `_int_mm`'s minimum) take the weight-only path.

The per-block class-label tables (`nn.Embedding`, which quanto leaves in bf16) become `Int8Embedding`s.

On a CUDA GPU with Triton, `kernel="triton"` runs both as fused kernels from `dit_demo.engine.kernels` instead: int8
weights are read straight into the tensor-core loop (no bf16 copy of any weight is written), scales, bias and output
fake-quantization happen in the epilogue, and w8a8 has no row minimum. The default (`"auto"` = `"torch"`) is the
plain-op path, on CPU and GPU alike: on the H100 cuBLAS beat these kernels at every DiT-XL/2 layer shape
(`python -m dit_demo.reports.linears`, numbers in bench/README.md).
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable

import torch
from optimum.quanto import qint8
from optimum.quanto.nn import QLinear

import dit_demo.engine.kernels as kernels
from dit_demo.engine.generate import Variant
from dit_demo.engine.sources import sibling_pipeline
from dit_demo.errors import InvalidRequestError

COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
INT_MM_MIN_ROWS = 17  # torch._int_mm needs more than 16 rows
LINEAR_KERNELS = ("auto", "triton", "mixed", "torch")  # mixed: Triton GEMV for ≤ 16 rows, plain ops above


def _quantize(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """quanto's per-tensor int8 activation quantization as plain ops Inductor can fuse: round half to even, clamp."""
    return torch.clamp(torch.round(x / scale), -128, 127)


def _fake_quantize(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """quanto's int8 activation rounding kept in float (x / s, round half to even, clamp, × s)."""
    return _quantize(x, scale) * scale


class Int8Linear(torch.nn.Module):
    """A frozen qint8 linear as plain tensor ops; numerically the quanto module it replaces, up to fp rounding."""

    def __init__(
        self,
        weight: torch.Tensor,
        scale: torch.Tensor,
        bias: torch.Tensor | None,
        input_scale: torch.Tensor | None = None,
        output_scale: torch.Tensor | None = None,
    ):
        super().__init__()
        if weight.dtype != torch.int8:
            raise TypeError(f"Int8Linear needs int8 weights, got {weight.dtype}")
        self.out_features, self.in_features = weight.shape
        self.register_buffer("weight", weight.contiguous())
        self.register_buffer("scale", scale.reshape(-1).contiguous())
        self.register_buffer("bias", None if bias is None else bias.detach().clone())
        self.register_buffer("input_scale", None if input_scale is None else input_scale.detach().float().clone())
        self.register_buffer("output_scale", None if output_scale is None else output_scale.detach().float().clone())
        self.kernel = "torch"  # set by `compile_variant`: "triton" runs the fused kernels on CUDA inputs

    @classmethod
    def from_qlinear(cls, module: QLinear) -> Int8Linear:
        weight = module.weight
        # quanto's WeightQBytesTensor keeps int8 data and per-output-channel scales in `_data` / `_scale`.
        data, scale = weight._data, weight._scale
        activations = module.activation_qtype is not None
        return cls(
            data,
            scale,
            module.bias,
            module.input_scale if activations else None,
            module.output_scale if activations else None,
        )

    @property
    def activations_quantized(self) -> bool:
        return self.input_scale is not None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x2d = x.reshape(-1, self.in_features)
        few_rows = x2d.shape[0] <= kernels.FEW_ROWS
        if x2d.is_cuda and (self.kernel == "triton" or (self.kernel == "mixed" and few_rows)):
            y = self._triton_forward(x2d)
        else:
            y = self._torch_forward(x2d)
        return y.reshape(*shape[:-1], self.out_features)

    def _triton_forward(self, x2d: torch.Tensor) -> torch.Tensor:
        if self.input_scale is None:
            return kernels.int8_weight_linear(x2d, self.weight, self.scale, self.bias)
        xq = _quantize(x2d.float(), self.input_scale).to(torch.int8)  # fused by Inductor into the producer of x
        return kernels.int8_static_linear(
            xq, self.weight, self.scale, self.bias, self.input_scale, self.output_scale, x2d.dtype
        )

    def _torch_forward(self, x2d: torch.Tensor) -> torch.Tensor:
        dtype = x2d.dtype
        if self.input_scale is not None and x2d.shape[0] >= INT_MM_MIN_ROWS:
            s_in = self.input_scale
            xq = _quantize(x2d.float(), s_in).to(torch.int8)
            acc = torch._int_mm(xq, self.weight.t())
            y = (acc.float() * (s_in * self.scale.float())).to(dtype)
        else:
            if self.input_scale is not None:
                x2d = _fake_quantize(x2d.float(), self.input_scale).to(dtype)
            y = torch.nn.functional.linear(x2d, self.weight.to(dtype)) * self.scale.to(dtype)
        if self.bias is not None:
            y = y + self.bias.to(y.dtype)
        if self.output_scale is not None:
            y = _fake_quantize(y.float(), self.output_scale).to(dtype)
        return y

    def extra_repr(self) -> str:
        mode = "w8a8 static" if self.activations_quantized else "w8 weight-only"
        return f"in_features={self.in_features}, out_features={self.out_features}, {mode}, kernel={self.kernel}"


class Int8Embedding(torch.nn.Module):
    """An embedding table stored as int8 rows with one scale per row, gathered then rescaled.

    DiT keeps a 1001 × 1152 class-label table in every block (28 copies, 65 MB in bf16) that quanto cannot quantize
    (it quantizes Linear/Conv/LayerNorm only). Per-row absmax int8 halves it; a row's error is at most half a step
    (max|row| / 254), below the int8 weight rounding of the layers that read it.
    """

    def __init__(self, embedding: torch.nn.Embedding):
        super().__init__()
        table = embedding.weight.detach()
        scale = table.float().abs().amax(dim=1).clamp_min(torch.finfo(torch.float32).tiny) / 127
        self.register_buffer("weight", torch.round(table.float() / scale[:, None]).clamp(-127, 127).to(torch.int8))
        self.register_buffer("scale", scale.to(table.dtype))
        self.num_embeddings, self.embedding_dim = table.shape

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.weight[ids].to(self.scale.dtype) * self.scale[ids].unsqueeze(-1)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, int8 rows"


def _replace_submodule(root: torch.nn.Module, name: str, new: torch.nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    setattr(root.get_submodule(parent_name) if parent_name else root, attr, new)


def convert_embeddings(module: torch.nn.Module) -> int:
    """Swap every `nn.Embedding` in `module` for an `Int8Embedding`, in place; returns how many."""
    targets = [(name, child) for name, child in module.named_modules() if type(child) is torch.nn.Embedding]
    for name, child in targets:
        _replace_submodule(module, name, Int8Embedding(child))
    return len(targets)


def resolve_kernel(kernel: str, device: torch.device) -> str:
    """ "auto" → the plain-op path: on the H100 it beat both Triton choices end to end (bench/README.md), because
    cuBLAS wins every DiT-XL/2 layer shape there; "triton" / "mixed" stay selectable for other GPUs and shapes."""
    if kernel not in LINEAR_KERNELS:
        raise InvalidRequestError(f"Unknown linear kernel {kernel!r}: choose one of {', '.join(LINEAR_KERNELS)}.")
    if kernel == "auto":
        return "torch"
    if kernel in ("triton", "mixed") and not (device.type == "cuda" and kernels.available()):
        raise InvalidRequestError(f"kernel={kernel!r} needs a CUDA GPU and triton; use kernel='torch' here.")
    return kernel


def convert_to_fast_linears(module: torch.nn.Module) -> int:
    """Swap every frozen qint8 `QLinear` in `module` for an `Int8Linear` (plain-op kernel until `compile_variant`
    picks one), in place; returns how many."""
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
    return len(targets)


def structural_copy(module: torch.nn.Module) -> torch.nn.Module:
    """A new module tree sharing every parameter and buffer: swapping layers or compiling it leaves `module` as it
    was, at no memory cost (quanto's weight tensors cannot be deep-copied anyway)."""
    memo = {id(t): t for t in [*module.parameters(), *module.buffers()]}
    return copy.deepcopy(module, memo)


def compile_variant(
    variant: Variant,
    mode: str = "reduce-overhead",
    *,
    fast_linears: bool = True,
    kernel: str = "auto",
    fullgraph: bool = False,
    inplace: bool = True,
) -> Variant:
    """Make a variant fast: int8 linears and int8 label tables (int8 / int8-a8), then `torch.compile` of the
    transformer.

    `kernel` picks the int8 linears' implementation (`LINEAR_KERNELS`; "auto" = plain torch ops, the measured
    winner on the H100; "triton" / "mixed" = the fused kernels of `dit_demo.engine.kernels`, CUDA only).
    `inplace=False` leaves the eager variant usable (the app keeps both) and returns a sibling with its own
    transformer and scheduler (the VAE is shared). The first call afterwards compiles (tens of seconds on a GPU
    host); run `warm_up` to pay that up front.
    """
    if mode not in COMPILE_MODES:
        raise InvalidRequestError(f"Unknown compile mode {mode!r}: choose one of {', '.join(COMPILE_MODES)}.")
    kernel = resolve_kernel(kernel, variant.pipe.transformer.device)
    if not inplace:
        sibling = sibling_pipeline(variant.pipe, structural_copy(variant.pipe.transformer))
        sibling.set_progress_bar_config(leave=False)
        variant = dataclasses.replace(variant, pipe=sibling)
    transformer = variant.pipe.transformer
    if fast_linears:
        convert_to_fast_linears(transformer)
    fast_layers = [m for m in transformer.modules() if isinstance(m, Int8Linear)]
    for layer in fast_layers:
        layer.kernel = kernel
    converted = len(fast_layers)
    if converted:  # an int8 model: its label tables go int8 too (a bf16 reference is left exactly as it is)
        convert_embeddings(transformer)
    if mode != "none":
        transformer.compile(mode=mode, fullgraph=fullgraph, dynamic=False)
    labels = {"triton": "+int8-triton", "mixed": "+int8-mixed", "torch": "+int8-linears"}
    variant.compile_mode = mode + (labels[kernel] if converted else "")
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
