"""The "Spot the quantized" tab and its API: `/blind_round` (two images A and B and an opaque round id),
`/vote` (round id + "A"/"B": the answer and the tally) and `/tally` (votes per recipe).

Which side is quantized stays on the server (`dit_demo.app.blind.game`) until the vote; the images are plain PNGs,
upscaled pixel-exact, whose file names are content hashes. A visitor votes once per pair per page session."""

from __future__ import annotations

import hashlib
import io
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from html import escape
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
from PIL import Image

from dit_demo.app.blind.game import BlindGame, Outcome, for_service
from dit_demo.app.page.html import tile_image
from dit_demo.engine.quant.recipes import RECIPES
from dit_demo.errors import DemoError
from dit_demo.reports.tables import labelled_table

IMAGE_SIDE = 256  # shown size of a round's images (small models' pixels scaled up by whole multiples)

INTRO = """### Spot the quantized
The same class and seed, drawn by the full-precision reference and by one quantized recipe, in an order drawn on
the server. Which one is quantized? Pick it; the answer and how often visitors could tell, per recipe, follow.
Guessing picks right half the time."""


@contextmanager
def _messages() -> Iterator[None]:
    """Bad input becomes a message naming the field; the app keeps serving."""
    try:
        yield
    except DemoError as exc:
        raise gr.Error(str(exc), print_exception=False) from exc


class ImageFiles:
    """A round's images as PNG files named by their content, written once, atomically.

    Gradio saves a returned PIL image by rewriting its cache file in place, so two visitors shown the same (cached)
    pair at once could download a half-written file; a file path is copied into the cache under a temporary name
    and renamed, which is safe. The newest `keep` files are kept."""

    def __init__(self, folder: Path, keep: int = 1024):
        self.folder, self.keep = folder, keep
        self._lock = threading.Lock()

    def path(self, image: Image.Image) -> str:
        shown = tile_image(image, IMAGE_SIDE)
        buffer = io.BytesIO()
        shown.save(buffer, format="PNG")
        data = buffer.getvalue()
        target = self.folder / hashlib.sha256(data).hexdigest() / "image.png"  # the name tells nothing
        with self._lock:
            if not target.is_file():
                target.parent.mkdir(parents=True, exist_ok=True)
                staging = target.with_suffix(f".{uuid.uuid4().hex}.tmp")
                staging.write_bytes(data)
                os.replace(staging, target)
                self._prune()
        return str(target)

    def _prune(self) -> None:
        files = sorted(self.folder.glob("*/image.png"), key=lambda p: p.stat().st_mtime)
        for old in files[: max(0, len(files) - self.keep)]:
            old.unlink(missing_ok=True)


def tally_html(rows: list[dict]) -> str:
    """Per recipe: votes, how many picked the quantized image, and that share (50 % is what guessing gets)."""
    if not rows:
        return '<p class="dq-note" id="blind-tally-empty">No votes yet: be the first.</p>'
    body = [
        [
            RECIPES[r["recipe"]].label if r["recipe"] in RECIPES else r["recipe"],
            r["recipe"],
            r["votes"],
            f"{r['told_apart']} ({100 * r['share']:.0f} %)",
        ]
        for r in rows
    ]
    note = "Picked right: votes that named the quantized image. Guessing gets about 50 %; far above it, people can "
    note += "tell that recipe from the reference."
    columns = ["Recipe", "name", "votes", "picked right"]
    return labelled_table(columns, body, note=escape(note), table_id="blind-tally-table")


def answer_markdown(outcome: Outcome) -> str:
    r = outcome.round
    p = r.pair
    verdict = "Right" if outcome.correct else "Not this time"
    row = next((t for t in outcome.tally if t["recipe"] == p.recipe), None)
    text = (
        f"**{verdict}:** **{r.quantized}** was quantized (**{p.recipe}**, {RECIPES[p.recipe].label}); the other was "
        f"the full-precision reference. Class {escape(r.class_name)}, seed {p.seed}, {p.steps} steps, guidance "
        f"{p.guidance:g}."
    )
    if row:
        votes = f"{row['votes']} vote" + ("s" if row["votes"] != 1 else "")
        text += f"\n\nFor {p.recipe}: {row['told_apart']} of {votes} ({100 * row['share']:.0f} %) picked the "
        text += "quantized image."
    return text


def build(service) -> SimpleNamespace:
    """The tab (call inside the app's Blocks) and its endpoints; returns its components and `game`."""
    try:
        game = for_service(service)
    except DemoError as exc:  # a bad DIT_DEMO_BLIND_RECIPES: the tab says it, the rest of the app serves
        game = BlindGame(model=service.default_model, sample=lambda pair: (None, None), recipes=[])
        game.unavailable = str(exc)
    t = SimpleNamespace(game=game, files=ImageFiles(Path(service.output_dir) / "blind"))
    with gr.Tab("Spot the quantized", elem_id="tab-blind") as t.tab:
        gr.Markdown(INTRO + (f"\n\n⚠️ {game.unavailable}" if game.unavailable else ""), elem_id="blind-intro")
        bold = ["dq-bold"]  # Gradio's semibold face lacks capitals such as A and B (see style.py)
        t.start = gr.Button(
            "New round", variant="primary", elem_id="blind-new", elem_classes=bold, interactive=not game.unavailable
        )
        t.prompt = gr.Markdown(elem_id="blind-prompt")
        t.round_id = gr.Textbox(visible=False, label="round_id", elem_id="blind-round")
        with gr.Row(equal_height=True):
            common = {"type": "pil", "format": "png", "interactive": False, "buttons": [], "min_width": 140}
            t.a = gr.Image(label="A", elem_id="blind-a", **common)
            t.b = gr.Image(label="B", elem_id="blind-b", **common)
        with gr.Row():
            pick = {"interactive": False, "min_width": 140, "elem_classes": bold}
            t.pick_a = gr.Button("A is quantized", elem_id="blind-pick-a", **pick)
            t.pick_b = gr.Button("B is quantized", elem_id="blind-pick-b", **pick)
        t.answer = gr.Markdown(elem_id="blind-answer")
        t.tally = gr.HTML(elem_id="blind-tally", padding=False)
        _wire(game, t)  # inside the tab: anything rendered between two tabs would split the tab bar in two
    return t


def _wire(game: BlindGame, t: SimpleNamespace) -> None:
    def new_round(request: gr.Request):
        """Two images of one class and seed, A and B, one of them quantized, and the round's id for `/vote`."""
        with _messages():
            shown = game.new_round(request.session_hash if request else None)
        prompt = f"**{shown.class_name}**, seed {shown.pair.seed}: which one is quantized?"
        return t.files.path(shown.images[0]), t.files.path(shown.images[1]), shown.id, prompt

    def ready():
        pick = gr.update(interactive=True)
        return pick, pick, "", gr.update(label="A"), gr.update(label="B")

    def page_vote(choice: str):
        def vote_on_page(round_id: str, request: gr.Request):
            with _messages():
                outcome = game.vote(round_id, choice, request.session_hash if request else None)
            labels = {side: "quantized" if side == outcome.round.quantized else "reference" for side in "AB"}
            done = gr.update(interactive=False)
            return (answer_markdown(outcome), tally_html(outcome.tally), done, done,
                    gr.update(label=f"A: {labels['A']}"), gr.update(label=f"B: {labels['B']}"))  # fmt: skip

        return vote_on_page

    t.start.click(
        new_round, None, [t.a, t.b, t.round_id, t.prompt], api_name="blind_round", concurrency_limit=1
    ).success(ready, None, [t.pick_a, t.pick_b, t.answer, t.a, t.b], api_visibility="private")
    for button, side in ((t.pick_a, "A"), (t.pick_b, "B")):
        button.click(
            page_vote(side),
            t.round_id,
            [t.answer, t.tally, t.pick_a, t.pick_b, t.a, t.b],
            api_visibility="private",
            concurrency_limit=8,
            concurrency_id="vote",
        )
    t.tab.select(lambda: tally_html(game.tally()), None, t.tally, api_visibility="private")

    def vote(round_id: str, choice: str, request: gr.Request) -> dict:
        """Vote on a round: `choice` is "A" or "B", the image you take for the quantized one. Returns the answer
        (which side was quantized, recipe, class, seed) and the tally per recipe. Once per pair per session."""
        with _messages():
            return game.vote(round_id, choice, request.session_hash if request else None).as_dict()

    def tally() -> dict:
        """Votes per recipe of this app's model: how many, how many picked the quantized image, and that share."""
        with _messages():
            return {"model": game.model, "chance": 0.5, "recipes": game.tally()}

    gr.api(vote, api_name="vote", concurrency_limit=8, concurrency_id="vote")
    gr.api(tally, api_name="tally", concurrency_limit=8)
