"""One formatter per unit, so the same number reads the same in the app, CLI, tables, cards and galleries.

Bytes are binary: MiB = 2**20 bytes, GiB = 2**30 bytes (the label says so).
"""

from __future__ import annotations

import math

MIB = 2**20
GIB = 2**30


def format_bytes(value: int | float | None) -> str:
    """Binary units with their true names: `5.40 MiB`, `1.42 GiB`, `812 B`; `—` when unknown."""
    if value is None:
        return "—"
    value = float(value)
    if abs(value) >= GIB:
        return f"{value / GIB:.2f} GiB"
    if abs(value) >= MIB:
        return f"{value / MIB:.2f} MiB"
    if abs(value) >= 1024:
        return f"{value / 1024:.1f} KiB"
    return f"{int(value)} B"


def mebibytes(value: int | float | None, digits: int = 2) -> float | None:
    """Bytes → MiB as a number (for tables and charts whose column header names the unit)."""
    return None if value is None else round(float(value) / MIB, digits)


def format_seconds(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    if value < 1:
        return f"{value * 1000:.1f} ms"
    return f"{value:.2f} s"


def format_db(value: float | None) -> str:
    if value is None:
        return "identical (∞ dB)"
    return f"{value:.1f} dB"
