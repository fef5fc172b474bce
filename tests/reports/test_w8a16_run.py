"""The committed H200 W8A16 run renders into the README's tables, and every ratio there follows from the samples."""

import importlib.util
import json
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "bench" / "h200-w8a16" / "run1"


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
