import json

import pytest
import torch

from dit_demo.engine.model.loading import load_pipeline
from dit_demo.engine.model.resolver import resolve_source
from dit_demo.engine.model.sources import DIT_XL_2, SCHEDULERS, make_scheduler
from dit_demo.errors import CheckpointError, InvalidRequestError, ModelLoadError


def test_tiny_random_is_a_dit_pipeline_with_imagenet_labels():
    pipe = load_pipeline("tiny-random", device="cpu")
    assert type(pipe).__name__ == "DiTPipeline"
    assert pipe.transformer.config.num_embeds_ada_norm == 1000
    assert pipe.labels["golden retriever"] == 207
    assert pipe.transformer.dtype == torch.float32  # fp32 reference on CPU


def test_random_sources_are_seeded():
    a, b = (load_pipeline("tiny-random", device="cpu") for _ in range(2))
    assert torch.equal(a.transformer.proj_out_2.weight, b.transformer.proj_out_2.weight)


def test_dit_xl_2_config_matches_the_real_model():
    # facebook/DiT-XL-2-256 transformer/config.json: 28 layers, 16 heads × 72, patch 2, learned sigma.
    assert (DIT_XL_2["num_layers"], DIT_XL_2["num_attention_heads"], DIT_XL_2["attention_head_dim"]) == (28, 16, 72)
    assert DIT_XL_2["out_channels"] == 2 * DIT_XL_2["in_channels"]
    with torch.device("meta"):
        from diffusers import DiTTransformer2DModel

        model = DiTTransformer2DModel(**DIT_XL_2, sample_size=32)
    # diffusers gives every block its own copy of the timestep/label embedder (original DiT shares one):
    # without the 27 extra copies the count is the paper's 675 M.
    total = sum(p.numel() for p in model.parameters())
    per_block_embedder = sum(p.numel() for p in model.transformer_blocks[0].norm1.emb.parameters())
    assert 674e6 < total - 27 * per_block_embedder < 676e6


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_schedulers_selectable(name):
    pipe = load_pipeline("tiny-random", device="cpu", scheduler=name)
    assert type(pipe.scheduler) is SCHEDULERS[name]
    assert pipe.scheduler.config.beta_schedule == "linear"


def test_unknown_scheduler():
    with pytest.raises(InvalidRequestError, match="Unknown scheduler"):
        make_scheduler("plms")


def test_unreachable_hub_id_gives_one_actionable_message():
    with pytest.raises(ModelLoadError) as info:
        load_pipeline("facebook/DiT-XL-2-256", device="cpu")
    message = str(info.value)
    assert "HF_TOKEN" in message and "HF_HUB_OFFLINE" in message and "local pipeline folder" in message


@pytest.mark.parametrize("source", ["no-such-thing", "./missing/folder", "a/b/c"], ids=["word", "path", "deep"])
def test_unknown_sources(source):
    with pytest.raises(ModelLoadError):
        resolve_source(source)


def test_folder_without_model_index(tmp_path):
    with pytest.raises(ModelLoadError, match="model_index.json"):
        load_pipeline(str(tmp_path), device="cpu")


def test_foreign_pipeline_folder_is_refused(tmp_path):
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    with pytest.raises(CheckpointError, match="not a DiTPipeline"):
        load_pipeline(str(tmp_path), device="cpu")


def test_plain_folder_round_trip(tmp_path, tiny_reference):
    from dit_demo.engine.model.serialization import save_pipeline

    folder = save_pipeline(tiny_reference.pipe, tmp_path / "plain")
    assert resolve_source(str(folder)).kind == "folder" and not resolve_source(str(folder)).prequantized
    pipe = load_pipeline(str(folder), device="cpu")
    assert pipe.labels == tiny_reference.pipe.labels
    assert torch.equal(pipe.transformer.proj_out_2.weight, tiny_reference.pipe.transformer.proj_out_2.weight)


def test_plain_folder_with_missing_tensors_is_refused(tmp_path, tiny_reference):
    from safetensors.torch import load_file, save_file

    from dit_demo.engine.model.serialization import save_pipeline

    folder = save_pipeline(tiny_reference.pipe, tmp_path / "plain")
    weights = folder / "transformer" / "diffusion_pytorch_model.safetensors"
    state = load_file(str(weights))
    del state["proj_out_2.weight"]
    save_file(state, str(weights))
    with pytest.raises(CheckpointError, match="random weights|missing"):
        load_pipeline(str(folder), device="cpu")


def test_a_source_is_resolved_once_into_what_it_is(tmp_path, tiny_variants):
    from dit_demo.engine.generate import build_reference
    from dit_demo.engine.model.resolver import EMBEDDED_MODEL_DIR, ResolvedSource
    from dit_demo.engine.model.serialization import save_pipeline

    embedded = resolve_source(" digits ")
    assert (embedded.kind, embedded.folder, embedded.recipe) == ("embedded", EMBEDDED_MODEL_DIR, None)
    assert embedded.labels_known and embedded.id2label[3] == "three"
    random = resolve_source("tiny-random")
    assert (random.kind, random.folder, len(random.id2label)) == ("random", None, 1000)
    folder = save_pipeline(tiny_variants["int8"].pipe, tmp_path / "tiny-int8", metadata={"recipe": "int8"})
    saved = resolve_source(str(folder))
    assert (saved.kind, saved.name, saved.recipe, saved.folder) == ("prequantized", "tiny-int8", "int8", folder)
    assert saved.metadata == {"recipe": "int8"} and resolve_source(saved) is saved  # passed on, never re-resolved
    hub = resolve_source("someone/some-dit")
    assert (hub.kind, hub.folder, hub.recipe, hub.labels_known) == ("hub", None, None, False)  # nothing cached
    reference = build_reference(saved, device="cpu")
    assert isinstance(reference.resolved, ResolvedSource) and reference.resolved is saved
    assert reference.recipe == "int8" and reference.prequantized
    assert reference.report.quantize_s == reference.report.calibrate_s == 0.0  # nothing was built in this run


@pytest.mark.parametrize("length", [300, 5000, 100_000])
def test_hostile_long_sources_are_refused_before_the_filesystem(length):
    with pytest.raises(InvalidRequestError) as info:
        resolve_source("x" * length)
    message = str(info.value)
    assert len(message) < 250 and ("too long" in message)
    if length > 1024:
        assert f"({length:,} characters; at most 1,024)" in message


def test_a_folder_with_a_damaged_config_is_named_when_resolved(tmp_path, tiny_reference):
    from dit_demo.engine.model.serialization import save_pipeline

    folder = save_pipeline(tiny_reference.pipe, tmp_path / "plain")
    (folder / "vae" / "config.json").write_text("[1, 2, 3]")
    with pytest.raises(CheckpointError, match=r"vae/config.json is not a JSON object: it holds a list, \[1, 2, 3\]"):
        resolve_source(str(folder))
