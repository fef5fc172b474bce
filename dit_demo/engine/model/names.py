"""The names of model sources and samplers, standard library only.

Kept apart from `sources` (which imports diffusers) so the app's page, its input checks and `--help` can name them
before torch is imported; `sources` builds its tables from these and tests/engine/model/test_sources.py checks that
the two agree.
"""

from __future__ import annotations

SCHEDULER_NAMES = ("dpm", "ddim", "euler")  # the samplers a request may name (classes: sources.SCHEDULERS)
RANDOM_SOURCES = {"dit-xl-2-256-random": 256, "dit-xl-2-512-random": 512, "tiny-random": 16}  # name → image side
