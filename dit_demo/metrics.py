"""The one vocabulary of metrics: what each key of results.json / the API numbers means, its label and unit, which
direction is better, and how its value reads. Every table and chart (app, gallery pages, model card, benchmark and
evaluation tables) takes headers and cells from here, so the same key reads the same everywhere.

Values stay raw in JSON (seconds, bytes, fractions); a metric scales them for display (ms, MiB = 2**20 bytes, %).
Old results files used other names for a few keys (`LEGACY_KEYS`); `canonical` reads them under today's names.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from dit_demo.units import MIB

MISSING = "—"


@dataclass(frozen=True)
class Metric:
    """One number people read. `scale` turns the stored value into `unit`; `better` is "lower", "higher" or None."""

    key: str
    label: str
    unit: str = ""
    better: str | None = None
    digits: int = 2
    scale: float = 1.0
    missing: str = MISSING  # what a null reads as (a null PSNR means identical images)
    meaning: str = ""

    @property
    def header(self) -> str:
        """Column or row title with its unit: `peak memory (MiB)`, `latency (× reference)`, `SSIM`."""
        return f"{self.label} ({self.unit})" if self.unit else self.label

    def number(self, value: object) -> float | None:
        """The value in the display unit, rounded (for charts and sortable cells); None when unknown."""
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            return None
        return round(float(value) * self.scale, self.digits)

    def cell(self, value: object) -> str:
        """A table cell under `header` (no unit): `720.00`, `1,806.0`, `identical`, `—`. Text passes through."""
        if isinstance(value, str):
            return value
        if value is None:
            return self.missing
        number = self.number(value)
        return MISSING if number is None else f"{number:,.{self.digits}f}"

    def text(self, value: object) -> str:
        """The value with its unit, for prose: `720.00 MiB`, `47.8 dB`, `1.36×`, `98.0 %`."""
        cell = self.cell(value)
        if self.number(value) is None or not self.unit:
            return cell
        if self.unit.startswith("×"):
            return f"{cell}×"
        return f"{cell} {self.unit}"


def _m(key: str, label: str, unit: str = "", better: str | None = None, digits: int = 2, **kw) -> Metric:
    return Metric(key, label, unit, better, digits, **kw)


_MS, _LOWER, _HIGHER = 1000.0, "lower", "higher"

METRICS: dict[str, Metric] = {
    m.key: m
    for m in (
        # quality against the reference (same classes and seeds)
        _m("psnr_db", "PSNR", "dB", _HIGHER, 1, missing="identical",
           meaning="PSNR against the reference (null = identical)"),
        _m("ssim", "SSIM", "", _HIGHER, 4, meaning="SSIM against the reference (1 = identical)"),
        _m("digit_accuracy", "digits read as asked", "%", _HIGHER, 1, scale=100.0,
           meaning="share of images the digits classifier reads as the requested digit"),
        _m("digit_confidence", "classifier confidence", "%", _HIGHER, 1, scale=100.0,
           meaning="mean classifier confidence in the requested digit"),
        _m("fid", "FID", "", _LOWER, 2, meaning="Fréchet distance of classifier features to the held-out real digits"),
        # time
        _m("latency_s", "latency", "s", _LOWER, 3, meaning="end-to-end wall time of one request (all images)"),
        _m("latency_median_s", "median latency", "s", _LOWER, 3),
        _m("latency_per_image_s", "latency per image", "ms", _LOWER, 1, scale=_MS),
        _m("per_step_s", "per step", "ms", _LOWER, 2, scale=_MS, meaning="denoising time ÷ steps"),
        _m("forward_s", "transformer forward", "ms", _LOWER, 2, scale=_MS),
        _m("decode_s", "VAE decode", "ms", _LOWER, 2, scale=_MS),
        _m("denoise_s", "denoising", "s", _LOWER, 3, meaning="all denoising steps, decode excluded"),
        _m("load_s", "load", "s", _LOWER, 2, meaning="one-time: loading the model"),
        _m("images_per_s", "throughput", "images/s", _HIGHER, 2),
        _m("s_per_image", "time per image", "s", _LOWER, 3),
        _m("quantize_s", "quantize", "s", _LOWER, 3, meaning="one-time: quantizing the weights"),
        _m("calibrate_s", "calibrate", "s", _LOWER, 3, meaning="one-time: activation scales over sampling runs"),
        _m("warmup_s", "one-time warm-up", "s", _LOWER, 2, meaning="first runs: kernel builds, compile, graph capture"),
        _m("build_s", "build", "s", _LOWER, 1),
        # memory (binary units: MiB = 2**20 bytes)
        _m("weight_bytes", "weights", "MiB", _LOWER, 2, scale=1 / MIB, meaning="transformer weight bytes"),
        _m("peak_memory_bytes", "peak memory", "MiB", _LOWER, 1, scale=1 / MIB),
        _m("run_memory_bytes", "memory added by the run", "MiB", _LOWER, 1, scale=1 / MIB),
        _m("memory_before_bytes", "memory in use before the run", "MiB", _LOWER, 1, scale=1 / MIB),
        _m("checkpoint_bytes", "checkpoint", "MiB", _LOWER, 2, scale=1 / MIB, meaning="saved transformer folder"),
        _m("transformer_mb", "transformer weights", "MB", _LOWER, 2, meaning="decimal megabytes (10**6 bytes)"),
        # ratios to the reference of the same request or run
        _m("latency_ratio", "latency", "× reference", _LOWER, 2, meaning="end-to-end latency ÷ the reference's"),
        _m("peak_memory_ratio", "peak memory", "× reference", _LOWER, 2, meaning="peak memory ÷ the reference's"),
        _m("weight_bytes_ratio", "weights", "× reference", _LOWER, 2, meaning="weight bytes ÷ the reference's"),
        _m("latency_vs_bf16_eager", "latency", "× bf16 eager", _LOWER, 2),
        _m("latency_vs_bf16_same_mode", "latency", "× bf16, same mode", _LOWER, 2),
        _m("latency_vs_bf16_best_compiled", "latency", "× best bf16 compiled", _LOWER, 2),
        _m("peak_memory_vs_bf16_eager", "peak memory", "× bf16 eager", _LOWER, 2),
        _m("peak_memory_vs_bf16_same_mode", "peak memory", "× bf16, same mode", _LOWER, 2),
        _m("peak_memory_vs_bf16_best_compiled", "peak memory", "× best bf16 compiled", _LOWER, 2),
        _m("weight_bytes_vs_bf16", "weights", "× bf16", _LOWER, 2),
        _m("forward_vs_bf16_same_mode", "forward", "× bf16, same mode", _LOWER, 2),
        _m("step_over_forward", "step ÷ forward", "×", _LOWER, 2, meaning="wall-clock step over the forward alone"),
    )
}  # fmt: skip

# Names older results files used (bench results.json before the rename, evaluate's quality.json).
LEGACY_KEYS = {
    "psnr_vs_bf16_db": "psnr_db",
    "accuracy": "digit_accuracy",
    "psnr_vs_fp": "psnr_db",
    "ssim_vs_fp": "ssim",
}


def metric(key: str) -> Metric:
    """The metric of `key` (or of its legacy name); KeyError names the unknown key."""
    key = LEGACY_KEYS.get(key, key)
    if key not in METRICS:
        raise KeyError(f"unknown metric {key!r}; known: {', '.join(METRICS)}")
    return METRICS[key]


def canonical(row: Mapping) -> dict:
    """A row under today's keys: legacy names renamed (a present new name wins), an infinite PSNR (an old way of
    saying identical) becomes null."""
    new = {LEGACY_KEYS.get(key, key): value for key, value in row.items() if LEGACY_KEYS.get(key) not in row}
    psnr = new.get("psnr_db")
    if isinstance(psnr, float) and math.isinf(psnr):
        new["psnr_db"] = None
    return new
