"""What the app offers without loading weights: default model, model list, class pickers, examples, notes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dit_demo.app import config, offered
from dit_demo.app.inputs import Request
from dit_demo.engine.generate import Variant
from dit_demo.engine.model import resolver
from dit_demo.engine.model.labels import choices

DIGITS = {i: name for i, name in enumerate(("zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
                                            "nine"))}  # fmt: skip


@pytest.fixture
def digits_folder(tmp_path: Path) -> Path:
    """Just enough of a pipeline folder for everything that must not load weights (pickers, notes)."""
    folder = tmp_path / "digits-like"
    folder.mkdir()
    (folder / "model_index.json").write_text(json.dumps({"id2label": {str(k): v for k, v in DIGITS.items()}}))
    return folder


def test_default_model_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dit_demo.engine.model import shipped

    assert shipped.mnist_available() and config.default_model(None, {}) == "mnist"  # the shipped default
    monkeypatch.setattr(shipped, "MNIST_MODEL_DIR", tmp_path / "no-mnist")
    monkeypatch.setattr(resolver, "EMBEDDED_MODEL_DIR", tmp_path)
    assert config.default_model(None, {}) == config.FALLBACK_MODEL  # no embedded model yet
    (tmp_path / "model_index.json").write_text("{}")
    assert config.default_model(None, {}) == "embedded"  # without MNIST weights: the digits model
    assert config.default_model(None, {config.MODEL_ENV: "facebook/DiT-XL-2-512"}) == "facebook/DiT-XL-2-512"
    assert config.default_model("my/quantized-dit", {config.MODEL_ENV: "facebook/DiT-XL-2-512"}) == "my/quantized-dit"
    assert offered.model_choices("my/quantized-dit")[:2] == ["my/quantized-dit", "embedded"]


def test_settings_come_from_the_environment() -> None:
    assert config.queue_size({}) == config.DEFAULT_QUEUE_SIZE == 128  # 100 visitors at once all get a place
    assert config.queue_size({config.QUEUE_SIZE_ENV: "8"}) == 8
    assert config.max_variants({}) == config.DEFAULT_MAX_VARIANTS == 4
    assert config.max_variants({config.MAX_VARIANTS_ENV: " 2 "}) == 2


def test_class_picker_follows_the_model(digits_folder: Path) -> None:
    assert offered.class_choices(str(digits_folder)) == choices(DIGITS)
    assert offered.default_classes(str(digits_folder)) == ["3: three", "7: seven"]
    assert len(offered.class_choices("tiny-random")) == 1000
    assert offered.default_classes("tiny-random") == ["207: golden retriever"]
    update, note = offered.on_model_change(str(digits_folder))
    assert update["choices"] == choices(DIGITS)
    assert update["value"] == ["3: three", "7: seven"]
    assert "10 classes" in note
    assert "⚠️" in offered.on_model_change("not a model!")[1]


def test_examples_are_valid_requests(digits_folder: Path) -> None:
    for source in ("tiny-random", str(digits_folder)):
        for classes, seed, steps, guidance, recipes in offered.example_rows(source):
            request = Request.parse(source, classes, seed, False, steps, guidance, "dpm", recipes)
            assert request.labels and set(request.recipes) <= set(offered.COMPARE_RECIPES)


def test_prequantized_folder_is_recognised(tiny_variants: dict[str, Variant], tmp_path: Path) -> None:
    from dit_demo.engine.model.serialization import save_pipeline

    folder = save_pipeline(tiny_variants["int8"].pipe, tmp_path / "tiny-int8", metadata={"recipe": "int8"})
    assert offered.prequantized_recipe(str(folder)) == "int8"
    assert offered.prequantized_recipe("tiny-random") is None
    assert "Pre-quantized (int8)" in offered.model_note(str(folder))


def test_corrupt_metadata_is_a_note_not_a_crash(digits_folder: Path) -> None:
    from dit_demo.errors import CheckpointError

    (digits_folder / "transformer").mkdir()
    (digits_folder / "transformer" / "quanto_qmap.json").write_text("{}")
    (digits_folder / "dit_demo.json").write_text("{not json")
    with pytest.raises(CheckpointError):
        offered.prequantized_recipe(str(digits_folder))
    assert offered.model_note(str(digits_folder)).startswith("⚠️")


def test_each_shipped_model_is_described_as_itself() -> None:
    assert "28×28" in offered.model_note("mnist") and "MNIST" in offered.model_note("mnist")
    assert "16×16" in offered.model_note("embedded") and "MNIST" not in offered.model_note("embedded")
