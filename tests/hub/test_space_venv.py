"""The Space as Hugging Face would build it: the folder `dit-demo deploy-space` writes (dry run), a FRESH venv from
that folder's own requirements.txt, and its own app_file started on 127.0.0.1 — with a pre-quantized folder as the
default model, then with a pre-quantized Hub id served by the Hub stand-in (HF_ENDPOINT, a cold cache: the first
request downloads it). Checked: `/generate` through gradio_client, every image the page's gallery and benchmark tabs
reference answers HTTP 200, and the card's Reproduce command runs from the Space folder.

Built with GPU hardware (`t4-small`): its requirements keep the plain torch pin, which installs from this machine's
local wheels; the CPU variant's PyTorch-index line cannot be reached offline and is checked as text in
test_push_gallery_and_space.py.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from PIL import Image
from stand_in_env import ALICE, point_client_at

from dit_demo.cli.publish import deploy_space
from dit_demo.engine.generate import build_reference, build_variant
from dit_demo.engine.model.resolver import EMBEDDED_MODEL_DIR
from dit_demo.engine.model.serialization import save_pipeline
from dit_demo.hub.io import Target, publish_folder
from tests.helpers import free_port, wait_until_serving
from tests.venvs import installed

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (EMBEDDED_MODEL_DIR / "model_index.json").is_file(), reason="embedded model not trained"),
]

HUB_REPO = "alice/digits-int8"
START_TIMEOUT = 240


@pytest.fixture(scope="module")
def space(tmp_path_factory, fake_hub, space_venvs) -> tuple[Path, Path]:
    """(the Space folder, its venv's python); a pre-quantized digits folder is its default and is on the stand-in."""
    root = tmp_path_factory.mktemp("space")
    reference = build_reference("embedded", device="cpu")
    variant = build_variant(reference, "int8")
    model = save_pipeline(
        variant.pipe, root / "digits-int8", metadata={"recipe": "int8"}, storage_dtype=reference.storage_dtype
    )
    with pytest.MonkeyPatch.context() as patch:
        point_client_at(patch, fake_hub.url, root / "hf-cache")
        publish_folder(model, Target(HUB_REPO, token=ALICE), "upload")
    out = root / "space"
    argv = ["--repo-id", "alice/demo", "--model", str(model), "--out", str(out), "--hardware", "t4-small"]
    assert deploy_space.main(argv) == 0
    python = space_venvs(out / "requirements.txt")  # a fresh venv of the folder's requirements (shared per session)
    names = installed(python)
    assert "gradio" in names and "torch" in names and "dit-quanto-demo" not in names  # dit_demo: the folder's own
    assert "spaces" not in names  # GPU hardware other than ZeroGPU: nothing preinstalled on top
    return out, python


def space_env(tmp: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING", "DIT_DEMO", "GRADIO"))}
    env.pop("PYTHONPATH", None)
    env.update(
        HF_HOME=str(tmp / "hf"),
        HF_HUB_OFFLINE="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        GRADIO_ANALYTICS_ENABLED="False",
        SPACE_ID="alice/demo",  # what a Space sets (the app's hosted mode keys on it)
    )
    env.update(extra)
    return env


@contextmanager
def started(folder: Path, python: Path, env: dict, log: Path) -> Iterator[str]:
    """The Space's app_file, as the Space runs it, on a free local port; yields its URL once it answers."""
    app_file = re.search(r"^app_file:\s*(\S+)", (folder / "README.md").read_text(), flags=re.M).group(1)
    port = free_port()
    with open(log, "w") as handle:
        proc = subprocess.Popen(
            [str(python), app_file, "--host", "127.0.0.1", "--port", str(port)],
            cwd=folder,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until_serving(url, proc, log, START_TIMEOUT)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


def page_config(url: str) -> dict:
    return httpx.get(url + "config", timeout=30).json()


def component(config: dict, elem_id: str) -> dict:
    return next(c for c in config["components"] if c.get("props", {}).get("elem_id") == elem_id)


def generate(url: str, model: str, classes: list[str]) -> tuple[list, dict]:
    from gradio_client import Client

    client = Client(url, verbose=False)
    result = client.predict(model, classes, 0, False, 4, 4.0, "dpm", ["int8"], False, api_name="/generate")
    return result[0], result[1]


def tab_images(config: dict) -> list[str]:
    """Every image the page shows outside the Compare tab's results: image components' files, and <img>/![]()
    targets in Markdown and HTML (a relative link resolves against the page, as a browser does)."""
    urls = []
    for comp in config["components"]:
        props = comp.get("props", {})
        value = props.get("value")
        if comp.get("type") == "image" and isinstance(value, dict):
            urls.append(value.get("url") or value.get("path"))
        elif comp.get("type") in ("markdown", "html") and isinstance(value, str):
            urls += re.findall(r"<img[^>]*\ssrc=[\"']([^\"']+)[\"']", value)
            urls += re.findall(r"!\[[^\]]*\]\(([^)\s]+)", value)
    return [u for u in urls if u]


def load(url: str, image: str) -> Image.Image:
    """The picture behind one reference: fetched (HTTP 200, an image type) or decoded when inline (data: URI)."""
    if image.startswith("data:image/"):
        data = base64.b64decode(image.split(",", 1)[1])
    else:
        target = httpx.URL(url).join(image)
        response = httpx.get(target, timeout=30)
        assert response.status_code == 200, f"{target}: HTTP {response.status_code}"
        assert response.headers.get("content-type", "").startswith("image/"), f"{target}: {response.headers}"
        data = response.content
    picture = Image.open(io.BytesIO(data))
    picture.load()
    return picture


def test_the_space_serves_its_shipped_pre_quantized_default(space, tmp_path):
    folder, python = space
    with started(folder, python, space_env(tmp_path), tmp_path / "app.log") as url:
        config = page_config(url)
        model = component(config, "model")["props"]["value"]
        assert model == str(folder / "models" / "digits-int8")
        classes = component(config, "classes")["props"]["value"]
        gallery, numbers = generate(url, model, classes)
        assert gallery and set(numbers["recipes"]) == {"int8"}  # pre-quantized: shown alone, no reference
        pictures = [load(url, image) for image in tab_images(config)]  # every referenced image loads
        assert len(pictures) >= 2  # the pre-computed gallery's pictures are on the page
        texts = " ".join(str(c.get("props", {}).get("value")) for c in config["components"])
        assert "No pre-computed" not in texts  # the gallery tab found what deploy-space copied
        labels = [str(c.get("props", {}).get("label")) for c in config["components"]]
        assert any("benchmark" in label.lower() for label in labels), labels  # the benchmark tab is there
    assert "Traceback" not in (tmp_path / "app.log").read_text()


def test_the_space_serves_a_pre_quantized_hub_id_from_a_cold_cache(space, fake_hub, tmp_path):
    folder, python = space
    env = space_env(
        tmp_path,
        DIT_DEMO_MODEL=HUB_REPO,  # the Space variable deploy-space sets for a Hub id
        HF_ENDPOINT=fake_hub.url,
        HF_HUB_OFFLINE="0",
        HF_HUB_DISABLE_XET="1",
    )
    with started(folder, python, env, tmp_path / "app.log") as url:
        assert component(page_config(url), "model")["props"]["value"] == HUB_REPO
        gallery, numbers = generate(url, HUB_REPO, ["3: three", "7: seven"])
        assert len(gallery) == 2 and set(numbers["recipes"]) == {"int8"}
    log = (tmp_path / "app.log").read_text()
    assert "already quantized" not in log and "Preloading" not in log  # preload and request both worked


def test_the_cards_reproduce_command_runs_from_the_space_folder(space, tmp_path):
    """`python -m dit_demo push-model` with the Space's requirements only (a dry run: --push left out)."""
    folder, python = space
    out = tmp_path / "repo"
    command = [str(python), "-m", "dit_demo", "push-model", "--model", "embedded", "--recipe", "int8"]
    command += ["--repo-id", "alice/again", "--labels", "three", "--steps", "2", "--out", str(out)]
    proc = subprocess.run(command, cwd=folder, env=space_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((out / "measurements.json").read_text())["recipe"] == "int8"
