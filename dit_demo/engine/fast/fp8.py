"""The `fp8-a8` fast path: quanto's frozen fp8 (e4m3) linears with static fp8 activations as plain torch ops.

On Hopper the fp8 tensor cores are the only quantized GEMM faster than cuBLAS bf16, and only for GEMMs of a couple of
thousand rows and more (the end-to-end fp8-a8 numbers are in bench/README.md). `Fp8Linear` holds the same fp8
weights, per-output-channel scales and calibrated activation scales as the quanto module it replaces (the saved
format stays quanto's). On fp8 tensor cores it computes, by default (`epilogue="rowwise"`):

    x_q = clamp(x / s_in, ±448) → e4m3        plain ops: Inductor fuses them into the kernel that produced x
                                              (the LayerNorm + modulate, the GELU), so quantizing costs no pass
    y   = torch._scaled_mm(x_q, W_q, 1, s_in · s_w, bias)
                                              fp8 × fp8, fp32 accumulation; the per-channel scale and the bias are
                                              applied in the GEMM's own epilogue, one rounding to bf16

so a layer is one GEMM and nothing else: the fused QKV's output goes to attention as it is (no extra pass to
rescale, add the bias and split it). Unlike quanto, its output is not rounded to fp8 a second time (quanto quantizes
every QLinear's output with a calibrated scale too; the next fp8 GEMM quantizes its own input anyway): the images
are closer to bf16 than quanto's (PSNR measured in bench/h200-w8a16). `epilogue="tensorwise"` keeps quanto's output
rounding, with the scale, bias and rounding as one pointwise kernel that Inductor fuses with the consumer.

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
EPILOGUES = ("rowwise", "tensorwise")
UNIT_ROWS = 1 << 15  # rows of the shared all-ones row scale (512² batch 8 with CFG is 16,384 token rows)


@functools.cache
def fp8_matmul_available(device: torch.device | str) -> bool:
    """True where `torch._scaled_mm` runs on fp8 tensor cores (CUDA, compute capability ≥ 8.9)."""
    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        return False
    return torch.cuda.get_device_capability(device) >= MIN_CAPABILITY


@functools.cache
def rowwise_epilogue_available(device: torch.device | str) -> bool:
    """True where `torch._scaled_mm` takes row-wise scales and a bias (bf16 out) on this device: probed once, since
    which scalings a build supports differs between torch versions and GPUs."""
    device = torch.device(device)
    if not fp8_matmul_available(device):
        return False
    a = torch.zeros(32, 32, device=device).to(FP8)
    b = torch.zeros(32, 32, device=device).to(FP8)
    ones = torch.ones(32, 1, device=device)
    try:
        torch._scaled_mm(a, b.t(), scale_a=ones, scale_b=ones.t().contiguous(),
                         bias=torch.zeros(32, device=device, dtype=torch.bfloat16), out_dtype=torch.bfloat16,
                         use_fast_accum=True)  # fmt: skip
    except (RuntimeError, NotImplementedError):
        return False
    return True


@functools.cache
def _unit_rows(device: torch.device) -> torch.Tensor:
    """One all-ones [UNIT_ROWS, 1] fp32 column per device, shared by every layer (row-wise `_scaled_mm` wants a
    contiguous per-row scale; the activation scale goes into the per-column one)."""
    return torch.ones(UNIT_ROWS, 1, dtype=torch.float32, device=device)


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
        # set by `enable_scaled_mm` (compile_variant): the fp8 tensor-core path and its epilogue, with the fp32
        # scales it reads precomputed (a per-call `.float()` of a scale was one extra kernel per layer per step)
        self.scaled_mm = False
        self.epilogue: str | None = None
        self.register_buffer("input_scale_fp32", None, persistent=False)
        self.register_buffer("column_scale", None, persistent=False)  # [1, N] fp32: s_in · s_w
        self.register_buffer("unit_rows", None, persistent=False)

    @classmethod
    def from_qlinear(cls, module: QLinear) -> Fp8Linear:
        return cls(*qlinear_tensors(module))

    @property
    def activations_quantized(self) -> bool:
        return self.input_scale is not None

    def enable_scaled_mm(self, epilogue: str = "auto") -> bool:
        """Use `torch._scaled_mm` when the device has fp8 tensor cores and the shape suits it (K, N multiples of
        16); returns whether it is on. `epilogue`: "rowwise" (scale and bias inside the GEMM, no output rounding),
        "tensorwise" (quanto's output rounding, as a pointwise kernel), "auto" = rowwise where this torch has it."""
        if epilogue not in ("auto", *EPILOGUES):
            raise ValueError(f"epilogue must be one of auto, {', '.join(EPILOGUES)}; got {epilogue!r}")
        shape_ok = self.in_features % 16 == 0 and self.out_features % 16 == 0
        device = self.weight.device
        self.scaled_mm = self.activations_quantized and shape_ok and fp8_matmul_available(device)
        if not self.scaled_mm:
            self.epilogue = None
            return False
        if epilogue == "auto":
            epilogue = "rowwise" if rowwise_epilogue_available(device) else "tensorwise"
        self.epilogue = epilogue
        s_in = self.input_scale.float().reshape(())
        self.input_scale_fp32 = s_in.clone()
        self.column_scale = (s_in * self.scale.float().reshape(1, -1)).contiguous()
        self.unit_rows = _unit_rows(device)
        return True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x2d = x.reshape(-1, self.in_features)
        if self.input_scale is None:
            y = self._weight_only(x2d)
        elif self.scaled_mm and x2d.is_cuda and self.epilogue == "rowwise" and x2d.dtype == torch.bfloat16:
            return self._rowwise(x2d).reshape(*shape[:-1], self.out_features)  # outputs stay bf16 (docstring)
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

    def _rowwise(self, x2d: torch.Tensor) -> torch.Tensor:
        """One fp8 GEMM with s_in · s_w per column and the bias in its epilogue (bf16 out)."""
        rows = x2d.shape[0]
        xq = quantize_fp8(x2d, self.input_scale)
        if rows <= self.unit_rows.shape[0]:
            unit = self.unit_rows[:rows]
        else:
            unit = torch.ones(rows, 1, dtype=torch.float32, device=x2d.device)
        bias = None if self.bias is None else self.bias.to(x2d.dtype)
        return torch._scaled_mm(xq, self.weight.t(), scale_a=unit, scale_b=self.column_scale, bias=bias,
                                out_dtype=x2d.dtype, use_fast_accum=True)  # fmt: skip

    def _tensor_cores(self, x2d: torch.Tensor) -> torch.Tensor:
        dtype = x2d.dtype
        xq = quantize_fp8(x2d, self.input_scale)
        acc = torch._scaled_mm(xq, self.weight.t(), scale_a=self.input_scale_fp32, scale_b=self.one, out_dtype=dtype,
                               use_fast_accum=True)  # fmt: skip
        y = acc * self.scale.reshape(-1).to(dtype)
        return y if self.bias is None else y + self.bias.to(dtype)

    def extra_repr(self) -> str:
        mode = "w8a8 static fp8" if self.activations_quantized else "fp8 weight-only"
        where = f"scaled_mm={self.scaled_mm}" + (f", epilogue={self.epilogue}" if self.scaled_mm else "")
        return f"in_features={self.in_features}, out_features={self.out_features}, {mode}, {where}"


def is_fp8_qlinear(module: torch.nn.Module) -> bool:
    return (
        isinstance(module, QLinear)
        and module.weight_qtype == qfloat8
        and module.frozen
        and module.activation_qtype in (None, qfloat8)
    )
