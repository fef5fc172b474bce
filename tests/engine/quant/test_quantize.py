import pytest
import torch

from dit_demo.engine.generate import build_variant, generate
from dit_demo.engine.metrics import psnr
from dit_demo.engine.quant.quantize import (
    exclusion_patterns,
    module_weight_bytes,
    tensor_storage_bytes,
    weightless_norms,
)
from dit_demo.engine.quant.recipes import DEFAULT_EXCLUDE, RECIPES, get_recipe
from dit_demo.engine.request import SamplingRequest
from dit_demo.errors import InvalidRequestError


def test_recipes_are_named():
    assert list(RECIPES) == ["bf16", "int8", "int8-a8", "int8-a8-smooth", "fp8", "fp8-a8", "int4", "int8-dynamic"]
    assert get_recipe("int8-a8").needs_calibration and not get_recipe("int8").needs_calibration
    with pytest.raises(InvalidRequestError, match="Unknown recipe"):
        get_recipe("int3")


def test_default_exclusions_cover_weightless_norms(tiny_reference):
    transformer = tiny_reference.pipe.transformer
    norms = weightless_norms(transformer)
    assert "transformer_blocks.0.norm1.norm" in norms and "transformer_blocks.0.norm3" in norms and "norm_out" in norms
    patterns = exclusion_patterns(transformer, keep=["adaln"], exclude=["my.layer"])
    assert set(DEFAULT_EXCLUDE) <= set(patterns) and set(norms) <= set(patterns)
    assert "transformer_blocks.*.norm1.linear" in patterns and "my.layer" in patterns
    with pytest.raises(InvalidRequestError, match="keep group"):
        exclusion_patterns(transformer, keep=["everything"])


def test_int8_report(tiny_variants):
    report = tiny_variants["int8"].report
    assert "transformer_blocks.0.attn1.to_q" in report.quantized_modules
    assert "transformer_blocks.0.norm1.linear" in report.quantized_modules  # adaLN quantized by default
    assert {"proj_out_1", "proj_out_2", "pos_embed.proj"} <= set(report.kept_modules)
    # int8 weights: 1 byte per quantized weight + fp32 scales; the kept layers and label tables stay fp32.
    assert report.weight_bytes_after < 0.75 * report.weight_bytes_before
    assert report.weight_bytes_after == module_weight_bytes(tiny_variants["int8"].pipe.transformer)
    assert report.quantize_s > 0 and report.calibrate_s == 0


def test_weight_bytes_count_real_storage(tiny_variants):
    layer = tiny_variants["int8"].pipe.transformer.transformer_blocks[0].attn1.to_q
    out_features, in_features = layer.weight.shape
    # int8 data + one fp32 scale per output channel
    assert tensor_storage_bytes(layer.weight) == out_features * in_features + out_features * 4


def test_int8_a8_is_calibrated(tiny_variants):
    variant = tiny_variants["int8-a8"]
    assert variant.report.calibrate_s > 0 and variant.report.calibration["steps"] == 6
    layer = variant.pipe.transformer.transformer_blocks[0].ff.net[2]
    assert float(layer.input_scale) > 0 and float(layer.output_scale) > 0  # ranges were observed, not defaults


def test_reference_is_untouched(tiny_reference, tiny_variants):
    assert type(tiny_reference.pipe.transformer.transformer_blocks[0].attn1.to_q) is torch.nn.Linear
    assert tiny_variants["int8"].pipe.vae is tiny_reference.pipe.vae  # shared: the VAE is never quantized


@pytest.mark.parametrize("recipe, min_psnr", [("int8", 40.0), ("int8-a8", 30.0)], ids=["int8", "int8-a8"])
def test_quantized_images_stay_close(tiny_reference, tiny_variants, recipe, min_psnr):
    labels = ["golden retriever", 3, 500]
    ref = generate(tiny_reference, SamplingRequest.create(labels, seed=0, steps=8))
    out = generate(tiny_variants[recipe], SamplingRequest.create(labels, seed=0, steps=8))
    assert psnr(ref.images, out.images) >= min_psnr


@pytest.mark.slow
def test_fp8_and_int4_run(tiny_reference):
    labels = [1, 2]
    ref = generate(tiny_reference, SamplingRequest.create(labels, seed=0, steps=4))
    for recipe, min_psnr in (("fp8", 30.0), ("int4", 25.0)):
        variant = build_variant(tiny_reference, recipe)
        out = generate(variant, SamplingRequest.create(labels, seed=0, steps=4))
        assert out.weight_bytes < ref.weight_bytes
        assert psnr(ref.images, out.images) >= min_psnr, recipe


def test_int8_a8_keeps_float_activations_for_the_conditioning_layers(tiny_variants):
    from optimum.quanto import quantization_map

    qmap = quantization_map(tiny_variants["int8-a8"].pipe.transformer)
    assert qmap["transformer_blocks.0.norm1.linear"] == {"weights": "qint8", "activations": "none"}
    assert qmap["transformer_blocks.0.norm1.emb.timestep_embedder.linear_1"]["activations"] == "none"
    assert qmap["transformer_blocks.0.attn1.to_q"] == {"weights": "qint8", "activations": "qint8"}
    report = tiny_variants["int8-a8"].report
    assert "transformer_blocks.1.norm1.linear" in report.weights_only
    assert "transformer_blocks.1.norm1.linear" in report.quantized_modules


def test_keep_overrides_the_weights_only_pass(tiny_reference):
    from dit_demo.engine.quant.quantize import CalibrationConfig

    calibration = CalibrationConfig(steps=2, seeds=(1000,), num_labels=2)
    variant = build_variant(tiny_reference, "int8-a8", keep=["adaln"], calibration=calibration)
    assert "transformer_blocks.0.norm1.linear" in variant.report.kept_modules
