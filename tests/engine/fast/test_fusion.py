"""Fused QKV: one projection per attention computes what three did, for float, int8 and fp8 layers."""

import pytest
import torch
from diffusers.models.attention_processor import FusedAttnProcessor2_0

from dit_demo.engine.fast.compile import convert_to_fast_linears
from dit_demo.engine.fast.fp8 import Fp8Linear
from dit_demo.engine.fast.fusion import fusable, fuse_qkv
from dit_demo.engine.fast.layers import Int8Linear
from dit_demo.engine.generate import build_reference, build_variant
from dit_demo.engine.quant.quantize import CalibrationConfig, module_weight_bytes

TINY_CALIBRATION = CalibrationConfig(steps=6, seeds=(1000,), num_labels=3)


def _transformer(recipe: str):
    reference = build_reference("tiny-random", device="cpu")
    if recipe == "bf16":
        return reference.pipe.transformer
    transformer = build_variant(reference, recipe, calibration=TINY_CALIBRATION).pipe.transformer
    convert_to_fast_linears(transformer)
    return transformer


def _forward(transformer, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 4, 8, 8, generator=generator)
    with torch.no_grad():
        return transformer(x, timestep=torch.tensor([500, 500]), class_labels=torch.tensor([3, 1000])).sample


@pytest.mark.parametrize("recipe", ["bf16", "int8", "int8-a8", "fp8-a8"])
def test_fused_qkv_gives_the_same_forward(recipe):
    transformer = _transformer(recipe)
    expected = _forward(transformer)
    attn = transformer.transformer_blocks[0].attn1
    width = attn.to_q.out_features
    count = fuse_qkv(transformer)
    assert count == len(transformer.transformer_blocks)
    assert isinstance(attn.processor, FusedAttnProcessor2_0) and attn.to_qkv.out_features == 3 * width
    kind = {"bf16": torch.nn.Linear, "int8": Int8Linear, "int8-a8": Int8Linear, "fp8-a8": Fp8Linear}[recipe]
    assert type(attn.to_qkv) is kind
    got = _forward(transformer)
    assert torch.allclose(got, expected, atol=1e-5, rtol=1e-5), (got - expected).abs().max()
    assert fuse_qkv(transformer) == 0  # idempotent


def test_fused_weights_hold_the_three_projections_once():
    transformer = _transformer("int8")
    attn = transformer.transformer_blocks[0].attn1
    parts = [attn.to_q.weight.clone(), attn.to_k.weight.clone(), attn.to_v.weight.clone()]
    scales = [attn.to_q.scale.clone(), attn.to_k.scale.clone(), attn.to_v.scale.clone()]
    before = module_weight_bytes(transformer)
    fuse_qkv(transformer)
    assert torch.equal(attn.to_qkv.weight, torch.cat(parts)) and torch.equal(attn.to_qkv.scale, torch.cat(scales))
    assert attn.to_q is None and attn.to_k is None and attn.to_v is None
    assert module_weight_bytes(transformer) == before  # nothing stored twice


def test_fused_layer_keeps_the_kernel_choice(monkeypatch):
    import dit_demo.engine.fast.fp8 as fp8

    monkeypatch.setattr(fp8, "fp8_matmul_available", lambda device: True)  # as on an H200
    transformer = _transformer("fp8-a8")
    for attn in [b.attn1 for b in transformer.transformer_blocks]:
        for layer in (attn.to_q, attn.to_k, attn.to_v):
            assert layer.enable_scaled_mm()  # what compile_variant does before fusing
    expected = _forward(transformer)  # CPU inputs: the emulated arithmetic either way
    fuse_qkv(transformer)
    assert all(b.attn1.to_qkv.scaled_mm for b in transformer.transformer_blocks)
    assert torch.allclose(_forward(transformer), expected, atol=1e-5, rtol=1e-5)
    int8 = _transformer("int8")
    int8.transformer_blocks[0].attn1.to_q.kernel = "torch"
    fuse_qkv(int8)
    assert int8.transformer_blocks[0].attn1.to_qkv.kernel == "torch"


@pytest.mark.parametrize("kernel", ["triton", "shape", "mixed"])
def test_weight_only_triton_layers_fuse_and_keep_their_kernel(kernel):
    """The W8A16 / GEMV kernels take per-column scales: a fused QKV keeps the kernel its three layers had."""
    transformer = _transformer("int8")
    attn = transformer.transformer_blocks[0].attn1
    for layer in (attn.to_q, attn.to_k, attn.to_v):
        layer.kernel = kernel
    assert fusable(attn)
    fuse_qkv(transformer)
    assert attn.to_qkv.kernel == kernel


def test_static_triton_layers_and_mixed_kernels_or_types_are_left_alone():
    a8 = _transformer("int8-a8").transformer_blocks[0].attn1
    for layer in (a8.to_q, a8.to_k, a8.to_v):
        layer.kernel = "triton"  # the static w8a8 kernel takes one scalar output scale
    assert not fusable(a8)
    transformer = _transformer("int8")
    attn = transformer.transformer_blocks[0].attn1
    attn.to_q.kernel = "triton"  # the other two stay "torch"
    assert not fusable(attn)
    attn.to_q.kernel = "torch"
    assert fusable(attn)
    attn.to_k = torch.nn.Linear(attn.to_k.in_features, attn.to_k.out_features)
    assert not fusable(attn)
