"""The reference-vs-recipe slider: one choice per quantized recipe and image, the very images the tiles show (scaled
up pixel-exact, PNG), labelled left/right; nothing to show before a run or for a pick that is not offered."""

from __future__ import annotations

import pytest
from PIL import Image

from dit_demo.app.page import slider
from dit_demo.app.page.views import ComparisonState
from dit_demo.compare import compare
from dit_demo.engine.generate import Variant
from dit_demo.engine.request import SamplingRequest


@pytest.fixture(scope="module")
def state(tiny_reference: Variant, tiny_variants: dict[str, Variant]) -> ComparisonState:
    comparison = compare(
        {"bf16": tiny_reference, "int8": tiny_variants["int8"]}, SamplingRequest.create([1, 500], seed=5, steps=2)
    )
    return ComparisonState(comparison, comparison.rows())


def test_choices_and_the_pair_shown(state: ComparisonState) -> None:
    comparison = state.comparison
    names = comparison.reference.class_names
    assert slider.choices(state) == [
        (f"int8 · {names[0]} (seed 5)", "int8|0"),
        (f"int8 · {names[1]} (seed 6)", "int8|1"),
    ]
    shown = slider.pair(state, "int8|1")
    left, right = shown["value"]
    side = left.width
    assert side >= slider.SLIDER_SIDE and side % 16 == 0
    for image, source in ((left, comparison.reference.images[1]), (right, comparison.results["int8"].images[1])):
        assert image.tobytes() == source.resize((side, side), Image.NEAREST).tobytes()  # pixel-exact, upscaled
    assert shown["label"].startswith("left: fp32 reference · right: int8 · ") and "(seed 6)" in shown["label"]


def test_first_view_and_picks_that_are_not_offered(state: ComparisonState) -> None:
    pick, first = slider.first_view(state)
    assert pick["visible"] and pick["value"] == "int8|0" and first["visible"]
    hidden_pick, hidden = slider.first_view(None)
    assert hidden_pick["visible"] is False and hidden["visible"] is False
    for bad in (None, "", "int8", "fp8|0", "int8|9", "int8|-1", "bf16|x"):
        assert slider.pair(state, bad)["value"] is None
