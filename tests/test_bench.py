"""The benchmark's CPU path end to end on the tiny model: every cell measured, ratios to bf16 of the same run."""

import json

import pytest

from dit_demo.reports.bench import build_parser, main, run


@pytest.fixture(scope="module")
def record(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    args = build_parser().parse_args(
        [
            "--model",
            "tiny-random",
            "--recipes",
            "int8,bf16",
            "--batch",
            "1,2",
            "--compile",
            "none",
            "--steps",
            "3",
            "--runs",
            "2",
            "--warmup-runs",
            "1",
            "--forward-runs",
            "2",
            "--device",
            "cpu",
            "--out",
            str(out),
        ]
    )
    return run(args), out


def test_every_cell_is_measured(record):
    data, out = record
    rows = data["rows"]
    assert [(r["batch"], r["recipe"]) for r in rows] == [(1, "bf16"), (1, "int8"), (2, "bf16"), (2, "int8")]
    for row in rows:
        assert row["ok"], row.get("error")
        assert row["latency_s"] > 0 and row["forward_s"] > 0 and row["per_step_s"] > 0
        assert row["peak_memory_bytes"] > 0 and row["weight_bytes"] > 0 and row["warmup_s"] > 0
    assert json.loads((out / "results.json").read_text())["environment"]["torch"]
    assert (out / "latency_vs_memory.png").stat().st_size > 1000


def test_ratios_are_to_bf16_of_the_same_batch(record):
    rows = {(r["batch"], r["recipe"]): r for r in record[0]["rows"]}
    for batch in (1, 2):
        bf16, int8 = rows[(batch, "bf16")], rows[(batch, "int8")]
        assert bf16["latency_vs_bf16_eager"] == 1.0 and bf16["psnr_vs_bf16_db"] is None
        assert int8["latency_vs_bf16_eager"] == pytest.approx(int8["latency_s"] / bf16["latency_s"], rel=1e-3)
        assert int8["weight_bytes_vs_bf16"] < 0.8
        assert int8["psnr_vs_bf16_db"] > 40


def test_markdown_table_lists_every_cell(record):
    text = (record[1] / "results.md").read_text()
    assert text.count("| int8 |") == 2 and text.count("| bf16 |") == 2 and "tiny-random" in text


def test_baseline_is_required(tmp_path):
    with pytest.raises(SystemExit, match="baseline"):
        main(["--model", "tiny-random", "--recipes", "int8", "--out", str(tmp_path)])
