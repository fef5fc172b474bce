"""`int8-dynamic`: int8 GEMMs on the CPU, with each call's activations quantized on the fly.

optimum-quanto keeps int8 weights but dequantizes every one of them on every call on a CPU, so its int8 recipes are
slower there than fp32. PyTorch's dynamic quantization (`torch.ao.quantization.quantize_dynamic`, FBGEMM kernels on
x86) instead runs int8 × int8 matrix products: each Linear's input gets a per-tensor scale computed from the call's
own range (nothing to calibrate, nothing stale) and the product is dequantized on the way out.

Why this library and not torchao (the successor that `torch.ao.quantization` points to): measured on the project's
2-core AMD EPYC CPU (AVX2, no VNNI), torch 2.13, one thread, DiT-XL/2's MLP shape (1152 → 4608 → 1152, 512 rows),
interleaved, 7 runs, medians: fp32 137 ms, `quantize_dynamic` 71 ms, torchao 0.18
`Int8DynamicActivationInt8WeightConfig` 3,900 ms eager and 4,560 ms under `torch.compile`, torchao's PT2E
`X86InductorQuantizer` (dynamic) compiled 180 ms. Only `quantize_dynamic` runs faster than fp32 here
(bench/cpu-int8/ has the script and the whole-model table).

The recipe is built at load time (a few seconds for XL/2) from the full-precision transformer or from a saved
optimum-quanto int8 folder (its int8 weights are dequantized exactly and re-quantized), and it is not saved: the
packed FBGEMM weights have no safetensors form, and the saved quanto int8 folder is the portable artifact.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from fnmatch import fnmatch

import torch
from optimum.quanto.nn import QLinear

from dit_demo.errors import InvalidRequestError

ENGINES = ("fbgemm", "x86")  # PyTorch's quantized CPU engines that run dynamic int8 Linear layers


def dynamic_int8_available(device: torch.device | str) -> bool:
    """Dynamic int8 kernels exist for the CPU only (FBGEMM / x86 engines)."""
    return torch.device(device).type == "cpu" and any(e in torch.backends.quantized.supported_engines for e in ENGINES)


def _dynamic_linear_type() -> type:
    return torch.ao.nn.quantized.dynamic.Linear


def float_linear_from(module: QLinear) -> torch.nn.Linear:
    """An `nn.Linear` with a frozen quanto linear's weights dequantized (exact: int8 × its scale in float32)."""
    weight = module.qweight.dequantize() if hasattr(module, "qweight") else module.weight
    linear = torch.nn.Linear(module.in_features, module.out_features, bias=module.bias is not None)
    linear.weight = torch.nn.Parameter(weight.detach().to(torch.float32).clone(), requires_grad=False)
    if module.bias is not None:
        linear.bias = torch.nn.Parameter(module.bias.detach().to(torch.float32).clone(), requires_grad=False)
    return linear


def dequantized_copy(transformer: torch.nn.Module) -> torch.nn.Module:
    """A float32 copy of a transformer whose quanto linears become plain ones (for a saved int8 folder)."""
    quantized = [(name, m) for name, m in transformer.named_modules() if isinstance(m, QLinear)]
    if any(m.activation_qtype is not None for _, m in quantized):
        raise InvalidRequestError(
            "int8-dynamic can be built from the full-precision model or a weight-only int8 folder; this folder has "
            "calibrated activation scales (int8-a8 / fp8-a8), which dynamic quantization would discard. Load the "
            "full-precision model instead."
        )
    # quanto's frozen tensors cannot be deep-copied: the memo hands deepcopy each one's float replacement instead
    memo = {id(module): float_linear_from(module) for _, module in quantized}
    return copy.deepcopy(transformer, memo).to(torch.float32)


def quantize_dynamic_int8(
    transformer: torch.nn.Module, *, exclude: Sequence[str] = (), include: Sequence[str] | None = None
) -> list[str]:
    """Swap every `nn.Linear` of `transformer` (in place) for a dynamic int8 one, except `exclude` patterns.

    Weights: per-tensor symmetric int8 (FBGEMM's fastest path here; per-channel measured 0.64× vs 0.55× of fp32 on
    the XL/2 forward at the same 46 dB). Returns the names of the swapped layers.
    """
    if next(transformer.parameters()).device.type != "cpu":
        raise InvalidRequestError("int8-dynamic runs on a CPU only (PyTorch's FBGEMM int8 kernels).")
    names = [
        name
        for name, module in transformer.named_modules()
        if type(module) is torch.nn.Linear
        and not any(fnmatch(name, p) for p in exclude)
        and (include is None or any(fnmatch(name, p) for p in include))
    ]
    spec = {name: torch.ao.quantization.default_dynamic_qconfig for name in names}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.ao.quantization's notice; see the docstring
        torch.ao.quantization.quantize_dynamic(transformer.float(), spec, dtype=torch.qint8, inplace=True)
    return names


def packed_weight_bytes(module: torch.nn.Module) -> int:
    """Bytes of the int8 weights, their scales and float biases held inside dynamic layers' packed parameters
    (invisible to `parameters()` / `buffers()`)."""
    total = 0
    for layer in module.modules():
        if isinstance(layer, _dynamic_linear_type()):
            weight, bias = layer._weight_bias()
            total += weight.numel() * weight.element_size()
            if weight.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
                total += weight.q_per_channel_scales().numel() * 4 + weight.q_per_channel_zero_points().numel()
            else:
                total += 4 + 1  # one float scale, one zero point
            if bias is not None:
                total += bias.numel() * bias.element_size()
    return total


def is_dynamic_int8(module: torch.nn.Module) -> bool:
    return any(isinstance(m, _dynamic_linear_type()) for m in module.modules())
