"""The first screen's pre-computed example: shipped for the default model, marked as pre-computed with the machine
and recipes, rebuilt by `python -m dit_demo.app.first_screen`, and left out (call to action only) where it does
not fit the page's model or cannot be read."""

from __future__ import annotations

import io
import json
from pathlib import Path

from PIL import Image

from dit_demo.app import config, first_screen


def test_the_shipped_example_is_the_default_request_and_says_where_it_was_made() -> None:
    model = config.default_model()
    example = first_screen.load(model)
    assert example is not None, "dit_demo/app/example/ holds no example for the default model"
    numbers = example["numbers"]
    request = first_screen.default_request(model)
    assert (numbers["model"], numbers["classes"], numbers["seed"], numbers["steps"]) == (
        model,
        [c.split(": ", 1)[1] for c in request[1]],
        request[2],
        request[4],
    )
    assert set(numbers["recipes"]) == {numbers["reference"], *request[7]}
    image = Image.open(io.BytesIO(example["png"]))
    assert image.format == "PNG" and image.width >= 3 * config.STRIP_TILE  # reference, recipe, difference
    summary = first_screen.summary(example)
    assert summary.startswith(first_screen.CALL_TO_ACTION) and "**Pre-computed example**, generated on " in summary
    assert example["generated"]["machine"] in summary and " here" not in summary  # not claimed for this server
    html = first_screen.figure_html(example)
    assert 'class="dq-example"' in html and "data:image/png;base64," in html and "Pre-computed example" in html


def test_no_example_for_another_model_or_an_unreadable_one(tmp_path: Path) -> None:
    assert first_screen.load("tiny-random") is None
    assert first_screen.summary(None) == first_screen.CALL_TO_ACTION and first_screen.figure_html(None) == ""
    assert first_screen.load("embedded", tmp_path) is None  # nothing there
    (tmp_path / first_screen.RECORD).write_text("{not json")
    (tmp_path / first_screen.IMAGE).write_bytes(b"")
    assert first_screen.load("embedded", tmp_path) is None


def test_build_writes_an_example_the_page_reads(tmp_path: Path) -> None:
    record = first_screen.build("tiny-random", tmp_path, machine="test machine")
    example = first_screen.load("tiny-random", tmp_path)
    assert example is not None and example["generated"]["machine"] == "test machine"
    assert json.loads((tmp_path / first_screen.RECORD).read_text())["numbers"] == record["numbers"]
    assert Image.open(tmp_path / first_screen.IMAGE).format == "PNG"
    assert "generated on test machine with " in first_screen.summary(example)
