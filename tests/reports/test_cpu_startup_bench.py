"""bench/cpu-startup/run.py: the import table counts each heavy package once, at its outermost import, and the
README's table is the one rendered from the committed results.json."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

FOLDER = Path(__file__).resolve().parents[2] / "bench" / "cpu-startup"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("cpu_startup_run", FOLDER / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# python -X importtime prints a module after the modules it imported (children first, indented two spaces more)
TRACE = """\
import time:       100 |        100 |         numpy.core
import time:       200 |        300 |       numpy
import time:       400 |       4000 |     torch
import time:       500 |       5000 |     gradio.blocks
import time:      1000 |    1000000 |   gradio
import time:        10 |    1009010 | dit_demo.app.startup
import time:       300 |       8000 |   diffusers
import time:        20 |       9000 | dit_demo.app.service
import time:        50 |         50 | json
"""


def test_import_table_counts_each_package_at_its_outermost_import(bench) -> None:
    table = bench.top_importers(TRACE)
    assert table["gradio"] == 1.0  # torch and numpy inside gradio are gradio's
    assert "torch" not in table and "numpy" not in table
    assert table["diffusers"] == 0.01 and table["all imports"] == round((1009010 + 9000 + 50) / 1e6, 2)


def test_readme_table_is_rendered_from_results(bench) -> None:
    results = FOLDER / "results.json"
    if not results.exists():
        pytest.skip("no measurement committed")
    text = (FOLDER / "README.md").read_text(encoding="utf-8")
    assert bench.table(json.loads(results.read_text(encoding="utf-8"))) in text
