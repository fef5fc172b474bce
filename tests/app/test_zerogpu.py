"""ZeroGPU, offline: the decision (a stand-in `spaces` module, as the real package reports it), what is built at
start-up and where, and that the decorated function only samples. A real ZeroGPU slice cannot be reached from here:
how it packs quanto's tensors and the duration a request needs there are not verified."""

from __future__ import annotations

import importlib
import sys
import types

import pytest
import torch

from dit_demo.app import zerogpu
from dit_demo.app.inputs import Request
from dit_demo.engine.request import SamplingRequest
from tests.conftest import TINY_CALIBRATION


class FakeSpaces(types.ModuleType):
    """The parts of the `spaces` package the app uses: `config.Config.zero_gpu` and `GPU(duration=...)`."""

    def __init__(self, zero_gpu: bool | None):
        super().__init__("spaces")
        self.decorated: list[tuple[str, int]] = []
        self.calls: list[str] = []
        self.on_call = None
        if zero_gpu is not None:
            self.config = types.SimpleNamespace(Config=types.SimpleNamespace(zero_gpu=zero_gpu))

    def GPU(self, duration=60):  # noqa: N802 - the package's name
        def decorate(fn):
            self.decorated.append((fn.__name__, duration))

            def wrapped(*args, **kwargs):
                self.calls.append(fn.__name__)
                if self.on_call:
                    self.on_call()
                return fn(*args, **kwargs)

            return wrapped

        return decorate


@pytest.fixture
def fake_spaces(monkeypatch):
    def install(zero_gpu: bool | None = True) -> FakeSpaces:
        module = FakeSpaces(zero_gpu)
        monkeypatch.setitem(sys.modules, "spaces", module)
        return module

    return install


def test_no_spaces_package_means_no_zero_gpu(monkeypatch):
    monkeypatch.setitem(sys.modules, "spaces", None)  # import spaces -> ImportError
    assert not zerogpu.active() and zerogpu.device() is None

    def fn():
        return 1

    assert zerogpu.gpu()(fn) is fn


def test_the_spaces_package_decides(fake_spaces):
    fake_spaces(False)
    assert not zerogpu.active() and zerogpu.device() is None
    fake_spaces(True)
    assert zerogpu.active() and zerogpu.device() == torch.device("cuda")
    fake_spaces(None)  # a spaces module without its config: the environment variable it reads
    assert zerogpu.active({"SPACES_ZERO_GPU": "true"})
    assert not zerogpu.active({"SPACES_ZERO_GPU": ""})


def test_only_zero_gpu_decorates_with_the_duration(fake_spaces, monkeypatch):
    spaces = fake_spaces(False)

    def generate():
        return "images"

    assert zerogpu.gpu()(generate) is generate and spaces.decorated == []  # a GPU Space or CPU: as before
    spaces = fake_spaces(True)
    monkeypatch.setenv(zerogpu.DURATION_ENV, "45")
    assert zerogpu.gpu()(generate)() == "images"
    assert spaces.decorated == [("generate", 45)] and spaces.calls == ["generate"]


def test_start_up_builds_on_the_cpu_then_moves_to_the_gpu(monkeypatch):
    from dit_demo.app.service import DemoService

    service = DemoService("tiny-random", device="cpu", max_variants=1, calibration=TINY_CALIBRATION)
    service.device = torch.device("cuda")  # as on ZeroGPU (no GPU here: the move is recorded, not done)
    moved = []
    monkeypatch.setattr(zerogpu, "move", lambda variant, target: moved.append((variant.recipe, variant.device, target)))
    built = zerogpu.start_up(service, ["int8", "int8-a8"])
    assert [v.recipe for v in built] == ["bf16", "int8", "int8-a8"]
    assert moved == [(r, torch.device("cpu"), torch.device("cuda")) for r in ("bf16", "int8", "int8-a8")]
    assert service.cache.max_variants >= 3 and len(service.cache) == 3  # all kept: none is rebuilt in a GPU call
    assert service.cache.device == torch.device("cuda")


def test_zero_gpu_preloads_before_launch_and_the_gpu_function_only_samples(fake_spaces, monkeypatch):
    from dit_demo.app import offered
    from dit_demo.app import service as service_module

    spaces = fake_spaces(True)
    monkeypatch.setattr(offered, "COMPARE_RECIPES", ["int8", "int8-a8"])
    try:
        service_module = importlib.reload(service_module)  # run_comparison decorated as on ZeroGPU
        assert spaces.decorated == [("run_comparison", zerogpu.DEFAULT_DURATION)]
        service = service_module.DemoService("tiny-random", device="cpu", calibration=TINY_CALIBRATION)
        thread = service.start_preload()
        assert not thread.is_alive() and len(service.cache) == 3  # synchronous: done before launch
        preloaded = {v.recipe: v.pipe for v in zerogpu.start_up(service, ["int8", "int8-a8"])}
        sizes = []
        spaces.on_call = lambda: sizes.append(len(service.cache))
        sampling = SamplingRequest.create(["tench"], seed=0, steps=2)
        comparison = service.compare(Request("tiny-random", sampling, ["int8", "int8-a8"]))
        assert spaces.calls == ["run_comparison"] and sizes == [3] and len(service.cache) == 3
        assert set(comparison.results) == {"bf16", "int8", "int8-a8"}
        cached = {r: service.cache.get("tiny-random", r).pipe for r in preloaded}
        assert all(cached[r] is preloaded[r] for r in preloaded)  # the start-up objects served the request
    finally:
        monkeypatch.setitem(sys.modules, "spaces", None)
        importlib.reload(service_module)  # back to the plain module for every other test
