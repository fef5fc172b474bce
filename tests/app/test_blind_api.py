"""The blind test through gradio_client, as API users play it: `/blind_round` gives two images and an opaque id (the
order is not in the answer), `/vote` answers with which side was quantized, `/tally` counts the votes; a second
vote on the same pair, an unknown round and a malformed choice get messages naming the field; 100 clients voting at
once lose no vote; the votes survive a restart of the app on the same data folder."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError
from helpers import serving
from PIL import Image

from app import build_demo
from dit_demo.app.blind import game as blind_game
from dit_demo.app.blind.store import DATA_DIR_ENV
from dit_demo.app.page.blind_tab import IMAGE_SIDE
from dit_demo.app.page.html import tile_image
from dit_demo.app.service import DemoService

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Iterator[Path]:
    """A data folder of its own, few seeds (most rounds hit the pair cache) and one recipe for the module."""
    folder = tmp_path_factory.mktemp("blind-data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(DATA_DIR_ENV, str(folder))
        patch.setenv(blind_game.SEEDS_ENV, "2")
        patch.setenv(blind_game.RECIPES_ENV, "int8")
        yield folder


@pytest.fixture(scope="module")
def app(data: Path):
    demo = build_demo(service=DemoService(device="cpu"))  # the app's default model
    with serving(demo) as url:
        yield demo, url


def play(client: Client) -> tuple[list[Image.Image], str]:
    a, b, round_id, prompt = client.predict(api_name="/blind_round")
    assert "int8" not in prompt and "quantized" in prompt  # the question, not the answer
    return [Image.open(a).convert("RGB"), Image.open(b).convert("RGB")], round_id


def votes(client: Client) -> int:
    tally = client.predict(api_name="/tally")
    return sum(row["votes"] for row in tally["recipes"] if row["recipe"] == "int8")


def test_a_vote_names_the_quantized_side_and_counts(app) -> None:
    demo, url = app
    client = Client(url, verbose=False)
    before = votes(client)
    images, round_id = play(client)
    answer = client.predict(round_id, "a", api_name="/vote")  # any case, stripped
    assert answer["recipe"] == "int8" and answer["choice"] == "A" and answer["quantized"] in ("A", "B")
    assert answer["correct"] == (answer["quantized"] == "A")

    # the side named quantized shows the recipe's image of that class and seed, the other the reference's
    class_id = next(i for i, name in demo.blind.id2label.items() if name == answer["class"])
    pair = blind_game.Pair(demo.blind.model, "int8", class_id, answer["seed"], answer["steps"], answer["guidance"])
    reference, quantized = (np.asarray(tile_image(x, IMAGE_SIDE).convert("RGB")) for x in demo.blind.images(pair))
    shown = dict(zip("AB", (np.asarray(i) for i in images)))
    other = "B" if answer["quantized"] == "A" else "A"
    assert np.array_equal(shown[answer["quantized"]], quantized) and np.array_equal(shown[other], reference)
    assert votes(client) == before + 1
    assert any(r["recipe"] == "int8" and r["votes"] == before + 1 for r in answer["tally"])


def test_both_orders_are_drawn(app) -> None:
    demo, url = app
    client = Client(url, verbose=False)
    sides = set()
    for _ in range(12):
        _, round_id = play(client)
        sides.add(demo.blind.round(round_id).quantized)
    assert sides == {"A", "B"}  # 12 fair draws all alike: 1 in 2048


def test_bad_votes_name_their_field_and_the_app_serves_on(app) -> None:
    _, url = app
    client = Client(url, verbose=False)
    _, round_id = play(client)
    client.predict(round_id, "B", api_name="/vote")
    with pytest.raises(AppError, match="round_id: this session already voted on this pair"):
        client.predict(round_id, "A", api_name="/vote")
    with pytest.raises(AppError, match="choice must be 'A' or 'B'"):
        client.predict(round_id, "left", api_name="/vote")
    with pytest.raises(AppError, match="round_id: unknown round"):
        client.predict("0" * 32, "A", api_name="/vote")
    with pytest.raises(AppError, match="round_id must be the 32-character id"):
        client.predict("'; DROP TABLE votes; --", "A", api_name="/vote")
    _, fresh = play(client)  # still serving, and a fresh pair takes a vote
    assert client.predict(fresh, "A", api_name="/vote")["recipe"] == "int8"


def test_another_session_may_vote_on_the_same_round(app) -> None:
    _, url = app
    first, second = Client(url, verbose=False), Client(url, verbose=False)
    _, round_id = play(first)
    first.predict(round_id, "A", api_name="/vote")
    assert second.predict(round_id, "A", api_name="/vote")["recipe"] == "int8"  # one vote per pair per session


def concurrent_votes(url: str, count: int) -> list[dict]:
    """`count` sessions (clients) each get a round, then all vote at once; returns the answers."""
    with ThreadPoolExecutor(16) as pool:  # a round of its own for each session
        clients = list(pool.map(lambda _: Client(url, verbose=False, httpx_kwargs={"timeout": 300}), range(count)))
        rounds = list(pool.map(lambda c: play(c)[1], clients))
    barrier = threading.Barrier(count)
    answers: list[dict] = []
    errors: list[BaseException] = []

    def vote(client: Client, round_id: str) -> None:
        try:
            barrier.wait()
            answers.append(client.predict(round_id, "A", api_name="/vote"))
        except BaseException as exc:  # collected: an exception in a thread would otherwise vanish
            errors.append(exc)

    threads = [threading.Thread(target=vote, args=pair) for pair in zip(clients, rounds)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    return answers


def test_concurrent_votes_lose_none_and_survive_a_restart(app, data: Path) -> None:
    """100 at once in the browser test (test_blind_browser); 20 here keep this module quick."""
    _, url = app
    before = votes(Client(url, verbose=False))
    assert len(concurrent_votes(url, 20)) == 20
    assert votes(Client(url, verbose=False)) == before + 20

    with serving(build_demo(service=DemoService(device="cpu"))) as restarted:  # a new app on the same data folder
        assert votes(Client(restarted, verbose=False)) == before + 20
