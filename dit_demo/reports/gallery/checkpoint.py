"""Checkpoint sizing: the measured bytes of a variant's saved transformer folder, not an estimate."""

from __future__ import annotations

import tempfile
from pathlib import Path

from dit_demo.engine.generate import Variant
from dit_demo.engine.model.serialization import save_transformer
from dit_demo.engine.quant.recipes import RECIPES


def checkpoint_bytes(variant: Variant) -> tuple[int | None, list[str]]:
    """Measured size of the saved transformer folder (config, safetensors, quanto map) and its file names; None for
    a recipe that is never saved (int8-dynamic: rebuilt at load time from a saved model, so it has no folder)."""
    if variant.recipe in RECIPES and not RECIPES[variant.recipe].savable:
        return None, []
    with tempfile.TemporaryDirectory(prefix="gallery-ckpt-") as tmp:
        folder = Path(tmp) / "transformer"
        save_transformer(variant.pipe.transformer, folder)
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        return sum(p.stat().st_size for p in files), [p.name for p in files]
