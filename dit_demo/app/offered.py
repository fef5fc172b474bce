"""Which models, classes and recipes the app offers, read from a source without loading weights.

Everything here is cheap: class names come from `model_index.json` (a folder, the embedded model, or a Hub repo
already in the local cache) and a pre-quantized source is told by its qmap and saved metadata.
"""

from __future__ import annotations

import json
from pathlib import Path

from dit_demo.app.config import embedded_available
from dit_demo.embedded.classifier import DIGIT_NAMES
from dit_demo.engine.model.labels import choices, display_name, imagenet_id2label
from dit_demo.engine.model.serialization import read_metadata
from dit_demo.engine.model.sources import KNOWN_HUB_MODELS, QMAP_NAME, SourceInfo, resolve_source
from dit_demo.engine.quant.recipes import QUANTIZED_RECIPES, REFERENCE_RECIPE
from dit_demo.engine.request import DEFAULT_GUIDANCE, DEFAULT_STEPS
from dit_demo.errors import DemoError

COMPARE_RECIPES: list[str] = list(QUANTIZED_RECIPES)  # the reference is always shown

SOURCE_KINDS = {
    "embedded": "the shipped digits DiT (16×16, trained on scikit-learn digits)",
    "random": "seeded random weights (draws noise: for speed/memory only)",
    "folder": "a local pipeline folder",
    "hub": "a Hugging Face Hub repo (downloaded on first use)",
}


def model_choices(current: str) -> list[str]:
    """What the model picker offers; any other folder or Hub id can be typed in."""
    options = [current]
    if embedded_available():
        options.append("embedded")
    options += [*KNOWN_HUB_MODELS, "dit-xl-2-256-random", "tiny-random"]
    return list(dict.fromkeys(options))


def _resolve(source: str) -> SourceInfo | None:
    try:
        return resolve_source(source)
    except DemoError:
        return None


def _id2label_from_index(path: Path) -> dict[int, str] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8")).get("id2label")
    except (OSError, ValueError):
        return None
    return {int(k): v for k, v in data.items()} if data else None


def _hub_cached_file(repo_id: str, filename: str) -> str | None:
    """A file of a Hub repo if it is already in the local cache (no network)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo_id, filename)
    except Exception:  # malformed ids and cache oddities: just "not known"
        return None
    return found if isinstance(found, str) else None


def peek_id2label(source: str) -> tuple[dict[int, str], bool]:
    """A source's class names without loading weights, and whether they are authoritative.

    Folders and the embedded model carry them in model_index.json; Hub repos only if cached; anything else is
    assumed to be ImageNet (every DiT checkpoint on the Hub is), which is then not authoritative.
    """
    info = _resolve(source)
    if info is None:
        return imagenet_id2label(), False
    if info.kind == "random":
        return imagenet_id2label(), True
    if info.path:
        index: str | Path | None = Path(info.path) / "model_index.json"
    else:
        index = _hub_cached_file(info.source, "model_index.json")
    labels = _id2label_from_index(Path(index)) if index else None
    return (labels, True) if labels else (imagenet_id2label(), False)


def class_choices(source: str) -> list[str]:
    """Picker entries ("207: golden retriever") for the model's own classes."""
    return choices(peek_id2label(source)[0])


def default_classes(source: str) -> list[str]:
    """Two digits for the digits model, a golden retriever for ImageNet."""
    id2label, _ = peek_id2label(source)
    entries = choices(id2label)
    if DIGIT_NAMES == tuple(display_name(id2label, i) for i in sorted(id2label)):
        return [entries[3], entries[7]]
    return [entries[207]] if len(entries) > 207 else entries[:1]


def example_rows(source: str) -> list[list]:
    """gr.Examples rows (classes, seed, steps, guidance, recipes) valid for the default model."""
    id2label, _ = peek_id2label(source)
    entries = choices(id2label)
    if len(entries) >= 1000:
        picks = [[entries[207]], [entries[88], entries[279]], [entries[980]]]
    else:
        picks = [entries[i : i + 2] for i in range(0, min(len(entries), 9), 4)]
    recipe_sets = [["int8"], ["int8", "int8-a8"], ["int8", "int4"]]
    return [[p, i, DEFAULT_STEPS, DEFAULT_GUIDANCE, recipe_sets[i % 3]] for i, p in enumerate(picks)]


def prequantized_recipe(source: str) -> str | None:
    """The recipe a pre-quantized folder or cached Hub repo was saved with (None for full-precision sources)."""
    info = _resolve(source)
    folder: Path | None = None
    if info is not None and info.kind == "folder" and info.prequantized:
        folder = Path(info.path)
    elif info is not None and info.kind == "hub":
        qmap = _hub_cached_file(info.source, f"transformer/{QMAP_NAME}")
        folder = Path(qmap).parent.parent if qmap else None
    if folder is None:
        return None
    return ((read_metadata(folder) or {}).get("recipe")) or "prequantized"


def model_note(source: str) -> str:
    """One line under the model picker: what the source is and what comparing it means."""
    source = (source or "").strip()
    try:
        info = resolve_source(source)
        saved = prequantized_recipe(source)  # a corrupt metadata file is a CheckpointError: said here, not raised
    except DemoError as exc:
        return f"⚠️ {exc}"
    id2label, _ = peek_id2label(source)
    note = f"**{info.source}**: {SOURCE_KINDS[info.kind]}; {len(id2label)} classes."
    if saved:
        note += f" Pre-quantized ({saved}): shown alone, no {REFERENCE_RECIPE} reference to compare against."
    if info.kind == "random" and not embedded_available():
        note += " (The embedded digits model is not in this checkout yet; it becomes the default once it is.)"
    return note


def on_model_change(source: str) -> tuple[dict, str]:
    """New model → its own class list (and a valid default selection) plus a note about the source."""
    import gradio as gr

    return gr.update(choices=class_choices(source), value=default_classes(source)), model_note(source)
