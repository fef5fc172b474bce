"""Opt-in: the votes also go to a Hub dataset, committed in the background by huggingface_hub's `CommitScheduler`,
for a Space without persistent storage (its SQLite file is lost on restart; the dataset is not).

`DIT_DEMO_VOTES_DATASET=owner/name` turns it on. Each vote is appended as a JSON line to a file of this process
(`votes/<process id>.jsonl` in the repo) under the scheduler's lock; at start-up the dataset's lines are read
back into the SQLite store (rows already there are skipped). Without a token, offline, or when the Hub refuses, the
app logs one clear line and keeps its votes locally only: the mirror never stops the app.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Mapping
from pathlib import Path

from dit_demo.app.blind.store import VoteStore

log = logging.getLogger("dit_demo.app")

DATASET_ENV = "DIT_DEMO_VOTES_DATASET"  # owner/name of a Hub dataset repo that receives the votes
EVERY_ENV = "DIT_DEMO_VOTES_EVERY"  # minutes between background commits (default 5)
PATH_IN_REPO = "votes"


def dataset_repo(environ: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if environ is None else environ
    return env.get(DATASET_ENV, "").strip() or None


class HubMirror:
    """Appends votes to a folder that a `CommitScheduler` pushes to the dataset repo."""

    def __init__(self, scheduler, folder: Path):
        self.scheduler = scheduler
        self.file = folder / f"{uuid.uuid4().hex}.jsonl"

    def append(self, row: Mapping) -> None:
        with self.scheduler.lock:  # the scheduler never uploads a half-written line
            with self.file.open("a", encoding="utf-8") as out:
                out.write(json.dumps(dict(row), sort_keys=True) + "\n")


def restore(store: VoteStore, repo_id: str, token: str) -> int:
    """The dataset's votes into the local store (a fresh Space starts from the dataset's tally)."""
    from huggingface_hub import snapshot_download

    folder = Path(
        snapshot_download(repo_id, repo_type="dataset", allow_patterns=[f"{PATH_IN_REPO}/*.jsonl"], token=token)
    )
    rows = []
    for path in sorted((folder / PATH_IN_REPO).glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                rows.append(json.loads(line))
    return store.import_rows(rows)


def start(store: VoteStore, environ: Mapping[str, str] | None = None) -> HubMirror | None:
    """The mirror when `DIT_DEMO_VOTES_DATASET` names a repo and the Hub answers; else None, with a log line saying
    why and where the votes are kept instead. Never raises."""
    repo_id = dataset_repo(environ)
    if repo_id is None:
        return None
    local = f"votes are kept locally only, in {store.path}"
    try:
        from huggingface_hub import CommitScheduler, get_token

        token = get_token()
        if not token:
            log.warning("Votes: %s=%s is set but no Hugging Face token is available (HF_TOKEN): %s.", DATASET_ENV,
                        repo_id, local)  # fmt: skip
            return None
        env = os.environ if environ is None else environ
        every = float(env.get(EVERY_ENV, "").strip() or 5)
        folder = store.path.parent / "hub-votes"
        scheduler = CommitScheduler(
            repo_id=repo_id,
            repo_type="dataset",
            folder_path=folder,
            path_in_repo=PATH_IN_REPO,
            every=every,
            token=token,
            allow_patterns=["*.jsonl"],
        )
    except Exception as exc:  # offline, refused, bad repo id: the app serves on with local votes
        log.warning("Votes: the Hub dataset %s cannot be used (%s: %s): %s.", repo_id, type(exc).__name__, exc, local)
        return None
    try:
        restored = restore(store, repo_id, token)
    except Exception as exc:  # a new, empty or unreadable dataset: push to it, start from the local tally
        log.warning("Votes: could not read earlier votes from %s (%s: %s).", repo_id, type(exc).__name__, exc)
        restored = 0
    log.info("Votes: mirrored to the Hub dataset %s every %g min (%d restored from it); local copy %s.", repo_id,
             every, restored, store.path)  # fmt: skip
    return HubMirror(scheduler, folder)
