"""Speed verdicts that survive a shared machine: the same comparison asked 5 times through `/generate` (gradio_client)
never says "faster" in one answer and "slower" in another, and every verdict rests on the interleaved runs it names."""

from __future__ import annotations

import itertools

import pytest
from gradio_client import Client

from dit_demo.app.config import embedded_available
from dit_demo.app.offered import class_choices
from dit_demo.app.service import DemoService
from dit_demo.engine.timing import Spread

MODEL = "embedded" if embedded_available() else "tiny-random"
ROUNDS = 3
RECIPES = ["int8", "int8-dynamic"]
OPPOSITE = {("faster", "slower"), ("slower", "faster")}


@pytest.fixture(scope="module")
def service() -> DemoService:
    return DemoService(MODEL, device="cpu", timing_rounds=ROUNDS)


def ask(client: Client, classes: list[str]) -> tuple[dict, str]:
    _, numbers, summary, _ = client.predict(
        MODEL, classes, 5, False, 4, 4.0, "dpm", RECIPES, False, api_name="/generate"
    )
    return numbers, summary


def test_same_comparison_five_times_never_flips_a_verdict(client: Client) -> None:
    classes = class_choices(MODEL)[1:3]
    answers = [ask(client, classes) for _ in range(5)]
    directions: dict[str, list[str]] = {recipe: [] for recipe in RECIPES}
    for numbers, summary in answers:
        reference = numbers["recipes"][numbers["reference"]]
        reference_spread = Spread.from_dict(reference["latency_spread"])
        for recipe in RECIPES:
            row = numbers["recipes"][recipe]
            spread, speed = Spread.from_dict(row["latency_spread"]), row["speed_verdict"]
            assert row["latency_runs"] == spread.runs == speed["runs"] == ROUNDS
            assert spread.low <= row["latency_median_s"] <= spread.high
            assert row["latency_ratio"] == pytest.approx(spread.median / reference_spread.median, rel=1e-3)
            assert row["latency_s"] == pytest.approx(spread.samples[0], abs=1e-6)  # the run whose images are shown
            # the wording follows the ranges: "faster"/"slower" only when they do not overlap
            overlap = spread.low <= reference_spread.high and reference_spread.low <= spread.high
            expected = "about as fast" if overlap else ("faster" if spread.high < reference_spread.low else "slower")
            assert speed["direction"] == expected
            line = numbers["verdicts"][recipe]
            assert f"{ROUNDS} interleaved runs" in line and line in summary.replace("**", "")
            assert ("within the noise of this machine" in line) == overlap
            directions[recipe].append(speed["direction"])
    for recipe, seen in directions.items():
        flips = [pair for pair in itertools.combinations(seen, 2) if pair in OPPOSITE]
        assert not flips, f"{recipe}: verdicts flipped between identical requests: {seen}"


def test_the_budget_counts_every_timed_run(service: DemoService) -> None:
    from dit_demo.app.inputs import Request
    from dit_demo.engine.model.resolver import resolve_source
    from dit_demo.engine.request import SamplingRequest

    resolved = resolve_source(MODEL)
    request = Request(resolved.source, SamplingRequest.create([1], seed=0, steps=4), ["int8"], resolved=resolved)
    service._seconds_per_image_step.update({(resolved.source, "bf16"): 0.5, (resolved.source, "int8"): 0.25})
    pending = service.estimated_seconds(request) - 0.75 * 4 * ROUNDS
    service.timing_rounds = 1
    try:
        assert service.estimated_seconds(request) == pytest.approx(0.75 * 4 + pending)
    finally:
        service.timing_rounds = ROUNDS


def test_out_of_range_steps_are_refused_not_clamped(client: Client, url: str) -> None:
    """Steps are a number box the validator checks (a slider clamped 150 to 100 and 0 to 1 without a word), so an
    out-of-range value gets the API's message."""
    import httpx
    from gradio_client.exceptions import AppError, ValidationError

    config = httpx.get(url + "config", timeout=30).json()
    props = {c["props"].get("elem_id"): c for c in config["components"] if c.get("props", {}).get("elem_id")}
    assert props["steps"]["type"] == "number" and props["steps"]["props"].get("maximum") is None
    for steps in (0, 150):
        with pytest.raises((ValidationError, AppError), match="steps must be a whole number from 1 to 100"):
            client.predict(
                MODEL, class_choices(MODEL)[1:2], 5, False, steps, 4.0, "dpm", ["int8"], False, api_name="/generate"
            )
