"""Whole-step capture computes what the plain DiTPipeline computes.

On CPU the captured step function runs eagerly (no CUDA graphs), which is where its numerics are checked: the fitted
sampler recurrence, the fused guidance + update, the precomputed conditioning tables and the decode, against the
plain pipeline on the tiny random DiT (fp32) and the shipped digits model. On CUDA the same comparison runs through
Inductor + CUDA graphs (tolerance: bf16 rounding of one fused update vs the scheduler's op-by-op bf16 arithmetic).
"""

import dataclasses

import numpy as np
import pytest
import torch

from dit_demo.engine.fast import conditioning
from dit_demo.engine.fast.capture import CapturedDiTPipeline
from dit_demo.engine.fast.compile import compile_variant
from dit_demo.engine.fast.slot import median_replay_seconds
from dit_demo.engine.generate import build_reference, build_variant, generate, initial_generators
from dit_demo.engine.metrics import psnr
from dit_demo.engine.model.sources import set_scheduler
from dit_demo.engine.quant.quantize import CalibrationConfig
from dit_demo.engine.request import SamplingRequest

# fp32 on CPU: the captured path differs from the pipeline only by summation order and one fused update per step
CPU_TOLERANCE = 1e-5  # max abs difference of images in [0, 1] (measured: at most 1.2e-6 over 25 steps)
TINY_CALIBRATION = CalibrationConfig(steps=6, seeds=(1000,), num_labels=3)
CUDA_PSNR_DB = 40  # bf16 on a GPU: rounding differs per op, 25 steps amplify it a little


def _images(pipe, labels, *, guidance=4.0, steps=6, seed=3, scheduler="dpm"):
    set_scheduler(pipe, scheduler)
    generators = initial_generators([seed + i for i in range(len(labels))])
    return pipe(class_labels=labels, guidance_scale=guidance, generator=generators, num_inference_steps=steps,
                output_type="pt").images  # fmt: skip


@pytest.fixture
def tiny():
    """A fresh tiny reference: wrapping installs conditioning tables on its transformer (the session fixture stays
    untouched)."""
    return build_reference("tiny-random", device="cpu")


def _captured(reference) -> CapturedDiTPipeline:
    return CapturedDiTPipeline.wrap(reference.pipe)


@pytest.mark.parametrize("scheduler", ["dpm", "euler"])
@pytest.mark.parametrize("guidance", [4.0, 1.0], ids=["cfg", "no-cfg"])
def test_captured_step_equals_the_pipeline_on_cpu(tiny, scheduler, guidance):
    labels = [1, 207, 500]
    plain = _images(tiny.pipe, labels, guidance=guidance, scheduler=scheduler)
    captured = _captured(tiny)
    got = _images(captured, labels, guidance=guidance, scheduler=scheduler)
    assert captured.last_path == "step"
    assert got.shape == plain.shape and got.dtype == plain.dtype
    assert (got - plain).abs().max() <= CPU_TOLERANCE


def test_captured_step_equals_the_pipeline_on_the_digits_model():
    digits_reference = build_reference("embedded", device="cpu")
    labels = [3, 7]
    plain = _images(digits_reference.pipe, labels, steps=25)
    captured = _captured(digits_reference)
    got = _images(captured, labels, steps=25)
    assert (got - plain).abs().max() <= CPU_TOLERANCE
    again = _images(captured, labels, steps=25)  # the slot is reused: state is reset per request
    assert torch.equal(got, again)


def test_unlinear_sampler_runs_the_plain_pipeline(tiny):
    labels = [1, 2]
    plain = _images(tiny.pipe, labels, scheduler="ddim")
    captured = _captured(tiny)
    got = _images(captured, labels, scheduler="ddim")
    assert captured.last_path.startswith("pipeline (DDIMScheduler")
    assert torch.equal(got, plain)


def test_one_generation_path_and_its_timings(tiny):
    request = SamplingRequest.create([1, 2], seed=5, steps=4)
    plain = generate(tiny, request)
    variant = dataclasses.replace(tiny, pipe=_captured(tiny))
    result = generate(variant, request)
    assert psnr(plain.images, result.images) >= 60 or np.array_equal(plain.images[0], result.images[0])
    assert 0 < result.denoise_s < result.latency_s and result.decode_s > 0  # the decode timer still fires
    assert result.per_step_s == pytest.approx(result.denoise_s / 4)


def test_conditioning_tables_serve_the_same_forward(tiny):
    pipe = _captured(tiny)  # installs the tables on the shared transformer, inactive
    transformer = pipe.transformer
    tables = pipe.sampler.tables
    assert len(tables) == len(transformer.transformer_blocks) + 1 and not any(t.active for t in tables)
    x = torch.randn(4, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    timesteps, labels = torch.tensor([999, 999, 500, 500]), torch.tensor([1, 1000, 1, 1000])
    with torch.no_grad():
        expected = transformer(x[:2], timestep=timesteps[:2], class_labels=labels[:2]).sample
        table = torch.zeros(2, 2, conditioning.total_columns(tables))
        conditioning.fill_tables(transformer, tables, timesteps, labels, table)
        conditioning.activate(tables, table[0].clone())
        try:
            got = transformer(x[:2], timestep=torch.tensor([0, 0]), class_labels=torch.tensor([5, 5])).sample
        finally:
            conditioning.activate(tables, None)
    assert torch.allclose(got, expected, atol=1e-5)


def test_compile_variant_captures_the_step_and_keeps_the_label(tiny):
    variant = build_variant(tiny, "bf16")
    compiled = compile_variant(variant, "none", capture="step", inplace=False)
    assert isinstance(compiled.pipe, CapturedDiTPipeline)
    assert compiled.compile_mode == "none+step-graph+fused-qkv"  # fused QKV comes with step capture by default
    assert compiled.pipe.labels == tiny.pipe.labels
    assert compile_variant(variant, "none", inplace=False).compile_mode == "none"  # CPU default: forward capture


@pytest.mark.cuda
@pytest.mark.parametrize("recipe", ["bf16", "int8", "int8-a8", "fp8-a8"])
def test_step_graphs_on_cuda_equal_the_plain_pipeline(recipe, cuda_device):
    reference = build_reference("tiny-random", device=cuda_device)
    variant = build_variant(reference, recipe, calibration=TINY_CALIBRATION)
    request = SamplingRequest.create([1, 207, 500], seed=1, steps=12)
    plain = generate(variant, request)
    fast = compile_variant(variant, "reduce-overhead", inplace=False, fuse=True)
    assert "+step-graph" in fast.compile_mode
    generate(fast, request)  # compile + capture
    captured = generate(fast, request)
    assert fast.pipe.last_path == "step-graph"
    assert psnr(plain.images, captured.images) >= (CUDA_PSNR_DB if recipe == "bf16" else 30)
    seconds = median_replay_seconds(fast.pipe.sampler.replayer(3, 4.0, 12, "forward"), runs=5)
    assert seconds is not None and 0 < seconds < captured.per_step_s * 2
