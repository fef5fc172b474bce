"""Hostile model strings and damaged folders through gradio_client, as a visitor or API caller sends them: refused
by the validator with a short message naming the field and the file, and the app keeps serving."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from gradio_client import Client
from gradio_client.exceptions import ValidationError

from dit_demo.app.service import DemoService
from dit_demo.engine.model.resolver import MAX_SOURCE_CHARS

MODEL = "tiny-random"


@pytest.fixture(scope="module")
def service() -> DemoService:
    return DemoService(MODEL, device="cpu")


def call(client: Client, model: str) -> tuple:
    return client.predict(model, ["0: tench"], 3, False, 2, 4.0, "dpm", ["int8"], False, api_name="/generate")


@pytest.mark.parametrize("length", [300, 100_000], ids=["name-too-long-for-the-os", "over-the-limit"])
def test_a_huge_model_string_is_refused_with_a_short_message(client: Client, length: int) -> None:
    with pytest.raises(ValidationError) as info:
        call(client, "b" * length)
    message = str(info.value)
    assert "- model: model: " in message and "Errno" not in message and "OSError" not in message
    assert len(message) < 600  # a short prefix at most, never the whole string
    if length > MAX_SOURCE_CHARS:
        assert f"too long ({length:,} characters; at most {MAX_SOURCE_CHARS:,})" in message
    else:
        assert "not a usable path" in message
    assert call(client, MODEL)[1]["seed"] == 3  # still serving


@pytest.fixture(scope="module")
def saved(tmp_path_factory, service: DemoService) -> Path:
    from dit_demo.engine.model.serialization import save_pipeline

    reference = service.cache.reference(MODEL)
    return save_pipeline(reference.pipe, tmp_path_factory.mktemp("hostile") / "plain")


@pytest.mark.parametrize("config", ["vae/config.json", "transformer/config.json", "scheduler/scheduler_config.json"])
def test_a_config_that_is_not_an_object_is_named(client: Client, saved: Path, tmp_path: Path, config: str) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(saved, broken)
    (broken / config).write_text("[1, 2, 3]")
    with pytest.raises(ValidationError) as info:
        call(client, str(broken))
    message = str(info.value)
    assert f"- model: model: {broken / config} is not a JSON object: it holds a list, [1, 2, 3]" in message
    assert "huggingface.co" not in message and "connect" not in message
    assert call(client, str(saved))[1]["seed"] == 3  # the intact folder still loads and runs
