"""The installable package: one list of pins, the console script, the data files a `pip install .` must ship, and
the README's set-up commands being the ones CI runs."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PIN = re.compile(r"^[A-Za-z0-9_.\-]+(\[[a-z,]+\])?==[\w.+]+$")


def requirement_lines(path: Path) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line]


def test_runtime_dependencies_are_requirements_txt_and_only_pins():
    project = PYPROJECT["project"]
    assert "dependencies" in project["dynamic"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["dependencies"] == {"file": ["requirements.txt"]}
    # setuptools reads that file as a plain list: no pip options (-r, --index-url, ...) may go into it
    assert all(PIN.match(line) for line in requirement_lines(ROOT / "requirements.txt"))


def test_test_extra_is_tests_requirements():
    lines = requirement_lines(ROOT / "tests" / "requirements.txt")
    assert lines[0] == "-r ../requirements.txt"
    assert PYPROJECT["project"]["optional-dependencies"]["test"] == lines[1:]


def test_console_script_and_python_version():
    assert PYPROJECT["project"]["scripts"] == {"dit-demo": "dit_demo.cli.main:main"}
    assert PYPROJECT["project"]["requires-python"] == ">=3.11"
    assert PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"] == ["dit_demo*"]


def test_package_data_covers_every_data_file():
    tracked = subprocess.run(
        ["git", "ls-files", "dit_demo"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    data = {ROOT / f for f in tracked if not f.endswith(".py")}
    shipped = set()
    for package, patterns in PYPROJECT["tool"]["setuptools"]["package-data"].items():
        folder = ROOT / package.replace(".", "/")
        shipped |= {p for pattern in patterns for p in folder.glob(pattern) if p.is_file()}
    assert data and data <= shipped, sorted(str(p.relative_to(ROOT)) for p in data - shipped)


def test_readme_installs_the_package_and_ci_runs_its_test_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = re.findall(r"```bash\n(python3 -m venv .venv && [^\n]+)\n```", readme)
    assert len(commands) == 2 and all(" -e . " in c for c in commands)
    test_command = next(c for c in commands if "pytest" in c)
    assert test_command in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
