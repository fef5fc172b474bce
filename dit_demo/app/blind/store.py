"""Where the blind test's votes live: one SQLite file in the app's data folder, safe to share between threads and
processes, that survives restarts.

The data folder is `$DIT_DEMO_DATA_DIR` when set, else a Space's persistent storage (`/data/dit-demo` when `/data`
exists and is writable), else `$XDG_DATA_HOME/dit-demo` (`~/.local/share/dit-demo`). A vote stores what was shown
(model, recipe, class, seed, steps, guidance), whether the visitor told the images apart, the time, and a one-way
hash of Gradio's random per-page session id (so one session votes once per pair). Nothing personal: no IP address,
no user agent, no account.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from dit_demo.errors import InvalidRequestError

DATA_DIR_ENV = "DIT_DEMO_DATA_DIR"  # where the app keeps what must survive a restart (the votes)
SPACE_STORAGE = Path("/data")  # a Space's persistent storage, when the Space has it
DB_NAME = "votes.sqlite3"

SCHEMA = """
CREATE TABLE IF NOT EXISTS votes (
    id TEXT PRIMARY KEY,
    created TEXT NOT NULL,
    model TEXT NOT NULL,
    recipe TEXT NOT NULL,
    class_id INTEGER NOT NULL,
    seed INTEGER NOT NULL,
    steps INTEGER NOT NULL,
    guidance REAL NOT NULL,
    pair TEXT NOT NULL,
    voter TEXT NOT NULL,
    correct INTEGER NOT NULL CHECK (correct IN (0, 1)),
    UNIQUE (voter, pair)
);
CREATE INDEX IF NOT EXISTS votes_by_recipe ON votes (model, recipe);
"""
COLUMNS = ("id", "created", "model", "recipe", "class_id", "seed", "steps", "guidance", "pair", "voter", "correct")


class DoubleVoteError(InvalidRequestError):
    """This session already voted on this image pair."""


def data_dir(environ: Mapping[str, str] | None = None, space_storage: Path = SPACE_STORAGE) -> Path:
    """The app's data folder (see the module docstring for the order); not created here."""
    env = os.environ if environ is None else environ
    configured = env.get(DATA_DIR_ENV, "").strip()
    if configured:
        return Path(configured).expanduser()
    if space_storage.is_dir() and os.access(space_storage, os.W_OK):
        return space_storage / "dit-demo"
    base = env.get("XDG_DATA_HOME", "").strip() or str(Path.home() / ".local" / "share")
    return Path(base) / "dit-demo"


def voter_key(session_hash: str) -> str:
    """A one-way hash of Gradio's random session id: enough to refuse a second vote, nothing to trace back."""
    return hashlib.sha256(f"dit-demo-vote:{session_hash}".encode()).hexdigest()[:24]


@dataclass(frozen=True)
class Pair:
    """One image pair of the blind test: the reference and `recipe` at the same class, seed and settings."""

    model: str
    recipe: str
    class_id: int
    seed: int
    steps: int
    guidance: float

    @property
    def key(self) -> str:
        return json.dumps([self.model, self.recipe, self.class_id, self.seed, self.steps, self.guidance])


@dataclass(frozen=True)
class Vote:
    pair: Pair
    voter: str  # voter_key(session hash)
    correct: bool  # the visitor picked the quantized image
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))

    def row(self) -> dict:
        """The stored row (also the JSON line the Hub mirror writes)."""
        return {
            "id": self.id,
            "created": self.created,
            **asdict(self.pair),
            "pair": self.pair.key,
            "voter": self.voter,
            "correct": int(self.correct),
        }


class VoteStore:
    """Votes in SQLite (WAL, so readers never block the writer; a busy timeout, so processes take turns).

    One connection per store behind a lock: Gradio calls handlers from many threads at once."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA busy_timeout=30000")
            self._db.executescript(SCHEMA)

    @classmethod
    def open_default(cls, environ: Mapping[str, str] | None = None) -> VoteStore:
        return cls(data_dir(environ) / DB_NAME)

    def add(self, vote: Vote) -> None:
        """Store one vote; a second vote of the same session on the same pair raises `DoubleVoteError`."""
        row = vote.row()
        try:
            with self._lock:
                self._db.execute(
                    f"INSERT INTO votes ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
                    [row[c] for c in COLUMNS],
                )
        except sqlite3.IntegrityError as exc:
            if "UNIQUE" not in str(exc) or "votes.id" in str(exc):
                raise
            raise DoubleVoteError(
                f"round_id: this session already voted on this pair ({vote.pair.recipe}, class {vote.pair.class_id}, "
                f"seed {vote.pair.seed}); start a new round."
            ) from exc

    def import_rows(self, rows: Iterable[Mapping]) -> int:
        """Rows from elsewhere (the Hub mirror's JSON lines); rows already here (same id or same voter and pair)
        are skipped. Returns how many were new."""
        values = [[row[c] for c in COLUMNS] for row in rows]
        with self._lock:
            before = self._db.total_changes
            self._db.execute("BEGIN")
            self._db.executemany(
                f"INSERT OR IGNORE INTO votes ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})", values
            )
            self._db.execute("COMMIT")
            return self._db.total_changes - before

    def has_voted(self, voter: str, pair: Pair) -> bool:
        with self._lock:
            found = self._db.execute("SELECT 1 FROM votes WHERE voter = ? AND pair = ?", (voter, pair.key)).fetchone()
        return found is not None

    def voted_pairs(self, voter: str) -> set[str]:
        with self._lock:
            return {key for (key,) in self._db.execute("SELECT pair FROM votes WHERE voter = ?", (voter,))}

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM votes").fetchone()[0])

    def tally(self, model: str | None = None) -> list[dict]:
        """Per model and recipe: votes, how many picked the quantized image, and that share."""
        query = "SELECT model, recipe, COUNT(*), SUM(correct) FROM votes"
        query += " WHERE model = ?" if model is not None else ""
        query += " GROUP BY model, recipe ORDER BY model, recipe"
        with self._lock:
            rows = self._db.execute(query, (model,) if model is not None else ()).fetchall()
        return [
            {"model": m, "recipe": r, "votes": int(n), "told_apart": int(k), "share": int(k) / int(n)}
            for m, r, n, k in rows
        ]

    def close(self) -> None:
        with self._lock:
            self._db.close()
