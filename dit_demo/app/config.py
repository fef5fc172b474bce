"""The app's settings: environment variables, defaults and paths, defined once.

Standard library only at import time, so `python app.py --help` and the Hub scripts that name `MODEL_ENV` answer
without importing torch or gradio.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GALLERY_DIR = ROOT / "gallery" / "embedded"
BENCH_README = ROOT / "bench" / "README.md"

MODEL_ENV = "DIT_DEMO_MODEL"  # the default model (a Space variable sets it)
QUEUE_SIZE_ENV = "DIT_DEMO_QUEUE_SIZE"  # requests waiting in Gradio's queue at most
MAX_VARIANTS_ENV = "DIT_DEMO_MAX_VARIANTS"  # built variants kept in memory at most
CPU_THREADS_ENV = "DIT_DEMO_CPU_THREADS"  # sampling threads on CPU (default: see service.cpu_threads)
DEFAULT_QUEUE_SIZE = 64
DEFAULT_MAX_VARIANTS = 4

FALLBACK_MODEL = "tiny-random"  # only until the embedded digits model is present
DEFAULT_RECIPES = ["int8"]
UI_MAX_STEPS = 100
UI_MAX_GUIDANCE = 15.0
DIFF_GAIN = 8.0
COMPILE_MODE = "reduce-overhead"
STRIP_TILE = 128  # smallest tile side in the downloadable PNG: 16-pixel digits are scaled up, pixel-exact
PREVIEW_SIDE = 256  # smallest side of the on-page slider and difference views


def _environ(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def env_int(name: str, default: int | None, environ: Mapping[str, str] | None = None) -> int | None:
    """A whole-number setting from the environment (`default` when unset or blank)."""
    value = _environ(environ).get(name, "").strip()
    return int(value) if value else default


def queue_size(environ: Mapping[str, str] | None = None) -> int:
    return env_int(QUEUE_SIZE_ENV, DEFAULT_QUEUE_SIZE, environ)


def max_variants(environ: Mapping[str, str] | None = None) -> int:
    return env_int(MAX_VARIANTS_ENV, DEFAULT_MAX_VARIANTS, environ)


def embedded_available() -> bool:
    """The shipped digits model is present (it is the default whenever it is)."""
    from dit_demo.engine import sources

    return (sources.EMBEDDED_MODEL_DIR / "model_index.json").is_file()


def default_model(model: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """`--model`, then `DIT_DEMO_MODEL`, then the embedded digits model (or `tiny-random` until it exists)."""
    if model and model.strip():
        return model.strip()
    from_env = _environ(environ).get(MODEL_ENV, "").strip()
    if from_env:
        return from_env
    return "embedded" if embedded_available() else FALLBACK_MODEL
