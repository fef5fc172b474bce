"""Interleaved timing and verdicts worded from spreads (a fake clock: correctness, not wall time)."""

from __future__ import annotations

import itertools

import pytest

from dit_demo.engine.timing import Spread, interleaved, speed_verdict
from dit_demo.errors import InvalidRequestError


def test_runners_are_interleaved_and_warmup_rounds_are_not_counted():
    order: list[str] = []
    ticks = itertools.count()
    spreads = interleaved(
        {"ref": lambda: order.append("ref"), "int8": lambda: order.append("int8")},
        rounds=3,
        warmup_rounds=1,
        clock=lambda: float(next(ticks)),
    )
    assert order == ["ref", "int8"] * 4
    assert spreads["ref"].runs == spreads["int8"].runs == 3
    assert all(s == 1.0 for s in spreads["ref"].samples)


def test_verdict_needs_separate_ranges():
    reference = Spread((1.0, 1.1, 1.2))
    assert speed_verdict(reference, Spread((0.5, 0.6, 0.7))).direction == "faster"
    assert speed_verdict(reference, Spread((1.5, 1.6, 1.7))).direction == "slower"
    overlapping = speed_verdict(reference, Spread((0.8, 0.9, 1.05)))
    assert overlapping.direction == "about as fast"
    assert "within the noise" in overlapping.phrase("fp32") and "3 interleaved runs" in overlapping.phrase("fp32")


def test_phrase_states_the_ratio_and_its_range():
    verdict = speed_verdict(Spread((2.0, 2.0)), Spread((1.0, 1.0)))
    assert verdict.phrase("fp32").startswith("2.00× faster than fp32 (0.50–0.50×")
    slower = speed_verdict(Spread((1.0, 1.0)), Spread((1.5, 1.5)))
    assert slower.phrase("fp32").startswith("1.50× slower than fp32")


def test_the_same_noisy_measurement_never_gives_opposite_directions():
    """Two noisy draws of equal speed must both come out 'about as fast', never 'faster' then 'slower'."""
    reference = Spread((1.0, 1.6, 1.2, 1.1, 1.3))
    first = speed_verdict(reference, Spread((1.2, 1.0, 1.5, 1.1, 1.05)))
    second = speed_verdict(reference, Spread((1.55, 1.25, 1.0, 1.4, 1.3)))
    assert {first.direction, second.direction} == {"about as fast"}


def test_spread_round_trips_and_refuses_empty():
    spread = Spread((0.3, 0.1, 0.2))
    assert (spread.median, spread.low, spread.high) == (0.2, 0.1, 0.3)
    assert Spread.from_dict(spread.to_dict()) == spread
    with pytest.raises(InvalidRequestError):
        Spread(())
    with pytest.raises(InvalidRequestError):
        interleaved({"a": lambda: None}, rounds=0)


def test_ranges_kept_without_samples_follow_the_same_rule():
    """The GPU benchmark keeps (min, median, max) only, each variant timed apart: the same rule, said so."""
    from dit_demo.engine.timing import verdict_from_ranges

    apart = verdict_from_ranges((0.1448, 0.1474, 0.1479), (0.1402, 0.1412, 0.1425), runs=5, interleaved=False)
    assert apart.direction == "faster" and "5 runs each, timed apart" in apart.phrase("bf16")
    touching = verdict_from_ranges((0.1448, 0.1474, 0.1479), (0.1402, 0.1412, 0.1450), runs=5)
    assert touching.direction == "about as fast" and "5 interleaved runs" in touching.phrase("bf16")
    samples = Spread((1.0, 1.1, 1.2)), Spread((1.3, 1.4, 1.5))
    ranges = verdict_from_ranges((1.0, 1.1, 1.2), (1.3, 1.4, 1.5), runs=3)
    assert speed_verdict(*samples) == ranges
