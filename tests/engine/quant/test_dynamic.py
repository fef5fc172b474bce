"""int8-dynamic: PyTorch's dynamic int8 Linear layers on the CPU, from fp32 or from a saved quanto int8 model."""

from __future__ import annotations

import copy

import pytest
import torch

from dit_demo.engine.generate import generate
from dit_demo.engine.metrics import psnr
from dit_demo.engine.model.sources import sibling_pipeline
from dit_demo.engine.quant.dynamic import (
    dequantized_copy,
    dynamic_int8_available,
    is_dynamic_int8,
    packed_weight_bytes,
    quantize_dynamic_int8,
)
from dit_demo.engine.quant.quantize import DEFAULT_EXCLUDE, module_weight_bytes
from dit_demo.engine.request import SamplingRequest
from dit_demo.errors import InvalidRequestError

DYNAMIC = torch.ao.nn.quantized.dynamic.Linear


def test_available_on_this_cpu_only():
    assert dynamic_int8_available("cpu")
    assert not dynamic_int8_available("cuda") and not dynamic_int8_available("meta")


def test_every_linear_but_the_excluded_runs_int8(tiny_reference):
    transformer = copy.deepcopy(tiny_reference.pipe.transformer)
    names = quantize_dynamic_int8(transformer, exclude=DEFAULT_EXCLUDE)
    modules = dict(transformer.named_modules())
    assert "transformer_blocks.0.attn1.to_q" in names and isinstance(modules["transformer_blocks.0.ff.net.2"], DYNAMIC)
    assert type(modules["proj_out_2"]) is torch.nn.Linear and "proj_out_2" not in names
    assert is_dynamic_int8(transformer) and not is_dynamic_int8(tiny_reference.pipe.transformer)
    int8_bytes = packed_weight_bytes(transformer)
    float_bytes = sum(m.weight.numel() * 4 for n, m in tiny_reference.pipe.transformer.named_modules() if n in names)
    assert 0 < int8_bytes < float_bytes / 3  # int8 weights + fp32 biases and one scale per layer


def test_images_stay_close_to_full_precision(digits_reference):
    transformer = copy.deepcopy(digits_reference.pipe.transformer)
    quantize_dynamic_int8(transformer, exclude=DEFAULT_EXCLUDE)
    request = SamplingRequest.create([3, 7], seed=0, steps=10, guidance_scale=2.0)
    reference = generate(digits_reference, request).images
    dynamic = generate(sibling_pipeline(digits_reference.pipe, transformer), request).images
    assert psnr(dynamic, reference) > 35.0


def test_built_from_a_quanto_int8_model_is_exact_before_requantizing(tiny_variants):
    quanto = tiny_variants["int8"].pipe.transformer
    plain = dequantized_copy(quanto)
    assert not any(type(m).__name__ == "QLinear" for m in plain.modules())
    inputs = dict(
        hidden_states=torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0)),
        timestep=torch.tensor([10, 10]),
        class_labels=torch.tensor([1, 2]),
    )
    with torch.no_grad():
        expected, got = quanto(**inputs).sample, plain(**inputs).sample
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    assert module_weight_bytes(plain) > module_weight_bytes(quanto)


def test_activation_quantized_folder_is_refused(tiny_variants):
    with pytest.raises(InvalidRequestError, match="calibrated activation scales"):
        dequantized_copy(tiny_variants["int8-a8"].pipe.transformer)
