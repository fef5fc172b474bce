"""Tokens and client settings shared by the Hub tests (a module, not conftest, so imports are unambiguous)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_hub import User
from huggingface_hub import constants

ALICE, BOB_READ, CAROL = "hf_alice_write_token_123", "hf_bob_read_token_456", "hf_carol_write_token_789"
TOKENS = {ALICE: User("alice", orgs=("dit-org",)), BOB_READ: User("bob", role="read"), CAROL: User("carol")}


def point_client_at(monkeypatch: pytest.MonkeyPatch, endpoint: str, cache: Path) -> None:
    """huggingface_hub online against `endpoint` for one test; monkeypatch undoes it (other tests stay offline)."""
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)  # hf_xet is installed; the stand-in speaks LFS
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(cache / "no-stored-token"))  # never a real login
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
