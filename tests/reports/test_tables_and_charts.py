"""Tables (Markdown, sortable HTML) and the scatter chart."""

from __future__ import annotations

import numpy as np
import pytest
from html_checks import parse_page

from dit_demo.reports.charts import PALETTE, nice_ticks, scatter_chart
from dit_demo.reports.tables import html_page, html_table, markdown_table


def test_markdown_table_columns_formats_and_escaping():
    rows = [{"name": "a|b", "ms": 1.23456, "n": 1200}, {"name": "c", "ms": None}]
    text = markdown_table(rows, [("name", "recipe"), ("ms", "latency"), "n"], {"ms": lambda v: f"{v:.1f} ms"})
    lines = text.strip().splitlines()
    assert lines[0] == "| recipe | latency | n |"
    assert lines[1] == "|:---|---:|---:|"
    assert lines[2] == "| a\\|b | 1.2 ms | 1,200 |"
    assert lines[3] == "| c | — | — |"
    assert markdown_table(rows).splitlines()[0] == "| name | ms | n |"  # default: every key, in order


def test_html_table_is_sortable_by_raw_numbers(tmp_path):
    rows = [{"recipe": "int8", "bytes": 2_000_000, "psnr": None}, {"recipe": "bf16", "bytes": 9_000_000, "psnr": 40.5}]
    page_path = tmp_path / "t.html"
    page_path.write_text(html_page("t", html_table(rows, table_id="m")), encoding="utf-8")
    page = parse_page(page_path)
    assert page.tables == 1 and "aria-sort" in page.script
    text = page_path.read_text()
    assert 'data-sort="2000000"' in text and 'data-sort="40.5"' in text and "2,000,000" in text


def test_nice_ticks_cover_the_range():
    ticks = nice_ticks(0, 7.3)
    assert ticks[0] == 0 and ticks[-1] >= 7.3 and len(ticks) <= 7
    steps = np.diff(ticks)
    assert np.allclose(steps, steps[0]) and steps[0] in (1, 2, 2.5)
    with pytest.raises(ValueError):
        nice_ticks(0, float("inf"))


def test_scatter_chart_places_points_by_value():
    points = [{"mem": 100.0, "ms": 10.0, "name": "small"}, {"mem": 400.0, "ms": 40.0, "name": "big"}, {"mem": None}]
    chart = scatter_chart(points, x="mem", y="ms", label="name", title="latency vs memory", size=(500, 300))
    assert chart.size == (500, 300)
    pixels = np.asarray(chart)

    def centre(hex_colour: str) -> tuple[float, float]:
        rgb = tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
        ys, xs = np.nonzero(np.all(pixels == rgb, axis=-1))
        assert len(xs), f"no pixel of {hex_colour}"
        return float(np.median(xs)), float(np.median(ys))

    (x0, y0), (x1, y1) = centre(PALETTE[0]), centre(PALETTE[1])
    assert x1 > x0 and y1 < y0  # larger memory → further right, larger latency → higher up
    with pytest.raises(ValueError, match="finite"):
        scatter_chart([{"mem": float("nan"), "ms": 1}], x="mem", y="ms")


def test_chart_text_uses_only_drawable_glyphs():
    """A title with glyphs the bundled font lacks draws exactly like its ASCII stand-ins (no boxes)."""
    points = [{"w": 5.0, "ms": 3.0, "r": "int8 − a8"}]
    fancy = scatter_chart(points, x="w", y="ms", label="r", title="Latency × weights — cpu", x_label="w ≤ 6")
    plain = scatter_chart(points, x="w", y="ms", label="r", title="Latency x weights - cpu", x_label="w <= 6")
    assert np.array_equal(np.asarray(fancy), np.asarray(plain))
