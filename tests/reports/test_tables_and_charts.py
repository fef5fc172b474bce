"""Tables (Markdown, sortable HTML) and the scatter chart."""

from __future__ import annotations

import numpy as np
import pytest
from html_checks import parse_page

from dit_demo.reports import charts
from dit_demo.reports.charts import PALETTE, nice_ticks, scatter_chart, scatter_svg
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


def test_svg_labels_stay_beside_their_points_never_overlap_and_the_key_lists_all():
    """Crowded points: each label (or its key number) sits right next to its own dot, none overlaps another."""
    points = [{"x": 0.30 + 0.01 * i, "y": 5.1 + 0.02 * i, "label": f"recipe-{i}", "x_text": f"{i} s"} for i in range(5)]
    svg = scatter_svg(points, "latency (s)", "weights (MiB)", "title")
    assert svg.count('class="dq-point"') >= 4 and svg.count("<circle") == 5
    assert ">0</text>" in svg  # both axes from zero
    assert svg.count("<li>") == 5 and "recipe-4: 4 s" in svg  # the key: every point, its label and values
    spots = [(100 + 3 * i, 150 - 2 * i) for i in range(6)]
    texts = [f"recipe-{i}" for i in range(6)]
    placed = charts.place_labels(spots, texts, (50, 20, 410, 260), 13)
    shown = [(i, spot) for i, spot in enumerate(placed) if spot is not None]
    assert len(shown) >= 3  # crowded as they are, most points keep a label or number
    boxes = [charts._text_box(x, y, t, 13, anchor) for _, (x, y, anchor, t) in shown]
    for (i, (_, _, _, text)), box in zip(shown, boxes):
        px, py = spots[i]
        assert text in (texts[i], str(i + 1))  # the whole label or its number in the key, nothing else
        gap_x = max(box[0] - px, px - box[2], 0)
        gap_y = max(box[1] - py, py - box[3], 0)
        assert gap_x <= 12 and gap_y <= 12, (i, box, (px, py))  # beside its point, not drifted away
        assert not any(charts._overlaps(box, other) for other in boxes if other is not box), (i, boxes)
    assert placed[0][3] == "recipe-0"  # the first has room for its whole label


def test_png_chart_gets_a_key_when_a_label_found_no_room_beside_its_point():
    crowded = [{"ms": 10.0 + 0.1 * i, "mib": 5.0 + 0.01 * i, "name": f"recipe number {i}"} for i in range(5)]
    chart = scatter_chart(crowded, x="ms", y="mib", label="name", size=(400, 300))
    assert chart.width == 400 and chart.height > 300  # the key lies below the plot
    key = np.asarray(chart.crop((0, 300, 400, chart.height)).convert("L"))
    assert key.min() < 128  # and was drawn
    apart = [{"ms": 10.0, "mib": 1.0, "name": "a"}, {"ms": 40.0, "mib": 4.0, "name": "b"}]
    assert scatter_chart(apart, x="ms", y="mib", label="name", size=(400, 300)).size == (400, 300)  # no key needed
