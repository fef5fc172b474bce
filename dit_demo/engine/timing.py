"""Timings that survive a noisy machine: reference and candidates interleaved (A B C A B C …), median and spread.

One timing of one run on a shared CPU can say 1.6× slower and then 1.2× faster for the same request. So every ratio
the project shows rests on several interleaved rounds, and a verdict says "faster" or "slower" only when the two
ranges (min–max over the rounds) do not overlap; otherwise the two are "about as fast" on that machine.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from dit_demo.errors import InvalidRequestError


@dataclass(frozen=True)
class Spread:
    """Several timings of one thing: median and range, in seconds."""

    samples: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.samples:
            raise InvalidRequestError("a timing spread needs at least one sample")

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def low(self) -> float:
        return min(self.samples)

    @property
    def high(self) -> float:
        return max(self.samples)

    @property
    def runs(self) -> int:
        return len(self.samples)

    def to_dict(self) -> dict:
        return {
            "median_s": round(self.median, 6),
            "min_s": round(self.low, 6),
            "max_s": round(self.high, 6),
            "runs": self.runs,
            "samples_s": [round(s, 6) for s in self.samples],
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> Spread:
        return cls(tuple(float(s) for s in data["samples_s"]))


def interleaved(
    runners: Mapping[str, Callable[[], object]],
    *,
    rounds: int,
    warmup_rounds: int = 1,
    clock: Callable[[], float] = time.perf_counter,
    sync: Callable[[], None] = lambda: None,
) -> dict[str, Spread]:
    """Time each runner once per round, in the same order every round, after `warmup_rounds` untimed rounds."""
    if rounds < 1:
        raise InvalidRequestError(f"rounds must be at least 1, got {rounds}")
    samples: dict[str, list[float]] = {name: [] for name in runners}
    for index in range(warmup_rounds + rounds):
        for name, run in runners.items():
            sync()
            start = clock()
            run()
            sync()
            if index >= warmup_rounds:
                samples[name].append(clock() - start)
    return {name: Spread(tuple(values)) for name, values in samples.items()}


@dataclass(frozen=True)
class SpeedVerdict:
    """How a candidate's time compares to the reference's, worded only as strongly as the spreads allow."""

    ratio: float  # candidate median / reference median (< 1: faster)
    ratio_low: float  # the most favourable ratio the ranges allow (candidate min / reference max)
    ratio_high: float  # the least favourable (candidate max / reference min)
    direction: str  # "faster" | "slower" | "about as fast"
    runs: int
    interleaved: bool = True  # False: each variant was timed alone (GPU benchmark runs), ranges from those runs

    def phrase(self, reference: str) -> str:
        """'1.35× slower than fp32 (1.21–1.52×, 5 runs)' or 'about as fast as fp32 (within this machine's noise…)'."""
        runs = f"{self.runs} interleaved runs" if self.interleaved else f"{self.runs} runs each, timed apart"
        spread = f"{self.ratio_low:.2f}–{self.ratio_high:.2f}× of its time, {runs}"
        if self.direction == "faster":
            return f"{1 / self.ratio:.2f}× faster than {reference} ({spread})"
        if self.direction == "slower":
            return f"{self.ratio:.2f}× slower than {reference} ({spread})"
        return f"about as fast as {reference} (within the noise of this machine: {spread})"


def range_direction(reference: tuple[float, float], candidate: tuple[float, float]) -> str:
    """THE verdict rule, on (min, max) ranges: 'faster'/'slower' only when the candidate's range lies wholly
    below/above the reference's, else 'about as fast'."""
    if candidate[1] < reference[0]:
        return "faster"
    if candidate[0] > reference[1]:
        return "slower"
    return "about as fast"


def speed_verdict(reference: Spread, candidate: Spread) -> SpeedVerdict:
    """'faster'/'slower' only when the candidate's range lies wholly below/above the reference's."""
    return verdict_from_ranges(
        (reference.low, reference.median, reference.high),
        (candidate.low, candidate.median, candidate.high),
        runs=min(reference.runs, candidate.runs),
    )


def verdict_from_ranges(
    reference: tuple[float, float, float], candidate: tuple[float, float, float], *, runs: int, interleaved: bool = True
) -> SpeedVerdict:
    """The verdict from (min, median, max) seconds, for records that kept only those (the GPU benchmark's)."""
    return SpeedVerdict(
        ratio=candidate[1] / reference[1],
        ratio_low=candidate[0] / reference[2],
        ratio_high=candidate[2] / reference[0],
        direction=range_direction((reference[0], reference[2]), (candidate[0], candidate[2])),
        runs=runs,
        interleaved=interleaved,
    )


def spread_from_samples(samples: Sequence[float]) -> Spread:
    return Spread(tuple(float(s) for s in samples))


def machine_load() -> float | None:
    """The 1-minute load average (Unix), recorded next to CPU timings so a busy machine is visible in the data."""
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None
