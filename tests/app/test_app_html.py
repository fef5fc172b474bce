"""The page's HTML pieces: difference images with their scale, non-overlapping chart labels, tables that wrap."""

from __future__ import annotations

import re

import numpy as np
from PIL import Image

from dit_demo.app import html, views


def test_difference_images_state_gain_and_largest_error() -> None:
    a = Image.new("RGB", (4, 4), (100, 100, 100))
    b = a.copy()
    b.putpixel((1, 2), (103, 100, 99))  # largest channel error 3
    images, gain, largest = views.difference_images([a, a], [b, a])
    assert largest == 3 and gain == 64  # the largest power of two with 3 × gain ≤ 255, capped at ×64
    first = np.asarray(images[0])
    assert tuple(first[2, 1]) == (255, 255 - 192, 255 - 192) and tuple(first[0, 0]) == (255, 255, 255)
    assert np.asarray(images[1]).min() == 255  # identical: white, not black
    _, gain, largest = views.difference_images([a], [a])
    assert (gain, largest) == (1, 0)
    big = a.copy()
    big.putpixel((0, 0), (0, 100, 100))
    assert views.difference_images([a], [big])[1:] == (2, 100)


def test_chart_labels_do_not_overlap_and_axes_start_at_zero() -> None:
    points = [{"x": 0.30 + 0.01 * i, "y": 5.1 + 0.02 * i, "label": f"recipe-{i}"} for i in range(5)]
    svg = html.scatter_svg(points, "latency (s)", "weights (MiB)", "title")
    assert svg.count('class="dq-point"') == 5 and svg.count("<circle") == 5
    assert ">0</text>" in svg  # both axes from zero
    spots = [(100 + 3 * i, 150 - 2 * i) for i in range(5)]
    texts = [f"recipe-{i}" for i in range(5)]
    placed = html.place_labels(spots, texts, (50, 20, 410, 260), 13)
    boxes = [html._text_box(x, y, t, 13, anchor) for (x, y, anchor), t in zip(placed, texts)]
    for i, box in enumerate(boxes):
        assert not any(html._overlaps(box, other) for other in boxes[i + 1 :]), (i, boxes)


def test_tables_mark_wide_ones_and_escape() -> None:
    narrow = html.table_html(["", "fp32 reference", "int8"], [["latency (s)", 0.5, None]])
    assert "dq-wide" not in narrow and '<td data-label="int8">—</td>' in narrow
    wide = html.table_html(["", "a", "b", "c", "d"], [["<x>", 1, 2, 3, 4]])
    assert "dq-wide" in wide and "&lt;x&gt;" in wide
    assert re.findall(r"<th scope=\"col\">([^<]*)</th>", wide) == ["", "a", "b", "c", "d"]
