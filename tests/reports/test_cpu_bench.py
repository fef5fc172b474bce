"""`dit-demo cpu-bench` on the tiny model: interleaved cells, spreads, verdicts and the written tables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dit_demo.cli.cpu_bench import main
from dit_demo.engine.timing import Spread, speed_verdict
from dit_demo.errors import InvalidRequestError
from dit_demo.reports.cpu_bench import CpuBenchConfig, markdown


def test_cells_hold_spreads_verdicts_and_quality(tmp_path):
    out = tmp_path / "cpu"
    argv = ["--models", "tiny-random", "--recipes", "bf16,int8,int8-dynamic", "--batch", "1,2", "--threads", "1"]
    assert main([*argv, "--rounds", "2", "--steps", "2", "--sample-models", "tiny-random", "--out", str(out)]) == 0
    record = json.loads((out / "results.json").read_text())
    assert [(c["model"], c["threads"], c["batch"]) for c in record["cells"]] == [
        ("tiny-random", 1, 1),
        ("tiny-random", 1, 2),
    ]
    for cell in record["cells"]:
        assert set(cell["recipes"]) == {"bf16", "int8", "int8-dynamic"}
        for name, row in cell["recipes"].items():
            assert row["forward"]["runs"] == 2 and len(row["forward"]["samples_s"]) == 2
            assert row["forward"]["min_s"] <= row["forward"]["median_s"] <= row["forward"]["max_s"]
            assert row["sampling"]["runs"] == 2 and row["weight_bytes"] > 0
            if name != "bf16":
                verdict = row["forward_verdict"]
                assert verdict["direction"] in ("faster", "slower", "about as fast")
                assert verdict["ratio_low"] <= verdict["ratio"] <= verdict["ratio_high"]
                assert row["psnr_db"] > 20 and row["forward_psnr_db"] > 20
        assert cell["recipes"]["int8-dynamic"]["weight_bytes"] < cell["recipes"]["bf16"]["weight_bytes"]
    table = (out / "results.md").read_text()
    assert table.count("| tiny-random |") == 6 and "fp32 (reference)" in table and "interleaved" in table


def test_config_is_checked():
    with pytest.raises(InvalidRequestError, match="recipes: the first must be bf16"):
        CpuBenchConfig(recipes=("int8", "bf16"))
    with pytest.raises(InvalidRequestError, match="threads"):
        CpuBenchConfig(threads=(0,))
    with pytest.raises(InvalidRequestError, match="rounds"):
        CpuBenchConfig(rounds=1)


COMMITTED = sorted((Path(__file__).resolve().parents[2] / "bench").rglob("results.json"))
CPU_RECORDS = [p for p in COMMITTED if "cells" in json.loads(p.read_text(encoding="utf-8"))]


@pytest.mark.parametrize("path", CPU_RECORDS, ids=lambda p: p.parent.name)
def test_committed_cpu_tables_are_what_their_json_says(path):
    """The committed results.md is the markdown of its results.json, and every verdict agrees with its spreads."""
    record = json.loads(path.read_text(encoding="utf-8"))
    assert (path.parent / "results.md").read_text(encoding="utf-8") == markdown(record)
    for cell in record["cells"]:
        reference = Spread.from_dict(cell["recipes"]["bf16"]["forward"])
        for name, row in cell["recipes"].items():
            if name != "bf16":
                verdict = speed_verdict(reference, Spread.from_dict(row["forward"]))
                assert verdict.direction == row["forward_verdict"]["direction"]
