"""Save and reload quantized DiT pipelines in optimum-quanto's own format, refusing broken or foreign checkpoints.

The folder's layout, file names and JSON files are `folder_format`'s; this module writes and reads the tensors.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import diffusers
import torch
from accelerate import init_empty_weights
from diffusers import DiTPipeline, DiTTransformer2DModel
from optimum.quanto import QuantizedDiffusersModel, quantization_map, requantize
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from dit_demo.engine.model import folder_format as fmt
from dit_demo.engine.model.folder_format import QMAP_NAME, WEIGHTS_NAME
from dit_demo.engine.model.folders import staging_folder, swap_in_folder
from dit_demo.engine.model.resolver import download_pipeline
from dit_demo.engine.model.stock import stock_quantization_config
from dit_demo.engine.quant.dynamic import is_dynamic_int8
from dit_demo.engine.quant.smoothing import SMOOTHING_NAME, folded_modules, install_plan, load_plan, plan_of, save_plan
from dit_demo.errors import CheckpointError, InvalidRequestError

SAFETENSORS_FLOATS = {"F16": torch.float16, "BF16": torch.bfloat16, "F32": torch.float32}
ACCEPTED_CLASS_NAMES = ("DiTTransformer2DModel", "Transformer2DModel")  # the Hub's DiT repos use the old name


def _load_state_dict(folder: Path) -> dict[str, torch.Tensor]:
    """safetensors only; cloned so CPU int8 kernels never see misaligned memory-mapped storage."""
    if (folder / f"{WEIGHTS_NAME}.index.json").is_file():
        index = fmt.read_json(folder / f"{WEIGHTS_NAME}.index.json", "The shard index")
        if not isinstance(index.get("weight_map"), dict):
            raise CheckpointError(f"{folder / (WEIGHTS_NAME + '.index.json')} has no weight_map object.")
        files = sorted(set(map(str, index["weight_map"].values())))
    else:
        files = [WEIGHTS_NAME]
    state: dict[str, torch.Tensor] = {}
    for name in files:
        path = folder / name
        if not path.is_file():
            if (folder / "diffusion_pytorch_model.bin").is_file():
                raise CheckpointError(
                    f"{folder} holds only pickle weights (.bin); this project loads safetensors only."
                )
            raise CheckpointError(f"No safetensors weights in {folder} (expected {name}).")
        try:
            state.update({k: v.clone() for k, v in load_file(str(path)).items()})
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{path} is truncated or corrupt ({exc}).") from exc
    return state


class QuantizedDiTTransformer2DModel(QuantizedDiffusersModel):
    """quanto's `QuantizedDiffusersModel` for DiT, with a loader that validates instead of trusting.

    quanto's own loader uses `load_state_dict(strict=False)`: a checkpoint missing tensors silently leaves random
    memory in the model. This one checks every key and shape and raises `CheckpointError` instead.
    """

    base_class = DiTTransformer2DModel

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        *,
        subfolder: str | None = None,
        device: torch.device | str = "cpu",
        dtype: torch.dtype | None = None,
        **hub_kwargs,
    ) -> QuantizedDiTTransformer2DModel:
        """Load from a folder or a Hub repo (whole pipeline repos too: `subfolder="transformer"`)."""
        path = Path(pretrained_model_name_or_path)
        if not path.is_dir():
            path = download_pipeline(str(pretrained_model_name_or_path), **hub_kwargs)
        if subfolder:
            path = path / subfolder
        return cls(cls.load_module(path, device=device, dtype=dtype))

    @classmethod
    def load_module(
        cls, folder: str | os.PathLike, *, device: torch.device | str = "cpu", dtype: torch.dtype | None = None
    ) -> DiTTransformer2DModel:
        """The bare quantized `DiTTransformer2DModel` (an nn.Module, so `pipe.to()` and offload reach it)."""
        folder = Path(folder)
        qmap, smoothed = fmt.read_qmap(folder)
        config = fmt.read_json(folder / fmt.CONFIG_NAME, "The transformer config (config.json)")
        class_name = config.get("_class_name")
        if class_name not in ACCEPTED_CLASS_NAMES:
            raise CheckpointError(
                f"{folder} holds a {class_name or 'unknown'} model, not a DiT transformer: refusing to load it."
            )
        state = _load_state_dict(folder)
        try:
            with init_empty_weights():
                model = DiTTransformer2DModel.from_config(DiTTransformer2DModel.load_config(folder))
            requantize(model, state_dict=state, quantization_map=qmap, device=torch.device("cpu"))
        except (KeyError, ValueError, RuntimeError, TypeError) as exc:
            raise CheckpointError(f"{folder} does not match a quantized DiT of its config: {exc}") from exc
        expected = set(model.state_dict())
        missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
        if missing or unexpected:
            raise CheckpointError(
                f"{folder} is not a complete checkpoint of this model: {len(missing)} tensors missing "
                f"{missing[:3]}, {len(unexpected)} unexpected {unexpected[:3]}. Refusing to run random weights."
            )
        plan = load_plan(folder)  # smoothed recipes: the input scales that are not folded into weights
        if smoothed and not plan:
            raise CheckpointError(f"{folder} is marked smoothed in {QMAP_NAME} but its {SMOOTHING_NAME} is missing.")
        if plan:
            install_plan(model, plan, folder)
        if dtype is not None and model.dtype != dtype:
            model.to(dtype)
        return model.to(device).eval()


def is_quantized(module: torch.nn.Module) -> bool:
    return len(quantization_map(module)) > 0


QUANTO_INTERNAL_SUFFIXES = ("._data", "._scale", "._shift", "input_scale", "output_scale")


def _store_floats_as(weights: Path, dtype: torch.dtype | None, exact: Sequence[str] = ()) -> None:
    """Re-store kept float tensors in the base model's dtype (a CPU run upcasts an fp16 base to fp32).

    quanto's own tensors (int data, scales, shifts, activation scales) are left as computed: casting them would change
    the numbers. Kept tensors came unchanged from the base, so storing them in its dtype is lossless.
    """
    if dtype is None or not weights.is_file():
        return
    state = load_file(str(weights))
    changed = False
    exact = set(exact)  # modules whose tensors were computed (a smoothing fold), not copied from the base
    for key, tensor in state.items():
        if key.rsplit(".", 1)[0] in exact:
            continue
        if tensor.is_floating_point() and tensor.dtype != dtype and not key.endswith(QUANTO_INTERNAL_SUFFIXES):
            state[key] = tensor.to(dtype)
            changed = True
    if changed:
        save_file(state, str(weights), metadata={"format": "pt"})


def save_transformer(
    transformer: DiTTransformer2DModel, folder: Path, *, storage_dtype: torch.dtype | None = None
) -> None:
    """Plain diffusers format, or quanto's (config + safetensors + quanto_qmap.json) when quantized; a quantized
    config also carries the `quantization_config` stock diffusers needs (or a loud refusal, see `stock`)."""
    transformer.save_pretrained(folder, safe_serialization=True)
    _store_floats_as(folder / WEIGHTS_NAME, storage_dtype, folded_modules(plan_of(transformer)))
    extra = None
    if is_quantized(transformer):
        smoothed = save_plan(transformer, folder) is not None
        fmt.write_qmap(folder, quantization_map(transformer), smoothed=smoothed)  # marked: quanto's loader refuses
        extra = {"quantization_config": stock_quantization_config(transformer)}
    fmt.publishable_config(folder / fmt.CONFIG_NAME, extra)


def save_vae(vae: torch.nn.Module, folder: Path, *, storage_dtype: torch.dtype | None = None) -> None:
    vae.save_pretrained(folder, safe_serialization=True)
    _store_floats_as(folder / WEIGHTS_NAME, storage_dtype)
    fmt.publishable_config(folder / fmt.CONFIG_NAME)


def save_pipeline(
    pipe: DiTPipeline,
    folder: str | os.PathLike,
    *,
    metadata: dict | None = None,
    overwrite: bool = False,
    storage_dtype: torch.dtype | None = None,
) -> Path:
    """Write a complete, loadable pipeline folder atomically: a failed save leaves nothing half-written (and the
    leftovers of an earlier killed save are removed). `storage_dtype`: the base model's dtype for kept tensors."""
    if is_dynamic_int8(pipe.transformer):
        raise InvalidRequestError(
            "recipe: int8-dynamic is not saved (PyTorch's packed int8 CPU weights have no safetensors form). Save "
            "the int8 recipe instead: loading that folder with recipe int8-dynamic rebuilds it in seconds."
        )
    folder = Path(folder)
    if folder.exists() and not overwrite:
        raise FileExistsError(f"{folder} already exists; pass overwrite=True (CLI: --overwrite) to replace it.")
    with staging_folder(folder) as tmp:
        save_transformer(pipe.transformer, tmp / "transformer", storage_dtype=storage_dtype)
        save_vae(pipe.vae, tmp / "vae", storage_dtype=storage_dtype)
        pipe.scheduler.save_pretrained(tmp / "scheduler")
        id2label = dict(pipe.config.get("id2label") or {})
        if not id2label:
            raise ValueError("The pipeline has no id2label: register it so the saved folder keeps its class names.")
        index = {
            "_class_name": "DiTPipeline",
            "_diffusers_version": diffusers.__version__,
            "id2label": {str(k): v for k, v in id2label.items()},
            "scheduler": ["diffusers", type(pipe.scheduler).__name__],
            "transformer": ["diffusers", "DiTTransformer2DModel"],
            "vae": ["diffusers", type(pipe.vae).__name__],
        }
        fmt.write_json(tmp / fmt.MODEL_INDEX_NAME, index)
        if metadata is not None:
            fmt.write_metadata(tmp, metadata)
        swap_in_folder(tmp, folder)
    return folder


def stored_dtype(folder: str | os.PathLike) -> torch.dtype | None:
    """The dtype a component's float weights are stored in (read from the safetensors header, no tensor loaded)."""
    path = Path(folder) / WEIGHTS_NAME
    if not path.is_file():
        return None
    with safe_open(str(path), framework="pt") as handle:
        for key in handle.keys():
            if key.endswith(QUANTO_INTERNAL_SUFFIXES):
                continue
            dtype = handle.get_slice(key).get_dtype()
            if dtype in SAFETENSORS_FLOATS:
                return SAFETENSORS_FLOATS[dtype]
    return None
