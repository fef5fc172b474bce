"""Fused QKV: one projection GEMM (and, for int8 weights, one weight conversion) per attention instead of three.

DiT's self-attention projects the same normalized tokens three times (to_q, to_k, to_v: 1152 → 1152 each in XL/2).
`fuse_qkv` concatenates the three along the output dimension into `attn.to_qkv` and switches the block to diffusers'
`FusedAttnProcessor2_0`, which splits the fused output back into q, k, v. It works for plain `nn.Linear`
(bf16 / fp32), `Int8Linear` and `Fp8Linear` (per-output-channel weight scales concatenate; static activation input
scales must be equal — the three layers see the same input, so calibration gives them the same scale — and output
scales become per-column vectors). The three original modules are dropped (`None`), so no weight is stored twice and
weight-byte counts stay true; a sibling made with `compile_variant(..., inplace=False)` drops only its own.
"""

from __future__ import annotations

import torch
from diffusers.models.attention_processor import Attention, FusedAttnProcessor2_0

from dit_demo.engine.fast.fp8 import Fp8Linear
from dit_demo.engine.fast.layers import Int8Linear


def _cat(tensors: list[torch.Tensor | None]) -> torch.Tensor | None:
    return None if tensors[0] is None else torch.cat([t.reshape(t.shape[0], -1).squeeze(-1) for t in tensors])


def _per_column(scales: list[torch.Tensor | None], widths: list[int]) -> torch.Tensor | None:
    if scales[0] is None:
        return None
    return torch.cat([s.reshape(()).expand(w) for s, w in zip(scales, widths)]).contiguous()


def _same_input_scale(layers: list) -> bool:
    scales = [layer.input_scale for layer in layers]
    return all(s is None for s in scales) or all(s is not None and torch.equal(s, scales[0]) for s in scales)


def _fuse_linear(layers: list[torch.nn.Linear]) -> torch.nn.Linear:
    first = layers[0]
    weight = torch.cat([layer.weight.detach() for layer in layers])
    fused = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=first.bias is not None, device="meta")
    fused.weight = torch.nn.Parameter(weight, requires_grad=False)
    fused.bias = None if first.bias is None else torch.nn.Parameter(_cat([layer.bias.detach() for layer in layers]),
                                                                    requires_grad=False)  # fmt: skip
    return fused


def _fuse_quantized(layers: list) -> torch.nn.Module:
    widths = [layer.out_features for layer in layers]
    fused = type(layers[0])(
        torch.cat([layer.weight for layer in layers]),
        _cat([layer.scale for layer in layers]),
        _cat([layer.bias for layer in layers]),
        layers[0].input_scale,
        _per_column([layer.output_scale for layer in layers], widths),
    )
    # the kernel choice the three had (compile_variant sets it before fusing): an fp8 layer on the tensor cores must
    # stay there (H200 run of 2026-11-29: a fused QKV left emulated cost ~0.3 ms per 256² step)
    if isinstance(fused, Fp8Linear) and all(layer.scaled_mm for layer in layers):
        fused.enable_scaled_mm(epilogue=layers[0].epilogue)
    if isinstance(fused, Int8Linear):
        fused.kernel = layers[0].kernel
    return fused


def fusable(attn: torch.nn.Module) -> bool:
    if not isinstance(attn, Attention) or attn.is_cross_attention or getattr(attn, "to_qkv", None) is not None:
        return False
    layers = [attn.to_q, attn.to_k, attn.to_v]
    kinds = {type(layer) for layer in layers}
    if len(kinds) != 1 or kinds.pop() not in (torch.nn.Linear, Int8Linear, Fp8Linear):
        return False
    if isinstance(layers[0], torch.nn.Linear):
        return True
    if not _same_input_scale(layers) or len({getattr(layer, "kernel", "torch") for layer in layers}) != 1:
        return False
    # Triton's static w8a8 kernel takes one scalar output scale, which a fused layer no longer has; the weight-only
    # kernels (fused W8A16, GEMV) take per-column scales and fuse like the plain path.
    kernel = getattr(layers[0], "kernel", "torch")
    return kernel == "torch" or layers[0].input_scale is None


@torch.no_grad()
def fuse_qkv(module: torch.nn.Module) -> int:
    """Fuse q/k/v of every self-attention in `module` that allows it, in place; returns how many."""
    count = 0
    for attn in [m for m in module.modules() if fusable(m)]:
        layers = [attn.to_q, attn.to_k, attn.to_v]
        fused = _fuse_linear(layers) if isinstance(layers[0], torch.nn.Linear) else _fuse_quantized(layers)
        attn.to_qkv = fused
        attn.to_q = attn.to_k = attn.to_v = None  # FusedAttnProcessor2_0 reads only to_qkv for self-attention
        attn.fused_projections = True
        attn.set_processor(FusedAttnProcessor2_0())
        count += 1
    return count
