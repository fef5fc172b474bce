"""Published digits repos as their users meet them: the pushed folder's size and contents, and the model card's
own snippets run VERBATIM — the stock-diffusers and quanto ones in the clean venv of the card's install line
(`stock_python`, shared with test_stock_diffusers.py), the dit_demo one in this project's environment — each giving
the card's stated result: the pixels of the repo's first sample.

The repos are made through the push flow (`dit-demo push-model`, then `--push` to the Hub stand-in), int8 from a
local copy of the embedded digits folder (a folder source: the path most likely to leak into what is written) and
int8-a8 from `embedded`.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from stand_in_env import ALICE, point_client_at

from dit_demo.cli.publish import push_model
from dit_demo.engine.model.resolver import EMBEDDED_MODEL_DIR
from dit_demo.hub.card import python_blocks
from dit_demo.hub.model_repo import PIPELINE_PARTS, pipeline_bytes
from tests.hub.conftest import STOCK_PACKAGES
from tests.venvs import pinned, run_python

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (EMBEDDED_MODEL_DIR / "model_index.json").is_file(), reason="embedded model not trained"),
]

ROOT = Path(__file__).resolve().parents[2]
SOURCE_URL = "https://example.org/dit-quanto-demo.git"
COMMON = ["--labels", "three,seven", "--steps", "5", "--calibration-steps", "5", "--source-url", SOURCE_URL]


@pytest.fixture(scope="module")
def repos(fake_hub, tmp_path_factory) -> dict[str, Path]:
    """{recipe: pushed folder}; the int8 one is made from a copied base folder (returned under "base")."""
    root = tmp_path_factory.mktemp("published")
    base = root / "digits-base"
    shutil.copytree(EMBEDDED_MODEL_DIR, base)
    made = {"base": base}
    with pytest.MonkeyPatch.context() as patch:
        point_client_at(patch, fake_hub.url, root / "hf-cache")
        patch.setenv("HF_TOKEN", ALICE)
        for recipe, model in (("int8", str(base)), ("int8-a8", "embedded")):
            out = root / f"digits-{recipe}"
            argv = ["--model", model, "--recipe", recipe, "--repo-id", f"alice/digits-{recipe}", "--out", str(out)]
            assert push_model.main([*argv, *COMMON, "--push"]) == 0
            made[recipe] = out
    return made


def test_the_quantized_repo_is_smaller_than_its_base_and_names_no_local_path(repos):
    base, repo = repos["base"], repos["int8"]
    assert pipeline_bytes(repo) < pipeline_bytes(base)  # model_index + transformer + vae + scheduler
    vae = "vae/diffusion_pytorch_model.safetensors"
    assert (repo / vae).stat().st_size == (base / vae).stat().st_size  # the VAE stored in the base's dtype
    assert sorted(p.name for p in repo.iterdir() if p.name in PIPELINE_PARTS) == sorted(PIPELINE_PARTS)
    local = {str(base.parent), str(ROOT), str(EMBEDDED_MODEL_DIR)} | ({str(Path.home())} - {"/", "/root"})
    for recipe in ("int8", "int8-a8"):
        for path in repos[recipe].rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                assert not [p for p in local if p.encode() in data], path
    assert "digits-base" in (repo / "dit_demo.json").read_text()  # the folder is named, by its name only


def test_the_install_line_names_what_the_snippets_need(repos):
    card = (repos["int8"] / "README.md").read_text()
    assert "pip install " + " ".join(pinned(STOCK_PACKAGES)) in card
    assert f"git clone {SOURCE_URL} dit-quanto-demo" in card and "python -m dit_demo push-model" in card


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def stock_env(fake_hub, tmp: Path) -> dict:
    """A user's shell pointed at the Hub stand-in (HF_ENDPOINT is read at import)."""
    return {
        "HF_ENDPOINT": fake_hub.url,
        "HF_HUB_OFFLINE": "0",
        "HF_HUB_DISABLE_XET": "1",
        "HF_HOME": str(tmp / "hf"),
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    }


@pytest.mark.parametrize("recipe", ["int8", "int8-a8"])
def test_the_cards_snippets_run_verbatim_in_the_install_lines_venv(repos, stock_python, fake_hub, tmp_path, recipe):
    import json

    repo = repos[recipe]
    measured = json.loads((repo / "measurements.json").read_text())
    blocks = python_blocks((repo / "README.md").read_text())
    stock = [b for b in blocks if "DiTPipeline.from_pretrained" in b]
    assert bool(stock) == (recipe == "int8") == measured["stock"]["loadable"]
    if stock:
        assert blocks[0] == stock[0]  # the stock-diffusers snippet comes first where it works
    runnable = [b for b in blocks if "dit_demo" not in b]
    assert len(runnable) == (2 if recipe == "int8" else 1)
    expected = pixels(repo / measured["samples"][0]["file"])
    for i, block in enumerate(runnable):
        work = tmp_path / f"snippet-{i}"
        work.mkdir()
        result = run_python(stock_python, block, cwd=work, env=stock_env(fake_hub, tmp_path))
        assert result.returncode == 0, result.stderr[-3000:]
        assert np.array_equal(pixels(work / "sample.png"), expected), block


@pytest.mark.parametrize("recipe", ["int8", "int8-a8"])
def test_the_cards_dit_demo_snippet_runs_in_the_project(repos, fake_hub, monkeypatch, tmp_path, recipe):
    import json

    repo = repos[recipe]
    measured = json.loads((repo / "measurements.json").read_text())
    (block,) = [b for b in python_blocks((repo / "README.md").read_text()) if "dit_demo" in b]
    point_client_at(monkeypatch, fake_hub.url, tmp_path / "hf-cache")
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README.md snippet", "exec"), {"__name__": "__snippet__"})
    assert np.array_equal(pixels(tmp_path / "sample.png"), pixels(repo / measured["samples"][0]["file"]))
    assert os.path.isfile(tmp_path / "sample.png")
