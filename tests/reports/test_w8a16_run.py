"""The committed H200 W8A16 runs render into the README's tables, and every ratio there follows from the samples
(run1: GEMM + end to end; run2: the GEMM-only re-measure after the faulty tile was removed)."""

import importlib.util
import json
import statistics
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "bench" / "h200-w8a16" / "run1"
RUN2 = ROOT / "bench" / "h200-w8a16" / "run2"


def _summarize():
    spec = importlib.util.spec_from_file_location("w8a16_summarize", ROOT / "bench" / "h200-w8a16" / "summarize.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ratios_follow_from_the_interleaved_samples():
    record = json.loads((RUN / "e2e" / "results.json").read_text(encoding="utf-8"))
    for setting in record["settings"]:
        cells = {name: cell for name, cell in setting["cells"].items() if "latency" in cell}
        base = cells["bf16"]["latency"]["samples_s"]
        for cell in cells.values():
            samples = cell["latency"]["samples_s"]
            assert len(samples) == len(base) == 7
            ratio = cell["vs_bf16_compiled"]
            assert abs(ratio["ratio"] - statistics.median(samples) / statistics.median(base)) < 1e-3
            assert abs(ratio["low"] - min(samples) / max(base)) < 1e-3
            assert abs(ratio["high"] - max(samples) / min(base)) < 1e-3


def test_summary_tables_carry_the_run():
    summarize = _summarize()
    gemm = json.loads((RUN / "gemm" / "gemm.json").read_text(encoding="utf-8"))
    table = summarize.gemm_table(gemm)
    assert len(table.splitlines()) == 2 + len(gemm["rows"])
    wrong = [r for r in gemm["rows"] if not r["ok"]]
    assert table.count("wrong output") == len(wrong)  # a wrong kernel's time is never shown as a time
    record = json.loads((RUN / "e2e" / "results.json").read_text(encoding="utf-8"))
    e2e = summarize.e2e_table(record)
    int8 = record["settings"][0]["cells"]["int8"]["vs_bf16_compiled"]
    assert f"{int8['ratio']:.2f}× ({int8['low']:.2f}–{int8['high']:.2f}" in e2e
    categories = summarize.category_table(record, summarize._e2e_module().category)
    assert "W8A16 Triton" in categories and "attention (cuDNN flash)" in categories


@pytest.mark.parametrize("run", [RUN, RUN2], ids=["run1", "run2"])
def test_gemm_table_and_block_sums_follow_from_the_rows(run):
    summarize = _summarize()
    gemm = json.loads((run / "gemm" / "gemm.json").read_text(encoding="utf-8"))
    table = summarize.gemm_table(gemm)
    assert len(table.splitlines()) == 2 + len(gemm["rows"])
    assert table.count("wrong output") == sum(not r["ok"] for r in gemm["rows"])
    assert table.count("**W8A16**") == sum(r["faster"] == "triton" for r in gemm["rows"])
    blocks = summarize.block_table(gemm).splitlines()[2:]
    assert len(blocks) == len({r["m"] for r in gemm["rows"]})
    for line in blocks:
        m, bf16, _cast, chosen, ratio = (float(cell) for cell in line.strip("| ").split(" | ")[:5])
        rows = [r for r in gemm["rows"] if r["m"] == m]
        assert len(rows) == 4
        base = sum(r["bf16_us"] for r in rows)
        expected = sum(r["w8a16_us"] if r["faster"] == "triton" else r["cast_mm_us"] for r in rows)
        assert abs(bf16 - base) < 0.06 and abs(chosen - expected) < 0.06
        assert abs(ratio - expected / base) < 6e-3


def test_gemm_only_run_prints_the_gemm_tables_and_says_end_to_end_was_not_run(capsys):
    assert not (RUN2 / "e2e").exists()
    assert _summarize().main(str(RUN2)) == 0
    out = capsys.readouterr().out
    assert "| qkv (fused) | 16384 |" in out and "End to end: not run" in out
    assert "forward ms" not in out  # no end-to-end table invented for a run without one


def test_run_folder_without_gemm_results_is_refused_by_name(tmp_path, capsys):
    assert _summarize().main(str(tmp_path)) == 2
    assert "gemm.json" in capsys.readouterr().err
