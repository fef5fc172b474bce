import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from dit_demo.engine.generate import build_reference, generate
from dit_demo.engine.model.folder_format import read_metadata
from dit_demo.engine.model.loading import load_pipeline
from dit_demo.engine.model.resolver import resolve_source
from dit_demo.engine.model.serialization import QuantizedDiTTransformer2DModel, save_pipeline
from dit_demo.engine.request import SamplingRequest
from dit_demo.errors import CheckpointError

LABELS = ["golden retriever", 3]


@pytest.fixture(scope="module")
def saved(tmp_path_factory, tiny_variants):
    root = tmp_path_factory.mktemp("saved")
    return {
        recipe: save_pipeline(
            variant.pipe, root / recipe, metadata={"recipe": recipe, "report": variant.report.to_dict()}
        )
        for recipe, variant in tiny_variants.items()
    }


def test_folder_is_complete(saved):
    folder = saved["int8"]
    for name in [
        "model_index.json",
        "scheduler/scheduler_config.json",
        "vae/config.json",
        "vae/diffusion_pytorch_model.safetensors",
        "transformer/config.json",
        "transformer/diffusion_pytorch_model.safetensors",
        "transformer/quanto_qmap.json",
        "dit_demo.json",
    ]:
        assert (folder / name).is_file(), name
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == "DiTPipeline" and index["id2label"]["207"].startswith("golden retriever")
    assert not list(folder.rglob("*.bin")) and not list(folder.rglob("*.pt"))
    assert resolve_source(str(folder)).prequantized


@pytest.mark.parametrize("recipe", ["int8", "int8-a8"])
def test_reload_is_bit_exact(saved, tiny_variants, recipe):
    before = generate(tiny_variants[recipe], SamplingRequest.create(LABELS, seed=5, steps=6))
    reloaded = build_reference(str(saved[recipe]), device="cpu")
    assert (
        reloaded.recipe == recipe
        and reloaded.report.quantized_modules == tiny_variants[recipe].report.quantized_modules
    )
    after = generate(reloaded, SamplingRequest.create(LABELS, seed=5, steps=6))
    for a, b in zip(before.images, after.images):
        assert a.tobytes() == b.tobytes()
    assert after.weight_bytes == before.weight_bytes


def test_class_from_pretrained_with_subfolder(saved, tiny_variants):
    qmodel = QuantizedDiTTransformer2DModel.from_pretrained(saved["int8"], subfolder="transformer")
    original = tiny_variants["int8"].pipe.transformer.transformer_blocks[0].attn1.to_q.weight
    reloaded = qmodel._wrapped.transformer_blocks[0].attn1.to_q.weight
    assert torch.equal(original.dequantize(), reloaded.dequantize())


def test_metadata_round_trip(saved):
    assert read_metadata(saved["int8-a8"])["report"]["calibration"]["steps"] == 6


def test_existing_folder_needs_overwrite(saved, tiny_variants):
    with pytest.raises(FileExistsError):
        save_pipeline(tiny_variants["int8"].pipe, saved["int8"])


def test_failed_save_leaves_nothing(tmp_path, tiny_reference):
    pipe = tiny_reference.pipe
    broken = type(pipe)(transformer=pipe.transformer, vae=pipe.vae, scheduler=pipe.scheduler)  # no id2label
    with pytest.raises(ValueError, match="id2label"):
        save_pipeline(broken, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def _copy(saved, tmp_path, recipe="int8"):
    target = tmp_path / "copy"
    shutil.copytree(saved[recipe], target)
    return target


def test_truncated_weights_are_refused(saved, tmp_path):
    folder = _copy(saved, tmp_path)
    weights = folder / "transformer" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_pipeline(str(folder), device="cpu")


def test_missing_tensors_are_refused_not_randomised(saved, tmp_path):
    folder = _copy(saved, tmp_path)
    weights = folder / "transformer" / "diffusion_pytorch_model.safetensors"
    state = load_file(str(weights))
    del state["transformer_blocks.1.ff.net.2.weight._data"]
    save_file(state, str(weights))
    with pytest.raises(CheckpointError, match="missing"):
        load_pipeline(str(folder), device="cpu")


def test_foreign_transformer_is_refused(saved, tmp_path):
    folder = _copy(saved, tmp_path)
    config = folder / "transformer" / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "_class_name": "PixArtTransformer2DModel"}))
    with pytest.raises(CheckpointError, match="not a DiT transformer"):
        load_pipeline(str(folder), device="cpu")


def test_mismatched_shapes_are_refused(saved, tmp_path):
    folder = _copy(saved, tmp_path)
    config = folder / "transformer" / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "num_layers": 3}))
    with pytest.raises(CheckpointError):
        load_pipeline(str(folder), device="cpu")


def test_corrupt_qmap_is_refused(saved, tmp_path):
    folder = _copy(saved, tmp_path)
    (folder / "transformer" / "quanto_qmap.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_pipeline(str(folder), device="cpu")


def test_pickle_only_checkpoint_is_refused(saved, tmp_path):
    folder = _copy(saved, tmp_path)
    weights = folder / "transformer" / "diffusion_pytorch_model.safetensors"
    weights.rename(weights.with_suffix(".bin"))
    with pytest.raises(CheckpointError, match="safetensors only"):
        load_pipeline(str(folder), device="cpu")
