"""The app's settings: environment variables, defaults and paths, defined once.

Standard library only at import time, so `python app.py --help` and the Hub scripts that name `MODEL_ENV` answer
without importing torch or gradio.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GALLERY_DIR = ROOT / "gallery" / "embedded"
BENCH_DIR = ROOT / "bench"

MODEL_ENV = "DIT_DEMO_MODEL"  # the default model (a Space variable sets it)
QUEUE_SIZE_ENV = "DIT_DEMO_QUEUE_SIZE"  # requests waiting in Gradio's queue at most
MAX_VARIANTS_ENV = "DIT_DEMO_MAX_VARIANTS"  # built variants kept in memory at most
CPU_THREADS_ENV = "DIT_DEMO_CPU_THREADS"  # CPU threads (default: see dit_demo.engine.threads, which reads it)
TIMING_ROUNDS_ENV = "DIT_DEMO_TIMING_ROUNDS"  # timed runs per recipe behind each speed verdict (first run included)
CALIBRATION_STEPS_ENV = "DIT_DEMO_CALIBRATION_STEPS"  # sampling steps of each calibration run (int8-a8 recipes)
HOSTED_ENV = "DIT_DEMO_HOSTED"  # 1 / 0: hosted mode on / off (default: on when SPACE_ID is set, i.e. on a Space)
SPACE_ENV = "SPACE_ID"  # set by Hugging Face Spaces
ALLOWED_MODELS_ENV = "DIT_DEMO_ALLOWED_MODELS"  # hosted mode: comma list of the models a visitor may pick
MAX_IMAGES_ENV = "DIT_DEMO_MAX_IMAGES"  # hosted mode: images (classes) per request
MAX_STEP_IMAGES_ENV = "DIT_DEMO_MAX_STEP_IMAGES"  # hosted mode: steps × images per request
MAX_SECONDS_ENV = "DIT_DEMO_MAX_SECONDS"  # hosted mode: sampling seconds per request (all recipes together)
DEFAULT_QUEUE_SIZE = 128  # 100 visitors at once are all queued, not turned away
DEFAULT_MAX_VARIANTS = 4
DEFAULT_TIMING_ROUNDS = 3  # one timing on a shared machine flipped verdicts between identical requests
HOSTED_MAX_IMAGES = 8
HOSTED_MAX_STEP_IMAGES = 400  # e.g. 8 images × 50 steps, or 4 × 100
HOSTED_MAX_SECONDS = 60.0

FALLBACK_MODEL = "tiny-random"  # only until the embedded digits model is present
DEFAULT_RECIPES = ["int8"]
UI_MAX_STEPS = 100
UI_MAX_GUIDANCE = 15.0
COMPILE_MODE = "reduce-overhead"
COMPILE_LABEL = "compile (GPU): torch.compile / CUDA graphs, warm-up reported separately"
STRIP_TILE = 128  # smallest tile side in the downloadable PNG: 16-pixel digits are scaled up, pixel-exact


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
    from dit_demo.engine.model import resolver

    return (resolver.EMBEDDED_MODEL_DIR / "model_index.json").is_file()


def default_model(model: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """`--model`, then `DIT_DEMO_MODEL`, then the embedded model (MNIST when present, else the digits model; or
    `tiny-random` until one exists)."""
    if model and model.strip():
        return model.strip()
    from_env = _environ(environ).get(MODEL_ENV, "").strip()
    if from_env:
        return from_env
    from dit_demo.engine.model.shipped import default_source

    return default_source() if embedded_available() else FALLBACK_MODEL


def env_flag(name: str, environ: Mapping[str, str] | None = None) -> bool | None:
    """A yes/no setting (1/true/yes/on or 0/false/no/off); None when unset or blank."""
    value = _environ(environ).get(name, "").strip().lower()
    if not value:
        return None
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be 1/true/yes/on or 0/false/no/off, got {value!r}")


def env_float(name: str, default: float | None, environ: Mapping[str, str] | None = None) -> float | None:
    value = _environ(environ).get(name, "").strip()
    return float(value) if value else default


def hosted(flag: bool | None = None, environ: Mapping[str, str] | None = None) -> bool:
    """Hosted mode: `--hosted`, else `DIT_DEMO_HOSTED`, else on when running as a Space (`SPACE_ID` is set)."""
    if flag is not None:
        return flag
    from_env = env_flag(HOSTED_ENV, environ)
    if from_env is not None:
        return from_env
    return bool(_environ(environ).get(SPACE_ENV, "").strip())


@dataclass(frozen=True)
class Limits:
    """What one request may ask for. Local use: any model source and only the engine's batch cap; hosted mode:
    an allow-list of models and budgets for images, steps × images and sampling seconds."""

    hosted: bool = False
    allowed_models: tuple[str, ...] | None = None  # None: any source (a folder, a Hub id, a known name)
    max_images: int | None = None  # None: the engine's MAX_BATCH
    max_step_images: int | None = None
    max_seconds: float | None = None

    def allows(self, model: str) -> bool:
        return self.allowed_models is None or model in self.allowed_models


def default_allowed_models(default: str) -> tuple[str, ...]:
    """The embedded digits model (when present) plus the configured default model."""
    models = (["embedded"] if embedded_available() else []) + [default]
    return tuple(dict.fromkeys(models))


def limits(
    default: str,
    *,
    hosted_mode: bool | None = None,
    allowed_models: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Limits:
    """The request limits for an app whose default model is `default` (flags first, then the environment)."""
    if not hosted(hosted_mode, environ):
        return Limits()
    if allowed_models is None:
        listed = [m.strip() for m in _environ(environ).get(ALLOWED_MODELS_ENV, "").split(",") if m.strip()]
        allowed_models = listed or None
    allowed = tuple(dict.fromkeys([*(allowed_models or default_allowed_models(default)), default]))
    return Limits(
        hosted=True,
        allowed_models=allowed,
        max_images=env_int(MAX_IMAGES_ENV, HOSTED_MAX_IMAGES, environ),
        max_step_images=env_int(MAX_STEP_IMAGES_ENV, HOSTED_MAX_STEP_IMAGES, environ),
        max_seconds=env_float(MAX_SECONDS_ENV, HOSTED_MAX_SECONDS, environ),
    )


def timing_rounds(environ: Mapping[str, str] | None = None) -> int:
    """Timed runs per recipe (interleaved, the first included) behind each speed verdict: at least 1."""
    return max(1, env_int(TIMING_ROUNDS_ENV, DEFAULT_TIMING_ROUNDS, environ) or 1)


def calibration_steps(environ: Mapping[str, str] | None = None) -> int | None:
    """Sampling steps of the runs that calibrate int8 activations (None: the engine's default); a slow host trades
    range accuracy for build time with it."""
    steps = env_int(CALIBRATION_STEPS_ENV, None, environ)
    if steps is not None and steps < 1:
        raise ValueError(f"{CALIBRATION_STEPS_ENV} must be a whole number of at least 1, not {steps}")
    return steps
