"""The one grid drawer: layout formula, pixel-exact tiles, labels, difference tiles, upscaling."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from dit_demo.engine.metrics import amplified_difference
from dit_demo.reports.render import (
    GridLayout,
    header_height_for,
    hstrip,
    image_grid,
    tile_size,
    upscale,
    with_difference,
)


def _noise(rows: int, cols: int, side: int = 16, seed: int = 0) -> list[list[Image.Image]]:
    rng = np.random.default_rng(seed)
    return [
        [Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)) for _ in range(cols)]
        for _ in range(rows)
    ]


def _ink(grid: Image.Image, box: tuple[int, int, int, int]) -> bool:
    return np.asarray(grid.crop(box).convert("L")).min() < 128


def test_grid_size_is_rows_cols_tiles_plus_margins():
    images = _noise(3, 2)
    tile = tile_size(16, 96)
    grid = image_grid(images, row_labels=["a", "b", "c"], col_labels=["x", "y"], tile=tile, gap=4, pad=8)
    assert tile == 96
    # width = 2·pad + label column + cols·tile + (cols−1)·gap; height likewise with the header row
    assert grid.size == (2 * 8 + 150 + 2 * 96 + 4, 2 * 8 + 24 + 3 * 96 + 2 * 4)
    layout = GridLayout(rows=3, cols=2, tile=96)
    x, y = layout.cell(2, 1)
    tile_pixels = np.asarray(grid.crop((x, y, x + 96, y + 96)))
    expected = np.asarray(images[2][1]).repeat(6, axis=0).repeat(6, axis=1)  # NEAREST ×6: crisp squares
    assert np.array_equal(tile_pixels, expected)
    labels = np.asarray(grid.crop((8, y, 8 + 140, y + 96)).convert("L"))
    assert labels.min() < 128  # the row label was drawn


def test_grid_refuses_mismatched_labels_and_leaves_none_blank():
    image = Image.new("RGB", (8, 8), "red")
    with pytest.raises(ValueError, match="row labels"):
        image_grid([[image]], row_labels=["a", "b"])
    with pytest.raises(ValueError, match="column labels"):
        image_grid([[image]], col_labels=["a", "b"])
    grid = image_grid([[image, None]], tile=16, label_width=0, header_height=0, pad=0, gap=0)
    assert grid.size == (32, 16)
    assert grid.getpixel((4, 4)) == (255, 0, 0) and grid.getpixel((20, 4)) == (255, 255, 255)
    # without labels there is no label column and no header row
    assert image_grid([[image, None]], tile=16, pad=0, gap=0).size == (32, 16)


def test_upscale_keeps_aspect_and_pixels():
    image = Image.fromarray(np.arange(32, dtype=np.uint8).reshape(4, 8))
    big = upscale(image, 64)
    assert big.size == (64, 32)
    assert np.array_equal(np.asarray(big.convert("L"))[::8, ::8], np.asarray(image))
    assert tile_size(256, 96) == 256 and tile_size(20, 96) == 100


def test_min_tile_picks_a_whole_multiple_of_the_image():
    grid = image_grid(_noise(1, 1, side=20), min_tile=128, pad=0)
    assert grid.size == (140, 140)  # 20 px × 7: the smallest whole multiple ≥ 128


def test_multi_line_column_labels_get_a_taller_header():
    images = _noise(2, 2)
    labels = ["bf16\n0.12 s, 5.40 MiB", "int8\n0.20 s, 2.90 MiB\nPSNR 41.2 dB"]
    assert header_height_for(["x"]) == 24 and header_height_for(labels) == 8 + 3 * 16
    grid = image_grid(images, row_labels=["a", "b"], col_labels=labels, tile=96)
    layout = GridLayout(rows=2, cols=2, tile=96, header_height=56)
    assert grid.size == layout.size
    x, y = layout.cell(0, 1)
    assert np.array_equal(np.asarray(grid.crop((x, y, x + 96, y + 96))), np.asarray(upscale(images[0][1], 96)))
    assert _ink(grid, (x, 8 + 4 + 2 * 16, x + 96, 8 + 4 + 3 * 16))  # the third line of the label was drawn


def test_difference_column_is_the_amplified_difference():
    images = _noise(2, 3)
    grid = image_grid(images, row_labels=["a", "b"], col_labels=["bf16", "int8", "int8-a8"], difference=(0, 2), gain=4)
    layout = GridLayout(rows=2, cols=4, tile=96)
    assert grid.size == layout.size
    for r in range(2):
        x, y = layout.cell(r, 3)
        expected = upscale(amplified_difference(images[r][0], images[r][2], 4), 96)
        assert np.array_equal(np.asarray(grid.crop((x, y, x + 96, y + 96))), np.asarray(expected))
    # header "|bf16 − int8-a8| ×4", drawn with the font's glyphs: the same pixels as its ASCII spelling
    ascii_labels = ["bf16", "int8", "int8-a8", "|bf16 - int8-a8| x4"]
    plain = image_grid(with_difference(images, 0, 2, 4), row_labels=["a", "b"], col_labels=ascii_labels)
    assert np.array_equal(np.asarray(grid), np.asarray(plain))
    with_none = with_difference([[images[0][0], None]], 0, 1)
    assert with_none[0][2] is None


def test_labels_draw_only_glyphs_the_font_has():
    images = _noise(1, 2)
    fancy = image_grid(images, row_labels=["seven\nseed 0 → 1"], col_labels=["bf16 × 8", "int8 — a8"])
    plain = image_grid(images, row_labels=["seven\nseed 0 -> 1"], col_labels=["bf16 x 8", "int8 - a8"])
    assert np.array_equal(np.asarray(fancy), np.asarray(plain))


def test_app_comparison_strip_call():
    """The app's downloadable strip: a column per recipe (reference first) plus |reference − first quantized|,
    three-line headers (recipe, latency and weights, PSNR), a row per requested image, tiles ≥ 128 px."""
    results = _noise(3, 2, side=16, seed=1)  # rows = images, columns = bf16, int8
    headers = ["bf16\n0.12 s, 5.40 MiB", "int8\n0.20 s, 2.90 MiB\nPSNR 41.2 dB"]
    strip = image_grid(
        results,
        row_labels=[f"{name}\nseed {seed}" for name, seed in (("zero", 0), ("one", 1), ("two", 2))],
        col_labels=headers,
        difference=(0, 1),
        gain=8.0,
        min_tile=128,
        label_width=120,
    )
    layout = GridLayout(rows=3, cols=3, tile=128, label_width=120, header_height=56)
    assert strip.size == layout.size
    x, y = layout.cell(2, 2)
    expected = upscale(amplified_difference(results[2][0], results[2][1], 8.0), 128)
    assert np.array_equal(np.asarray(strip.crop((x, y, x + 128, y + 128))), np.asarray(expected))


def test_hub_gallery_image_call():
    """The Hub repo's gallery.png: a row per variant, a column per class/seed, tiles ≥ 128 px."""
    ref, quant = _noise(2, 4, side=8, seed=2)
    image = image_grid(
        [ref, quant],
        row_labels=["bf16 (ref)", "int8"],
        col_labels=[f"class {c} / seed {s}" for c, s in zip(range(4), range(4))],
        min_tile=128,
        label_width=110,
    )
    layout = GridLayout(rows=2, cols=4, tile=128, label_width=110)
    assert image.size == layout.size and image.width > 2 * 128 and image.height > 2 * 128
    x, y = layout.cell(1, 3)
    assert np.array_equal(np.asarray(image.crop((x, y, x + 128, y + 128))), np.asarray(upscale(quant[3], 128)))


def test_hstrip_places_images_side_by_side():
    a, b = Image.new("RGB", (4, 6), "red"), Image.new("RGB", (8, 3), "blue")
    strip = hstrip([a, b], "black")
    assert strip.size == (12, 6)
    assert strip.getpixel((0, 5)) == (255, 0, 0) and strip.getpixel((11, 0)) == (0, 0, 255)
    assert strip.getpixel((11, 5)) == (0, 0, 0)
