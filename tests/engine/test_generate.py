import math

import pytest

from dit_demo.engine.generate import generate, initial_generators
from dit_demo.engine.metrics import psnr
from dit_demo.engine.request import MAX_BATCH, MAX_SEED, SamplingRequest, seeds_for
from dit_demo.errors import InvalidRequestError


def test_result_carries_every_measurement(tiny_reference):
    result = generate(
        tiny_reference, SamplingRequest.create(["golden retriever", "207: golden retriever", 3], seed=7, steps=5)
    )
    assert len(result.images) == 3 and result.images[0].size == (16, 16) and result.images[0].mode == "RGB"
    assert result.class_ids == [207, 207, 3] and result.class_names[0] == "golden retriever"
    assert result.seeds == [7, 8, 9]
    assert result.latency_s > result.denoise_s > 0 and result.decode_s > 0
    assert result.per_step_s == pytest.approx(result.denoise_s / 5)
    assert result.peak_memory_bytes > 0 and result.memory_kind.startswith("process_peak_rss")
    assert result.weight_bytes > 0 and result.dtype == "float32" and result.device == "cpu"
    metrics = result.metrics()
    assert "images" not in metrics and metrics["recipe"] == "bf16"


def test_same_seed_same_image_alone_or_in_a_batch(tiny_reference):
    batch = generate(tiny_reference, SamplingRequest.create([1, 2, 3], seed=10, steps=4))
    alone = generate(tiny_reference, SamplingRequest.create([3], seed=12, steps=4))
    assert math.isinf(psnr(batch.images[2], alone.images[0]))
    explicit = generate(tiny_reference, SamplingRequest.create([2], seeds=[11], steps=4))
    assert math.isinf(psnr(batch.images[1], explicit.images[0]))


def test_same_noise_for_every_recipe(tiny_reference, tiny_variants):
    a = initial_generators([3])[0]
    b = initial_generators([3])[0]
    assert a.initial_seed() == b.initial_seed() == 3
    ref = generate(tiny_reference, SamplingRequest.create([5], seed=3, steps=4))
    out = generate(tiny_variants["int8"], SamplingRequest.create([5], seed=3, steps=4))
    different_seed = generate(tiny_reference, SamplingRequest.create([5], seed=4, steps=4))
    assert psnr(ref.images, out.images) > psnr(ref.images, different_seed.images) + 15


def test_warmup_is_reported_separately(tiny_reference):
    result = generate(tiny_reference, SamplingRequest.create([1], steps=2, warmup=True))
    assert result.warmup_s is not None and result.warmup_s > 0


def test_guidance_one_disables_cfg(tiny_reference):
    result = generate(tiny_reference, SamplingRequest.create([1], steps=2, guidance_scale=1.0))
    assert result.guidance_scale == 1.0 and len(result.images) == 1


def test_scheduler_switch(device):
    from dit_demo.engine.generate import build_reference

    variant = build_reference("tiny-random", device=device)
    result = generate(variant, SamplingRequest.create([1], steps=3, scheduler="euler"))
    assert result.scheduler == "EulerDiscreteScheduler"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(steps=0), "steps"),
        (dict(steps=1001), "steps"),
        (dict(steps=2.5), "steps"),
        (dict(guidance_scale=0.5), "guidance"),
        (dict(guidance_scale=float("nan")), "guidance"),
        (dict(guidance_scale="4"), "guidance"),
        (dict(seed=-1), "seed"),
        (dict(seed=MAX_SEED + 1), "seed"),
        (dict(labels=[]), "No class"),
        (dict(labels=["golden retreiver"]), "Did you mean"),
        (dict(labels=[0] * (MAX_BATCH + 1)), "Too many"),
        (dict(labels=[1, 2], seeds=[1]), "one seed per image"),
    ],
    ids=[
        "steps-0",
        "steps-1001",
        "steps-float",
        "guidance-low",
        "guidance-nan",
        "guidance-str",
        "seed-negative",
        "seed-too-big",
        "no-labels",
        "unknown-class",
        "batch-too-big",
        "seed-count",
    ],
)
def test_bad_input_is_a_clear_error(tiny_reference, kwargs, message):
    labels = kwargs.pop("labels", [1])
    with pytest.raises(InvalidRequestError, match=message):
        generate(tiny_reference, SamplingRequest.create(labels, **kwargs))


def test_seeds_wrap_at_the_top():
    assert seeds_for(MAX_SEED, 2) == [MAX_SEED, 0]
