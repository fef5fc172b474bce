"""int8-a8-smooth: the fold is exact in full precision, the search keeps only measured improvements, and a saved
folder reloads bit for bit (and stays unloadable by stock diffusers)."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from diffusers import DiTPipeline

from dit_demo.engine.generate import build_reference, build_variant, generate
from dit_demo.engine.model.loading import load_pipeline_folder
from dit_demo.engine.model.resolver import EMBEDDED_MODEL_DIR
from dit_demo.engine.model.serialization import save_pipeline
from dit_demo.engine.model.sources import sibling_pipeline
from dit_demo.engine.quant.quantize import CalibrationConfig
from dit_demo.engine.quant.recipes import RECIPES
from dit_demo.engine.quant.smoothing import (
    SITES,
    SMOOTHING_NAME,
    ChannelScale,
    apply_plan,
    check_smoothable,
    plan_of,
    site_name,
)
from dit_demo.engine.quant.smoothing_search import SmoothingConfig, search_plan, spearman
from dit_demo.engine.request import SamplingRequest
from dit_demo.errors import CheckpointError, InvalidRequestError

HAS_EMBEDDED = (EMBEDDED_MODEL_DIR / "model_index.json").is_file()
MODEL = "embedded" if HAS_EMBEDDED else "tiny-random"
QUICK = CalibrationConfig(steps=4, seeds=(1000,), num_labels=2)
REQUEST = SamplingRequest.create([1, 7], seed=3, steps=6, guidance_scale=4.0)


@pytest.fixture(scope="module")
def reference():
    return build_reference(MODEL, device="cpu")


@pytest.fixture(scope="module")
def smooth(reference):
    return build_variant(reference, "int8-a8-smooth", calibration=QUICK)


def random_plan(transformer, seed: int = 0) -> dict[str, torch.Tensor]:
    """Log-uniform scales in [1/10, 10] on every site of every block: a harder fold than any search returns."""
    generator = torch.Generator().manual_seed(seed)
    plan = {}
    for index, block in enumerate(transformer.transformer_blocks):
        for site in SITES:
            layer = block.get_submodule(site.layers[0])
            width = layer.in_features if site.kind == "input" else layer.out_features
            plan[site_name(index, site.key)] = torch.exp((torch.rand(width, generator=generator) * 2 - 1) * 2.3)
    return plan


def transformer_inputs(transformer, batch: int = 4):
    generator = torch.Generator().manual_seed(1)
    config = transformer.config
    latents = torch.randn(batch, config.in_channels, config.sample_size, config.sample_size, generator=generator)
    timesteps = torch.tensor([999, 600, 250, 20][:batch])
    labels = torch.tensor([1, 5, 1000, 3][:batch])
    return latents, timesteps, labels


def test_the_recipe_is_registered_after_int8_a8():
    recipe = RECIPES["int8-a8-smooth"]
    assert recipe.smooth and recipe.needs_calibration and recipe.weights_only == RECIPES["int8-a8"].weights_only
    assert "guidance 1, 2 and 4" in recipe.build_note("cpu")


def test_fold_is_exact_in_full_precision(reference):
    original = reference.pipe.transformer
    smoothed = copy.deepcopy(original)
    plan = random_plan(smoothed)
    apply_plan(smoothed, plan)
    assert isinstance(smoothed.transformer_blocks[0].ff.net[1], ChannelScale)
    assert not torch.equal(
        smoothed.transformer_blocks[0].norm1.linear.weight, original.transformer_blocks[0].norm1.linear.weight
    )
    latents, timesteps, labels = transformer_inputs(original)
    with torch.no_grad():
        want = original(latents, timestep=timesteps, class_labels=labels).sample
        got = smoothed(latents, timestep=timesteps, class_labels=labels).sample
    assert (got - want).abs().max() < 1e-5, (got - want).abs().max()
    assert set(plan_of(smoothed)) == set(plan)


def test_folded_pipeline_samples_the_same_latents(reference):
    twin = copy.deepcopy(reference.pipe.transformer)
    apply_plan(twin, random_plan(twin, seed=2))
    outputs = []
    for pipe in (reference.pipe, sibling_pipeline(reference.pipe, twin)):
        generators = [torch.Generator().manual_seed(s) for s in (0, 1)]
        with torch.no_grad():
            outputs.append(
                pipe(class_labels=[2, 8], generator=generators, num_inference_steps=6, output_type="pt").images
            )
    assert (outputs[0] - outputs[1]).abs().max() < 1e-5


def test_search_keeps_only_measured_improvements(reference):
    pipe = sibling_pipeline(reference.pipe, copy.deepcopy(reference.pipe.transformer))
    config = SmoothingConfig(labels=(0, 5), holdout_labels=(2, 7), seeds=(1000,), holdout_seeds=(2000,), steps=3)
    stats, plan, summary = search_plan(pipe, config)
    blocks = len(pipe.transformer.transformer_blocks)
    assert len(summary) == blocks * len(SITES)
    for name, entry in summary.items():
        assert entry["relative_error"] <= entry["relative_error_none"]
        assert (name in plan) == (entry["choice"] != "none")
    assert plan or not HAS_EMBEDDED, "the digits model has outlier channels: some site must be smoothed"
    calls = len(config.guidance_scales) * config.steps  # one forward (CFG batched) per step and guidance scale
    assert next(iter(stats.inputs.values())).shape[0] == calls


def test_spearman_matches_definition():
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0], [4.0, 3.0, 2.0, 1.0]])
    assert torch.allclose(spearman(x, torch.tensor([10.0, 20.0, 30.0, 40.0])), torch.tensor([1.0, -1.0]))


def test_smoothing_refuses_a_quantized_model(smooth):
    with pytest.raises(InvalidRequestError, match="smooth before quantizing"):
        check_smoothable(smooth.pipe.transformer)


def test_recipe_report_and_static_scales(smooth):
    report = smooth.report
    assert report.recipe == "int8-a8-smooth" and report.smoothing["smoothed_sites"] == len(
        plan_of(smooth.pipe.transformer)
    )
    assert report.calibration["method"] == "trajectory |max|" and report.calibration["guidance_scales"] == [
        1.0,
        2.0,
        4.0,
    ]
    assert report.calibrate_s >= report.smoothing["search_s"] > 0
    scales = [m.input_scale for n, m in smooth.pipe.transformer.named_modules() if n.endswith("attn1.to_q")]
    assert scales and all(float(s) != 1.0 for s in scales)  # set from the trajectory, not quanto's initial 1
    result = generate(smooth, REQUEST)
    assert len(result.images) == 2 and result.recipe == "int8-a8-smooth"


def test_save_reload_is_bit_exact_and_stock_diffusers_refuses(reference, smooth, tmp_path):
    folder = save_pipeline(
        smooth.pipe, tmp_path / "smooth", metadata={"recipe": smooth.recipe}, storage_dtype=reference.storage_dtype
    )
    assert (folder / "transformer" / SMOOTHING_NAME).is_file()
    loaded = load_pipeline_folder(folder, device=torch.device("cpu"), dtype=torch.float32)
    want, got = smooth.pipe.transformer, loaded.transformer
    for (name, a), (_, b) in zip(want.state_dict().items(), got.state_dict().items(), strict=True):
        a = a.dequantize() if hasattr(a, "dequantize") else a
        b = b.dequantize() if hasattr(b, "dequantize") else b
        assert torch.equal(a, b), name
    scales = [(n, m) for n, m in want.named_modules() if isinstance(m, ChannelScale)]
    assert scales
    for name, module in scales:
        assert torch.equal(module.inv_scale, got.get_submodule(name).inv_scale), name
    first, second = generate(smooth.pipe, REQUEST), generate(loaded, REQUEST)
    for a, b in zip(first.images, second.images, strict=True):
        assert np.array_equal(np.asarray(a), np.asarray(b))

    config = json.loads((folder / "transformer" / "config.json").read_text())
    assert config["quantization_config"]["quant_method"] != "quanto"
    with pytest.raises(ValueError, match="dit-quanto-demo"):
        DiTPipeline.from_pretrained(folder)


def test_optimum_quanto_own_loader_refuses_a_smoothed_folder(reference, smooth, tmp_path):
    """quanto's loader knows nothing of the stored smoothing scales: it would render another model (24 dB off on the
    digits), so the saved quantization map makes both of its entry points fail, naming our loader."""
    from diffusers import DiTTransformer2DModel
    from optimum.quanto import QuantizedDiffusersModel, requantize
    from safetensors.torch import load_file

    from dit_demo.engine.model.loading import load_pipeline

    class QuantoDiT(QuantizedDiffusersModel):
        base_class = DiTTransformer2DModel

    folder = save_pipeline(smooth.pipe, tmp_path / "smooth", metadata={"recipe": smooth.recipe})
    transformer = folder / "transformer"
    with pytest.raises(KeyError, match=r"dit-quanto-demo: smoothed recipe.*dit_demo\.engine\.model\.loading"):
        QuantoDiT.from_pretrained(str(transformer))
    qmap = json.loads((transformer / "quanto_qmap.json").read_text())
    state = load_file(str(transformer / "diffusion_pytorch_model.safetensors"))
    model = DiTTransformer2DModel.from_config(DiTTransformer2DModel.load_config(str(transformer)))
    with pytest.raises(KeyError, match="load it with dit_demo"):
        requantize(model, state_dict=state, quantization_map=qmap)
    ours = load_pipeline(str(folder), device="cpu", dtype=torch.float32)  # our loader takes the mark off again
    first, second = generate(smooth.pipe, REQUEST), generate(ours, REQUEST)
    for a, b in zip(first.images, second.images, strict=True):
        assert np.array_equal(np.asarray(a), np.asarray(b))


def test_a_smoothed_mark_without_its_scales_is_refused(smooth, tmp_path):
    folder = save_pipeline(smooth.pipe, tmp_path / "unscaled")
    (folder / "transformer" / SMOOTHING_NAME).unlink()
    with pytest.raises(CheckpointError, match="marked smoothed.*smoothing.safetensors is missing"):
        load_pipeline_folder(folder, device=torch.device("cpu"), dtype=torch.float32)


def test_a_corrupt_smoothing_file_is_refused(smooth, tmp_path):
    folder = save_pipeline(smooth.pipe, tmp_path / "broken")
    (folder / "transformer" / SMOOTHING_NAME).write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError, match="smoothing"):
        load_pipeline_folder(folder, device=torch.device("cpu"), dtype=torch.float32)
