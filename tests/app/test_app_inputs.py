"""Request checks before any model is loaded: UI values accepted, bad ones refused with a clear message."""

from __future__ import annotations

import numpy as np
import pytest

from dit_demo.app.inputs import FIELDS, Request
from dit_demo.engine.request import MAX_SEED
from dit_demo.errors import InvalidRequestError, ModelLoadError


def test_request_parsing_accepts_ui_values_and_rejects_bad_ones() -> None:
    request = Request.parse("tiny-random", ["207: golden retriever"], 3.0, False, 25.0, 4, "dpm",
                            ["bf16", "int8", "int8"])  # fmt: skip
    assert (request.sampling.labels, request.seed, request.sampling.steps, request.recipes) == ((207,), 3, 25, ["int8"])
    randomized = Request.parse("tiny-random", ["1"], 3, True, 2, 4.0, "dpm", [])
    assert 0 <= randomized.seed <= MAX_SEED
    with pytest.raises(InvalidRequestError, match="Did you mean: golden retriever"):
        Request.parse("tiny-random", ["golden retrievr"], 0, False, 2, 4.0, "dpm", [])
    with pytest.raises(InvalidRequestError, match="steps must be a whole number"):
        Request.parse("tiny-random", ["1"], 0, False, 2.5, 4.0, "dpm", [])
    with pytest.raises(InvalidRequestError, match="seed is empty"):
        Request.parse("tiny-random", ["1"], None, False, 2, 4.0, "dpm", [])
    with pytest.raises(InvalidRequestError, match="Too many images"):
        Request.parse("tiny-random", ["1"] * 3, 0, False, 2, 4.0, "dpm", [], max_batch=2)
    with pytest.raises(InvalidRequestError, match="Unknown recipe"):
        Request.parse("tiny-random", ["1"], 0, False, 2, 4.0, "dpm", ["int3"])
    with pytest.raises(ModelLoadError, match="Unknown model source"):
        Request.parse("no such model", ["1"], 0, False, 2, 4.0, "dpm", [])


def test_numpy_values_are_accepted() -> None:
    request = Request.parse(
        "tiny-random", [np.int64(207), np.int32(1)], np.int64(3), np.bool_(False), np.int64(4), np.float32(2.5),
        "ddim", ["int8"], np.bool_(False),
    )  # fmt: skip
    assert request.labels == (207, 1) and request.seed == 3 and request.sampling.steps == 4
    assert request.sampling.guidance_scale == 2.5 and request.sampling.scheduler == "ddim"


@pytest.mark.parametrize(
    "index, value, message",
    [
        (0, 3, "model must be text naming a model"),
        (1, [float("nan")], "classes[0] must be a class name (text) or id (whole number), got nan (not a finite"),
        (1, {"x": 1}, "classes must be a list of 1 to 16 class names"),
        (2, float("inf"), "seed must be a whole number from 0 to 4294967295, got inf (not a finite number)"),
        (2, "abc", "seed must be a whole number from 0 to 4294967295, got 'abc' (text)"),
        (3, "yes", "randomize_seed must be true or false, got 'yes' (text)"),
        (4, "ten", "steps must be a whole number from 1 to 100, got 'ten' (text)"),
        (4, float("nan"), "steps must be a whole number from 1 to 100, got nan (not a finite number)"),
        (5, float("-inf"), "guidance_scale must be a number from 1 to 15 (1 = no guidance), got -inf"),
        (5, "abc", "guidance_scale must be a number from 1 to 15 (1 = no guidance), got 'abc' (text)"),
        (6, "foo", "scheduler must be one of dpm, ddim, euler (text), got 'foo' (text)"),
        (7, 3, "recipes must be a list of recipe names"),
        (8, "no", "compile_gpu must be true or false, got 'no' (text)"),
    ],
)
def test_every_field_is_named_with_its_type_and_range(index: int, value, message: str) -> None:
    values = ["tiny-random", ["1"], 0, False, 2, 4.0, "dpm", [], False]
    values[index] = value
    with pytest.raises(InvalidRequestError) as info:
        Request.parse(*values)
    assert message in str(info.value)
    assert FIELDS[index] in str(info.value)
    request, errors = Request.check(*values)
    assert request is None and list(errors) == [FIELDS[index]]


def test_several_bad_fields_are_all_named_and_counts_are_checked() -> None:
    request, errors = Request.check("tiny-random", "zzqx-nothing", "abc", False, 0, 99.0, "dpm", ["int3"], False)
    assert request is None and list(errors) == ["classes", "seed", "steps", "guidance_scale", "recipes"]
    with pytest.raises(InvalidRequestError, match=r"/generate takes 9 values \(model, classes, seed"):
        Request.parse("tiny-random", ["1"])
