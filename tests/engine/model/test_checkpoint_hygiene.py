"""What a saved folder carries for its users: the base's dtype, no local paths, a stock-diffusers config (or a loud
refusal), no leftovers from killed saves, and clear errors for corrupt metadata."""

import json
import os

import pytest
import torch
from safetensors import safe_open

from dit_demo.engine.generate import build_reference, build_variant
from dit_demo.engine.model.folder_format import read_metadata
from dit_demo.engine.model.folders import remove_stale_siblings
from dit_demo.engine.model.serialization import save_pipeline, stored_dtype
from dit_demo.engine.model.stock import stock_quantization_config
from dit_demo.errors import CheckpointError
from tests.conftest import TINY_CALIBRATION


@pytest.fixture(scope="module")
def digits_int8(tmp_path_factory):
    reference = build_reference("embedded", device="cpu")
    variant = build_variant(reference, "int8")
    folder = tmp_path_factory.mktemp("digits") / "int8"
    save_pipeline(variant.pipe, folder, metadata={"recipe": "int8"}, storage_dtype=reference.storage_dtype)
    return reference, variant, folder


def folder_bytes(folder) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and p.suffix in (".json", ".safetensors"))


def test_quantized_repo_is_smaller_than_its_base(digits_int8):
    reference, _, folder = digits_int8
    assert reference.storage_dtype == torch.float16  # the shipped digits model is stored in fp16
    assert folder_bytes(folder) < folder_bytes(reference.folder)
    assert stored_dtype(folder / "transformer") == torch.float16 and stored_dtype(folder / "vae") == torch.float16


def test_kept_tensors_in_base_dtype_and_quanto_tensors_untouched(digits_int8):
    _, _, folder = digits_int8
    with safe_open(str(folder / "transformer" / "diffusion_pytorch_model.safetensors"), framework="pt") as handle:
        dtypes = {key: handle.get_slice(key).get_dtype() for key in handle.keys()}
    assert dtypes["proj_out_2.weight"] == "F16"
    assert dtypes["transformer_blocks.0.attn1.to_q.weight._data"] == "I8"
    assert dtypes["transformer_blocks.0.attn1.to_q.weight._scale"] == "F32"  # scales stay as computed


def test_no_absolute_local_path_in_any_written_file(digits_int8, tmp_path):
    _, _, folder = digits_int8
    needles = {str(folder.parent), os.path.expanduser("~"), os.getcwd(), str(tmp_path.parent)}
    for path in folder.rglob("*.json"):
        text = path.read_text()
        assert "_name_or_path" not in text, path
        assert not any(needle in text for needle in needles if len(needle) > 1), path


def test_weight_only_recipes_get_the_stock_quanto_config(digits_int8):
    _, variant, folder = digits_int8
    config = json.loads((folder / "transformer" / "config.json").read_text())["quantization_config"]
    assert config == {
        "quant_method": "quanto",
        "weights_dtype": "int8",
        "modules_to_not_convert": ["proj_out_1", "proj_out_2"],
    }
    assert stock_quantization_config(variant.pipe.transformer) == config


def test_activation_recipes_get_a_loud_refusal(tiny_variants):
    config = stock_quantization_config(tiny_variants["int8-a8"].pipe.transformer)
    assert config["quant_method"] != "quanto" and "load_pipeline" in config["quant_method"]


def test_layer_choices_stock_diffusers_cannot_express_are_refused(tiny_reference):
    """Keeping attention's `to_out.0` while quantizing MLP's `ff.net.0.proj`... would need the local name "0" kept,
    but diffusers matches local names only; a keep set whose names collide with quantized ones must be refused."""
    variant = build_variant(
        tiny_reference, "int8", exclude=["transformer_blocks.0.attn1.to_q"], calibration=TINY_CALIBRATION
    )
    config = stock_quantization_config(variant.pipe.transformer)
    assert config["quant_method"] != "quanto" and "to_q" in config["quant_method"]


def test_stale_leftovers_are_removed_by_the_next_save(tmp_path, tiny_reference):
    target = tmp_path / "model"
    for name in (".model.partial-abc", ".model.old", ".model.staging-x1"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "big.bin").write_bytes(b"0" * 10)
    (tmp_path / ".other.old").mkdir()
    save_pipeline(tiny_reference.pipe, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.old", "model"]
    assert remove_stale_siblings(target) == []


def test_corrupt_metadata_is_a_checkpoint_error(tmp_path):
    (tmp_path / "dit_demo.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="dit_demo.json"):
        read_metadata(tmp_path)
    (tmp_path / "dit_demo.json").write_text("[1, 2]")
    with pytest.raises(CheckpointError, match="not a JSON object"):
        read_metadata(tmp_path)


def test_hub_folders_share_the_staging_mechanism(tmp_path):
    """Repo/Space/dataset folders are built through the same staging as checkpoints: a killed run's leftovers go."""
    from dit_demo.hub.io import staging

    target = tmp_path / "repo"
    (tmp_path / ".repo.staging-old1").mkdir()
    with staging(target) as stage:
        assert stage.parent == tmp_path and stage.name.startswith(".repo.staging-")
        assert not (tmp_path / ".repo.staging-old1").exists()
    assert not stage.exists()
