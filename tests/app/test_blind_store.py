"""The blind test's vote store: SQLite in the app's data folder, one vote per pair per session, no vote lost under
100 concurrent writers, everything still there after reopening, nothing personal stored; the opt-in Hub mirror
degrades to local-only with a log line instead of failing."""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

import pytest

from dit_demo.app.blind import mirror
from dit_demo.app.blind.store import (
    DATA_DIR_ENV,
    DB_NAME,
    DoubleVoteError,
    Pair,
    Vote,
    VoteStore,
    data_dir,
    voter_key,
)


def pair(recipe: str = "int8", seed: int = 0, class_id: int = 3) -> Pair:
    return Pair(model="embedded", recipe=recipe, class_id=class_id, seed=seed, steps=12, guidance=4.0)


def test_data_dir_env_then_space_storage_then_xdg(tmp_path: Path) -> None:
    storage = tmp_path / "data"
    assert data_dir({DATA_DIR_ENV: str(tmp_path / "mine")}, storage) == tmp_path / "mine"
    assert data_dir({"XDG_DATA_HOME": str(tmp_path / "xdg")}, storage) == tmp_path / "xdg" / "dit-demo"
    storage.mkdir()  # a Space with persistent storage mounts /data
    assert data_dir({"XDG_DATA_HOME": str(tmp_path / "xdg")}, storage) == storage / "dit-demo"
    assert data_dir({DATA_DIR_ENV: str(tmp_path / "mine")}, storage) == tmp_path / "mine"
    assert VoteStore.open_default({DATA_DIR_ENV: str(tmp_path / "mine")}).path == tmp_path / "mine" / DB_NAME


def test_tally_counts_votes_and_right_picks(tmp_path: Path) -> None:
    store = VoteStore(tmp_path / "votes.sqlite3")
    outcomes = {"int8": [True, True, False], "fp8": [False]}
    for recipe, picks in outcomes.items():
        for seed, correct in enumerate(picks):
            store.add(Vote(pair(recipe, seed), voter_key("session-1"), correct))
    tally = {row["recipe"]: row for row in store.tally("embedded")}
    assert tally["int8"]["votes"] == 3 and tally["int8"]["told_apart"] == 2
    assert tally["int8"]["share"] == pytest.approx(2 / 3)
    assert tally["fp8"]["votes"] == 1 and tally["fp8"]["told_apart"] == 0
    assert store.tally("another-model") == []


def test_one_vote_per_pair_per_session(tmp_path: Path) -> None:
    store = VoteStore(tmp_path / "votes.sqlite3")
    store.add(Vote(pair(), voter_key("session-1"), True))
    with pytest.raises(DoubleVoteError, match="round_id: this session already voted"):
        store.add(Vote(pair(), voter_key("session-1"), False))
    store.add(Vote(pair(), voter_key("session-2"), False))  # another session may vote on the same pair
    store.add(Vote(pair(seed=1), voter_key("session-1"), False))  # and the first on another pair
    assert store.count() == 3
    assert store.has_voted(voter_key("session-1"), pair()) and not store.has_voted(voter_key("session-3"), pair())


def test_100_concurrent_votes_lose_none_and_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "votes.sqlite3"
    store = VoteStore(path)
    barrier = threading.Barrier(100)
    errors: list[BaseException] = []

    def vote(i: int) -> None:
        try:
            barrier.wait()
            store.add(Vote(pair(seed=i % 10), voter_key(f"session-{i}"), i % 3 == 0))
        except BaseException as exc:  # collected: an exception in a thread would otherwise vanish
            errors.append(exc)

    threads = [threading.Thread(target=vote, args=(i,)) for i in range(100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert store.count() == 100
    store.close()

    reopened = VoteStore(path)  # a restart: a new store on the same file
    (row,) = reopened.tally("embedded")
    assert row["votes"] == 100 and row["told_apart"] == len([i for i in range(100) if i % 3 == 0])


def test_two_processes_worth_of_stores_share_the_file(tmp_path: Path) -> None:
    """Two stores on one file (two app processes on one data folder): each sees the other's votes."""
    path = tmp_path / "votes.sqlite3"
    first, second = VoteStore(path), VoteStore(path)
    first.add(Vote(pair(seed=1), voter_key("a"), True))
    second.add(Vote(pair(seed=2), voter_key("b"), False))
    with pytest.raises(DoubleVoteError):
        second.add(Vote(pair(seed=1), voter_key("a"), True))
    assert first.count() == second.count() == 2


def test_nothing_personal_is_stored(tmp_path: Path) -> None:
    path = tmp_path / "votes.sqlite3"
    store = VoteStore(path)
    session = "k3j4h5g6f7d8"
    store.add(Vote(pair(), voter_key(session), True))
    columns = [c[1] for c in sqlite3.connect(path).execute("PRAGMA table_info(votes)")]
    assert not {"ip", "host", "user_agent", "session", "username"} & set(columns)
    dump = "\n".join(sqlite3.connect(path).iterdump())
    assert session not in dump  # only a one-way hash of the random session id


def test_import_rows_skips_what_is_already_there(tmp_path: Path) -> None:
    store = VoteStore(tmp_path / "votes.sqlite3")
    vote = Vote(pair(), voter_key("a"), True)
    store.add(vote)
    others = [Vote(pair(seed=s), voter_key("b"), False).row() for s in range(3)]
    assert store.import_rows([vote.row(), *others, others[0]]) == 3
    assert store.count() == 4


def test_mirror_is_off_unless_a_dataset_is_named(tmp_path: Path) -> None:
    assert mirror.start(VoteStore(tmp_path / "votes.sqlite3"), environ={}) is None


def test_mirror_without_a_token_keeps_votes_local(tmp_path: Path, monkeypatch, caplog) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # no stored token either
    store = VoteStore(tmp_path / "votes.sqlite3")
    with caplog.at_level(logging.WARNING, logger="dit_demo.app"):
        assert mirror.start(store, environ={mirror.DATASET_ENV: "someone/votes"}) is None
    assert "no Hugging Face token" in caplog.text and str(store.path) in caplog.text


def test_mirror_offline_keeps_votes_local(tmp_path: Path, monkeypatch, caplog) -> None:
    from huggingface_hub import constants

    assert constants.HF_HUB_OFFLINE  # every test runs offline (tests/conftest.py)
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")
    store = VoteStore(tmp_path / "votes.sqlite3")
    with caplog.at_level(logging.WARNING, logger="dit_demo.app"):
        assert mirror.start(store, environ={mirror.DATASET_ENV: "someone/votes"}) is None
    assert "cannot be used" in caplog.text and "kept locally only" in caplog.text
    store.add(Vote(pair(), voter_key("a"), True))  # the store works on
    assert store.count() == 1
