"""Where the shipped pipelines live and which one is the default: standard library only, so `--help` and argparse
defaults can ask without importing torch."""

from __future__ import annotations

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"
EMBEDDED_MODEL_DIR = DATA_DIR / "digits"  # the 16x16 digits DiT: small, the model of the tests
MNIST_ALIASES = ("mnist", "embedded-mnist")
MNIST_MODEL_DIR = DATA_DIR / "mnist"  # the 28x28 MNIST DiT (trained on a GPU by `dit-demo train --dataset mnist`)


def mnist_available() -> bool:
    """The MNIST DiT's weights are in this checkout."""
    return (MNIST_MODEL_DIR / "model_index.json").is_file()


def default_source() -> str:
    """The default model of the app, the CLI and the galleries: the MNIST DiT when present, else the digits model."""
    return "mnist" if mnist_available() else "embedded"
