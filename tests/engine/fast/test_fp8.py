"""The fp8-a8 recipe: quanto's format and numerics, its fast layer, its notes (CPU), its tensor-core path (CUDA)."""

import json

import pytest
import torch
from optimum.quanto import qfloat8, qint8

from dit_demo.engine.fast.compile import compile_variant, convert_to_fast_linears
from dit_demo.engine.fast.fp8 import FP8, Fp8Linear, fake_quantize_fp8, fp8_matmul_available, quantize_fp8
from dit_demo.engine.generate import build_reference, build_variant, generate
from dit_demo.engine.metrics import psnr
from dit_demo.engine.model.serialization import save_pipeline
from dit_demo.engine.quant.quantize import CalibrationConfig
from dit_demo.engine.quant.recipes import get_recipe
from dit_demo.engine.request import SamplingRequest

TINY_CALIBRATION = CalibrationConfig(steps=6, seeds=(1000,), num_labels=3)
LABELS = [207, 1, 500]


@pytest.fixture(scope="module")
def fp8_pair():
    reference = build_reference("tiny-random", device="cpu")
    return reference, build_variant(reference, "fp8-a8", calibration=TINY_CALIBRATION)


def _dequantized(output):
    return output.dequantize() if hasattr(output, "dequantize") else output


def test_recipe_quantizes_token_layers_fp8_and_conditioning_int8_weights(fp8_pair):
    _, variant = fp8_pair
    block = variant.pipe.transformer.transformer_blocks[0]
    for layer in (block.attn1.to_q, block.attn1.to_out[0], block.ff.net[0].proj, block.ff.net[2]):
        assert layer.weight_qtype == qfloat8 and layer.activation_qtype == qfloat8
        assert float(layer.input_scale) != 1.0  # calibrated
    assert block.norm1.linear.weight_qtype == qint8 and block.norm1.linear.activation_qtype is None
    assert type(variant.pipe.transformer.proj_out_2) is torch.nn.Linear  # kept, as in every recipe
    assert variant.report.weights_only and variant.report.calibration["steps"] == TINY_CALIBRATION.steps


@pytest.mark.parametrize("rows", [2, 40])
@pytest.mark.parametrize("layer", ["ff.net.2", "attn1.to_q"])
def test_fp8_linear_matches_quanto_module(fp8_pair, rows, layer):
    _, variant = fp8_pair
    qlinear = variant.pipe.transformer.transformer_blocks[1].get_submodule(layer)
    fast = Fp8Linear.from_qlinear(qlinear)
    x = 3 * torch.randn(rows, qlinear.in_features, generator=torch.Generator().manual_seed(rows))
    expected = _dequantized(qlinear(x))
    got = fast(x)
    assert torch.equal(got, expected)  # the same ops in the same order on CPU: bit-identical


def test_quantize_helpers_follow_quanto_rounding_and_clamping():
    x = torch.tensor([0.0, 1.0, 1.0625, 1.1875, -600.0, 600.0, 2.0**-9, 2.0**-10])
    q = quantize_fp8(x, torch.tensor(1.0))
    assert q.dtype == FP8
    assert q.float().tolist() == [0.0, 1.0, 1.0, 1.25, -448.0, 448.0, 2.0**-9, 0.0]  # half to even, clamp
    assert torch.equal(fake_quantize_fp8(x, torch.tensor(2.0)), (x / 2).clamp(-448, 448).to(FP8).float() * 2)


def test_fast_path_images_match_quanto_on_cpu(fp8_pair):
    reference, variant = fp8_pair
    request = SamplingRequest.create(LABELS, seed=3, steps=6)
    quanto_images = generate(variant, request).images
    fast = compile_variant(variant, "none", inplace=False, capture="step", fuse=True)
    assert fast.compile_mode == "none+step-graph+fused-qkv+int8-linears+fp8-emulated"
    assert isinstance(fast.pipe.transformer.transformer_blocks[0].ff.net[2], Fp8Linear)
    fast_images = generate(fast, request).images
    assert psnr(quanto_images, fast_images) >= 45  # only the int8 label tables differ (as for int8, see test_fast)
    assert psnr(generate(reference, request).images, quanto_images) >= 35


def test_saved_in_quantos_format_and_reloads_bit_exact(fp8_pair, tmp_path):
    _, variant = fp8_pair
    folder = save_pipeline(variant.pipe, tmp_path / "fp8-a8", metadata={"recipe": "fp8-a8"})
    qmap = json.loads((folder / "transformer" / "quanto_qmap.json").read_text())
    assert qmap["transformer_blocks.0.ff.net.2"] == {"weights": "qfloat8_e4m3fn", "activations": "qfloat8_e4m3fn"}
    assert qmap["transformer_blocks.0.norm1.linear"]["weights"] == "qint8"
    config = json.loads((folder / "transformer" / "config.json").read_text())
    assert config["quantization_config"]["quant_method"] != "quanto"  # stock diffusers would drop the scales
    request = SamplingRequest.create(LABELS, seed=5, steps=6)
    before = generate(variant, request)
    reloaded = build_reference(str(folder), device="cpu")
    after = generate(reloaded, request)
    assert reloaded.recipe == "fp8-a8"
    assert all(a.tobytes() == b.tobytes() for a, b in zip(before.images, after.images))


def test_cpu_build_note_says_it_runs_through_quanto():
    note = get_recipe("fp8-a8").build_note("cpu")
    assert "no fp8 tensor cores" in note and "quanto" in note
    assert not fp8_matmul_available("cpu")


def test_fp8_linear_rejects_other_weights_and_stays_emulated_on_cpu(fp8_pair):
    with pytest.raises(TypeError):
        Fp8Linear(torch.zeros(16, 16, dtype=torch.int8), torch.ones(16), None)
    _, variant = fp8_pair
    layer = Fp8Linear.from_qlinear(variant.pipe.transformer.transformer_blocks[0].ff.net[2])
    assert layer.enable_scaled_mm() is False and "scaled_mm=False" in repr(layer)
    assert layer.epilogue is None and layer.column_scale is None
    with pytest.raises(ValueError, match="epilogue"):
        layer.enable_scaled_mm(epilogue="columnwise")


def _random_fp8_layer(rows: int, device) -> tuple[Fp8Linear, torch.Tensor]:
    generator = torch.Generator(device=device).manual_seed(rows)
    weight = (torch.randn(4608, 1152, device=device, generator=generator) / 8).to(FP8)
    scale = torch.rand(4608, 1, device=device, generator=generator).to(torch.bfloat16) / 100 + 1e-3
    bias = torch.randn(4608, device=device, generator=generator).to(torch.bfloat16)
    s_in, s_out = torch.tensor(0.01, device=device), torch.tensor(0.05, device=device)
    layer = Fp8Linear(weight, scale, bias, s_in.to(torch.bfloat16), s_out.to(torch.bfloat16))
    x = torch.randn(rows, 1152, device=device, generator=generator).to(torch.bfloat16)
    return layer, x


@pytest.mark.cuda
@pytest.mark.parametrize("rows", [2, 512, 2048])
def test_tensorwise_scaled_mm_matches_the_emulated_path(rows, cuda_device):
    if not fp8_matmul_available(cuda_device):
        pytest.skip("needs fp8 tensor cores (compute capability >= 8.9)")
    layer, x = _random_fp8_layer(rows, cuda_device)
    emulated = layer(x)
    assert layer.enable_scaled_mm(epilogue="tensorwise") and layer.epilogue == "tensorwise"
    fast = layer(x)
    # fp8 output rounding: a few values land one e4m3 step (1/8 relative) apart; the bulk agrees
    assert (fast - emulated).abs().float().mean() <= 0.02 * emulated.abs().float().mean()
    compiled = torch.compile(layer, dynamic=False)
    assert torch.allclose(compiled(x).float(), fast.float(), rtol=0.15, atol=0.05)


@pytest.mark.cuda
@pytest.mark.parametrize("rows", [2, 512, 2048, 40000])
def test_rowwise_scaled_mm_is_the_fp8_product_without_output_rounding(rows, cuda_device):
    """The default epilogue: quantized input × fp8 weights, s_in · s_w and the bias applied in fp32, bf16 out — the
    fp32 reference of exactly that, with no fp8 rounding of the output (40,000 rows: past the shared unit column)."""
    if not fp8_matmul_available(cuda_device):
        pytest.skip("needs fp8 tensor cores (compute capability >= 8.9)")
    layer, x = _random_fp8_layer(rows, cuda_device)
    assert layer.enable_scaled_mm() and layer.epilogue == "rowwise", "this torch has no row-wise _scaled_mm"
    xq = quantize_fp8(x, layer.input_scale).float()
    s_w = layer.scale.float().reshape(1, -1)
    reference = (xq @ layer.weight.float().t()) * (layer.input_scale.float() * s_w) + layer.bias.float()
    fast = layer(x)
    assert fast.dtype == torch.bfloat16 and fast.shape == (rows, 4608)
    error = (fast.float() - reference).abs().mean() / reference.abs().mean()
    assert error < 0.005, f"mean relative error {error:.4f}"
    emulated = layer._emulated(x)  # quanto's arithmetic before its output rounding: the same product
    assert (fast.float() - emulated.float()).abs().mean() < 0.01 * emulated.float().abs().mean()
    compiled = torch.compile(layer, dynamic=False)
    assert torch.allclose(compiled(x).float(), fast.float(), rtol=0.02, atol=0.02)


@pytest.mark.cuda
def test_fp8_a8_compiled_on_cuda_uses_the_tensor_cores(cuda_device):
    reference = build_reference("tiny-random", device=cuda_device)
    variant = build_variant(reference, "fp8-a8", calibration=TINY_CALIBRATION)
    fast = compile_variant(variant, "reduce-overhead", inplace=False)
    expected = "+fp8-scaled-mm" if fp8_matmul_available(cuda_device) else "+fp8-emulated"
    assert fast.compile_mode.endswith(expected)
    assert convert_to_fast_linears(variant.pipe.transformer) > 0  # the eager variant is still quanto's
