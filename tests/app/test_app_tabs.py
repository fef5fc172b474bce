"""The gallery and benchmark tabs are rendered from their results.json: tables, verdicts, charts and inline
images, with true labels, no internal wording and no links that could 404."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from dit_demo.app import config
from dit_demo.app.page import bench_tab, tabs


def assert_page_safe(text: str) -> None:
    assert not re.search(r"issue\s*#\d", text, re.I)  # no internal wording
    assert "href=" not in text and "](" not in text  # no (relative) links that would 404 on the page
    assert not re.search(r"\bMB\b|\bGB\b", text)  # binary units are MiB / GiB
    assert 'src="data:image/png;base64,' in text or "<svg" in text  # pictures are inline


@pytest.mark.skipif(not (config.GALLERY_DIR / "results.json").is_file(), reason="no shipped gallery in this copy")
def test_shipped_gallery_tab() -> None:
    page = tabs.gallery_html()
    assert_page_safe(page)
    record = json.loads((config.GALLERY_DIR / "results.json").read_text())
    assert "fp32 reference" in page  # the reference ran in float32 on the CPU
    for recipe in record["recipes"]:
        if recipe != record["reference"]:
            assert f"<b>{recipe}</b>: " in page  # a verdict line per recipe
    assert page.count("<svg") == 1 and 'id="dq-gallery-table"' in page
    assert "dit-demo gallery --shipped" in page


def test_gallery_tab_without_results_says_how_to_make_it(tmp_path: Path) -> None:
    assert "dit-demo gallery --shipped" in tabs.gallery_html(tmp_path)
    (tmp_path / "results.json").write_text("{not json")
    assert "dit-demo gallery --shipped" in tabs.gallery_html(tmp_path)


def _run_row(recipe: str, mode: str, latency: float, spread: float, peak: int, **extra) -> dict:
    row = {"recipe": recipe, "compile": "none" if mode == "none" else "reduce-overhead", "batch": 1, "ok": True}
    row.update(compile_mode=mode, capture="step", fuse=True, latency_s=latency, latency_min_s=latency - spread)
    row.update(latency_max_s=latency + spread, forward_s=latency / 30, per_step_s=latency / 25, warmup_s=1.0)
    row.update(peak_memory_bytes=peak, weight_bytes=peak // 2, psnr_db=None if recipe == "bf16" else 45.0, **extra)
    return row


def _write_run(folder: Path, name: str, machine: str, date: str, rows: list[dict]) -> None:
    from dit_demo.reports.bench import add_ratios

    add_ratios(rows)
    env = {"machine": machine, "date": date, "torch": "2.11", "diffusers": "0.42", "optimum_quanto": "0.2.7"}
    config = {"model": "dit-xl-2-256-random", "steps": 25, "guidance": 4.0, "runs": 5, "warmup_runs": 1}
    (folder / name).mkdir()
    (folder / name / "results.json").write_text(json.dumps({"environment": env, "config": config, "rows": rows}))


def test_bench_tab_is_one_screen_per_gpu_newest_first(tmp_path: Path) -> None:
    """Headline from the numbers (faster only where the runs do not overlap), one chart, the best setting per recipe,
    full tables under a disclosure; the newer GPU first; verdicts name bf16 in the same mode."""
    assert bench_tab.bench_html(tmp_path) is None
    step = "reduce-overhead+step-graph+fused-qkv"
    _write_run(tmp_path, "old-gpu", "GPU OLD", "2026-01-01", [
        _run_row("bf16", "none", 0.9, 0.01, 2000),
        _run_row("bf16", step, 0.100, 0.002, 2000),
        _run_row("int8", step, 0.090, 0.002, 1200),  # runs do not overlap: faster
        _run_row("int8-a8", step, 0.101, 0.004, 1300),  # overlaps bf16: about as fast
    ])  # fmt: skip
    _write_run(tmp_path, "new-gpu", "GPU NEW", "2026-02-01", [
        _run_row("bf16", "none", 0.9, 0.01, 2000),
        _run_row("bf16", step, 0.050, 0.001, 2000),
        _run_row("int8", step, 0.070, 0.001, 1200),
    ])  # fmt: skip
    page = bench_tab.bench_html(tmp_path)
    assert_page_safe(page)
    assert page.index("<h3>GPU NEW</h3>") < page.index("<h3>GPU OLD</h3>")  # newest first
    new, old = page.split("<h3>GPU OLD</h3>")
    assert "Memory wins" in new and "0.60×" in new and "Never faster" in new and "1.40×" in new
    assert "Faster than bf16 compiled</b> where the timed runs' ranges do not overlap" in old
    assert "int8 at 256² batch 1 (0.90×)" in old and "int8-a8 at 256² batch 1 (" not in old
    assert "About as fast as bf16 (the runs overlap): int8-a8 at 256² batch 1" in old
    assert page.count("<svg") == 2 and page.count("<details>") == 2 and page.count('class="dq-key"') == 2
    assert "slower than the bf16 step graphs + fused QKV on this GPU" in new  # the baseline's own name, not "bf16 QKV"
    best = new.split("Best setting per recipe")[1].split("<details>")[0]
    assert best.count("<tr>") == 2 and "256² batch 1, step graphs + fused QKV" in best  # header + int8


def test_every_shipped_bench_run_renders() -> None:
    page = bench_tab.bench_html()
    if page is None:
        pytest.skip("no benchmark results in this copy")
    assert_page_safe(page)
    gpus = {r["environment"]["machine"] for _, r in bench_tab.bench_records()}
    assert page.count("<svg") == len(gpus) and page.count("<details>") == len(gpus)
    assert page.count('<table class="dq-table') == len(bench_tab.bench_records()) + len(gpus)
    for _, record in bench_tab.bench_records():
        assert f"<h3>{record['environment']['machine']}</h3>" in page
    assert "bf16 QKV" not in page


def test_benchmark_labels_tell_every_run_of_a_recipe_apart():
    """One H200 table holds bf16 with forward graphs and with whole-step graphs: two different labels."""
    rows = [
        {"recipe": "bf16", "compile_mode": "none"},
        {"recipe": "bf16", "compile_mode": "reduce-overhead", "capture": "forward", "fuse": False},
        {"recipe": "bf16", "compile_mode": "reduce-overhead+step-graph", "capture": "step", "fuse": False},
        {"recipe": "bf16", "compile_mode": "reduce-overhead+step-graph+fused-qkv", "capture": "step", "fuse": True},
    ]
    labels = [bench_tab.bench_label(row) for row in rows]
    assert labels == ["bf16 eager", "bf16 compiled", "bf16 step graphs", "bf16 step graphs + fused QKV"]


def test_shipped_headlines_and_run_verdicts_agree() -> None:
    """A recipe the headline calls faster at a setting is called faster in that run's own verdict, and vice versa."""
    records = bench_tab.bench_records()
    if not records:
        pytest.skip("no benchmark results in this copy")
    by_gpu: dict[str, list] = {}
    for name, record in records:
        by_gpu.setdefault(record["environment"]["machine"], []).append((name, record))
    for gpu, runs in by_gpu.items():
        cells = bench_tab.newest_per_setting(bench_tab.gpu_cells(runs))
        headline = bench_tab.headline(cells)
        for cell in cells:
            named = f"{cell['recipe']} at {cell['setting']} (" in headline.split("Slower")[0]
            section = bench_tab.run_section(cell["run"], dict(runs)[cell["run"]])
            line = next(li for li in section.split("<li>") if li.startswith(f"{bench_tab.bench_label(cell)}: "))
            assert named == (bench_tab.speed_word(cell) == "faster") == (" faster than " in line), (gpu, cell["run"])


def test_an_interleaved_run_is_read_as_interleaved() -> None:
    """bench/h200-w8a16/e2e.py times every variant once per round; the tab's verdicts and note say so (the
    `dit-demo bench` runs, timed one variant after another, stay marked as timed apart)."""
    row = {"recipe": "bf16", "compile": "reduce-overhead", "capture": "step", "fuse": True, "batch": 1}
    rows = [
        {**row, "latency_s": 1.0, "latency_min_s": 0.99, "latency_max_s": 1.01, "peak_memory_bytes": 100},
        {**row, "recipe": "fp8-a8", "latency_s": 0.9, "latency_min_s": 0.89, "latency_max_s": 0.91,
         "peak_memory_bytes": 60, "psnr_db": 45.0},
    ]  # fmt: skip
    env = {"machine": "NVIDIA H200", "torch": "2.11", "diffusers": "0.42.1", "optimum_quanto": "0.2.7", "date": "2026"}
    config = {"model": "dit-xl-2-512-random", "steps": 25, "guidance": 4.0, "runs": 7, "warmup_runs": 1}
    for interleaved in (True, False):
        record = {"environment": env, "config": {**config, "interleaved": interleaved}, "rows": rows}
        (cell,) = bench_tab.gpu_cells([("run", record)])
        verdict = bench_tab.bench_verdict(cell, cell["base"], cell["timed_runs"], cell["interleaved"])
        assert verdict.direction == "faster" and verdict.interleaved is interleaved
        assert ("interleaved rounds" in bench_tab.run_section("run", record)) is interleaved


def test_the_headline_speaks_for_the_newest_run_of_each_setting() -> None:
    cells = [
        {"setting": "256² batch 1", "date": "2026-11-29", "recipe": "fp8-a8"},
        {"setting": "256² batch 1", "date": "2026-12-03", "recipe": "fp8-a8"},
        {"setting": "256² batch 1", "date": "2026-12-03", "recipe": "int8"},
        {"setting": "512² batch 8", "date": "2026-11-29", "recipe": "int8"},
    ]
    kept = bench_tab.newest_per_setting(cells)
    assert kept == cells[1:]
