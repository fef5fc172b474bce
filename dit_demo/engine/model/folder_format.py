"""The saved pipeline folder, one owner: its file names, its JSON files read and written, and the markers that make
other loaders refuse what they would load wrongly. Loading, serialization, the resolver, the Hub scripts and the
app read the folder through this module only.

    model_index.json            DiTPipeline + id2label
    scheduler/                  scheduler_config.json
    vae/                        config.json, diffusion_pytorch_model.safetensors
    transformer/                config.json (+ `quantization_config` for stock diffusers: `stock`),
                                diffusion_pytorch_model.safetensors, quanto_qmap.json when quantized
                                (+ smoothing.safetensors for smoothed recipes: engine/quant/smoothing.py)
    dit_demo.json               the recipe and its quantization report (how the folder was made)

Every JSON file is checked to hold what it should (an object, not `[1, 2, 3]`) before diffusers reads it: diffusers
reports a config that is not an object as "couldn't connect to huggingface.co".
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from dit_demo.errors import CheckpointError

MODEL_INDEX_NAME = "model_index.json"
CONFIG_NAME = "config.json"
SCHEDULER_CONFIG_NAME = "scheduler_config.json"
WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
QMAP_NAME = "quanto_qmap.json"
METADATA_NAME = "dit_demo.json"
PIPELINE_PARTS = (MODEL_INDEX_NAME, "transformer", "vae", "scheduler")  # what a loadable folder consists of
COMPONENT_CONFIGS = ("transformer/" + CONFIG_NAME, "vae/" + CONFIG_NAME, "scheduler/" + SCHEDULER_CONFIG_NAME)

# Smoothed recipes keep input scales outside quanto's tensors. quanto's own loader (`requantize`, hence
# `QuantizedDiffusersModel.from_pretrained`) would silently drop them and render a different model, so the saved
# quantization map names, after each entry's weight type, why it refuses: quanto looks the text up as a qtype and
# raises `KeyError` with it. `read_qmap` takes the mark off again.
SMOOTHED_MARK = (
    " | dit-quanto-demo: smoothed recipe, optimum-quanto's requantize would drop its smoothing scales; load it with "
    "dit_demo.engine.model.loading.load_pipeline"
)


def read_json(path: Path, what: str, kind: type = dict) -> Any:
    """A JSON file that must exist and hold a `kind` (object by default): errors name the file and the problem."""
    if not path.is_file():
        raise CheckpointError(f"{what} is missing: {path}.")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON ({exc}).") from exc
    if not isinstance(data, kind):
        wanted = "object" if kind is dict else kind.__name__
        raise CheckpointError(
            f"{path} is not a JSON {wanted}: it holds a {type(data).__name__}, {json.dumps(data)[:60]}. {what} is "
            "damaged: re-save or re-download the folder."
        )
    return data


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")


def read_model_index(folder: Path) -> dict:
    """model_index.json of a DiT pipeline folder (anything else is refused with what it is)."""
    index = read_json(folder / MODEL_INDEX_NAME, f"The pipeline index ({MODEL_INDEX_NAME})")
    if index.get("_class_name") != "DiTPipeline":
        raise CheckpointError(
            f"{folder} holds a {index.get('_class_name', 'unknown')} pipeline, not a DiTPipeline: this demo runs "
            "class-conditional DiT models only."
        )
    return index


def check_component_configs(folder: Path, *, missing_ok: bool = False) -> None:
    """Each component's config is a JSON object, checked before diffusers reads it (see the module docstring).
    `missing_ok`: check only the files that are there (the resolver's cheap look; the loader needs them all)."""
    for name in COMPONENT_CONFIGS:
        if not missing_ok or (folder / name).is_file():
            read_json(folder / name, f"The {name.split('/')[0]} config ({name})")


def index_labels(index: dict) -> dict[int, str] | None:
    """model_index.json's id2label as {int: name}, None when absent or malformed."""
    data = index.get("id2label")
    if not isinstance(data, dict) or not data:
        return None
    try:
        return {int(k): str(v) for k, v in data.items()}
    except (TypeError, ValueError):
        return None


def is_prequantized(folder: Path) -> bool:
    return (folder / "transformer" / QMAP_NAME).is_file()


def read_metadata(folder: str | os.PathLike) -> dict | None:
    """The recipe/report a folder was saved with, if it was saved by this project (a corrupt file is an error)."""
    path = Path(folder) / METADATA_NAME
    if not path.is_file():
        return None
    return read_json(path, f"The dit_demo metadata ({METADATA_NAME})")


def write_metadata(folder: Path, metadata: dict) -> None:
    write_json(folder / METADATA_NAME, metadata)


def saved_recipe(metadata: dict | None) -> str:
    """The recipe a pre-quantized folder was saved as ('prequantized' when it has no dit_demo metadata)."""
    return str((metadata or {}).get("recipe") or "prequantized")


def write_qmap(folder: Path, qmap: dict, *, smoothed: bool) -> None:
    """quanto's quantization map; a smoothed recipe's map carries `SMOOTHED_MARK` so quanto's loader refuses it."""
    if smoothed:
        qmap = {name: {**entry, "weights": f"{entry['weights']}{SMOOTHED_MARK}"} for name, entry in qmap.items()}
    write_json(folder / QMAP_NAME, qmap)


def read_qmap(folder: Path) -> tuple[dict, bool]:
    """quanto's quantization map without our mark, and whether it was marked smoothed."""
    path = folder / QMAP_NAME
    qmap = read_json(path, f"The quantization map ({QMAP_NAME})")
    if not all(isinstance(v, dict) and isinstance(v.get("weights"), str) for v in qmap.values()):
        raise CheckpointError(f"{path} is not a quanto quantization map.")
    marked = [v["weights"].endswith(SMOOTHED_MARK) for v in qmap.values()]
    if any(marked) and not all(marked):
        raise CheckpointError(f"{path} marks only some layers as smoothed: the folder is damaged; re-save it.")
    if not any(marked):
        return qmap, False
    return {k: {**v, "weights": v["weights"][: -len(SMOOTHED_MARK)]} for k, v in qmap.items()}, True


def publishable_config(path: Path, extra: dict | None = None) -> None:
    """No absolute local path (`_name_or_path`) in what may be published; add `extra` keys (quantization_config)."""
    config = read_json(path, f"The component config ({path.name})")
    config.pop("_name_or_path", None)
    config.update(extra or {})
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
