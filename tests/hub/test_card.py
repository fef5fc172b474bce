"""The model card alone (no Hub, no model): built from a measured record, re-read and validated; its machine line and
byte cells come from the one machine description and the one byte formatter."""

from __future__ import annotations

import copy

import pytest
import torch

from dit_demo.engine.machine import machine_description
from dit_demo.hub.card import CardError, build_card, fmt_bytes, machine_line, python_blocks, validate_card
from dit_demo.units import mebibytes


def measured_record() -> dict:
    row = {
        "dtype": "float32",
        "device": "cpu",
        "latency_s": 0.5,
        "per_step_s": 0.02,
        "peak_memory_bytes": 300_000_000,
        "memory_kind": "process_peak_rss",
        "scheduler": "DPMSolverMultistepScheduler",
        "warmup_s": None,
        "latency_ratio": 1.0,
        "peak_memory_ratio": 1.0,
        "weight_bytes_ratio": 1.0,
    }
    reference = {**row, "recipe": "bf16", "psnr_db": None, "ssim": 1.0, "weight_bytes": 11_540_000}
    quant = {**row, "recipe": "int8", "psnr_db": 41.25, "ssim": 0.9981, "weight_bytes": 5_400_000}
    quant.update(latency_ratio=1.2, weight_bytes_ratio=0.468)
    return {
        "repo_id": "someone/digits-int8",
        "source": "embedded",
        "source_kind": "embedded",
        "recipe": "int8",
        "recipe_description": "int8 weights",
        "reference_recipe": "bf16",
        "base": {"base_model": None, "license": "apache-2.0", "description": "the embedded digits DiT"},
        "quantization": {
            "calibration": None,
            "num_quantized": 20,
            "num_kept": 2,
            "kept_modules": ["proj_out_2"],
            "exclude": ["*adaLN*"],
            "quantize_s": 0.1,
            "calibrate_s": 0.0,
        },
        "request": {"labels": ["seven"], "class_ids": [7], "seeds": [0], "steps": 25, "guidance_scale": 4.0},
        "rows": [reference, quant],
        "sizes": {
            "transformer_checkpoint_bytes": 5_512_345,
            "base_transformer_checkpoint_bytes": 11_600_000,
            "repo_bytes": 7_000_000,
        },
        "scheduler_class": "DPMSolverMultistepScheduler",
        "machine": machine_description("cpu"),
        "samples": [{"file": "samples/int8-0-class7-seed0.png", "seed": 0, "class_id": 7, "label": "seven"}],
        "command": "dit-demo push-model --model embedded --recipe int8",
        "stock": {"loadable": True, "refusal": None},
        "install": {"packages": ["torch==2.13.0", "diffusers==0.42.1", "optimum-quanto==0.2.7", "accelerate==1.15.0"]},
    }


def test_a_card_from_a_measured_record_validates(tmp_path):
    measured = measured_record()
    build_card(measured).save(tmp_path / "README.md")
    card = validate_card(tmp_path / "README.md", measured)
    assert len(python_blocks(card.text)) == 3 and card.data.license == "apache-2.0"  # stock, quanto, dit_demo
    assert "5,512,345 B (5.26 MiB)" in card.text and machine_line(measured["machine"]) in card.text
    assert "41.25 dB" in card.text and "∞ (identical)" in card.text and "1.200×" in card.text


@pytest.mark.parametrize(
    ("reference", "candidate", "words"),
    [((1.0, 1.1, 0.9), (1.5, 1.6, 1.4), "slower than"), ((1.0, 1.3, 0.8), (1.1, 0.9, 1.2), "about as fast as")],
)
def test_the_speed_claim_is_worded_from_the_interleaved_ranges(tmp_path, reference, candidate, words):
    from dataclasses import asdict

    from dit_demo.engine.timing import Spread, speed_verdict

    measured = measured_record()
    verdict = speed_verdict(Spread(reference), Spread(candidate))
    measured["rows"][1].update(speed_verdict=asdict(verdict), latency_ratio=round(verdict.ratio, 4))
    card = build_card(measured).text
    assert f"int8 is {verdict.phrase('the reference')}." in card and words in card and "3 interleaved runs" in card
    assert "too few to call" in build_card(measured_record()).text  # an old record: one timing, no winner named


def test_validate_refuses_a_number_that_was_not_measured(tmp_path):
    measured = measured_record()
    build_card(measured).save(tmp_path / "README.md")
    wrong = copy.deepcopy(measured)
    wrong["sizes"]["transformer_checkpoint_bytes"] += 1
    with pytest.raises(CardError, match="does not show"):
        validate_card(tmp_path / "README.md", wrong)


@pytest.mark.parametrize("value", [0, 1, 1023, 2**20, 5_512_345, 1_500_800_000, 2**40 + 12345])
def test_fmt_bytes_is_exact_bytes_and_mebibytes(value):
    assert fmt_bytes(value) == f"{value:,} B ({value / 2**20:.2f} MiB)" == f"{value:,} B ({mebibytes(value):.2f} MiB)"
    assert fmt_bytes(None) == "n/a"


def test_machine_line_names_the_cpu_or_the_gpu():
    cpu = machine_description("cpu")
    assert cpu["cpu"] in machine_line(cpu) and f"{cpu['torch_threads']} torch threads" in machine_line(cpu)
    gpu = {**cpu, "device": "cuda:0", "gpu": "NVIDIA H200"}
    assert machine_line(gpu).startswith("cuda:0 — NVIDIA H200; torch " + torch.__version__)


@pytest.mark.parametrize("recipe", ["int8", "fp8-a8", "int8-a8-smooth"])
def test_card_tags_are_the_registry_tags(recipe):
    from dit_demo.engine.quant.recipes import RECIPES

    measured = measured_record()
    measured["recipe"] = measured["rows"][1]["recipe"] = recipe
    tags = build_card(measured).data.tags
    assert set(RECIPES[recipe].tags) <= set(tags) and "quanto" in tags
    assert recipe != "fp8-a8" or "w8a8" in tags  # the tag the card's own table used to miss


def test_an_int8_repo_measured_on_a_cpu_shows_its_int8_dynamic_row_and_verdict(tmp_path):
    from dataclasses import asdict

    from dit_demo.engine.timing import Spread, speed_verdict

    measured = measured_record()
    verdict = speed_verdict(Spread((1.0, 1.1, 0.9)), Spread((0.5, 0.55, 0.45)))
    dynamic = {**measured["rows"][1], "recipe": "int8-dynamic", "psnr_db": 43.57, "ssim": 0.9957}
    dynamic.update(latency_s=0.2468, speed_verdict=asdict(verdict), latency_ratio=round(verdict.ratio, 4))
    measured["rows"].append(dynamic)
    build_card(measured).save(tmp_path / "README.md")
    card = validate_card(tmp_path / "README.md", measured).text
    row = next(line for line in card.splitlines() if line.startswith("| int8-dynamic"))
    assert "from this repo's weights, cpu only" in row and "43.57 dB" in row and "0.2468 s" in row
    assert "`int8-dynamic` (this project's recipe" in card and verdict.phrase("the reference") in card
    assert "faster than the reference" in card
    plain = build_card(measured_record()).text  # not measured (a GPU, or not an int8 repo): no row, no line
    assert "int8-dynamic" not in plain
