"""The `fp8-a8` fast path: quanto's frozen fp8 (e4m3) linears with static fp8 activations as plain torch ops.

On Hopper the fp8 tensor cores are the only quantized GEMM faster than cuBLAS bf16, and only for GEMMs of a couple of
thousand rows and more (the end-to-end fp8-a8 numbers are in bench/README.md). `Fp8Linear` holds the same fp8
weights, per-output-channel scales and calibrated activation scales as the quanto module it replaces (the saved
format stays quanto's) and computes

    x_q = clamp(x / s_in, ±448) → e4m3        plain ops: Inductor fuses them into the kernel that produced x
                                              (the LayerNorm + modulate, the GELU), so quantizing costs no pass
    y   = torch._scaled_mm(x_q, W_q, s_in)    fp8 × fp8 on the tensor cores, fp32 accumulation, bf16 out
    y   = fakequant_fp8(y · s_w + b, s_out)   quanto's output quantization, fused by Inductor into one pointwise
                                              kernel with whatever reads y next (the residual add, the GELU)

Where the hardware has no fp8 tensor cores (CPU, GPUs before compute capability 8.9) the same module computes
quanto's own arithmetic (fp8 values upcast, weights pre-scaled, a float matmul), so images match quanto there.
"""

from __future__ import annotations

import functools

import torch
from optimum.quanto import qfloat8
from optimum.quanto.nn import QLinear

from dit_demo.engine.fast.layers import qlinear_tensors

FP8 = torch.float8_e4m3fn
FP8_MAX = float(torch.finfo(FP8).max)  # 448
MIN_CAPABILITY = (8, 9)  # Ada / Hopper: fp8 tensor cores


@functools.cache
def fp8_matmul_available(device: torch.device | str) -> bool:
    """True where `torch._scaled_mm` runs on fp8 tensor cores (CUDA, compute capability ≥ 8.9)."""
    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        return False
    return torch.cuda.get_device_capability(device) >= MIN_CAPABILITY


def quantize_fp8(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """quanto's per-tensor fp8 activation quantization: x / s in x's dtype, clamp to ±448, round to e4m3."""
    return torch.clamp(x / scale.to(x.dtype), -FP8_MAX, FP8_MAX).to(FP8)


def fake_quantize_fp8(y: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """quanto's fp8 output quantization followed by the dequantization its consumer does."""
    return quantize_fp8(y, scale).to(y.dtype) * scale.to(y.dtype)


class Fp8Linear(torch.nn.Module):
    """A frozen qfloat8 `QLinear` (static fp8 activations, or weights only) as plain tensor ops."""

    def __init__(self, weight, scale, bias, input_scale=None, output_scale=None):
        super().__init__()
        if weight.dtype != FP8:
            raise TypeError(f"Fp8Linear needs float8_e4m3fn weights, got {weight.dtype}")
        self.out_features, self.in_features = weight.shape
        self.register_buffer("weight", weight.contiguous())
        self.register_buffer("scale", scale.reshape(-1, 1).contiguous())  # [N, 1], quanto's dtype
        self.register_buffer("bias", None if bias is None else bias.detach().clone())
        self.register_buffer("input_scale", None if input_scale is None else input_scale.detach().clone())
        self.register_buffer("output_scale", None if output_scale is None else output_scale.detach().clone())
        self.register_buffer("one", torch.ones((), dtype=torch.float32, device=weight.device))
        self.scaled_mm = False  # set by `enable_scaled_mm` (compile_variant): the fp8 tensor-core path

    @classmethod
    def from_qlinear(cls, module: QLinear) -> Fp8Linear:
        return cls(*qlinear_tensors(module))

    @property
    def activations_quantized(self) -> bool:
        return self.input_scale is not None

    def enable_scaled_mm(self) -> bool:
        """Use `torch._scaled_mm` when the device has fp8 tensor cores and the shape suits it (K, N multiples of
        16); returns whether it is on."""
        shape_ok = self.in_features % 16 == 0 and self.out_features % 16 == 0
        self.scaled_mm = self.activations_quantized and shape_ok and fp8_matmul_available(self.weight.device)
        return self.scaled_mm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x2d = x.reshape(-1, self.in_features)
        if self.input_scale is None:
            y = self._weight_only(x2d)
        elif self.scaled_mm and x2d.is_cuda:
            y = self._tensor_cores(x2d)
        else:
            y = self._emulated(x2d)
        if self.output_scale is not None:
            y = fake_quantize_fp8(y, self.output_scale)
        return y.reshape(*shape[:-1], self.out_features)

    def _weight_only(self, x2d: torch.Tensor) -> torch.Tensor:
        dtype = self.scale.dtype
        y = torch.matmul(x2d.to(dtype), (self.scale * self.weight.to(dtype)).t())
        return y if self.bias is None else y + self.bias

    def _emulated(self, x2d: torch.Tensor) -> torch.Tensor:
        """quanto's qbytes_mm: fp8 values upcast to the scale dtype, weights pre-scaled by s_in · s_w."""
        dtype = self.scale.dtype
        xq = quantize_fp8(x2d, self.input_scale)
        weights = (self.input_scale * self.scale) * self.weight.to(dtype)
        y = torch.matmul(xq.to(dtype), weights.t())
        return y if self.bias is None else y + self.bias

    def _tensor_cores(self, x2d: torch.Tensor) -> torch.Tensor:
        dtype = x2d.dtype
        xq = quantize_fp8(x2d, self.input_scale)
        s_in = self.input_scale.float()
        acc = torch._scaled_mm(xq, self.weight.t(), scale_a=s_in, scale_b=self.one, out_dtype=dtype,
                               use_fast_accum=True)  # fmt: skip
        y = acc * self.scale.reshape(-1).to(dtype)
        return y if self.bias is None else y + self.bias.to(dtype)

    def extra_repr(self) -> str:
        mode = "w8a8 static fp8" if self.activations_quantized else "fp8 weight-only"
        return f"in_features={self.in_features}, out_features={self.out_features}, {mode}, scaled_mm={self.scaled_mm}"


def is_fp8_qlinear(module: torch.nn.Module) -> bool:
    return (
        isinstance(module, QLinear)
        and module.weight_qtype == qfloat8
        and module.frozen
        and module.activation_qtype in (None, qfloat8)
    )
