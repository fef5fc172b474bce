"""Reference vs one recipe as a `gr.ImageSlider` (drag to compare), next to the tiles and the difference maps.

A chooser picks the recipe and image (class and seed); the slider gets the very images the tiles show, scaled up
the same way (whole multiples, nearest neighbour, so pixels stay exact) and sent as PNG (the component's default,
WebP, is lossy and would blur the differences it is there to show)."""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr

from dit_demo.app.page.html import tile_image
from dit_demo.app.page.views import ComparisonState, recipe_label

SLIDER_SIDE = 384  # smallest side of the slider's images


def components() -> SimpleNamespace:
    """The chooser and the slider, hidden until the first comparison (call inside the results column)."""
    s = SimpleNamespace()
    s.pick = gr.Dropdown(label="Drag to compare: reference vs", choices=[], visible=False, elem_id="slider-pick")
    s.slider = gr.ImageSlider(
        type="pil", format="png", visible=False, interactive=False, max_height=SLIDER_SIDE, elem_id="slider",
        buttons=["fullscreen"], slider_position=50,
    )  # fmt: skip
    return s


def choices(state: ComparisonState) -> list[tuple[str, str]]:
    """(label, value) per quantized recipe and image: "int8 · three (seed 0)" → "int8|0"."""
    comparison = state.comparison
    ref = comparison.reference
    return [
        (f"{recipe} · {name} (seed {seed})", f"{recipe}|{i}")
        for recipe in comparison.results
        if recipe != comparison.reference_recipe
        for i, (name, seed) in enumerate(zip(ref.class_names, ref.seeds))
    ]


def pair(state: ComparisonState | None, pick: str | None):
    """The slider's value and label for `pick` (None: nothing to show)."""
    if state is None or not pick or "|" not in pick:
        return gr.update(value=None)
    comparison = state.comparison
    recipe, _, index = pick.partition("|")
    if recipe not in comparison.results or not index.isdigit() or int(index) >= len(comparison.reference.images):
        return gr.update(value=None)
    i = int(index)
    rows = {row["recipe"]: row for row in state.rows}
    reference = recipe_label(rows[comparison.reference_recipe], comparison.reference_recipe)
    ref = comparison.reference
    images = (tile_image(ref.images[i], SLIDER_SIDE), tile_image(comparison.results[recipe].images[i], SLIDER_SIDE))
    label = f"left: {reference} · right: {recipe} · {ref.class_names[i]} (seed {ref.seeds[i]})"
    return gr.update(value=images, label=label, visible=True)


def first_view(state: ComparisonState | None):
    """After a run: the chooser (first quantized recipe, first image picked) and its slider; hidden when the run
    has no quantized recipe (a pre-quantized source)."""
    options = choices(state) if state is not None else []
    if not options:
        return gr.update(visible=False, choices=[], value=None), gr.update(visible=False, value=None)
    value = options[0][1]
    return gr.update(visible=True, choices=options, value=value), pair(state, value)


def wire(event, state, s: SimpleNamespace) -> None:
    """Refresh after `event` (a run's views); the chooser's own changes redraw the slider."""
    event.success(first_view, state, [s.pick, s.slider], api_visibility="private")
    s.pick.input(pair, [state, s.pick], s.slider, api_visibility="private")
