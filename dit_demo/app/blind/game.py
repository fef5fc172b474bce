""" "Spot the quantized": rounds of the blind test and their votes.

A round is one image pair: the full-precision reference and one quantized recipe at the same class and seed, in
an order drawn on the server (`secrets`) and kept there; the page and the API get the two images as A and B and an
opaque round id, and learn which one was quantized only from the answer to their vote. Pairs are sampled with the
app's default model at few steps (`DIT_DEMO_BLIND_STEPS`, 12) and cached by (recipe, class, seed), so a round
costs two small samplings at most and usually none. Votes go to the `VoteStore` (and the Hub mirror when on).
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from PIL import Image

from dit_demo.app.blind import mirror
from dit_demo.app.blind.store import DoubleVoteError, Pair, Vote, VoteStore, voter_key
from dit_demo.engine.model.labels import display_name
from dit_demo.engine.quant.recipes import RECIPES, REFERENCE_RECIPE, recipes_for
from dit_demo.engine.request import DEFAULT_GUIDANCE
from dit_demo.errors import DemoError, InvalidRequestError

log = logging.getLogger("dit_demo.app")

RECIPES_ENV = "DIT_DEMO_BLIND_RECIPES"  # comma list of the recipes the blind test draws from
STEPS_ENV = "DIT_DEMO_BLIND_STEPS"  # sampling steps of a round's images
SEEDS_ENV = "DIT_DEMO_BLIND_SEEDS"  # seeds 0..N-1 are drawn (fewer: more cache hits, less variety)
DEFAULT_STEPS = 12
DEFAULT_SEEDS = 100
SIDES = ("A", "B")
ROUND_ID = re.compile(r"^[0-9a-f]{32}$")


def default_recipes(device) -> list[str]:
    """The recipes offered on this device whose first build is quick (no calibration pass, no kernel build)."""
    return [
        r for r in recipes_for(device) if not RECIPES[r].needs_calibration and RECIPES[r].build_note(device) is None
    ]


def configured_recipes(device, environ: Mapping[str, str] | None = None) -> list[str]:
    env = os.environ if environ is None else environ
    listed = [r.strip() for r in env.get(RECIPES_ENV, "").split(",") if r.strip()]
    unknown = [r for r in listed if r not in RECIPES or r == REFERENCE_RECIPE]
    if unknown:
        raise InvalidRequestError(f"{RECIPES_ENV}: unknown quantized recipe(s) {', '.join(unknown)}.")
    return listed or default_recipes(device)


@dataclass(frozen=True)
class Round:
    id: str
    pair: Pair
    class_name: str
    quantized: str  # "A" or "B": the side showing the quantized image (never sent before the vote)
    images: tuple[Image.Image, Image.Image]  # A, B


@dataclass(frozen=True)
class Outcome:
    """What a vote's answer says."""

    round: Round
    choice: str
    correct: bool
    tally: list[dict]

    def as_dict(self) -> dict:
        p = self.round.pair
        return {
            "correct": self.correct,
            "choice": self.choice,
            "quantized": self.round.quantized,
            "recipe": p.recipe,
            "class": self.round.class_name,
            "seed": p.seed,
            "steps": p.steps,
            "guidance": p.guidance,
            "tally": self.tally,
        }


class BlindGame:
    """Rounds (kept in memory, the newest `max_rounds`), a pair cache and the vote store, opened on first use."""

    def __init__(
        self,
        *,
        model: str,
        sample: Callable[[Pair], tuple[Image.Image, Image.Image]],
        recipes: Sequence[str],
        store_factory: Callable[[], VoteStore] = VoteStore.open_default,
        steps: int = DEFAULT_STEPS,
        seeds: int = DEFAULT_SEEDS,
        guidance: float = DEFAULT_GUIDANCE,
        max_rounds: int = 4096,
        max_pairs: int = 256,
    ):
        self.model = model
        self.recipes = list(recipes)
        self.steps, self.seeds, self.guidance = steps, seeds, guidance
        self._sample = sample
        self._store_factory = store_factory
        self._store: VoteStore | None = None
        self.mirror: mirror.HubMirror | None = None
        self._rounds: OrderedDict[str, Round] = OrderedDict()
        self._pairs: OrderedDict[str, tuple[Image.Image, Image.Image]] = OrderedDict()
        self.max_rounds, self.max_pairs = max_rounds, max_pairs
        self._lock = threading.Lock()  # rounds, pairs and opening the store
        self.id2label: dict[int, str] = {}
        self.unavailable: str | None = None  # why there are no rounds (the tab says it; votes and tally still work)
        from dit_demo.engine.model.resolver import resolve_source  # here: the resolver imports torch

        try:
            resolved = resolve_source(model)
        except DemoError as exc:
            self.unavailable = str(exc)
            return
        self.id2label = dict(resolved.id2label)
        if resolved.recipe is not None:
            self.unavailable = f"{model} is saved quantized ({resolved.recipe}); the blind test needs a full-precision "
            self.unavailable += "model as its reference."
        elif not self.recipes:
            self.unavailable = "no quantized recipe is configured for the blind test on this host."

    @property
    def store(self) -> VoteStore:
        with self._lock:
            if self._store is None:
                self._store = self._store_factory()
                self.mirror = mirror.start(self._store)
            return self._store

    # -- rounds -----------------------------------------------------------------------------------------------

    def _pick(self, voter: str) -> Pair:
        voted = self.store.voted_pairs(voter)
        for _ in range(200):
            pair = Pair(
                model=self.model,
                recipe=secrets.choice(self.recipes),
                class_id=int(secrets.choice(sorted(self.id2label))),
                seed=secrets.randbelow(self.seeds),
                steps=self.steps,
                guidance=float(self.guidance),
            )
            if pair.key not in voted:
                return pair
        raise InvalidRequestError("session: this session has voted on nearly every pair; reload the page.")

    def images(self, pair: Pair) -> tuple[Image.Image, Image.Image]:
        """(reference, quantized) for `pair`, sampled once and cached."""
        with self._lock:
            cached = self._pairs.get(pair.key)
            if cached is not None:
                self._pairs.move_to_end(pair.key)
                return cached
        made = self._sample(pair)
        with self._lock:
            self._pairs[pair.key] = made
            while len(self._pairs) > self.max_pairs:
                self._pairs.popitem(last=False)
        return made

    def new_round(self, session_hash: str | None) -> Round:
        """A fresh pair this session has not voted on, in an order drawn here."""
        if self.unavailable:
            raise InvalidRequestError(f"The blind test is off: {self.unavailable}")
        voter = voter_key(_session(session_hash))
        pair = self._pick(voter)
        reference, quantized = self.images(pair)
        side = secrets.choice(SIDES)
        shown = (quantized, reference) if side == "A" else (reference, quantized)
        name = display_name(self.id2label, pair.class_id)
        made = Round(id=secrets.token_hex(16), pair=pair, class_name=name, quantized=side, images=shown)
        with self._lock:
            self._rounds[made.id] = made
            while len(self._rounds) > self.max_rounds:
                self._rounds.popitem(last=False)
        return made

    # -- votes ------------------------------------------------------------------------------------------------

    def round(self, round_id: object) -> Round:
        if not isinstance(round_id, str) or not ROUND_ID.match(round_id.strip()):
            raise InvalidRequestError(
                f"round_id must be the 32-character id a round was given, got {round_id!r:.60}; start a new round."
            )
        with self._lock:
            found = self._rounds.get(round_id.strip())
        if found is None:
            raise InvalidRequestError(
                f"round_id: unknown round {round_id.strip()!r} (expired, from before a restart, or mistyped); start "
                "a new round."
            )
        return found

    def vote(self, round_id: object, choice: object, session_hash: str | None) -> Outcome:
        """Record which image the visitor took for the quantized one; refuses a second vote on the same pair."""
        picked = choice.strip().upper() if isinstance(choice, str) else None
        if picked not in SIDES:
            raise InvalidRequestError(
                f"choice must be 'A' or 'B' (the image you think is quantized), got {choice!r:.40}."
            )
        shown = self.round(round_id)
        vote = Vote(pair=shown.pair, voter=voter_key(_session(session_hash)), correct=picked == shown.quantized)
        try:
            self.store.add(vote)
        except DoubleVoteError as exc:
            p = shown.pair
            raise DoubleVoteError(
                f"round_id: this session already voted on this pair ({p.recipe}, {shown.class_name}, seed {p.seed}); "
                "start a new round."
            ) from exc
        if self.mirror is not None:
            try:
                self.mirror.append(vote.row())
            except OSError as exc:  # the local store has it; the dataset misses one line
                log.warning("Votes: could not write the Hub mirror's file (%s); the vote is stored locally.", exc)
        return Outcome(shown, picked, vote.correct, self.tally())

    def tally(self) -> list[dict]:
        """Per recipe of this app's model: votes, how many picked the quantized image, and that share."""
        return self.store.tally(self.model)


def _session(session_hash: str | None) -> str:
    if not session_hash:
        raise InvalidRequestError("session: this call has no Gradio session; call it through the page or the API.")
    return session_hash


def sampler(service) -> Callable[[Pair], tuple[Image.Image, Image.Image]]:
    """Pairs from the app's service: the reference and the recipe at the pair's class, seed, steps, guidance."""
    from dit_demo.app.inputs import Request
    from dit_demo.engine.request import SamplingRequest

    def sample(pair: Pair) -> tuple[Image.Image, Image.Image]:
        sampling = SamplingRequest.create([pair.class_id], seed=pair.seed, steps=pair.steps,
                                          guidance_scale=pair.guidance, scheduler="dpm")  # fmt: skip
        images = service.sample(Request(pair.model, sampling, [pair.recipe]))
        return images[REFERENCE_RECIPE][0], images[pair.recipe][0]

    return sample


def for_service(service, environ: Mapping[str, str] | None = None) -> BlindGame:
    """The blind test of an app: its default model, device and the environment's settings."""
    from dit_demo.app.config import env_int

    return BlindGame(
        model=service.default_model,
        sample=sampler(service),
        recipes=configured_recipes(service.device, environ),
        steps=env_int(STEPS_ENV, DEFAULT_STEPS, environ) or DEFAULT_STEPS,
        seeds=max(1, env_int(SEEDS_ENV, DEFAULT_SEEDS, environ) or DEFAULT_SEEDS),
    )
