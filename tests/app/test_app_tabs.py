"""The gallery and benchmark tabs are rendered from their results.json: tables, verdicts, charts and inline
images, with true labels, no internal wording and no links that could 404."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from dit_demo.app import config, tabs


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


def test_bench_tab_from_results_json(tmp_path: Path) -> None:
    assert tabs.bench_html(tmp_path) is None
    runs = sorted(config.BENCH_DIR.glob("*/results.json"))
    if not runs:
        pytest.skip("no benchmark results in this copy")
    shutil.copy(runs[0], (tmp_path / "run").mkdir() or tmp_path / "run" / "results.json")
    (tmp_path / "README.md").write_text("Against the goals of issue #8 ... [chart](run/chart.png)")
    page = tabs.bench_html(tmp_path)
    assert_page_safe(page)
    record = json.loads(runs[0].read_text())
    assert page.count("<svg") == 1 and page.count("<table") == 1
    assert f"on {record['environment']['machine']}" in page
    assert "bf16 eager" in page and "(MiB)" in page
    for row in record["rows"]:
        if row["recipe"] != "bf16":
            assert f"<b>{row['recipe']} " in page  # a verdict per quantized row


def test_every_shipped_bench_run_renders() -> None:
    page = tabs.bench_html()
    if page is None:
        pytest.skip("no benchmark results in this copy")
    assert_page_safe(page)
    assert page.count("<svg") == len(tabs.bench_records())


def test_benchmark_labels_tell_every_run_of_a_recipe_apart():
    """One H200 table holds bf16 with forward graphs and with whole-step graphs: two different labels."""
    from dit_demo.app.tabs import _bench_label

    rows = [
        {"recipe": "bf16", "compile_mode": "none"},
        {"recipe": "bf16", "compile_mode": "reduce-overhead", "capture": "forward", "fuse": False},
        {"recipe": "bf16", "compile_mode": "reduce-overhead+step-graph", "capture": "step", "fuse": False},
        {"recipe": "bf16", "compile_mode": "reduce-overhead+step-graph+fused-qkv", "capture": "step", "fuse": True},
    ]
    labels = [_bench_label(row) for row in rows]
    assert labels == ["bf16 eager", "bf16 compiled", "bf16 step graphs", "bf16 step graphs + fused QKV"]
