"""Which models, classes and recipes the app offers, read from a resolved source without loading weights.

Everything here is cheap: `resolve_source` reads class names and a saved recipe from `model_index.json` and
`dit_demo.json` (a folder, the embedded model, or a Hub repo already in the local cache). Each helper takes the
source string the page sends or the `ResolvedSource` a caller already holds, and resolves a string once.
"""

from __future__ import annotations

from dit_demo.app.config import embedded_available
from dit_demo.engine.model.labels import DIGIT_NAMES, choices, display_name, imagenet_id2label
from dit_demo.engine.model.resolver import KNOWN_HUB_MODELS, ResolvedSource, resolve_source
from dit_demo.engine.model.shipped import mnist_available
from dit_demo.engine.quant.recipes import QUANTIZED_RECIPES, REFERENCE_RECIPE, recipes_for
from dit_demo.engine.request import DEFAULT_GUIDANCE, DEFAULT_STEPS
from dit_demo.errors import DemoError

COMPARE_RECIPES: list[str] = list(QUANTIZED_RECIPES)  # the reference is always shown


def offered_recipes(device) -> list[str]:
    """The recipes the page offers on this host: those that run on its device (int8-dynamic: CPU hosts only)."""
    return recipes_for(device)


SOURCE_KINDS = {
    "embedded": "the shipped digits DiT (16×16, trained on scikit-learn digits)",
    "mnist": "the shipped MNIST DiT (28×28, trained on 4,500 MNIST digits; CC BY-SA 3.0)",
    "random": "seeded random weights (draws noise: for speed/memory only)",
    "folder": "a local pipeline folder",
    "prequantized": "a local pipeline folder saved quantized",
    "hub": "a Hugging Face Hub repo (downloaded on first use)",
}


def model_choices(current: str) -> list[str]:
    """What the model picker offers; any other folder or Hub id can be typed in."""
    options = [current]
    if embedded_available():
        options += [*(["mnist"] if mnist_available() else []), "embedded"]
    options += [*KNOWN_HUB_MODELS, "dit-xl-2-256-random", "tiny-random"]
    return list(dict.fromkeys(options))


def _resolve(source: str | ResolvedSource) -> ResolvedSource | None:
    try:
        return resolve_source(source)
    except DemoError:
        return None


def peek_id2label(source: str | ResolvedSource) -> tuple[dict[int, str], bool]:
    """A source's class names without loading weights, and whether they are authoritative.

    Folders and the embedded model carry them in model_index.json; Hub repos only if cached; anything else is
    assumed to be ImageNet (every DiT checkpoint on the Hub is), which is then not authoritative.
    """
    resolved = _resolve(source)
    if resolved is None:
        return imagenet_id2label(), False
    return dict(resolved.id2label), resolved.labels_known


def class_choices(source: str | ResolvedSource) -> list[str]:
    """Picker entries ("207: golden retriever") for the model's own classes."""
    return choices(peek_id2label(source)[0])


def default_classes(source: str | ResolvedSource) -> list[str]:
    """Two digits for the digits model, a golden retriever for ImageNet."""
    id2label, _ = peek_id2label(source)
    entries = choices(id2label)
    if DIGIT_NAMES == tuple(display_name(id2label, i) for i in sorted(id2label)):
        return [entries[3], entries[7]]
    return [entries[207]] if len(entries) > 207 else entries[:1]


def example_rows(source: str | ResolvedSource) -> list[list]:
    """gr.Examples rows (classes, seed, steps, guidance, recipes) valid for the default model."""
    id2label, _ = peek_id2label(source)
    entries = choices(id2label)
    if len(entries) >= 1000:
        picks = [[entries[207]], [entries[88], entries[279]], [entries[980]]]
    else:
        picks = [entries[i : i + 2] for i in range(0, min(len(entries), 9), 4)]
    recipe_sets = [["int8"], ["int8", "int8-a8"], ["int8", "int4"]]
    return [[p, i, DEFAULT_STEPS, DEFAULT_GUIDANCE, recipe_sets[i % 3]] for i, p in enumerate(picks)]


def example_label(row: list) -> str:
    """One example as a short button text (`3: three, 7: seven · seed 0 · int8`): a labelled example is a button
    that wraps on a phone, where Gradio's five-column example table ran 112 px past a 390 px screen."""
    classes, seed, _steps, _guidance, recipes = row
    return f"{', '.join(classes)} · seed {seed} · {', '.join(recipes)}"


def prequantized_recipe(source: str | ResolvedSource) -> str | None:
    """The recipe a pre-quantized folder or cached Hub repo was saved with (None for full precision); a source that
    cannot be resolved (a corrupt dit_demo.json included) raises its `DemoError`."""
    return resolve_source(source).recipe


def model_note(source: str | ResolvedSource) -> str:
    """One line under the model picker: what the source is and what comparing it means."""
    try:
        resolved = resolve_source(source)
    except DemoError as exc:  # a corrupt metadata file is a CheckpointError: said here, not raised
        return f"⚠️ {exc}"
    kind = "mnist" if resolved.kind == "embedded" and resolved.name == "mnist" else resolved.kind
    note = f"**{resolved.name}**: {SOURCE_KINDS[kind]}; {len(resolved.id2label)} classes."
    if resolved.recipe:
        note += f" Pre-quantized ({resolved.recipe}): shown alone, no {REFERENCE_RECIPE} reference to compare against."
    if resolved.kind == "random" and not embedded_available():
        note += " (The embedded digits model is not in this checkout yet; it becomes the default once it is.)"
    return note


def on_model_change(source: str) -> tuple[dict, str]:
    """New model → its own class list (and a valid default selection) plus a note about the source."""
    import gradio as gr

    resolved = _resolve(source) or source  # resolved once for the three answers; a bad one is noted by model_note
    return gr.update(choices=class_choices(resolved), value=default_classes(resolved)), model_note(resolved)
