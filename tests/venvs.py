"""Fresh virtual environments for ecosystem tests: a user's clean install, not this project's test venv.

Packages come from the same index/wheel folders pip is configured with (CI uses the same), pinned to the versions in
requirements.txt, so "the venv a model card's install line makes" is exactly what is tested.
"""

from __future__ import annotations

import json
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
    """A new venv at `path` with exactly `requirements` (a list of specs or a requirements file); returns its python.

    Bytecode is compiled at install, as pip does by default: with PYTHONDONTWRITEBYTECODE set (it is on this
    machine) a `--no-compile` venv recompiles torch and gradio from source at every interpreter start."""
    venv.EnvBuilder(with_pip=True, clear=True).create(path)
    python = path / "bin" / "python"
    pip_install(python, requirements, timeout=timeout)
    return python


def pip_install(python: Path, requirements: list[str] | Path, *, timeout: int = 1200) -> None:
    """`pip install` into that venv (a list of specs or a requirements file, resolved from its folder)."""
    args = ["-r", str(requirements)] if isinstance(requirements, Path) else list(requirements)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *args],
        check=True,
        timeout=timeout,
        cwd=requirements.parent if isinstance(requirements, Path) else None,
    )


def site_packages(python: Path) -> Path:
    """That venv's own site-packages folder."""
    out = subprocess.run(
        [str(python), "-I", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return Path(out.stdout.strip())


def make_layered_venv(path: Path, base: Path, requirements: list[str] | Path, *, timeout: int = 1200) -> Path:
    """A new venv at `path` that sees the venv of python `base` underneath it (a `.pth` adds base's site-packages
    after its own) and installs `requirements` (specs or a requirements file) into its own layer only: an image's
    preinstalled package on top of the same install, without installing everything twice. `base` is not changed
    (pip leaves a lower layer's distributions alone: they lie outside this venv)."""
    venv.EnvBuilder(with_pip=True, clear=True).create(path)
    python = path / "bin" / "python"
    lower = site_packages(base)
    (site_packages(python) / "_base_venv.pth").write_text(f"import site; site.addsitedir({str(lower)!r})\n")
    pip_install(python, requirements, timeout=timeout)
    return python


CLOSURE = """
import importlib.metadata as md, json, re, sys
from pip._vendor.packaging.requirements import Requirement

def canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()

seen = {}  # the first distribution of each name on sys.path: the one imports find
for dist in md.distributions():
    seen.setdefault(canonical(dist.metadata["Name"]), dist)
lines = [line.split("#")[0].strip() for line in open(sys.argv[1])]
todo = [(Requirement(line), "") for line in lines if line and not line.startswith("-")]
needed, problems = set(), []
while todo:
    requirement, extra = todo.pop()
    if requirement.marker is not None and not requirement.marker.evaluate({"extra": extra}):
        continue
    name = canonical(requirement.name)
    dist = seen.get(name)
    if dist is None or not requirement.specifier.contains(dist.version, prereleases=True):
        problems.append(f"{requirement} (found {dist and dist.version})")
        continue
    for wanted in ("", *sorted(requirement.extras)):
        if (name, wanted) not in needed:
            needed.add((name, wanted))
            todo += [(Requirement(r), wanted) for r in dist.requires or []]
print(json.dumps({"seen": sorted(seen), "needed": sorted({n for n, _ in needed}), "problems": problems}))
"""


def requirement_closure(python: Path, requirements: Path) -> dict[str, list[str]]:
    """What that venv's interpreter sees against what `requirements` needs: {"seen": every distribution visible
    (a layered venv: every layer), "needed": the file's requirements and their dependencies, transitively, as found,
    "problems": requirements missing or at a version the file's specifier refuses}."""
    out = subprocess.run(
        [str(python), "-I", "-c", CLOSURE, str(requirements)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


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


__all__ = [
    "installed",
    "make_layered_venv",
    "make_venv",
    "pinned",
    "pip_install",
    "requirement_closure",
    "run_python",
    "site_packages",
    "sys",
]
