"""The real app on 127.0.0.1, driven through its public `/generate` API with gradio_client.

Uses the embedded digits model when it is present, else the tiny random DiT, with few steps, so the whole module
runs in well under a minute on 2 CPU cores.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from gradio_client import Client
from gradio_client.exceptions import AppError, ValidationError
from PIL import Image

from dit_demo.app import service as app_service
from dit_demo.app.config import embedded_available
from dit_demo.app.offered import class_choices
from dit_demo.app.service import DemoService
from dit_demo.engine.quant.quantize import CalibrationConfig
from dit_demo.engine.request import MAX_BATCH

MODEL = "embedded" if embedded_available() else "tiny-random"
STEPS = 4
CALIBRATION = CalibrationConfig(steps=6, seeds=(1000,), num_labels=3)  # int8-a8 quickly, if a test asks for it
METRICS = ("latency_s", "per_step_s", "weight_bytes", "peak_memory_bytes", "quantize_s", "calibrate_s", "ssim")


@pytest.fixture(scope="module")
def service() -> DemoService:
    return DemoService(MODEL, device="cpu", calibration=CALIBRATION)


@pytest.fixture(scope="module")
def two_classes() -> list[str]:
    entries = class_choices(MODEL)
    return [entries[1], entries[len(entries) // 2]]


def call(
    client: Client,
    classes,
    *,
    model: str = MODEL,
    seed=7,
    randomize=False,
    steps=STEPS,
    guidance=4.0,
    recipes=("int8",),
) -> tuple:
    return client.predict(
        model,
        list(classes) if not isinstance(classes, str) else classes,
        seed,
        randomize,
        steps,
        guidance,
        "dpm",
        list(recipes),
        False,
        api_name="/generate",
    )


def native_size(service: DemoService) -> tuple[int, int]:
    """The model's own output size, from its configs (not from anything the app reports)."""
    pipe = service.cache.get(MODEL, "bf16").pipe
    side = pipe.transformer.config.sample_size * 2 ** (len(pipe.vae.config.block_out_channels) - 1)
    return side, side


def test_generate_bf16_and_int8(client: Client, service: DemoService, two_classes: list[str]) -> None:
    gallery, numbers, summary, download = call(client, two_classes, seed=11)

    assert len(gallery) == 2 * len(two_classes)  # every class by every recipe
    size = native_size(service)
    for item, recipe in zip(gallery, ["fp32 reference", "int8"] * len(two_classes)):  # the reference's real dtype
        path = Path(item["image"])
        assert path.is_file()
        with Image.open(path) as image:
            assert image.format == "PNG"
            assert image.size == size
        assert item["caption"].startswith(recipe)

    assert numbers["seed"] == 11 and numbers["seeds"] == [11, 12]
    assert "seed 11" in summary
    assert set(numbers["recipes"]) == {"bf16", "int8"}
    for recipe, row in numbers["recipes"].items():
        for key in METRICS:
            assert isinstance(row[key], (int, float)), (recipe, key, row.get(key))
        assert row["latency_s"] > 0 and row["per_step_s"] > 0 and row["weight_bytes"] > 0
        assert row["peak_memory_bytes"] > 0
        assert "psnr_db" in row
        if embedded_available():
            assert len(row["predicted_digits"]) == len(two_classes) and len(row["confidences"]) == len(two_classes)
    ref, int8 = numbers["recipes"]["bf16"], numbers["recipes"]["int8"]
    assert int8["weight_bytes"] < ref["weight_bytes"]
    assert int8["quantize_s"] > 0 and ref["quantize_s"] == 0
    assert int8["psnr_db"] is None or int8["psnr_db"] > 10

    with Image.open(download) as strip:
        assert strip.format == "PNG"
        # reference + int8 + difference columns, one row per class, each tile at least the native size
        assert strip.width >= 3 * size[0] and strip.height >= len(two_classes) * size[1]


def test_randomized_seed_is_reported(client: Client, two_classes: list[str]) -> None:
    _, numbers, summary, _ = call(client, two_classes[:1], seed=123456, randomize=True, recipes=())
    assert numbers["seed"] != 123456
    assert f"seed {numbers['seed']}" in summary
    assert list(numbers["recipes"]) == ["bf16"]


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"classes": ["zzqx-not-a-class"]}, "- classes: classes: Unknown class 'zzqx-not-a-class'"),
        ({"classes": []}, "- classes: classes: No class selected"),
        ({"seed": -1}, "- seed: seed must be a whole number from 0"),
        ({"seed": 2**33}, "- seed: seed must be a whole number from 0"),
        ({"steps": 5000}, "- steps: steps must be a whole number from 1 to 100, got 5000"),
        ({"steps": 0}, "- steps: steps must be a whole number from 1 to 100, got 0"),
        ({"guidance": 0.5}, "- guidance_scale: guidance_scale must be a number from 1 to 15 (1 = no guidance)"),
        ({"classes": ["1"] * (MAX_BATCH + 1)}, "- classes: classes: Too many images in one request"),
        ({"model": "not a model!"}, "- model: model: Unknown model source"),
    ],
)
def test_bad_input_gives_a_clear_message(client: Client, two_classes: list[str], overrides: dict, message: str) -> None:
    """Refused before the request is queued (Gradio's validator), each message naming its field."""
    kwargs = {"classes": two_classes[:1], **overrides}
    with pytest.raises(ValidationError) as info:
        call(client, kwargs.pop("classes"), **kwargs)
    assert message in str(info.value)


def test_unloadable_model_is_named(client: Client, two_classes: list[str]) -> None:
    with pytest.raises(AppError, match=r"model: Could not load 'nobody/no-such-dit-repo'"):
        call(client, two_classes[:1], model="nobody/no-such-dit-repo")


def test_unknown_class_suggests_names(client: Client) -> None:
    name = class_choices(MODEL)[3].split(": ", 1)[1]
    with pytest.raises(ValidationError, match="Did you mean") as info:
        call(client, [name[:-1] + "q"])
    assert name in str(info.value)


def test_out_of_memory_is_reported_and_the_app_keeps_serving(
    client: Client, two_classes: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def oom(*_args, **_kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(app_service, "run_comparison", oom)
    with pytest.raises(AppError, match="Out of memory.*Reduce the number of classes"):
        call(client, two_classes[:1])
    monkeypatch.undo()
    _, numbers, _, _ = call(client, two_classes[:1])
    assert set(numbers["recipes"]) == {"bf16", "int8"}


def test_api_exposes_generate_and_the_blind_test(client: Client) -> None:
    endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert set(endpoints) == {"/generate", "/blind_round", "/vote", "/tally"}  # the page's private events stay hidden
    params = [p["parameter_name"] for p in endpoints["/generate"]["parameters"]]
    assert params[:3] == ["model", "classes", "seed"]


@pytest.fixture(scope="module")
def digits_int8(tmp_path_factory) -> Path:
    """A pre-quantized folder saved by this project (the digits model when present)."""
    from dit_demo.engine.generate import build_reference, build_variant
    from dit_demo.engine.model.serialization import save_pipeline

    reference = build_reference(MODEL, device="cpu")
    folder = tmp_path_factory.mktemp("saved") / "int8"
    return save_pipeline(build_variant(reference, "int8").pipe, folder, metadata={"recipe": "int8"})


def test_leftover_folders_are_ignored_then_removed_on_the_next_save(
    client: Client, digits_int8: Path, two_classes: list[str]
) -> None:
    """A killed save left hidden siblings: the app serves the folder regardless, the next save removes them."""
    from dit_demo.engine.model.loading import load_pipeline
    from dit_demo.engine.model.serialization import save_pipeline

    for stale in (f".{digits_int8.name}.partial-abc123", f".{digits_int8.name}.old"):
        (digits_int8.parent / stale / "transformer").mkdir(parents=True)
        (digits_int8.parent / stale / "transformer" / "junk.safetensors").write_bytes(b"half-written")
    _, numbers, _, _ = call(client, two_classes[:1], model=str(digits_int8))
    assert list(numbers["recipes"]) == ["int8"]
    pipe = load_pipeline(str(digits_int8), device="cpu")
    save_pipeline(pipe, digits_int8, metadata={"recipe": "int8"}, overwrite=True)
    assert sorted(p.name for p in digits_int8.parent.iterdir()) == ["int8"]  # no .partial / .old left
    assert list(call(client, two_classes[:1], model=str(digits_int8))[1]["recipes"]) == ["int8"]


def test_corrupt_metadata_is_a_named_error_and_the_app_keeps_serving(
    client: Client, digits_int8: Path, two_classes: list[str], tmp_path: Path
) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(digits_int8, broken)
    (broken / "dit_demo.json").write_text("{not json")
    with pytest.raises(ValidationError) as info:
        call(client, two_classes[:1], model=str(broken))
    assert "- model: " in str(info.value) and "dit_demo.json" in str(info.value) and "not valid JSON" in str(info.value)
    assert "Traceback" not in str(info.value) and "JSONDecodeError" not in str(info.value)
    assert call(client, two_classes[:1])[1]["seed"] == 7


def test_numpy_class_ids_through_the_generate_handler(service: DemoService) -> None:
    """In-process callers of the /generate handler may pass numpy integers (JSON cannot carry them)."""
    import numpy as np

    gallery, numbers, _, _, _ = service.generate(
        MODEL, [np.int64(1), np.int32(2)], np.int64(5), False, np.int64(2), 4.0, "dpm", ["int8"], False
    )
    assert numbers["class_ids"] == [1, 2] and numbers["seeds"] == [5, 6] and len(gallery) == 4
