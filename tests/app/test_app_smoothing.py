"""int8-a8-smooth through the real app's public `/generate` API (gradio_client against 127.0.0.1)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from gradio_client import Client
from helpers import serving

from app import build_demo
from dit_demo.app.config import embedded_available
from dit_demo.app.offered import COMPARE_RECIPES, class_choices
from dit_demo.app.service import DemoService
from dit_demo.engine.quant.quantize import CalibrationConfig

MODEL = "embedded" if embedded_available() else "tiny-random"
QUICK = CalibrationConfig(steps=4, seeds=(1000,), num_labels=2)


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with serving(build_demo(service=DemoService(MODEL, device="cpu", calibration=QUICK))) as url:
        yield Client(url, verbose=False)


def test_the_app_offers_the_smoothed_recipe():
    assert "int8-a8-smooth" in COMPARE_RECIPES


def test_generate_int8_a8_smooth(client: Client) -> None:
    entries = class_choices(MODEL)
    classes = [entries[1], entries[len(entries) // 2]]
    gallery, numbers, summary, download = client.predict(
        MODEL, classes, 5, False, 4, 4.0, "dpm", ["int8-a8-smooth"], False, api_name="/generate"
    )
    assert len(gallery) == 2 * len(classes)
    assert "reference" in gallery[0]["caption"] and gallery[1]["caption"].startswith("int8-a8-smooth")
    row = numbers["recipes"]["int8-a8-smooth"]
    ref = numbers["recipes"]["bf16"]
    assert row["weight_bytes"] < ref["weight_bytes"] and row["calibrate_s"] > 0
    assert row["psnr_db"] is None or row["psnr_db"] > 20
    assert summary
