"""How a comparison is shown: numbers JSON, table (MiB), chart, captions, slider/difference views, the PNG strip."""

from __future__ import annotations

import pytest
from PIL import Image

from dit_demo.app import config
from dit_demo.app.inputs import Request
from dit_demo.app.page import html, views
from dit_demo.app.page.html import data_uri, page_views
from dit_demo.compare import compare
from dit_demo.engine.generate import Variant
from dit_demo.engine.request import SamplingRequest
from dit_demo.metrics import METRICS
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
    assert list(numbers["recipes"]) == ["bf16", "int8"]  # the API keeps the recipe names ...
    records = [views.table_record(row, i == 0) for i, row in enumerate(rows)]
    assert [r["recipe"] for r in records] == ["fp32 reference", "int8"]  # ... people read the reference's dtype
    assert records[0]["psnr_db"] == "—" and records[1]["psnr_db"] == rows[1]["psnr_db"]
    assert "int8" in views.caption(rows[1], 0) and "PSNR" in views.caption(rows[1], 0)
    assert f"{format_bytes(rows[1]['weight_bytes'])} weights" in views.caption(rows[1], 0)

    tiles, diff, table_html, chart_html = page_views(views.ComparisonState(comparison, rows))
    int8 = comparison.results["int8"].images
    tile = html.tile_image(int8[0])
    assert tile.width >= 128 and tile.width % 16 == 0
    scale = tile.width // 16
    assert tile.tobytes() == int8[0].resize((16 * scale, 16 * scale), Image.NEAREST).tobytes()  # crisp
    assert data_uri(html.tile_image(int8[0])) in tiles  # the tile is the image, upscaled by a whole factor
    assert tiles.count("<figure") == 4 and tiles.count("<figcaption>") == 4  # 2 classes × 2 recipes, captioned
    assert "fp32 reference" in diff and "Largest error" in diff and "×" in diff
    assert "weights (MiB)" in table_html and "fp32 reference" in table_html and "MB" not in table_html
    weights = METRICS["weight_bytes"]
    for row in rows:  # each cell is the vocabulary's reading of the raw number
        assert f">{weights.cell(row['weight_bytes'])}</td>" in table_html
    assert f">{METRICS['psnr_db'].cell(rows[1]['psnr_db'])}</td>" in table_html
    assert "transformer weights (MiB)" in chart_html and "latency (s)" in chart_html
    assert chart_html.count("<li>") == 2  # the key: one entry per point
    assert chart_html.count('class="dq-point"') == 2
    assert page_views(None) == ("", "", "", "")


def test_comparison_strip_is_one_labelled_png(comparison) -> None:
    strip = views.comparison_strip(comparison)
    tile = render.tile_size(16, config.STRIP_TILE)
    assert tile >= config.STRIP_TILE and tile % 16 == 0
    # columns: reference, int8, difference (four header lines each); rows: the two classes
    header = render.header_height_for(["int8\nlatency\nweights\nPSNR"])
    layout = render.GridLayout(rows=2, cols=3, tile=tile, label_width=150, header_height=header)
    assert strip.size == layout.size
    x, y = layout.cell(1, 1)
    int8_second = comparison.results["int8"].images[1].convert("RGB").resize((tile, tile), Image.NEAREST)
    assert strip.crop((x, y, x + tile, y + tile)).tobytes() == int8_second.tobytes()
    x, y = layout.cell(1, 2)
    diffs, gain, largest = views.difference_images(
        comparison.results["bf16"].images, comparison.results["int8"].images
    )  # the same difference view as the page: white = identical, its gain and largest error in the header
    diff_second = diffs[1].resize((tile, tile), Image.NEAREST)
    assert strip.crop((x, y, x + tile, y + tile)).tobytes() == diff_second.tobytes()
    assert gain >= 1 and largest >= 0
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
    table = html.comparison_table([row])
    assert '<th scope="row">compile</th><td data-label="int8">reduce-overhead+int8-linears</td>' in table
    assert '<th scope="row">one-time warm-up (s)</th><td data-label="int8">53.40</td>' in table
    assert f'<td data-label="int8">{788_000_000 / 2**20:,.2f}</td>' in table
    eager = html.comparison_table([{**row, "compile_mode": "none", "warmup_s": None}])
    assert "compile</th>" not in eager and "warm-up" not in eager.split("</table>")[0]  # nothing to say: no row


def test_verdict_is_computed_from_the_numbers() -> None:
    row = {"recipe": "int8", "latency_ratio": 1.35, "peak_memory_ratio": 0.61, "weight_bytes_ratio": 0.5}
    row["psnr_db"] = 47.8
    assert views.verdict(row, "fp32 reference") == (
        "int8: 1.35× slower than the fp32 reference here, 0.61× peak memory, 0.50× weights, 47.8 dB PSNR"
    )
    faster = {**row, "latency_ratio": 0.5, "psnr_db": None, "digit_accuracy": 0.75}
    assert views.verdict(faster, "bf16 reference", process_memory=True) == (
        "int8: 2.00× faster than the bf16 reference here, 0.50× weights, identical images, 75 % of digits read as asked"
    )
    assert "about as fast as" in views.verdict({**row, "latency_ratio": 1.02}, "fp32 reference")


def test_reference_is_named_by_its_dtype(comparison) -> None:
    request = Request("tiny-random", SamplingRequest.create([1, 500], seed=5, steps=2), ["int8"])
    numbers = views.numbers_json(comparison, request)
    assert numbers["reference"] == "bf16" and numbers["reference_dtype"] == "float32"  # CPU: fp32
    assert numbers["reference_label"] == "fp32 reference"
    verdict = numbers["verdicts"]["int8"]
    assert verdict.startswith("int8: ") and "the fp32 reference here" in verdict  # wording of speed depends on timing
    summary = views.summary_markdown(numbers)
    assert "reference in fp32" in summary and "- **int8**:" in summary
    assert views.caption(numbers["recipes"]["bf16"], 0).startswith("fp32 reference · ")


def test_strip_text_uses_only_glyphs_the_font_has(comparison) -> None:
    rows = {row["recipe"]: row for row in comparison.rows()}
    labels = [views._strip_label(rows[r], "bf16") for r in rows] + ["|fp32 − int8| ×8 → µ ∞ é"]
    for label in labels:
        drawn = render.drawable(label)
        assert all(render.has_glyph(c) for c in drawn), drawn
    assert render.drawable("|fp32 − int8| ×8") == "|fp32 - int8| x8"
