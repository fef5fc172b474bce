"""The app's handlers and formatting without a server: defaults, request checks, error mapping, views, strip."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import gradio as gr
import pytest
import torch
from PIL import Image

import dit_demo.app.logic as logic
from dit_demo.compare import compare
from dit_demo.engine.generate import Variant
from dit_demo.engine.labels import choices
from dit_demo.engine.metrics import amplified_difference
from dit_demo.engine.request import MAX_SEED, SamplingRequest
from dit_demo.errors import InvalidRequestError, ModelLoadError

DIGITS = {i: name for i, name in enumerate(("zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
                                            "nine"))}  # fmt: skip


@pytest.fixture
def digits_folder(tmp_path: Path) -> Path:
    """Just enough of a pipeline folder for everything that must not load weights (pickers, notes)."""
    folder = tmp_path / "digits-like"
    folder.mkdir()
    (folder / "model_index.json").write_text(json.dumps({"id2label": {str(k): v for k, v in DIGITS.items()}}))
    return folder


@pytest.fixture(scope="module")
def comparison(tiny_reference: Variant, tiny_variants: dict[str, Variant]):
    return compare(
        {"bf16": tiny_reference, "int8": tiny_variants["int8"]}, SamplingRequest.create([1, 500], seed=5, steps=2)
    )


def test_default_model_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logic, "EMBEDDED_MODEL_DIR", tmp_path)
    assert logic.default_model([], {}) == logic.FALLBACK_MODEL  # no embedded model yet
    (tmp_path / "model_index.json").write_text("{}")
    assert logic.default_model([], {}) == "embedded"
    assert logic.default_model([], {logic.MODEL_ENV: "facebook/DiT-XL-2-512"}) == "facebook/DiT-XL-2-512"
    argv = ["--model", "my/quantized-dit", "--other-flag"]
    assert logic.default_model(argv, {logic.MODEL_ENV: "facebook/DiT-XL-2-512"}) == "my/quantized-dit"
    assert logic.model_choices("my/quantized-dit")[:2] == ["my/quantized-dit", "embedded"]


def test_class_picker_follows_the_model(digits_folder: Path) -> None:
    assert logic.class_choices(str(digits_folder)) == choices(DIGITS)
    assert logic.default_classes(str(digits_folder)) == ["3: three", "7: seven"]
    assert len(logic.class_choices("tiny-random")) == 1000
    assert logic.default_classes("tiny-random") == ["207: golden retriever"]
    update, note = logic.on_model_change(str(digits_folder))
    assert update["choices"] == choices(DIGITS)
    assert update["value"] == ["3: three", "7: seven"]
    assert "10 classes" in note
    assert "⚠️" in logic.on_model_change("not a model!")[1]


def test_examples_are_valid_requests(digits_folder: Path) -> None:
    for source in ("tiny-random", str(digits_folder)):
        for classes, seed, steps, guidance, recipes in logic.example_rows(source):
            request = logic.Request.parse(source, classes, seed, False, steps, guidance, "dpm", recipes)
            assert request.labels and set(request.recipes) <= set(logic.COMPARE_RECIPES)


def test_request_parsing_accepts_ui_values_and_rejects_bad_ones() -> None:
    request = logic.Request.parse("tiny-random", ["207: golden retriever"], 3.0, False, 25.0, 4, "dpm",
                                  ["bf16", "int8", "int8"])  # fmt: skip
    assert (request.sampling.labels, request.seed, request.sampling.steps, request.recipes) == ((207,), 3, 25, ["int8"])
    randomized = logic.Request.parse("tiny-random", ["1"], 3, True, 2, 4.0, "dpm", [])
    assert 0 <= randomized.seed <= MAX_SEED
    with pytest.raises(InvalidRequestError, match="Did you mean: golden retriever"):
        logic.Request.parse("tiny-random", ["golden retrievr"], 0, False, 2, 4.0, "dpm", [])
    with pytest.raises(InvalidRequestError, match="steps must be a whole number"):
        logic.Request.parse("tiny-random", ["1"], 0, False, 2.5, 4.0, "dpm", [])
    with pytest.raises(InvalidRequestError, match="seed is empty"):
        logic.Request.parse("tiny-random", ["1"], None, False, 2, 4.0, "dpm", [])
    with pytest.raises(InvalidRequestError, match="Too many images"):
        logic.Request.parse("tiny-random", ["1"] * 3, 0, False, 2, 4.0, "dpm", [], max_batch=2)
    with pytest.raises(InvalidRequestError, match="Unknown recipe"):
        logic.Request.parse("tiny-random", ["1"], 0, False, 2, 4.0, "dpm", ["int3"])
    with pytest.raises(ModelLoadError, match="Unknown model source"):
        logic.Request.parse("no such model", ["1"], 0, False, 2, 4.0, "dpm", [])


def test_errors_become_gradio_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    freed: list[bool] = []
    monkeypatch.setattr(logic, "_free_memory", lambda: freed.append(True))
    message = "No class selected: give at least one class name or id."
    with pytest.raises(gr.Error) as info:
        with logic.user_errors():
            raise InvalidRequestError(message)
    assert info.value.message == message and not freed
    with pytest.raises(gr.Error) as info:
        with logic.user_errors():
            raise torch.OutOfMemoryError("CUDA out of memory")
    assert info.value.message.startswith("Out of memory") and "compare fewer recipes" in info.value.message
    assert freed == [True]
    with pytest.raises(gr.Error) as info:
        with logic.user_errors():
            raise KeyError("boom")
    assert info.value.message == "Unexpected error: KeyError: 'boom'"


def test_numbers_table_chart_and_views(comparison) -> None:
    request = logic.Request(
        "tiny-random", SamplingRequest.create([1, 500], seed=5, steps=2, guidance_scale=4.0, scheduler=None), ["int8"]
    )
    numbers = logic.numbers_json(comparison, request)
    assert numbers["seed"] == 5 and numbers["seeds"] == [5, 6] and numbers["image_size"] == [16, 16]
    rows = list(numbers["recipes"].values())
    table = logic.table_frame(rows)
    assert list(table["recipe"]) == ["bf16", "int8"]
    assert list(table["weights MB"]) == [round(r["weight_bytes"] / 2**20, 3) for r in rows]
    assert table["PSNR dB"].iloc[1] == rows[1]["psnr_db"]
    chart = logic.chart_frame(rows)
    assert chart.loc[1, "weights_mb"] < chart.loc[0, "weights_mb"]
    assert "int8" in logic.caption(rows[1], 0) and "PSNR" in logic.caption(rows[1], 0)

    slider, diff, table2, chart2, columns = logic.views(logic.ComparisonState(comparison, rows))
    ref, int8 = comparison.results["bf16"].images, comparison.results["int8"].images
    assert slider[0].size == slider[1].size == diff.size and diff.width >= 256 and diff.width % 32 == 0
    scale = diff.width // 32
    expected = amplified_difference(ref[1], int8[1], logic.DIFF_GAIN).resize((16 * scale, 16 * scale), Image.NEAREST)
    assert diff.crop((16 * scale, 0, 32 * scale, 16 * scale)).tobytes() == expected.tobytes()
    assert columns["columns"] == 2 and table2.equals(table) and chart2.equals(chart)
    assert logic.views(None)[:4] == (None, None, None, None)


def test_comparison_strip_is_one_labelled_png(comparison) -> None:
    strip = logic.comparison_strip(comparison)
    tile = logic.STRIP_TILE
    # columns: bf16, int8, difference; rows: the two classes
    assert strip.size == (
        logic.STRIP_SIDE + 3 * (tile + logic.STRIP_PAD) + logic.STRIP_PAD,
        logic.STRIP_HEADER + 2 * (tile + logic.STRIP_PAD) + logic.STRIP_PAD,
    )
    x, y = logic.STRIP_SIDE + logic.STRIP_PAD + (tile + logic.STRIP_PAD), logic.STRIP_HEADER + tile + logic.STRIP_PAD
    int8_second = comparison.results["int8"].images[1].convert("RGB").resize((tile, tile), Image.NEAREST)
    assert strip.crop((x, y, x + tile, y + tile)).tobytes() == int8_second.tobytes()
    header = strip.crop((0, 0, strip.width, logic.STRIP_HEADER)).convert("L")
    assert min(header.getdata()) < 128  # the labels were drawn


def test_prequantized_folder_is_shown_alone(tiny_variants: dict[str, Variant], tmp_path: Path) -> None:
    from dit_demo.engine.serialization import save_pipeline

    folder = save_pipeline(tiny_variants["int8"].pipe, tmp_path / "tiny-int8", metadata={"recipe": "int8"})
    assert logic.prequantized_recipe(str(folder)) == "int8"
    assert logic.prequantized_recipe("tiny-random") is None
    assert "Pre-quantized (int8)" in logic.model_note(str(folder))
    service = logic.DemoService(str(folder), device="cpu")
    result = service.compare(
        logic.Request(
            str(folder),
            SamplingRequest.create([3], seed=0, steps=2, guidance_scale=4.0, scheduler=None),
            ["int8", "int4"],
        )
    )
    assert list(result.results) == ["int8"] and result.reference_recipe == "int8"


def test_service_builds_once_warms_once_and_preloads(monkeypatch: pytest.MonkeyPatch) -> None:
    service = logic.DemoService("tiny-random", device="cpu", max_variants=3)
    service.preload(["int8"])
    assert len(service.cache) == 2 and len(service._warm) == 2
    messages: list[str] = []
    calls: list[int] = []
    real = logic.generate
    monkeypatch.setattr(logic, "generate", lambda *a, **k: calls.append(1) or real(*a, **k))
    request = logic.Request(
        "tiny-random", SamplingRequest.create([1], seed=0, steps=2, guidance_scale=4.0, scheduler=None), ["int8"]
    )
    service.compare(request, notify=messages.append)
    assert not messages and not calls  # cached and already warm: nothing built, no warm-up run
    service.compare(
        logic.Request(
            "tiny-random", SamplingRequest.create([1], seed=0, steps=2, guidance_scale=4.0, scheduler=None), ["fp8"]
        ),
        notify=messages.append,
    )
    assert messages and messages[0].startswith("Quantizing to fp8")
    assert len(calls) == 1 and len(service.cache) == 3


def test_fast_path_is_optional(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "dit_demo.engine.fast", types.ModuleType("dit_demo.engine.fast"))
    assert logic.fast_module() is None and not logic.fast_compile_available()
    fast = types.ModuleType("dit_demo.engine.fast")
    fast.compile_variant = lambda variant, mode, **options: variant
    monkeypatch.setitem(sys.modules, "dit_demo.engine.fast", fast)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert logic.fast_module() is fast and logic.fast_compile_available()


def test_gallery_and_bench_tabs(tmp_path: Path) -> None:
    assert "python -m dit_demo.reports.gallery" in logic.gallery_markdown(tmp_path)
    assert logic.gallery_grid(tmp_path) is None and logic.bench_markdown(tmp_path / "README.md") is None
    (tmp_path / "results.md").write_text("| recipe | PSNR |\n|---|---|\n| int8 | 41.2 |\n")
    Image.new("RGB", (4, 4)).save(tmp_path / "grid.png")
    assert "int8 | 41.2" in logic.gallery_markdown(tmp_path)
    assert logic.gallery_grid(tmp_path) == str(tmp_path / "grid.png")


def test_small_models_sample_on_one_cpu_thread(tiny_reference: Variant) -> None:
    assert logic.cpu_threads([tiny_reference], {}) == 1
    assert logic.cpu_threads([tiny_reference], {"DIT_DEMO_CPU_THREADS": "3"}) == 3
    assert logic.cpu_threads([], {}) is None
    before = torch.get_num_threads()
    with logic.thread_budget([tiny_reference]):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


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
    frame = logic.table_frame([row])
    assert frame["compile"][0] == "reduce-overhead+int8-linears" and frame["warm-up s"][0] == 53.4
    eager = logic.table_frame([{**row, "compile_mode": "none", "warmup_s": None}])
    assert eager["compile"][0] == "none" and eager["warm-up s"].isna()[0]
