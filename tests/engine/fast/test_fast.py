"""The fast path computes what quanto computes: module-level and whole-image checks (CPU), compiled on CUDA."""

import math

import pytest
import torch

from dit_demo.engine.fast.compile import RECOMPILE_LIMIT, compile_variant, convert_to_fast_linears
from dit_demo.engine.fast.layers import Int8Embedding, Int8Linear
from dit_demo.engine.generate import build_reference, build_variant, generate
from dit_demo.engine.metrics import psnr
from dit_demo.engine.quant.quantize import CalibrationConfig, module_weight_bytes
from dit_demo.engine.request import SamplingRequest
from dit_demo.errors import InvalidRequestError

TINY_CALIBRATION = CalibrationConfig(steps=6, seeds=(1000,), num_labels=3)

LABELS = [207, 1, 500]


def _fresh(recipe: str, device: str = "cpu"):
    reference = build_reference("tiny-random", device=device)
    return reference, build_variant(reference, recipe, calibration=TINY_CALIBRATION)


@pytest.mark.parametrize("recipe", ["int8", "int8-a8"])
@pytest.mark.parametrize("rows", [2, 40], ids=["adaln-2-rows", "tokens-40-rows"])
def test_int8_linear_matches_quanto_module(recipe, rows):
    _, variant = _fresh(recipe)
    qlinear = variant.pipe.transformer.transformer_blocks[0].ff.net[2]
    fast = Int8Linear.from_qlinear(qlinear)
    x = torch.randn(rows, qlinear.in_features, generator=torch.Generator().manual_seed(rows))
    expected = qlinear(x)
    expected = expected.dequantize() if hasattr(expected, "dequantize") else expected
    got = fast(x)
    # fp32: only summation order differs (int8-a8: exact integer accumulation, same rounding grid)
    assert torch.allclose(got, expected, atol=1e-5, rtol=1e-5), (got - expected).abs().max()


@pytest.mark.parametrize("recipe", ["int8", "int8-a8"])
def test_fast_linears_give_the_same_images_on_cpu(recipe):
    _, variant = _fresh(recipe)
    before = generate(variant, SamplingRequest.create(LABELS, seed=3, steps=5))
    compile_variant(variant, "none")
    assert variant.compile_mode == "none+int8-linears"
    assert isinstance(variant.pipe.transformer.transformer_blocks[0].attn1.to_q, Int8Linear)
    after = generate(variant, SamplingRequest.create(LABELS, seed=3, steps=5))
    assert psnr(before.images, after.images) >= 50 or math.isinf(psnr(before.images, after.images))
    assert after.compile_mode == "none+int8-linears"


def test_conversion_leaves_other_recipes_and_kept_layers_alone():
    reference, variant = _fresh("int8")
    count = convert_to_fast_linears(variant.pipe.transformer)
    assert count == len(variant.report.quantized_modules)
    assert type(variant.pipe.transformer.proj_out_2) is torch.nn.Linear
    assert convert_to_fast_linears(reference.pipe.transformer) == 0


def test_int8_linear_rejects_float_weights():
    with pytest.raises(TypeError):
        Int8Linear(torch.randn(4, 4), torch.ones(4), None)


def test_unknown_compile_mode():
    _, variant = _fresh("int8")
    with pytest.raises(InvalidRequestError, match="compile mode"):
        compile_variant(variant, "turbo")


@pytest.mark.cuda
@pytest.mark.parametrize("kernel", ["torch", "triton", "mixed", "shape"])
@pytest.mark.parametrize("recipe", ["int8", "int8-a8"])
def test_compiled_fast_path_on_cuda(recipe, kernel, cuda_device):
    reference, variant = _fresh(recipe, device=cuda_device)
    eager = generate(variant, SamplingRequest.create(LABELS, seed=1, steps=6))
    compile_variant(variant, "reduce-overhead", kernel=kernel, fullgraph=True)  # fullgraph: no graph breaks allowed
    suffix = {"torch": "+int8-linears", "triton": "+int8-triton", "mixed": "+int8-mixed", "shape": "+int8-per-shape"}
    suffix = suffix[kernel]
    assert variant.compile_mode.endswith(suffix)
    generate(variant, SamplingRequest.create(LABELS, seed=1, steps=6))  # compile + capture
    fast = generate(variant, SamplingRequest.create(LABELS, seed=1, steps=6))
    ref = generate(reference, SamplingRequest.create(LABELS, seed=1, steps=6))
    assert psnr(eager.images, fast.images) >= 35
    assert psnr(ref.images, fast.images) >= (35 if recipe == "int8" else 25)


def test_compiling_a_copy_keeps_the_eager_variant():
    _, variant = _fresh("int8")
    sibling = compile_variant(variant, "none", inplace=False)
    assert sibling is not variant and sibling.pipe.vae is variant.pipe.vae
    assert isinstance(sibling.pipe.transformer.transformer_blocks[0].attn1.to_q, Int8Linear)
    assert not isinstance(variant.pipe.transformer.transformer_blocks[0].attn1.to_q, Int8Linear)
    assert variant.compile_mode == "none" and sibling.compile_mode == "none+int8-linears"
    assert sibling.pipe.labels == variant.pipe.labels
    original = variant.pipe.transformer.transformer_blocks[0].attn1.to_q.weight
    assert sibling.pipe.transformer.transformer_blocks[0].attn1.to_q.weight.data_ptr() == original._data.data_ptr()


def test_int8_embedding_rows_within_half_a_step():
    table = torch.nn.Embedding(11, 32)
    torch.nn.init.normal_(table.weight, generator=torch.Generator().manual_seed(0))
    table.weight.data[3] = 0.0  # an all-zero row (CFG's null label can be one) must not divide by zero
    fast = Int8Embedding(table)
    ids = torch.tensor([[0, 3], [10, 5]])
    expected, got = table(ids), fast(ids)
    assert got.shape == expected.shape and got.dtype == expected.dtype
    half_step = table.weight.abs().amax(dim=1)[ids].unsqueeze(-1) / 254
    assert bool(((got - expected).abs() <= half_step + 1e-7).all())
    assert torch.equal(got[0, 1], torch.zeros(32))
    assert fast.weight.dtype == torch.int8


def test_fast_path_quantizes_label_tables_of_int8_models_only():
    reference, variant = _fresh("int8")
    tables = [m for m in variant.pipe.transformer.modules() if type(m) is torch.nn.Embedding]
    convert_to_fast_linears(variant.pipe.transformer)  # (quanto's unused activation-scale buffers go here)
    before = module_weight_bytes(variant.pipe.transformer)
    compile_variant(variant, "none")
    converted = [m for m in variant.pipe.transformer.modules() if isinstance(m, Int8Embedding)]
    assert tables and len(converted) == len(tables)
    saved = sum(t.weight.numel() * t.weight.element_size() for t in tables) - sum(
        c.weight.numel() + c.scale.numel() * c.scale.element_size() for c in converted
    )
    assert module_weight_bytes(variant.pipe.transformer) == before - saved
    compile_variant(reference, "none")
    assert not any(isinstance(m, Int8Embedding) for m in reference.pipe.transformer.modules())


def test_compiling_raises_dynamos_recompile_limits_and_never_lowers_them(monkeypatch):
    """Several compiled variants in one process must not push a block past Dynamo's default 8 entries (it then runs
    that code eagerly for good); a limit someone set higher stays."""
    config = torch._dynamo.config
    monkeypatch.setattr(config, "recompile_limit", 8)
    monkeypatch.setattr(config, "accumulated_recompile_limit", 10_000)
    _, variant = _fresh("int8")
    compile_variant(variant, "none", inplace=False)
    assert config.recompile_limit == 8  # nothing compiled: nothing changed
    compile_variant(variant, "default", inplace=False)
    assert config.recompile_limit == RECOMPILE_LIMIT and config.accumulated_recompile_limit == 10_000
