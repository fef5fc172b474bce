"""Load any source into a ready `DiTPipeline`, refusing anything that would run random weights.

Apart from `sources` (which only classifies and builds) because loading a pre-quantized folder needs
`serialization`, which itself needs `sources` for the Hub download: this split keeps the import graph acyclic.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DiTPipeline, DiTTransformer2DModel

from dit_demo.engine.device import default_device, default_dtype
from dit_demo.engine.model.labels import imagenet_id2label
from dit_demo.engine.model.serialization import QuantizedDiTTransformer2DModel
from dit_demo.engine.model.sources import (
    NULL_CLASS_ID,
    QMAP_NAME,
    SCHEDULERS,
    assemble_pipeline,
    download_pipeline,
    make_scheduler,
    random_pipeline,
    resolve_source,
    set_scheduler,
)
from dit_demo.errors import CheckpointError, ModelLoadError


def _read_model_index(folder: Path) -> dict:
    index_file = folder / "model_index.json"
    if not index_file.is_file():
        raise ModelLoadError(
            f"{folder} is not a diffusers pipeline folder (no model_index.json). Point --model at a folder saved by "
            "`dit_demo` or `DiTPipeline.save_pretrained`, a Hub id such as facebook/DiT-XL-2-256, or 'embedded'."
        )
    try:
        index = json.loads(index_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{index_file} is not valid JSON ({exc}).") from exc
    if index.get("_class_name") != "DiTPipeline":
        raise CheckpointError(
            f"{folder} holds a {index.get('_class_name', 'unknown')} pipeline, not a DiTPipeline: this demo runs "
            "class-conditional DiT models only."
        )
    return index


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
    index = _read_model_index(folder)
    transformer_dir = folder / "transformer"
    try:
        if (transformer_dir / QMAP_NAME).is_file():
            transformer = QuantizedDiTTransformer2DModel.load_module(transformer_dir, device=device, dtype=dtype)
        else:
            transformer = _load_component(DiTTransformer2DModel, transformer_dir, dtype).to(device)
        vae = _load_component(AutoencoderKL, folder / "vae", dtype).to(device)
        sched_cls_name = index.get("scheduler", [None, "DPMSolverMultistepScheduler"])[1]
        sched_config = json.loads((folder / "scheduler" / "scheduler_config.json").read_text(encoding="utf-8"))
    except ModelLoadError:
        raise
    except Exception as exc:  # diffusers/safetensors raise many types for a broken folder
        raise CheckpointError(f"Could not load the pipeline in {folder}: {type(exc).__name__}: {exc}") from exc
    if transformer.config.num_embeds_ada_norm != NULL_CLASS_ID:
        raise CheckpointError(
            f"{folder}: the transformer has num_embeds_ada_norm={transformer.config.num_embeds_ada_norm}, but "
            f"DiTPipeline uses class {NULL_CLASS_ID} as its guidance null class; train with num_embeds_ada_norm=1000."
        )
    id2label = index.get("id2label") or imagenet_id2label()
    sched_name = scheduler or next(
        (short for short, cls in SCHEDULERS.items() if cls.__name__ == sched_cls_name), "dpm"
    )
    return assemble_pipeline(transformer.eval(), vae.eval(), make_scheduler(sched_name, sched_config), id2label)


def source_folder(source: str | None, *, revision: str | None = None) -> Path | None:
    """The local folder behind a source (a Hub repo is downloaded once, safetensors/json only); None when the source
    is built in memory (random weights). Metadata and stored dtypes are read from this one folder."""
    info = resolve_source(source)
    if info.kind == "random":
        return None
    if info.kind == "hub":
        return download_pipeline(info.source, revision=revision)
    folder = Path(info.path)
    if info.kind == "embedded" and not (folder / "model_index.json").is_file():
        raise ModelLoadError(f"The embedded digits model is missing from {folder}; reinstall the project.")
    return folder


def load_pipeline(
    source: str | None = None,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    scheduler: str | None = None,
    revision: str | None = None,
    folder: Path | None = None,
) -> DiTPipeline:
    """One call for every source: returns a ready `DiTPipeline` on `device`, in eval mode, with `id2label`.
    `folder`: the source's folder when the caller already resolved it (`source_folder`)."""
    device = torch.device(device) if device is not None else default_device()
    dtype = dtype or default_dtype(device)
    info = resolve_source(source)
    if info.kind == "random":
        pipe = random_pipeline(info.source, device=device, dtype=dtype)
        if scheduler:
            set_scheduler(pipe, scheduler)
        return pipe
    folder = folder or source_folder(source, revision=revision)
    return load_pipeline_folder(folder, device=device, dtype=dtype, scheduler=scheduler)
