"""Load a resolved source into a ready `DiTPipeline`, refusing anything that would run random weights.

Apart from `resolver` (which only classifies and reads metadata) because loading a pre-quantized folder needs
`serialization`, which itself needs the resolver for the Hub download: this split keeps the import graph acyclic.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DiTPipeline, DiTTransformer2DModel

from dit_demo.engine.device import default_device, default_dtype
from dit_demo.engine.model import folder_format as fmt
from dit_demo.engine.model.labels import imagenet_id2label
from dit_demo.engine.model.resolver import ResolvedSource, resolve_source
from dit_demo.engine.model.serialization import QuantizedDiTTransformer2DModel
from dit_demo.engine.model.sources import (
    NULL_CLASS_ID,
    SCHEDULERS,
    assemble_pipeline,
    make_scheduler,
    random_pipeline,
    set_scheduler,
)
from dit_demo.errors import CheckpointError, ModelLoadError


def _load_component(cls: type, folder: Path, dtype: torch.dtype) -> torch.nn.Module:
    """diffusers only warns when tensors are missing (and leaves them random): make that an error."""
    model, info = cls.from_pretrained(folder, torch_dtype=dtype, use_safetensors=True, output_loading_info=True)
    problems = {k: v for k, v in info.items() if v and k in ("missing_keys", "mismatched_keys", "unexpected_keys")}
    if problems:
        summary = "; ".join(f"{len(v)} {k.replace('_', ' ')} e.g. {list(v)[:2]}" for k, v in problems.items())
        raise CheckpointError(f"{folder} does not match its config ({summary}). Refusing to run random weights.")
    return model


def load_pipeline_folder(
    folder: str | os.PathLike, *, device: torch.device, dtype: torch.dtype, scheduler: str | None = None
) -> DiTPipeline:
    """Load a complete DiT pipeline folder, plain or pre-quantized, refusing anything that would run random weights."""
    folder = Path(folder)
    if not (folder / fmt.MODEL_INDEX_NAME).is_file():
        raise ModelLoadError(f"{folder} is not a diffusers pipeline folder (no {fmt.MODEL_INDEX_NAME}).")
    index = fmt.read_model_index(folder)
    fmt.check_component_configs(folder)  # `[1, 2, 3]` as a config: named here, not "couldn't connect" later
    transformer_dir = folder / "transformer"
    try:
        if fmt.is_prequantized(folder):
            transformer = QuantizedDiTTransformer2DModel.load_module(transformer_dir, device=device, dtype=dtype)
        else:
            transformer = _load_component(DiTTransformer2DModel, transformer_dir, dtype).to(device)
        vae = _load_component(AutoencoderKL, folder / "vae", dtype).to(device)
        sched_cls_name = index.get("scheduler", [None, "DPMSolverMultistepScheduler"])[1]
        sched_config = fmt.read_json(folder / "scheduler" / fmt.SCHEDULER_CONFIG_NAME, "The scheduler config")
    except ModelLoadError:
        raise
    except Exception as exc:  # diffusers/safetensors raise many types for a broken folder
        raise CheckpointError(f"Could not load the pipeline in {folder}: {type(exc).__name__}: {exc}") from exc
    if transformer.config.num_embeds_ada_norm != NULL_CLASS_ID:
        raise CheckpointError(
            f"{folder}: the transformer has num_embeds_ada_norm={transformer.config.num_embeds_ada_norm}, but "
            f"DiTPipeline uses class {NULL_CLASS_ID} as its guidance null class; train with num_embeds_ada_norm=1000."
        )
    id2label = fmt.index_labels(index) or imagenet_id2label()
    sched_name = scheduler or next(
        (short for short, cls in SCHEDULERS.items() if cls.__name__ == sched_cls_name), "dpm"
    )
    return assemble_pipeline(transformer.eval(), vae.eval(), make_scheduler(sched_name, sched_config), id2label)


def load_pipeline(
    source: str | ResolvedSource | None = None,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    scheduler: str | None = None,
    revision: str | None = None,
) -> DiTPipeline:
    """One call for every source: returns a ready `DiTPipeline` on `device`, in eval mode, with `id2label`.
    `source`: a string (resolved here) or the `ResolvedSource` the caller already holds."""
    device = torch.device(device) if device is not None else default_device()
    dtype = dtype or default_dtype(device)
    resolved = resolve_source(source, revision=revision, fetch=True)
    if resolved.kind == "random":
        pipe = random_pipeline(resolved.source, device=device, dtype=dtype)
        if scheduler:
            set_scheduler(pipe, scheduler)
        return pipe
    return load_pipeline_folder(resolved.folder, device=device, dtype=dtype, scheduler=scheduler)
