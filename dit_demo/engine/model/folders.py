"""Atomic folder writes, shared by checkpoint saves and Hub repo/Space/dataset folders (standard library only).

A folder is built in a hidden sibling (`.NAME.partial-*` / `.NAME.staging-*`, same filesystem) and moved in once
complete; the previous folder waits as `.NAME.old` until the new one is in place. A killed run can leave those
siblings behind: the next write to the same target removes them. A moved-in folder gets the modes any other
file of the user gets (`tempfile` makes 0700 folders and some writers 0600 files): 0755 / 0644 under umask 022.
"""

from __future__ import annotations

import os
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


def current_umask() -> int:
    """Read without changing it where Linux says it (os.umask can only read by setting, process-wide)."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def normal_modes(folder: Path) -> None:
    """Folders 0777 and files 0666 less the umask (executable files keep their x bits), as `mkdir`/`open` give."""
    mask = current_umask()
    for path in [folder, *folder.rglob("*")]:
        if path.is_symlink():
            continue
        if path.is_dir():
            path.chmod(0o777 & ~mask)
        else:
            path.chmod((0o777 if path.stat().st_mode & 0o100 else 0o666) & ~mask)


def swap_in_folder(complete: Path, target: Path) -> None:
    """Move a fully written folder to `target`, replacing what was there only once the new one is complete."""
    normal_modes(complete)
    if target.exists():
        backup = target.with_name(f".{target.name}.old")
        shutil.rmtree(backup, ignore_errors=True)
        target.rename(backup)
        complete.rename(target)
        shutil.rmtree(backup, ignore_errors=True)
    else:
        complete.rename(target)
