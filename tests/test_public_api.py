"""The public API: `from dit_demo import ...` works, stays lazy, and the README's library snippet runs verbatim."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PUBLIC = ["SamplingRequest", "build_reference", "build_variant", "compare"]


def run_python(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)


def readme_library_snippet() -> str:
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("## The library and the CLI", 1)[1]
    return re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)


def test_import_dit_demo_loads_nothing_else():
    probe = "import json, sys\nold = set(sys.modules)\nimport dit_demo\nprint(json.dumps(sorted({*sys.modules} - old)))"
    proc = run_python(probe)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == ["dit_demo"]


def test_public_names_are_the_library_objects():
    import dit_demo
    from dit_demo.compare import compare
    from dit_demo.engine.generate import build_reference, build_variant
    from dit_demo.engine.request import SamplingRequest

    assert sorted(set(dit_demo.__all__) - {"__version__"}) == PUBLIC
    assert [getattr(dit_demo, name) for name in PUBLIC] == [SamplingRequest, build_reference, build_variant, compare]


def test_compare_is_the_function_even_after_its_module_was_imported():
    """`dit_demo.compare` is also a submodule: importing it must not turn the public name into the module."""
    proc = run_python(
        "import dit_demo.compare\nfrom dit_demo import compare\nprint(callable(compare), compare.__name__)"
    )
    assert proc.returncode == 0 and proc.stdout.split() == ["True", "compare"], proc.stderr


def test_an_unknown_name_is_an_attribute_error():
    import dit_demo

    try:
        dit_demo.build_everything  # noqa: B018
    except AttributeError as exc:
        assert "build_everything" in str(exc)
    else:
        raise AssertionError("an unknown public name must raise AttributeError")


def test_readme_library_snippet_runs_verbatim():
    snippet = readme_library_snippet()
    assert snippet.startswith("from dit_demo import "), snippet  # the snippet shows the public API
    proc = run_python(snippet)
    assert proc.returncode == 0, proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines()]
    assert [row[0] for row in rows] == ["bf16", "int8"], proc.stdout
    assert rows[0][3] == "None" and float(rows[1][3]) > 20  # reference identical to itself; int8 close to it
