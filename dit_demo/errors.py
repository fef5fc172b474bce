"""Exceptions with messages meant for people: every user-facing failure is one of these."""

from __future__ import annotations


class DemoError(Exception):
    """Base class: a clear, actionable message, never a bare traceback."""


class InvalidRequestError(DemoError, ValueError):
    """Bad input from a user: unknown class, out-of-range steps/seed/guidance, too-large batch, unknown recipe."""


class ModelLoadError(DemoError, OSError):
    """A model source could not be resolved or loaded (unreachable Hub, missing folder, wrong layout)."""


class CheckpointError(ModelLoadError):
    """A checkpoint exists but is foreign, truncated or corrupt: refusing it beats running random weights."""
