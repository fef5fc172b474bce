"""`dit-demo layer-errors`: per-layer, per-timestep SNR tables, before and after smoothing."""

from __future__ import annotations

import json
import math

import pytest

from dit_demo.cli import layer_errors as cli
from dit_demo.engine.quant.quantize import CalibrationConfig
from dit_demo.engine.request import SamplingRequest
from dit_demo.reports.layer_errors import PREDICTION, grid_rows, layer_errors, markdown, summary_rows

QUICK = CalibrationConfig(steps=3, seeds=(1000,), num_labels=2)
REQUEST = SamplingRequest.create([3, 900], seed=1, steps=4, guidance_scale=4.0)


@pytest.fixture(scope="module")
def tables(tiny_reference):
    return layer_errors(tiny_reference, ["int8-a8", "int8-a8-smooth"], REQUEST, calibration=QUICK)


def test_every_quantized_layer_has_a_value_per_timestep(tables):
    before, after = tables
    assert [t.recipe for t in tables] == ["int8-a8", "int8-a8-smooth"]
    assert before.layers == after.layers and len(before.timesteps) == REQUEST.steps
    assert any(name.endswith("attn1.to_q") for name in before.layers)
    for table in tables:
        for key in [*table.layers, PREDICTION]:
            values = table.per_step[key]
            assert len(values) == REQUEST.steps and all(v is None or math.isfinite(v) for v in values)
        assert 0 < table.overall[PREDICTION] < 120
    assert before.timesteps == sorted(before.timesteps, reverse=True)  # sampling order: noisiest first


def test_markdown_summarises_layers_and_timesteps(tables):
    text = markdown(tables, REQUEST, bins=2)
    assert "| layer | int8-a8 | int8-a8-smooth | change dB |" in text
    assert "### int8-a8-smooth: layers × timesteps" in text and "steps 1-2" in text
    rows = summary_rows(tables)
    assert rows[-1]["layer"] == PREDICTION and "change dB" in rows[-1]
    grid, columns = grid_rows(tables[0], 2)
    assert len(columns) == 2 + 2 and len(grid) == len(tables[0].layers) + 1


def test_command_writes_json_and_markdown(tmp_path, capsys):
    out = tmp_path / "errors"
    argv = ["--model", "tiny-random", "--labels", "3", "--steps", "3", "--calibration-steps", "3", "--out", str(out)]
    assert cli.main(argv) == 0
    record = json.loads((out / "layer_errors.json").read_text())
    assert [r["recipe"] for r in record["results"]] == ["int8-a8", "int8-a8-smooth"]
    assert (out / "layer_errors.md").read_text() in capsys.readouterr().out
