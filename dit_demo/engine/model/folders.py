"""Atomic folder writes, shared by checkpoint saves and Hub repo/Space/dataset folders (standard library only).

A folder is built in a hidden sibling (`.NAME.partial-*` / `.NAME.staging-*`, same filesystem) and moved in once
complete; the previous folder waits as `.NAME.old` until the new one is in place. A killed run can leave those
siblings behind: the next write to the same target removes them.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

STALE_PATTERNS = (".{name}.partial-*", ".{name}.old", ".{name}.staging-*")


def remove_stale_siblings(target: Path) -> list[Path]:
    """Hidden `.NAME.partial-*` / `.NAME.old` / `.NAME.staging-*` folders a killed write left beside `target`."""
    removed: list[Path] = []
    if not target.parent.is_dir():
        return removed
    for pattern in STALE_PATTERNS:
        for stale in target.parent.glob(pattern.format(name=target.name)):
            shutil.rmtree(stale, ignore_errors=True)
            removed.append(stale)
    return removed


@contextmanager
def staging_folder(target: Path, kind: str = "partial") -> Iterator[Path]:
    """An empty hidden folder beside `target` to build in, after clearing a killed run's leftovers; removed
    afterwards whatever happens (a folder already moved into place with `swap_in_folder` is simply gone)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_siblings(target)
    stage = Path(tempfile.mkdtemp(prefix=f".{target.name}.{kind}-", dir=target.parent))
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def swap_in_folder(complete: Path, target: Path) -> None:
    """Move a fully written folder to `target`, replacing what was there only once the new one is complete."""
    if target.exists():
        backup = target.with_name(f".{target.name}.old")
        shutil.rmtree(backup, ignore_errors=True)
        target.rename(backup)
        complete.rename(target)
        shutil.rmtree(backup, ignore_errors=True)
    else:
        complete.rename(target)
