"""Hub tests: the real huggingface_hub client against the in-process Hub STAND-IN of `fake_hub.py` (not the Hub).

The project's conftest sets HF_HUB_OFFLINE=1 for every test. `hub_env` switches the client online for one test
only, by patching `huggingface_hub.constants` (HF_ENDPOINT is read at import, so the environment variable would
come too late); monkeypatch restores everything afterwards, so every other test stays offline.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from huggingface_hub.utils import disable_progress_bars, enable_progress_bars

sys.path.insert(0, str(Path(__file__).parent))

from fake_hub import FakeHub  # noqa: E402
from stand_in_env import TOKENS, point_client_at  # noqa: E402

from tests.venvs import installed, make_layered_venv, make_venv, pinned, requirement_closure  # noqa: E402

STOCK_PACKAGES = ["torch", "diffusers", "optimum-quanto", "accelerate"]  # what a model card's install line names
VENV_SEEDS = {"pip", "setuptools"}  # what `python -m venv` itself puts into every venv


@pytest.fixture(scope="module")
def fake_hub():
    with FakeHub(TOKENS) as hub:
        yield hub


@pytest.fixture
def hub_env(fake_hub, tmp_path, monkeypatch):
    """The client online against the stand-in for this test, with its own cache and no token unless set."""
    point_client_at(monkeypatch, fake_hub.url, tmp_path / "hf-cache")
    disable_progress_bars()
    yield fake_hub
    enable_progress_bars()


@pytest.fixture(scope="session")
def stock_python(tmp_path_factory) -> Path:
    """A clean venv holding only STOCK_PACKAGES at requirements.txt's pins: built once per test session, shared by
    the stock-diffusers and model-card snippet tests."""
    python = make_venv(tmp_path_factory.mktemp("stock-venv") / "venv", pinned(STOCK_PACKAGES))
    names = installed(python)
    assert "dit-quanto-demo" not in names and "gradio" not in names and "torchmetrics" not in names
    return python


@pytest.fixture(scope="session")
def space_venvs(tmp_path_factory, stock_python):
    """`venv_for(requirements_file, preinstalled=())` → python of a fresh venv holding exactly that file's
    requirements, built once per session for each distinct file text (every Space folder deploy-space writes for GPU
    hardware carries the same file, so the Space tests share one install); `preinstalled` (what a Space image ships,
    e.g. `spaces` on ZeroGPU) goes into a layer of its own on top, leaving the shared venv as the file made it.

    The file's venv is itself a layer over the stock venv (the Space pins torch, diffusers, optimum-quanto and
    accelerate at the stock venv's versions), so torch is unpacked once per session, not twice. It must hold what a
    fresh venv of the file holds: every requirement at a version the file allows, and no distribution that the file's
    requirements do not need (transitively)."""
    root = tmp_path_factory.mktemp("space-venvs")
    built: dict[tuple[str, tuple[str, ...]], Path] = {}

    def venv_for(requirements: Path, preinstalled: tuple[str, ...] = ()) -> Path:
        text = requirements.read_text()
        if (text, ()) not in built:
            python = make_layered_venv(root / f"venv-{len(built)}", stock_python, requirements)
            found = requirement_closure(python, requirements)  # nothing the file does not bring, nothing missing
            extra = set(found["seen"]) - set(found["needed"]) - VENV_SEEDS
            assert not extra and not found["problems"], f"unlike a fresh venv of the file: {extra} {found['problems']}"
            built[text, ()] = python
        if preinstalled and (text, preinstalled) not in built:
            built[text, preinstalled] = make_layered_venv(
                root / f"venv-{len(built)}", built[text, ()], list(preinstalled)
            )
        return built[text, preinstalled]

    return venv_for
