"""The benchmark's CPU path end to end on the tiny model: every cell measured, ratios to bf16 of the same run."""

import json
from pathlib import Path

import pytest

from dit_demo.errors import InvalidRequestError
from dit_demo.reports.bench import BenchConfig, markdown, markdown_from_record, row_psnr_db, run_bench

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def record(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    config = BenchConfig(
        model="tiny-random",
        recipes=("int8", "bf16"),
        batches=(1, 2),
        compile_modes=("none",),
        steps=3,
        runs=2,
        warmup_runs=1,
        forward_runs=2,
        device="cpu",
        out=str(out),
    )
    return run_bench(config), out


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
        assert bf16["latency_vs_bf16_eager"] == 1.0 and bf16["psnr_db"] is None
        assert int8["latency_vs_bf16_eager"] == pytest.approx(int8["latency_s"] / bf16["latency_s"], rel=1e-3)
        assert int8["weight_bytes_vs_bf16"] < 0.8
        assert int8["psnr_db"] > 40
        assert "psnr_vs_bf16_db" not in int8  # the vocabulary's key only


def test_markdown_table_lists_every_cell(record):
    text = (record[1] / "results.md").read_text()
    assert text.count("| int8 |") == 2 and text.count("| bf16 |") == 2 and "tiny-random" in text
    assert "| peak memory (MiB) |" in text and "| weights (MiB) |" in text  # binary units, headers from the vocabulary


def test_baseline_is_required(tmp_path):
    with pytest.raises(InvalidRequestError, match="baseline"):
        BenchConfig(model="tiny-random", recipes=("int8",), out=str(tmp_path))
    with pytest.raises(InvalidRequestError, match="baseline"):
        BenchConfig(model="tiny-random", compile_modes=("reduce-overhead",), out=str(tmp_path))


def test_config_is_checked_and_ordered():
    config = BenchConfig(recipes=("int8", "bf16"), compile_modes=("reduce-overhead", "none"))
    assert config.recipes == ("bf16", "int8") and config.compile_modes == ("none", "reduce-overhead")
    with pytest.raises(InvalidRequestError, match="kernel"):
        BenchConfig(kernels=("cublas",))
    with pytest.raises(InvalidRequestError, match="compile mode"):
        BenchConfig(compile_modes=("none", "fast"))
    with pytest.raises(InvalidRequestError, match="recipe"):
        BenchConfig(recipes=("bf16", "int3"))


def test_cells_follow_eager_recipes_and_kernels():
    config = BenchConfig(
        recipes=("bf16", "int8"),
        compile_modes=("none", "reduce-overhead"),
        kernels=("torch", "triton"),
        eager_recipes=("bf16",),
        batches=(1,),
    )
    assert list(config.cells()) == [
        (1, "none", "bf16", "torch"),
        (1, "reduce-overhead", "bf16", "torch"),
        (1, "reduce-overhead", "int8", "torch"),
        (1, "reduce-overhead", "int8", "triton"),
    ]


def test_compiled_cells_get_every_capture_and_fusion_choice():
    config = BenchConfig(captures=("step", "forward"), fuse=(False, True))
    assert config.options("reduce-overhead") == [("step", False), ("step", True), ("forward", False), ("forward", True)]
    assert config.options("none") == [("auto", None)] and BenchConfig().fuse == (None,)
    with pytest.raises(InvalidRequestError, match="capture"):
        BenchConfig(captures=("everything",))


def test_rows_say_which_path_ran_and_step_over_forward(record):
    for row in record[0]["rows"]:
        assert row["path"] == "pipeline" and row["capture"] == "forward" and row["fuse"] is False
        assert row["step_over_forward"] == pytest.approx(row["per_step_s"] / row["forward_s"])


def bench_records() -> list:
    """Every committed `dit-demo bench` results.json (gallery runs under bench/ also write results.json: the
    gallery's own format, recognised by its `images` list, rendered by the gallery pages instead)."""
    paths = sorted((ROOT / "bench").rglob("results.json"))
    # `dit-demo cpu-bench` records hold `cells` (tests/reports/test_cpu_bench.py checks those), the interleaved
    # bench/h200-w8a16 e2e records `settings` (tests/reports/test_w8a16_run.py); bench/h200-aot's table keeps its
    # `records` (dit_demo.reports.bench_aot_table); bench/cpu-startup's app start-up runs their `checkouts`
    # records; bench/cpu-int8/mnist-psnr's diagnosis keeps `variants`: only files with `rows` are bench tables
    skip = {"images", "cells", "settings", "records", "checkouts"}
    keys = {p: set(json.loads(p.read_text(encoding="utf-8"))) for p in paths}
    return [p for p in paths if "rows" in keys[p] and not skip & keys[p]]


def test_bench_records_are_found():
    assert len(bench_records()) >= 5


@pytest.mark.parametrize("path", bench_records(), ids=lambda p: p.parent.name)
def test_committed_results_still_render(path):
    """Files written before the `psnr_db` rename keep `psnr_vs_bf16_db`; the table reads both."""
    record = json.loads(path.read_text(encoding="utf-8"))
    text = markdown_from_record(record)
    ok = [r for r in record["rows"] if r["ok"]]
    assert len(text.splitlines()) == 4 + len(record["rows"])
    for row in ok:
        value = row.get("psnr_vs_bf16_db", row.get("psnr_db"))
        assert row_psnr_db(row) == value
        assert ("identical" if value is None else f"{value:.1f}") in text


def test_new_and_old_psnr_keys_render_alike(record):
    data = record[0]
    old_rows = [{("psnr_vs_bf16_db" if k == "psnr_db" else k): v for k, v in r.items()} for r in data["rows"]]
    assert markdown(old_rows, data["environment"], data["config"]) == markdown_from_record(data)
