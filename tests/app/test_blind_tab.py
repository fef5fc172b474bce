"""The blind tab's pieces without a server: its image files (named by content, written once, pruned), the tally
table and the answer's words."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from dit_demo.app.blind.game import Outcome, Round
from dit_demo.app.blind.store import Pair
from dit_demo.app.page.blind_tab import IMAGE_SIDE, ImageFiles, answer_markdown, tally_html


def digit(value: int) -> Image.Image:
    return Image.fromarray(np.full((16, 16, 3), value, np.uint8))


def test_image_files_are_named_by_content_written_once_and_pruned(tmp_path: Path) -> None:
    files = ImageFiles(tmp_path, keep=3)
    first = Path(files.path(digit(10)))
    assert first.name == "image.png" and Image.open(first).size == (IMAGE_SIDE, IMAGE_SIDE)
    written = first.stat().st_mtime_ns
    assert Path(files.path(digit(10))) == first and first.stat().st_mtime_ns == written  # not rewritten
    assert Path(files.path(digit(20))) != first
    for value in (30, 40, 50):
        files.path(digit(value))
    assert len(list(tmp_path.glob("*/image.png"))) == 3 and not list(tmp_path.glob("*/*.tmp"))


def test_tally_and_answer_words() -> None:
    assert "No votes yet" in tally_html([])
    rows = [{"model": "m", "recipe": "int8", "votes": 3, "told_apart": 2, "share": 2 / 3}]
    table = tally_html(rows)
    assert 'id="blind-tally-table"' in table and "int8 weights" in table and "2 (67 %)" in table
    shown = Round("0" * 32, Pair("m", "int8", 3, 7, 12, 4.0), "three", "B", (digit(0), digit(1)))
    text = answer_markdown(Outcome(shown, "A", False, rows))
    assert text.startswith("**Not this time:** **B** was quantized (**int8**")
    assert "Class three, seed 7, 12 steps" in text and "2 of 3 votes (67 %)" in text
    one = [{**rows[0], "votes": 1, "told_apart": 1, "share": 1.0}]
    assert "1 of 1 vote (100 %)" in answer_markdown(Outcome(shown, "B", True, one))
