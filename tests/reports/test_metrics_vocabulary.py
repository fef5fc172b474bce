"""The metric vocabulary: one label, unit and format per key, read by every table and chart; old files' keys too."""

from __future__ import annotations

import math
import re

import pytest

from dit_demo.metrics import LEGACY_KEYS, METRICS, canonical, metric
from dit_demo.reports.tables import labelled_table, markdown_table, metric_table


def test_every_metric_has_a_true_unit_and_a_direction():
    for key, m in METRICS.items():
        assert m.key == key and m.label and m.better in ("lower", "higher")
        if key.endswith("_bytes"):
            assert m.unit == "MiB" and math.isclose(m.scale, 2**-20)  # binary units, named so
        if key.endswith("_s") and m.unit == "ms":
            assert m.scale == 1000
        if "ratio" in key or "_vs_" in key:
            assert m.unit.startswith("×")
    assert not re.search(r"\bMB\b", " ".join(m.header for k, m in METRICS.items() if k != "transformer_mb"))


def test_cells_and_text_scale_and_round():
    weights, ratio = METRICS["weight_bytes"], METRICS["latency_ratio"]
    assert weights.cell(3 * 2**20 + 2**19) == "3.50" and weights.header == "weights (MiB)"
    assert METRICS["per_step_s"].text(0.0123) == "12.30 ms"
    assert ratio.text(1.3574) == "1.36×" and ratio.header == "latency (× reference)"
    assert METRICS["digit_accuracy"].text(0.755) == "75.5 %"
    assert METRICS["peak_memory_bytes"].cell(1806 * 2**20) == "1,806.0"
    assert METRICS["psnr_db"].cell(None) == "identical" and METRICS["ssim"].cell(None) == "—"
    assert METRICS["fid"].cell(float("nan")) == "—" and METRICS["psnr_db"].cell("—") == "—"
    assert METRICS["latency_s"].number(float("inf")) is None and METRICS["latency_s"].number(True) is None


def test_legacy_keys_read_as_todays():
    old = {"recipe": "int8", "psnr_vs_bf16_db": 48.25, "accuracy": 0.9, "ssim_vs_fp": 0.99}
    assert canonical(old) == {"recipe": "int8", "psnr_db": 48.25, "digit_accuracy": 0.9, "ssim": 0.99}
    assert canonical({"psnr_vs_fp": float("inf")})["psnr_db"] is None  # infinite PSNR meant identical
    assert canonical({"psnr_db": 40.0, "psnr_vs_bf16_db": 39.0})["psnr_db"] == 40.0  # today's key wins
    assert all(v in METRICS for v in LEGACY_KEYS.values()) and metric("accuracy") is METRICS["digit_accuracy"]
    with pytest.raises(KeyError, match="unknown metric 'speed'"):
        metric("speed")


def test_tables_take_headers_and_cells_from_the_vocabulary():
    rows = [{"recipe": "bf16", "weight_bytes": 2**21, "psnr_db": None}, {"recipe": "int8", "weight_bytes": 2**20}]
    lines = markdown_table(rows, ["recipe", "weight_bytes", "psnr_db"]).splitlines()
    assert lines[0] == "| recipe | weights (MiB) | PSNR (dB) |"
    assert lines[2] == "| bf16 | 2.00 | identical |"
    page = metric_table(rows, ["weight_bytes", "latency_s"], ["bf16 ref", "int8"], table_id="t")
    assert '<th scope="row">weights (MiB)</th><td data-label="bf16 ref">2.00</td>' in page
    assert "latency" not in page  # a metric no record has is left out
    assert 'id="t"' in page and "dq-wide" not in page
    assert "dq-wide" in labelled_table(["", "a", "b", "c"], [["x", 1, 2, 3]])  # phones: rows become blocks
