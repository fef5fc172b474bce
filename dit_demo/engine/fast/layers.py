"""The fast path's layers: quanto's frozen qint8 modules as plain torch ops that Inductor fuses.

- `Int8Linear`: weights only (`int8`): `(x @ W_int8ᵀ) * scale` — the int8→bf16 cast is fused into the matmul when
  Inductor can; int8 activations (`int8-a8`, M > 16 rows): the calibrated static input scale quantizes x,
  `torch._int_mm` runs on int8 tensor cores, and the output is fake-quantized with the calibrated output scale, as
  quanto does. The 2-row adaLN / timestep layers (M ≤ 16, below `_int_mm`'s minimum) take the weight-only path.
- `Int8Embedding`: the per-block class-label tables (`nn.Embedding`, which quanto leaves in bf16) as int8 rows.

The fp8 twin (`Fp8Linear`) is in `dit_demo.engine.fast.fp8`; `dit_demo.engine.fast.compile` swaps them in and compiles.
"""

from __future__ import annotations

import torch
from optimum.quanto.nn import QLinear

import dit_demo.engine.fast.kernels as kernels
from dit_demo.engine.fast.kernel_choice import use_triton

INT_MM_MIN_ROWS = 17  # torch._int_mm needs more than 16 rows


def _quantize(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """quanto's per-tensor int8 activation quantization as plain ops Inductor can fuse: round half to even, clamp."""
    return torch.clamp(torch.round(x / scale), -128, 127)


def _fake_quantize(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """quanto's int8 activation rounding kept in float (x / s, round half to even, clamp, × s)."""
    return _quantize(x, scale) * scale


def qlinear_tensors(module: QLinear) -> tuple:
    """(weight data, per-output-channel scales, bias, input scale, output scale) of a frozen quanto `QLinear`; the
    activation scales are None when only its weights are quantized."""
    weight = module.weight  # quanto keeps the quantized data and scales in `_data` / `_scale`
    activations = module.activation_qtype is not None
    return (
        weight._data,
        weight._scale,
        module.bias,
        module.input_scale if activations else None,
        module.output_scale if activations else None,
    )


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
        self.rows_choice: tuple[tuple[int, bool], ...] = ()  # kernel "shape": (rows, Triton faster), measured

    @classmethod
    def from_qlinear(cls, module: QLinear) -> Int8Linear:
        return cls(*qlinear_tensors(module))

    @property
    def activations_quantized(self) -> bool:
        return self.input_scale is not None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x2d = x.reshape(-1, self.in_features)
        if x2d.is_cuda and self._wants_triton(x2d.shape[0]):
            y = self._triton_forward(x2d)
        else:
            y = self._torch_forward(x2d)
        return y.reshape(*shape[:-1], self.out_features)

    def _wants_triton(self, rows: int) -> bool:
        """ "triton": always; "mixed": the ≤ 16-row GEMV only; "shape": weight-only layers of more than 16 rows
        where the measured table (`kernel_choice`) says the fused W8A16 kernel beats cast + cuBLAS at this row count
        (static-activation layers keep the plain `_int_mm` path; the GEMV was not part of that measurement)."""
        few_rows = rows <= kernels.FEW_ROWS
        if self.kernel == "triton":
            return True
        if self.kernel == "mixed":
            return few_rows
        if self.kernel == "shape":
            return self.input_scale is None and not few_rows and use_triton(self.rows_choice, rows)
        return False

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
