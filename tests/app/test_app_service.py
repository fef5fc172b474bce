"""The service without a server: error mapping, cached and warmed variants, pre-quantized sources, GPU hooks."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import gradio as gr
import pytest
import torch

import dit_demo.engine.fast
from dit_demo.app import budget as app_budget
from dit_demo.app import running
from dit_demo.app import service as app_service
from dit_demo.app.inputs import Request
from dit_demo.app.service import DemoService
from dit_demo.engine import threads
from dit_demo.engine.generate import Variant
from dit_demo.engine.request import SamplingRequest
from dit_demo.errors import InvalidRequestError


def tiny_request(model: str, recipes: list[str], labels=(1,)) -> Request:
    return Request(
        model, SamplingRequest.create(list(labels), seed=0, steps=2, guidance_scale=4.0, scheduler=None), recipes
    )


def test_errors_become_gradio_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    freed: list[bool] = []
    monkeypatch.setattr(running, "free_memory", lambda: freed.append(True))  # where user_errors lives
    message = "No class selected: give at least one class name or id."
    with pytest.raises(gr.Error) as info:
        with app_service.user_errors():
            raise InvalidRequestError(message)
    assert info.value.message == message and not freed
    with pytest.raises(gr.Error) as info:
        with app_service.user_errors():
            raise torch.OutOfMemoryError("CUDA out of memory")
    assert info.value.message.startswith("Out of memory") and "compare fewer recipes" in info.value.message
    assert freed == [True]
    with pytest.raises(gr.Error) as info:
        with app_service.user_errors():
            raise KeyError("boom")
    assert info.value.message == "Unexpected error: KeyError: 'boom'"


def test_prequantized_folder_is_shown_alone(tiny_variants: dict[str, Variant], tmp_path: Path) -> None:
    from dit_demo.engine.model.serialization import save_pipeline

    folder = save_pipeline(tiny_variants["int8"].pipe, tmp_path / "tiny-int8", metadata={"recipe": "int8"})
    service = DemoService(str(folder), device="cpu")
    result = service.compare(tiny_request(str(folder), ["int8", "int4"], labels=(3,)))
    assert list(result.results) == ["int8"] and result.reference_recipe == "int8"


def test_service_builds_once_warms_once_and_preloads(monkeypatch: pytest.MonkeyPatch) -> None:
    service = DemoService("tiny-random", device="cpu", max_variants=3)
    service.preload(["int8"])
    assert len(service.cache) == 2 and len(service.warm) == 2
    messages: list[str] = []
    calls: list[int] = []
    real = app_budget.generate
    monkeypatch.setattr(app_budget, "generate", lambda *a, **k: calls.append(1) or real(*a, **k))
    service.compare(tiny_request("tiny-random", ["int8"]), notify=messages.append)
    assert not messages and not calls  # cached and already warm: nothing built, no warm-up run
    service.compare(tiny_request("tiny-random", ["fp8"]), notify=messages.append)
    assert messages and messages[0].startswith("Quantizing to fp8")
    assert len(calls) == 1 and len(service.cache) == 3


def test_service_settings_default_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIT_DEMO_MAX_VARIANTS", "2")
    monkeypatch.setenv("DIT_DEMO_MODEL", "tiny-random")
    service = DemoService(device="cpu")
    assert service.cache.max_variants == 2 and service.default_model == "tiny-random"
    assert DemoService("embedded", device="cpu", max_variants=5).cache.max_variants == 5


def _install_fast(monkeypatch: pytest.MonkeyPatch, module: types.ModuleType) -> None:
    """Stand in for dit_demo.engine.fast.compile wherever an import can find it (module table and package attribute)."""
    monkeypatch.setitem(sys.modules, "dit_demo.engine.fast.compile", module)
    monkeypatch.setattr(dit_demo.engine.fast, "compile", module, raising=False)


def test_fast_path_is_optional(monkeypatch: pytest.MonkeyPatch) -> None:
    _install_fast(monkeypatch, types.ModuleType("dit_demo.engine.fast.compile"))
    assert app_service.fast_module() is None and not app_service.fast_compile_available()
    fast = types.ModuleType("dit_demo.engine.fast.compile")
    fast.compile_variant = lambda variant, mode, **options: variant
    _install_fast(monkeypatch, fast)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert app_service.fast_module() is fast and app_service.fast_compile_available()


def test_small_models_sample_on_one_cpu_thread(tiny_reference: Variant) -> None:
    transformer = tiny_reference.pipe.transformer
    assert threads.cpu_threads([transformer], {}) == 1
    assert threads.cpu_threads([transformer], {"DIT_DEMO_CPU_THREADS": "3"}) == 3
    assert threads.cpu_threads([], {}) is None
    before = torch.get_num_threads()
    with app_service.thread_budget([tiny_reference]):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_one_time_warm_up_is_reported_apart_from_latency(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first run of a variant (kernel builds, allocator) is its warm-up time, not the latency of a request."""
    real = app_budget.generate
    built: list[str] = []

    def first_run_builds(variant, request):
        if variant.recipe not in built:  # stands in for a one-time build (fp8 JIT, int4 extension)
            built.append(variant.recipe)
            import time

            time.sleep(0.5)
        return real(variant, request)

    monkeypatch.setattr(app_budget, "generate", first_run_builds)
    service = DemoService("tiny-random", device="cpu")
    result = service.compare(tiny_request("tiny-random", ["int8"]))
    for recipe in ("bf16", "int8"):
        row = result.results[recipe]
        assert row.warmup_s >= 0.5 and row.latency_s < 0.5, (recipe, row.warmup_s, row.latency_s)


def test_prequantized_source_shows_no_stale_build_times(tiny_variants: dict[str, Variant], tmp_path: Path) -> None:
    from dit_demo.app.page.views import numbers_json
    from dit_demo.engine.model.serialization import save_pipeline

    report = {"quantize_s": 12.5, "calibrate_s": 30.0}
    folder = save_pipeline(
        tiny_variants["int8"].pipe, tmp_path / "tiny-int8", metadata={"recipe": "int8", "report": report}
    )
    service = DemoService(str(folder), device="cpu")
    request = tiny_request(str(folder), [])
    row = numbers_json(service.compare(request), request)["recipes"]["int8"]
    assert row["quantize_s"] == 0 and row["calibrate_s"] == 0 and row["prequantized"] is True
