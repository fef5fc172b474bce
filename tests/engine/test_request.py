"""`SamplingRequest`: validated once on construction, every error naming its field."""

import dataclasses

import numpy as np
import pytest

from dit_demo.engine.request import MAX_SEED, SamplingRequest, seeds_for
from dit_demo.errors import InvalidRequestError


def test_create_fills_seeds_and_normalizes_types():
    request = SamplingRequest.create([np.int64(3), "207: golden retriever"], seed=np.int64(7), steps=25.0)
    assert request.labels == (3, 207) and all(type(label) is int for label in request.labels)
    assert request.seeds == (7, 8) and request.steps == 25 and type(request.steps) is int
    assert request.guidance_scale == 4.0 and request.seed == 7


def test_a_bare_string_is_one_label_not_characters():
    assert SamplingRequest.create("golden retriever").labels == ("golden retriever",)


def test_frozen_and_replacement_is_validated_again():
    request = SamplingRequest.create([1], steps=4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.steps = 5
    assert request.replace(steps=5).steps == 5
    with pytest.raises(InvalidRequestError, match="steps"):
        request.replace(steps=0)


def test_head_keeps_shapes_for_warm_ups():
    request = SamplingRequest.create([1, 2, 3], seed=9, steps=25, warmup=True)
    head = request.head(1, steps=2)
    assert head.labels == (1,) and head.seeds == (9,) and head.steps == 2 and head.warmup


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(steps="ten"), "steps"),
        (dict(steps=float("nan")), "steps"),
        (dict(steps=True), "steps"),
        (dict(guidance_scale=float("inf")), "guidance scale"),
        (dict(guidance_scale="abc"), "guidance scale"),
        (dict(guidance_scale=None), "guidance scale"),
        (dict(seed="abc"), "seed"),
        (dict(seed=float("nan")), "seed"),
        (dict(seed=MAX_SEED + 1), "seed"),
        (dict(max_batch=0), "max_batch"),
    ],
)
def test_every_bad_value_names_its_field(kwargs, field):
    with pytest.raises(InvalidRequestError, match=field):
        SamplingRequest.create([1], **kwargs)


def test_seed_count_must_match():
    with pytest.raises(InvalidRequestError, match="one seed per image"):
        SamplingRequest.create([1, 2], seeds=[1])


def test_seeds_wrap_around():
    assert seeds_for(MAX_SEED, 2) == [MAX_SEED, 0]
