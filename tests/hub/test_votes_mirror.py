"""The blind test's opt-in Hub mirror, with the real huggingface_hub client (`CommitScheduler`, `snapshot_download`)
against the in-process Hub stand-in: votes reach the dataset as JSON lines, a fresh store (a Space restarted without
persistent storage) reads them back, and a token that may not write leaves the app local-only with a log line."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from stand_in_env import ALICE, BOB_READ

from dit_demo.app.blind import mirror
from dit_demo.app.blind.store import Pair, Vote, VoteStore, voter_key

ENV = {mirror.DATASET_ENV: "alice/dit-votes", mirror.EVERY_ENV: "60"}  # commits only when the test triggers them


def vote(seed: int, correct: bool) -> Vote:
    return Vote(Pair("embedded", "int8", 3, seed, 12, 4.0), voter_key(f"session-{seed}"), correct)


def test_votes_reach_the_dataset_and_come_back(hub_env, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_TOKEN", ALICE)
    store = VoteStore(tmp_path / "space-1" / "votes.sqlite3")
    first = mirror.start(store, environ=ENV)
    assert first is not None
    cast = [vote(seed, seed % 2 == 0) for seed in range(5)]
    for v in cast:
        store.add(v)
        first.append(v.row())
    first.scheduler.trigger().result()
    first.scheduler.stop()

    files = hub_env.files("alice/dit-votes", repo_type="dataset")
    pushed = [data for name, data in files.items() if name.startswith("votes/") and name.endswith(".jsonl")]
    lines = [json.loads(line) for data in pushed for line in data.splitlines()]
    assert sorted(row["id"] for row in lines) == sorted(v.id for v in cast)
    assert all("session" not in json.dumps(row) for row in lines)  # only the one-way voter hash

    fresh = VoteStore(tmp_path / "space-2" / "votes.sqlite3")  # restarted without persistent storage
    second = mirror.start(fresh, environ=ENV)
    assert second is not None
    second.scheduler.stop()
    assert fresh.tally() == store.tally() and fresh.count() == 5


def test_a_read_only_token_keeps_votes_local(hub_env, monkeypatch, tmp_path: Path, caplog) -> None:
    monkeypatch.setenv("HF_TOKEN", BOB_READ)
    store = VoteStore(tmp_path / "votes.sqlite3")
    with caplog.at_level(logging.WARNING, logger="dit_demo.app"):
        assert mirror.start(store, environ={**ENV, mirror.DATASET_ENV: "bob/votes"}) is None
    assert "cannot be used" in caplog.text and "kept locally only" in caplog.text
