"""Fresh virtual environments for ecosystem tests: a user's clean install, not this project's test venv.

Packages come from the same index/wheel folders pip is configured with (CI uses the same), pinned to the versions in
requirements.txt, so "the venv a model card's install line makes" is exactly what is tested.
"""

from __future__ import annotations

import re
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def pinned(names: list[str], requirements: Path = ROOT / "requirements.txt") -> list[str]:
    """`name==version` for each name, as pinned in requirements.txt (an unpinned name is an error)."""
    pins = {}
    for line in requirements.read_text().splitlines():
        match = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*==\s*([^\s#;]+)", line)
        if match:
            pins[match.group(1).lower().replace("_", "-")] = f"{match.group(1)}=={match.group(2)}"
    missing = [n for n in names if n.lower().replace("_", "-") not in pins]
    if missing:
        raise ValueError(f"not pinned in {requirements}: {missing}")
    return [pins[n.lower().replace("_", "-")] for n in names]


def make_venv(path: Path, requirements: list[str] | Path, *, timeout: int = 1200) -> Path:
    """A new venv at `path` with exactly `requirements` (a list of specs or a requirements file); returns its python."""
    venv.EnvBuilder(with_pip=True, clear=True).create(path)
    python = path / "bin" / "python"
    args = ["-r", str(requirements)] if isinstance(requirements, Path) else list(requirements)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *args],
        check=True,
        timeout=timeout,
        cwd=requirements.parent if isinstance(requirements, Path) else None,
    )
    return python


def installed(python: Path) -> set[str]:
    """Distribution names installed in that venv (lower-case)."""
    out = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True, check=True
    )
    return {line.split("==")[0].lower() for line in out.stdout.splitlines() if "==" in line}


def run_python(python: Path, code: str, *, cwd: Path | None = None, timeout: int = 600, env: dict | None = None):
    """Run `code` in that venv's interpreter, isolated from this process's sys.path (no PYTHONPATH leaks in)."""
    import os

    environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    environ.update({"HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1", **(env or {})})
    return subprocess.run(
        [str(python), "-I", "-c", code], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=environ
    )


__all__ = ["installed", "make_venv", "pinned", "run_python", "sys"]
