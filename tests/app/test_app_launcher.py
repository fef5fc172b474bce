"""`app.py` as a program: `--help` answers without building the UI or importing torch/gradio, unknown flags are
errors, and `demo` is built on first access (so `from app import demo` and `gradio app.py` keep working)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import app

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import runpy, sys
sys.argv = ["app.py", "--help"]
try:
    runpy.run_path("app.py", run_name="__main__")
except SystemExit as exc:
    code = exc.code
heavy = sorted(m for m in ("torch", "gradio", "diffusers", "dit_demo.engine") if m in sys.modules)
print("EXIT", code, "HEAVY", ",".join(heavy) or "none")
"""


def run_app(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "app.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def test_help_prints_usage_and_exits_0() -> None:
    result = run_app("--help")
    assert result.returncode == 0, result.stderr
    for flag in ("--model", "--host", "--port", "--share", "--queue-size", "--max-variants", "DIT_DEMO_MODEL"):
        assert flag in result.stdout
    assert "DIT_DEMO_DATA_DIR" in result.stdout and "DIT_DEMO_VOTES_DATASET" in result.stdout  # the blind test's


def test_help_imports_nothing_heavy() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.stdout.strip().endswith("EXIT 0 HEAVY none"), result.stdout + result.stderr


def test_unknown_flag_is_an_error() -> None:
    result = run_app("--no-such-flag")
    assert result.returncode == 2
    assert "unrecognized arguments: --no-such-flag" in result.stderr


def test_flags_parse() -> None:
    args = app.build_parser().parse_args(["--model", "my/dit", "--host", "0.0.0.0", "--port", "7861", "--share"])
    assert (args.model, args.host, args.port, args.share) == ("my/dit", "0.0.0.0", 7861, True)
    defaults = app.build_parser().parse_args([])
    assert defaults.model is None and defaults.host is None and defaults.port is None and not defaults.share
    with pytest.raises(SystemExit) as info:
        app.build_parser().parse_args(["--port", "many"])
    assert info.value.code == 2


def test_demo_is_built_on_first_access(monkeypatch: pytest.MonkeyPatch) -> None:
    import gradio as gr

    monkeypatch.delitem(vars(app), "demo", raising=False)
    monkeypatch.setenv("DIT_DEMO_MODEL", "tiny-random")
    assert "demo" not in vars(app)  # importing app built nothing
    demo = app.demo
    assert isinstance(demo, gr.Blocks) and demo.service.default_model == "tiny-random"
    assert app.demo is demo  # kept as a module global (what gradio's reload looks for)
    from app import demo as imported

    assert imported is demo
    with pytest.raises(AttributeError):
        app.no_such_attribute  # noqa: B018
