"""Shared fixtures: offline, quiet, tiny models built in-process (milliseconds per step)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no test may touch the network
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
# One torch thread per test process, and per process a test starts (OMP_NUM_THREADS is inherited): on this 2-core
# machine, shared with other work, 2 OpenMP threads per process ran small models 5-10x slower per step than 1
# (dit_demo/engine/threads.py). Tests that compare images across processes hold because every process runs the same
# count. Set OMP_NUM_THREADS to run the suite with another count.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(max(1, int(os.environ["OMP_NUM_THREADS"])))

from dit_demo.engine.generate import Variant, build_reference, build_variant  # noqa: E402
from dit_demo.engine.quant.quantize import CalibrationConfig  # noqa: E402

TINY_CALIBRATION = CalibrationConfig(steps=6, seeds=(1000,), num_labels=3)
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def pytest_collection_modifyitems(config, items):
    """Tests marked `cuda` are skipped, with the reason, where no CUDA GPU is present (their GPU runs are logged)."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (GPU runs are logged under bench/)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    """Every available device in turn (CPU always; CUDA where present), as in optimum-quanto's tests."""
    return torch.device(request.param)


@pytest.fixture
def cuda_device() -> torch.device:
    """The GPU, for CUDA-only paths; skips with the reason on a CPU machine."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU (GPU runs are logged under bench/)")
    return torch.device("cuda")


@pytest.fixture(scope="session")
def tiny_reference() -> Variant:
    """The tiny random DiT (exact XL/2 code path, 2 layers) as the full-precision reference."""
    return build_reference("tiny-random", device="cpu")


@pytest.fixture(scope="session")
def tiny_variants(tiny_reference: Variant) -> dict[str, Variant]:
    """int8 and int8-a8 built once per session from the tiny reference."""
    return {
        recipe: build_variant(tiny_reference, recipe, calibration=TINY_CALIBRATION) for recipe in ("int8", "int8-a8")
    }


@pytest.fixture(scope="session")
def digits_reference() -> Variant:
    """The shipped digits DiT on CPU (its classifier judges class accuracy and FID)."""
    return build_reference("embedded", device="cpu")
