"""Request checks before any model is loaded: UI values accepted, bad ones refused with a clear message."""

from __future__ import annotations

import pytest

from dit_demo.app.inputs import Request
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
