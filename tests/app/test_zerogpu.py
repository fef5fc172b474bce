"""ZeroGPU against the REAL `spaces` 0.51.3: in-process (the decision, start-up, duration, budget), then the app
started under the real package in ZeroGPU mode (tests/app/zerogpu_harness.py; its device API answered by a local
stand-in, tests/app/zerogpu_device_api.py), so `spaces`' own fork, pickling, torch patching and tensor packing run.

With host memory standing in for the GPU inside the worker (the harness's one stand-in), a request runs end to end:
every offered recipe builds, the worker sees the tensors `spaces` packed at launch (the same objects, the same bytes)
and the result pickles back. Without it the worker stops where CUDA is truly needed (`spaces.zero.torch.init`), and
the app says so and keeps serving. Not verifiable here: a real ZeroGPU slice (real CUDA moves, timings, quotas,
the duration an H200 MIG slice needs).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import httpx
import pytest
import torch

from dit_demo.app import gpu_call, offered, zerogpu
from dit_demo.app.config import Limits
from dit_demo.app.inputs import Request
from dit_demo.app.service import DemoService
from dit_demo.engine.request import SamplingRequest
from dit_demo.errors import InvalidRequestError
from tests.app.zerogpu_device_api import DeviceApi, read_report, started, zero_gpu_env

ROOT = Path(__file__).resolve().parents[2]
ZERO_GPU_RECIPES = offered.offered_recipes(torch.device("cuda"))  # what the page offers there (the device: cuda)
FALLBACK_SECONDS = 599  # distinct from anything computed for the tiny model, so "computed" can be told apart


@pytest.fixture
def fresh_state(monkeypatch):
    """A clean `zerogpu.STATE` for each test (it is module-level by design)."""
    monkeypatch.setattr(zerogpu, "STATE", type(zerogpu.STATE)(service=None, resident=set(), problems=[]))
    return zerogpu.STATE


def request(recipes: list[str], *, steps: int = 4, labels=(1,), compile_gpu: bool = False) -> Request:
    return Request("tiny-random", SamplingRequest.create(list(labels), seed=0, steps=steps), recipes, compile_gpu)


# ---------------------------------------------------------------------------------------------------------------
# In-process


def test_no_spaces_package_means_no_zero_gpu(monkeypatch):
    monkeypatch.setitem(sys.modules, "spaces", None)  # import spaces -> ImportError
    assert not zerogpu.active() and zerogpu.device() is None

    def fn():
        return 1

    assert zerogpu.gpu(duration=5)(fn) is fn


def test_the_real_spaces_package_off_zero_gpu_changes_nothing():
    import spaces

    assert not spaces.config.Config.zero_gpu  # SPACES_ZERO_GPU is not set in the test process
    assert not zerogpu.active() and zerogpu.device() is None

    def fn():
        return 1

    assert spaces.GPU(duration=5)(fn) is fn and zerogpu.gpu(duration=lambda: 5)(fn) is fn
    assert gpu_call.run_on_gpu is gpu_call._on_gpu  # decorated at import: off ZeroGPU, the function itself


def test_start_up_builds_the_reference_and_defaults_in_bf16_and_reports_what_failed(fresh_state, monkeypatch):
    service = DemoService("tiny-random", device="cpu", max_variants=1)
    real_get = service.cache.get

    def get(model, recipe, **kwargs):
        if recipe == "int4":
            raise RuntimeError("no kernel here")
        return real_get(model, recipe, **kwargs)

    monkeypatch.setattr(service.cache, "get", get)
    built = zerogpu.start_up(service, ["int8", "int4"])
    assert [v.recipe for v in built] == ["bf16", "int8"]  # only what was asked: the other recipes on first use
    floats = [p for v in built for p in v.pipe.transformer.parameters() if p.is_floating_point()]
    assert floats and all(p.dtype == torch.bfloat16 for p in floats)
    assert fresh_state.service is service and fresh_state.resident == {("tiny-random", "bf16"), ("tiny-random", "int8")}
    assert ("tiny-random", "int8") in service.build_seconds  # its build time is measured for the estimates
    assert "int4 could not be built (RuntimeError: no kernel here)" in service.startup_note()


def test_a_model_that_fails_to_load_is_reported_on_the_page_not_raised(fresh_state, tmp_path):
    service = DemoService("tiny-random", device="cpu")
    service.default_model = str(tmp_path / "missing")  # as a Space variable naming a folder that is not there
    thread = zerogpu.start_preload(service, ["int8"])
    assert not thread.is_alive() and service.startup_note().startswith("⚠️ Start-up: loading ")
    assert str(tmp_path / "missing") in service.startup_note()


def test_the_duration_comes_from_the_request(fresh_state, monkeypatch):
    service = DemoService("tiny-random", device="cpu")
    env = {gpu_call.DURATION_ENV: str(FALLBACK_SECONDS), gpu_call.MAX_DURATION_ENV: "900"}
    assert gpu_call.request_seconds(service, request(["int8"]), env) == FALLBACK_SECONDS  # nothing measured yet
    fresh_state.resident |= {("tiny-random", "bf16"), ("tiny-random", "int8")}
    service._seconds_per_image_step.update({("tiny-random", "bf16"): 0.5, ("tiny-random", "int8"): 0.4})
    base = gpu_call.request_seconds(service, request(["int8"], steps=4), env)
    assert gpu_call.MIN_DURATION <= base < FALLBACK_SECONDS
    assert gpu_call.request_seconds(service, request(["int8"], steps=8), env) > base
    assert gpu_call.request_seconds(service, request(["int8"], steps=4, labels=(1, 2)), env) > base
    service._seconds_per_image_step[("tiny-random", "int4")] = 0.4
    service.record_build("tiny-random", "int4", 20.0)  # int4 is not built before launch: its build is asked for
    with_build = gpu_call.request_seconds(service, request(["int4"], steps=4), env)
    assert with_build >= base + gpu_call.MARGIN * 20.0 - 1
    capped = {**env, gpu_call.MAX_DURATION_ENV: "12"}
    assert gpu_call.request_seconds(service, request(["int4"], steps=4), capped) == 12


def test_build_time_counts_in_the_budget_estimate(fresh_state):
    service = DemoService("tiny-random", device="cpu", limits=Limits(hosted=True, max_seconds=30.0))
    service._seconds_per_image_step.update({("tiny-random", r): 0.1 for r in ("bf16", "int8", "int8-a8")})
    plain = service.estimated_seconds(request(["int8"], steps=4))
    service.record_build("tiny-random", "int8", 12.0)  # measured build of a weight-only recipe
    assert service.estimated_seconds(request(["int8"], steps=4)) == pytest.approx(plain + 12.0)
    calibrated = service.build_estimate("tiny-random", "int8-a8")  # + calibration image-steps at the bf16 cost
    assert calibrated is not None and calibrated > 12.0
    service.check_time_budget(request(["int8"], steps=4))  # 12 s build + sampling: within 30 s
    service.record_build("tiny-random", "int8", 40.0)
    with pytest.raises(InvalidRequestError, match="plus building the recipes not built yet"):
        service.check_time_budget(request(["int8"], steps=4))
    service.cache.get("tiny-random", "int8")  # built now: no longer counted
    assert service.estimated_seconds(request(["int8"], steps=4)) == pytest.approx(plain)


def test_compile_on_zero_gpu_uses_a_package_when_one_matches_else_runs_eagerly(tiny_reference, tmp_path, monkeypatch):
    from dit_demo.engine.fast import aot

    sampling = SamplingRequest.create([1], seed=0, steps=2)  # guidance 4: 2 rows per forward
    notes: list[str] = []
    monkeypatch.delenv(gpu_call.AOT_DIR_ENV, raising=False)
    assert gpu_call.ahead_of_time(tiny_reference, sampling, notes) is None and notes == []  # opt-in: no folder
    monkeypatch.setenv(gpu_call.AOT_DIR_ENV, str(tmp_path))
    assert gpu_call.ahead_of_time(tiny_reference, sampling, notes) is None
    assert notes == [f"bf16: no ahead-of-time package for 2 rows in {gpu_call.AOT_DIR_ENV}"]
    (tmp_path / "stray.pt2").write_bytes(b"not a package")  # no description beside it: not considered
    assert gpu_call.ahead_of_time(tiny_reference, sampling, notes) is None and len(notes) == 2
    package = tmp_path / "bf16.pt2"
    package.write_bytes(b"PK not really")
    info = dict(format=aot.FORMAT, recipe="bf16", source=tiny_reference.source, batch=1, cfg=True, rows=2,
                sample_size=8, in_channels=4, columns=1, dtype="float32", device="cpu", device_name="cpu",
                torch=torch.__version__, label="", sha256="0" * 64)  # fmt: skip
    aot.sidecar(package).write_text(json.dumps(info))
    assert gpu_call.ahead_of_time(tiny_reference, sampling, notes) is None  # found, refused by aot's own check
    assert notes[-1].startswith("bf16: eager (") and "bf16.pt2" in notes[-1] and "corrupt" in notes[-1]


def test_compile_on_zero_gpu_uses_the_shipped_compile_cache_else_runs_eagerly(tiny_reference, tmp_path, monkeypatch):
    from dit_demo.engine.fast.compile_cache import save_compile_cache

    notes: list[str] = []
    monkeypatch.setattr(gpu_call, "_CACHES", {})
    monkeypatch.setattr(gpu_call, "_LOADED", {})
    monkeypatch.setenv(gpu_call.COMPILE_CACHE_ENV, str(tmp_path / "none.bin"))
    assert gpu_call.compiled_from_cache(tiny_reference, notes) is None  # named but missing: refused, said why
    assert notes[-1].startswith("bf16: eager (") and "none.json: missing" in notes[-1]
    broken = tmp_path / "broken.bin"
    broken.write_bytes(b"garbage")
    broken.with_suffix(".json").write_text('{"format": "dit-demo-compile-cache/1", "sha256": "0"}')
    monkeypatch.setenv(gpu_call.COMPILE_CACHE_ENV, str(broken))
    assert gpu_call.compiled_from_cache(tiny_reference, notes) is None
    assert "broken.bin" in notes[-1] and "corrupt" in notes[-1]
    torch.compile(lambda x: x * 2 + 1)(torch.ones(3))  # something compiled in this process: a real cache to ship
    shipped = tmp_path / "dit.bin"
    assert save_compile_cache(shipped) > 0
    monkeypatch.setenv(gpu_call.COMPILE_CACHE_ENV, str(shipped))
    compiled = gpu_call.compiled_from_cache(tiny_reference, notes)
    assert compiled is not None and compiled is not tiny_reference and compiled.compile_mode.startswith("reduce")
    assert gpu_call.compiled_from_cache(tiny_reference, notes) is compiled  # once per worker
    assert tiny_reference.compile_mode == "none"  # the cached eager variant is left as it was


def test_zero_gpu_duration_counts_a_compile_per_recipe_until_one_is_measured(monkeypatch):
    service = DemoService("tiny-random", device="cpu", limits=Limits(hosted=True, max_seconds=300.0))
    service._seconds_per_image_step.update({("tiny-random", r): 0.01 for r in ("bf16", "int8")})
    monkeypatch.setattr(zerogpu.STATE, "compile_seconds", {})
    eager = gpu_call.request_seconds(service, request(["int8"], steps=4))
    compiled = gpu_call.request_seconds(service, request(["int8"], steps=4, compile_gpu=True))
    assert compiled >= eager + 2 * gpu_call.COMPILE_FALLBACK_SECONDS  # bf16 and int8, not measured yet
    zerogpu.STATE.compile_seconds.update({("tiny-random", "bf16"): 1.0, ("tiny-random", "int8"): 1.0})
    measured = gpu_call.request_seconds(service, request(["int8"], steps=4, compile_gpu=True))
    assert eager <= measured < compiled


# ---------------------------------------------------------------------------------------------------------------
# The app under the real package (subprocesses: `spaces` patches torch for the whole process)


def app_env(api: DeviceApi, tmp: Path, *, host_device: bool) -> dict[str, str]:
    (tmp / "cgroup").write_text("0::/stand-in\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DIT_DEMO", "SPACES_", "ZEROGPU"))}
    env.update(zero_gpu_env(api, str(tmp / "offload"), str(tmp / "cgroup")))
    env.update(
        PYTHONPATH=str(ROOT),
        HARNESS_REPORT=str(tmp / "report.jsonl"),
        HARNESS_HOST_DEVICE="1" if host_device else "0",
        SPACE_ID="alice/demo",  # hosted mode, as on a Space
        DIT_DEMO_GPU_SECONDS=str(FALLBACK_SECONDS),
        DIT_DEMO_GPU_MAX_SECONDS="900",
        DIT_DEMO_MAX_SECONDS="600",  # the time budget is tested apart; a busy CI machine must not trip it here
        DIT_DEMO_CALIBRATION_STEPS="2",  # int8-a8(-smooth) still calibrate in the worker, in 2 steps, not 25
        GRADIO_ANALYTICS_ENABLED="False",
    )
    return env


def generate(url: str, recipes: list[str], *, compile_gpu: bool = False) -> dict:
    from gradio_client import Client

    client = Client(url, verbose=False)
    return client.predict("tiny-random", ["1"], 0, False, 2, 4.0, "dpm", recipes, compile_gpu, api_name="/generate")[1]


def component(url: str, elem_id: str) -> dict:
    config = httpx.get(url + "config", timeout=30).json()
    return next(c for c in config["components"] if c.get("props", {}).get("elem_id") == elem_id)["props"]


@pytest.mark.slow
def test_a_request_runs_through_spaces_fork_pickling_and_packing(tmp_path):
    env = app_env(api := DeviceApi(), tmp_path, host_device=True)
    shipped = tmp_path / "dit.bin"  # a shipped compile cache that turns out corrupt: the box shows, never fails
    shipped.write_bytes(b"not torch.compile artifacts")
    shipped.with_suffix(".json").write_text('{"format": "dit-demo-compile-cache/1", "sha256": "0"}')
    env[gpu_call.COMPILE_CACHE_ENV] = str(shipped)
    with api, started(sys.executable, ROOT / "app.py", env, tmp_path / "app.log", "--model", "tiny-random") as url:
        assert component(url, "compile")["visible"] and "compile cache" in component(url, "compile")["label"]
        assert component(url, "startup")["value"] == ""  # nothing failed at start-up
        everything = generate(url, ZERO_GPU_RECIPES)  # every offered recipe: built in the worker
        assert set(everything["recipes"]) == {"bf16", *ZERO_GPU_RECIPES}
        compiled = generate(url, ZERO_GPU_RECIPES, compile_gpu=True)  # the cache is refused: eager, never fails
        assert {r["compile_mode"] for r in compiled["recipes"].values()} == {"none"}
        resident = generate(url, ["int8"])  # built before launch: no build allowance
        assert set(resident["recipes"]) == {"bf16", "int8"}
        durations = api.durations()
    report = read_report(tmp_path / "report.jsonl")
    app_pid = next(e["pid"] for e in report if e["event"] == "pack")
    packed = next(e for e in report if e["event"] == "pack")
    moves = [e for e in report if e["event"] == "move"]
    assert packed["tensors"] > 0 and len(moves) == 3 and all(e["pid"] != app_pid for e in moves)
    for move in moves:  # the worker's weights are the packed tensors: same objects (ids), same bytes, moved
        assert move["same_bytes"] == move["fakes"] == packed["tensors"]
        assert move["reference_packed"] == move["reference_tensors"] > 0
    arguments = [e["bytes"] for e in report if e["event"] == "put" and e["kind"] == "arguments"]
    assert len(arguments) == 3 and max(arguments) < 4096 < packed["bytes"]  # the request only, no pipeline
    results = [e for e in report if e["event"] == "put" and e["kind"] == "OkResult"]
    assert len(results) == 3 and all(e["pid"] != app_pid for e in results)  # pickled back from the worker
    assert api.paths()[0] == "/startup-report" and api.paths().count("/allow") == 3
    assert durations[0] == FALLBACK_SECONDS  # nothing measured yet
    # computed from the request: the compiled one adds a compile allowance per recipe (none was measured: the
    # cache was refused); int8 alone, built before launch, asks for less than that and less than the fallback
    assert durations[1] >= gpu_call.MARGIN * gpu_call.COMPILE_FALLBACK_SECONDS * (1 + len(ZERO_GPU_RECIPES))
    assert gpu_call.MIN_DURATION <= durations[2] < min(FALLBACK_SECONDS, durations[1])
    assert "Traceback" not in (tmp_path / "app.log").read_text()


@pytest.mark.slow
def test_without_a_gpu_the_worker_stops_where_cuda_is_needed_and_the_app_keeps_serving(tmp_path):
    from gradio_client import Client

    with DeviceApi() as api, started(
        sys.executable, ROOT / "app.py", app_env(api, tmp_path, host_device=False), tmp_path / "app.log",
        "--model", "tiny-random",
    ) as url:  # fmt: skip
        for _ in range(2):  # the same answer twice: the app still serves after a failed GPU call
            with pytest.raises(Exception) as info:
                Client(url, verbose=False).predict(
                    "tiny-random", ["1"], 0, False, 2, 4.0, "dpm", ["int8"], False, api_name="/generate"
                )
            # spaces passes a worker's own failure by class name only; the app says what that means
            assert "The GPU worker failed" in str(info.value) and "(AssertionError)" in str(info.value)
        assert httpx.get(url + "config", timeout=30).status_code == 200
        releases = [q for path, q in api.calls if path == "/release"]
    log = (tmp_path / "app.log").read_text()
    assert "Torch not compiled with CUDA enabled" in log and "spaces/zero/torch/patching.py" in log  # in `init`
    assert len(releases) == 2 and all(q.get("fail") == "true" for q in releases)
    report = read_report(tmp_path / "report.jsonl")
    assert any(e["event"] == "pack" for e in report) and not any(e["event"] == "move" for e in report)
