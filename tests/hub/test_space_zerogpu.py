"""A ZeroGPU Space as Hugging Face would build it, as far as a CPU machine goes: the folder `dit-demo deploy-space
--hardware zero-a10g` writes, a FRESH venv from that folder's requirements.txt plus the real `spaces` 0.51.3 (which
a ZeroGPU Space's image has preinstalled), its own app_file started in ZeroGPU mode (SPACES_ZERO_GPU=true) under
tests/app/zerogpu_harness.py, with ZeroGPU's device API answered by a local stand-in.

`zero-a10g` is the only ZeroGPU flavour in huggingface_hub 2.4's `SpaceHardware` (the name predates the H200:
`spaces` 0.51.3 describes the GPU it hands out as an "NVIDIA H200 MIG 3g.71gb" slice), so it is the name an H200
ZeroGPU Space is requested with. Checked: the Space starts, serves the page and `/generate`, every offered recipe
builds (in the GPU worker, from the tensors `spaces` packed), the worker sees the packed tensors, and the result
pickles back. Host memory stands in for the GPU inside the worker (the harness's one stand-in); real CUDA moves,
kernels and timings on a ZeroGPU slice are not verifiable here.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import torch
from huggingface_hub import SpaceHardware

from dit_demo.app.offered import offered_recipes
from dit_demo.cli.publish import deploy_space
from dit_demo.engine.model.resolver import EMBEDDED_MODEL_DIR
from tests.app.zerogpu_device_api import DeviceApi, read_report, started, zero_gpu_env
from tests.venvs import ROOT, installed, pinned

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (EMBEDDED_MODEL_DIR / "model_index.json").is_file(), reason="embedded model not trained"),
]

COMPARE_RECIPES = offered_recipes(torch.device("cuda"))  # what a ZeroGPU page offers (its device: cuda)
ZERO_GPU_HARDWARE = [h.value for h in SpaceHardware if h.value.startswith("zero-")]


def test_zero_gpu_hardware_names():
    assert ZERO_GPU_HARDWARE == ["zero-a10g"]  # the one ZeroGPU flavour a Space can ask for (its GPU: an H200 slice)


@pytest.fixture(scope="module")
def zero_space(tmp_path_factory, space_venvs) -> tuple[Path, Path]:
    """(the Space folder for ZeroGPU hardware, a fresh venv's python with its requirements and `spaces`)."""
    root = tmp_path_factory.mktemp("zero-space")
    out = root / "space"
    argv = ["--repo-id", "alice/zero", "--model", "embedded", "--out", str(out), "--hardware", ZERO_GPU_HARDWARE[0]]
    assert deploy_space.main(argv) == 0
    preinstalled = pinned(["spaces"], ROOT / "tests" / "requirements.txt")  # what a ZeroGPU Space's image has
    python = space_venvs(out / "requirements.txt", tuple(preinstalled))  # the folder's requirements + `spaces`
    names = installed(python)
    assert {"gradio", "torch", "spaces"} <= names and "dit-quanto-demo" not in names
    return out, python


def space_env(api: DeviceApi, tmp: Path) -> dict[str, str]:
    (tmp / "cgroup").write_text("0::/stand-in\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING", "DIT_DEMO", "GRADIO", "SPACES"))}
    env.pop("PYTHONPATH", None)
    env.update(zero_gpu_env(api, str(tmp / "offload"), str(tmp / "cgroup")))
    env.update(
        HF_HOME=str(tmp / "hf"),
        HF_HUB_OFFLINE="1",
        GRADIO_ANALYTICS_ENABLED="False",
        SPACE_ID="alice/zero",  # what a Space sets (hosted mode)
        HARNESS_REPORT=str(tmp / "report.jsonl"),
        HARNESS_HOST_DEVICE="1",
        DIT_DEMO_CALIBRATION_STEPS="2",  # a Space setting: int8-a8(-smooth) still calibrate, in 2 steps, not 25
    )
    return env


def test_the_zero_gpu_space_starts_and_builds_every_offered_recipe(zero_space, tmp_path):
    from gradio_client import Client

    folder, python = zero_space
    readme = (folder / "README.md").read_text()
    assert re.search(r"^suggested_hardware:\s*zero-a10g$", readme, flags=re.M)
    assert "--extra-index-url" not in (folder / "requirements.txt").read_text()  # the plain (CUDA) torch pin
    app_file = folder / re.search(r"^app_file:\s*(\S+)", readme, flags=re.M).group(1)
    with DeviceApi() as api, started(python, app_file, space_env(api, tmp_path), tmp_path / "app.log") as url:
        client = Client(url, verbose=False)
        config = client.view_api(print_info=False, return_format="dict")
        assert set(config["named_endpoints"]) == {"/generate", "/blind_round", "/vote", "/tally"}
        result = client.predict("embedded", ["3: three"], 0, False, 2, 4.0, "dpm", COMPARE_RECIPES, False,
                                api_name="/generate")  # fmt: skip
        assert set(result[1]["recipes"]) == {"bf16", *COMPARE_RECIPES}  # every offered recipe built and sampled
        assert len(result[0]) == 1 + len(COMPARE_RECIPES)  # one image per recipe (one class)
    report = read_report(tmp_path / "report.jsonl")
    packed = next(e for e in report if e["event"] == "pack")
    move = next(e for e in report if e["event"] == "move")
    assert move["pid"] != packed["pid"] and move["same_bytes"] == move["fakes"] == packed["tensors"] > 0
    assert move["reference_packed"] == move["reference_tensors"] > 0  # the worker's reference: the packed tensors
    assert any(e["event"] == "put" and e["kind"] == "OkResult" and e["pid"] == move["pid"] for e in report)
    assert api.paths()[:2] == ["/startup-report", "/schedule"]
    log = (tmp_path / "app.log").read_text()
    assert "Traceback" not in log and "ZeroGPU start-up: embedded built (bf16, int8)" in log
