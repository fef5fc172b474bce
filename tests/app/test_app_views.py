"""How a comparison is shown: numbers JSON, table (MiB), chart, captions, slider/difference views, the PNG strip."""

from __future__ import annotations

import pytest
from PIL import Image

from dit_demo.app import config, views
from dit_demo.app.inputs import Request
from dit_demo.compare import compare
from dit_demo.engine.generate import Variant
from dit_demo.engine.metrics import amplified_difference
from dit_demo.engine.request import SamplingRequest
from dit_demo.reports import render
from dit_demo.units import format_bytes


@pytest.fixture(scope="module")
def comparison(tiny_reference: Variant, tiny_variants: dict[str, Variant]):
    return compare(
        {"bf16": tiny_reference, "int8": tiny_variants["int8"]}, SamplingRequest.create([1, 500], seed=5, steps=2)
    )


def test_numbers_table_chart_and_views(comparison) -> None:
    request = Request(
        "tiny-random", SamplingRequest.create([1, 500], seed=5, steps=2, guidance_scale=4.0, scheduler=None), ["int8"]
    )
    numbers = views.numbers_json(comparison, request)
    assert numbers["seed"] == 5 and numbers["seeds"] == [5, 6] and numbers["image_size"] == [16, 16]
    rows = list(numbers["recipes"].values())
    table = views.table_frame(rows)
    assert list(table["recipe"]) == ["bf16", "int8"]
    assert list(table["weights MiB"]) == [round(r["weight_bytes"] / 2**20, 3) for r in rows]
    assert table["PSNR dB"].iloc[1] == rows[1]["psnr_db"]
    assert not any("MB" in header for header in views.table_headers())  # MiB is MiB
    chart = views.chart_frame(rows)
    assert chart.loc[1, "weights_mib"] < chart.loc[0, "weights_mib"]
    assert "int8" in views.caption(rows[1], 0) and "PSNR" in views.caption(rows[1], 0)
    assert f"{format_bytes(rows[1]['weight_bytes'])} weights" in views.caption(rows[1], 0)

    slider, diff, table2, chart2, columns = views.views(views.ComparisonState(comparison, rows))
    ref, int8 = comparison.results["bf16"].images, comparison.results["int8"].images
    assert slider[0].size == slider[1].size == diff.size and diff.width >= 256 and diff.width % 32 == 0
    scale = diff.width // 32
    expected = amplified_difference(ref[1], int8[1], config.DIFF_GAIN).resize((16 * scale, 16 * scale), Image.NEAREST)
    assert diff.crop((16 * scale, 0, 32 * scale, 16 * scale)).tobytes() == expected.tobytes()
    assert columns["columns"] == 2 and table2.equals(table) and chart2.equals(chart)
    assert views.views(None)[:4] == (None, None, None, None)


def test_comparison_strip_is_one_labelled_png(comparison) -> None:
    strip = views.comparison_strip(comparison)
    tile = render.tile_size(16, config.STRIP_TILE)
    assert tile >= config.STRIP_TILE and tile % 16 == 0
    # columns: bf16, int8, difference (four header lines: recipe, latency, weights, PSNR); rows: the two classes
    header = render.header_height_for(["int8\nlatency\nweights\nPSNR"])
    layout = render.GridLayout(rows=2, cols=3, tile=tile, label_width=150, header_height=header)
    assert strip.size == layout.size
    x, y = layout.cell(1, 1)
    int8_second = comparison.results["int8"].images[1].convert("RGB").resize((tile, tile), Image.NEAREST)
    assert strip.crop((x, y, x + tile, y + tile)).tobytes() == int8_second.tobytes()
    x, y = layout.cell(1, 2)
    diff_second = amplified_difference(
        comparison.results["bf16"].images[1], comparison.results["int8"].images[1], config.DIFF_GAIN
    ).resize((tile, tile), Image.NEAREST)
    assert strip.crop((x, y, x + tile, y + tile)).tobytes() == diff_second.tobytes()
    top = strip.crop((0, 0, strip.width, layout.pad + header)).convert("L")
    assert min(top.getdata()) < 128  # the labels were drawn
    side = strip.crop((0, layout.pad + header, layout.pad + 150, strip.height)).convert("L")
    assert min(side.getdata()) < 128  # and the class / seed row labels


def test_table_shows_the_fast_path_and_its_warm_up() -> None:
    row = {
        "recipe": "int8",
        "latency_s": 0.17,
        "per_step_s": 0.006,
        "weight_bytes": 788_000_000,
        "peak_memory_bytes": 1_190_000_000,
        "quantize_s": 1.0,
        "calibrate_s": 0.0,
        "psnr_db": 49.1,
        "ssim": 0.99,
        "compile_mode": "reduce-overhead+int8-linears",
        "warmup_s": 53.4,
    }
    frame = views.table_frame([row])
    assert frame["compile"][0] == "reduce-overhead+int8-linears" and frame["warm-up s"][0] == 53.4
    assert frame["weights MiB"][0] == round(788_000_000 / 2**20, 3)
    eager = views.table_frame([{**row, "compile_mode": "none", "warmup_s": None}])
    assert eager["compile"][0] == "none" and eager["warm-up s"].isna()[0]
