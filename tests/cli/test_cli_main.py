"""The `dit-demo` dispatcher: every command is listed, `--help` imports nothing heavy, errors exit 2."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from dit_demo.cli import common
from dit_demo.cli.main import COMMANDS, command_module, main

ROOT = Path(__file__).resolve().parents[2]
HEAVY = {"torch", "diffusers", "optimum", "gradio", "numpy", "PIL", "huggingface_hub", "accelerate", "transformers"}
# standard library only (engine.model.shipped: which shipped model is the default, for argparse defaults; names: the
# scheduler and random-source names)
LIGHT_ENGINE = {
    "dit_demo.engine",
    "dit_demo.engine.quant",
    "dit_demo.engine.quant.recipes",
    "dit_demo.engine.model",
    "dit_demo.engine.model.shipped",
    "dit_demo.engine.model.names",
}


def loaded_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running `code`."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(proc.stdout.splitlines()[-1]))


def heavy(modules: set[str]) -> list[str]:
    """The heavy packages (and the engine, which imports torch, bar the recipe registry) among `modules`."""
    engine = {m for m in modules if m.startswith("dit_demo.engine")} - LIGHT_ENGINE
    return sorted(m for m in modules if m.split(".")[0] in HEAVY or m in engine)


def test_help_lists_every_command_and_imports_nothing_heavy(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    for name, (_, line) in COMMANDS.items():
        assert f"  {name}" in printed and line in printed
    code = "from dit_demo.cli.main import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass"
    assert heavy(loaded_after(code)) == []


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_has_the_interface_and_a_light_help(name):
    module_name = f"dit_demo.cli.{COMMANDS[name][0]}"
    module = importlib.import_module(module_name)
    assert callable(module.build_parser) and callable(module.run) and callable(module.main)
    assert "--help" in module.build_parser().format_help()
    code = f"import {module_name} as m\nm.build_parser().format_help()"
    assert heavy(loaded_after(code)) == [], f"{module_name} imports heavy modules at its top"


def test_command_help_through_the_dispatcher(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["quantize", "--help"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("usage: dit-demo quantize")


def test_no_command_or_an_unknown_one_exits_2(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["generat"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_scheduler_choices_are_the_engines():
    from dit_demo.engine.model.sources import SCHEDULERS

    hint = "a scheduler was added to the engine: list it in dit_demo/cli/common.py too"
    assert common.SCHEDULER_NAMES == tuple(SCHEDULERS), hint


def test_recipe_choices_come_from_the_registry():
    from dit_demo.engine.quant.recipes import KEEP_GROUPS, RECIPES, SAVABLE_RECIPES

    def choices(command: str, option: str) -> list[str]:
        parser = command_module(command).build_parser()
        return next(action.choices for action in parser._actions if option in action.option_strings)

    assert choices("quantize", "--recipe") == list(RECIPES) and choices("generate", "--compare") == list(RECIPES)
    assert choices("push-model", "--recipe") == list(SAVABLE_RECIPES) and "bf16" not in SAVABLE_RECIPES
    assert "int8-dynamic" not in SAVABLE_RECIPES  # rebuilt on load, never saved
    assert choices("quantize", "--keep") == list(KEEP_GROUPS)


def test_console_script_and_module_answer_help():
    script = Path(sys.executable).with_name("dit-demo")
    assert script.is_file(), "the package is not installed: pip install -e ."
    for argv in ([str(script), "--help"], [sys.executable, "-m", "dit_demo", "push-model", "--help"]):
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert proc.returncode == 0 and proc.stdout.startswith("usage: dit-demo"), proc.stderr


@pytest.mark.parametrize("script", ["push_quantized", "push_gallery", "deploy_space"])
def test_hub_scripts_are_thin_wrappers(script):
    path = ROOT / "hub" / f"{script}.py"
    assert "sys.path" not in path.read_text() and len(path.read_text().splitlines()) <= 6
    proc = subprocess.run([sys.executable, str(path), "--help"], capture_output=True, text=True, timeout=60, cwd="/")
    assert proc.returncode == 0 and "--repo-id" in proc.stdout, proc.stderr
