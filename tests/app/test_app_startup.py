"""`python app.py` serves its page before torch and diffusers are imported, then answers once they are.

The program test runs the real `app.py` in a subprocess whose `gr.Blocks.launch` reports `sys.modules` the moment
the server is up (and fetches the page), then asks `/generate` through gradio_client while the engine is still
loading: the request waits for it and answers. Correctness only; the timings are in bench/cpu-startup.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError
from helpers import free_port, serving, wait_until_serving

from app import build_demo
from dit_demo.app import startup
from dit_demo.app.config import embedded_available
from dit_demo.app.offered import class_choices

ROOT = Path(__file__).resolve().parents[2]
MODEL = "embedded" if embedded_available() else "tiny-random"
HEAVY = ("torch", "diffusers", "optimum.quanto", "dit_demo.app.service", "dit_demo.compare")

# app.py as `python app.py` runs it, with launch() wrapped to report what is imported once the server answers
PROBE = """
import json, runpy, sys
import gradio as gr
import httpx

launch, watched = gr.Blocks.launch, json.loads(sys.argv[2])
def reporting_launch(self, *args, **kwargs):
    result = launch(self, *args, **kwargs)
    page = httpx.get(self.local_url, timeout=60)
    heavy = [m for m in watched if m in sys.modules]
    note = self.service.startup_note()
    print("SERVED " + json.dumps({"status": page.status_code, "heavy": heavy, "note": note,
          "service": type(self.service).__name__}), flush=True)
    return result
gr.Blocks.launch = reporting_launch
sys.argv = ["app.py", "--port", sys.argv[1]]
runpy.run_path("app.py", run_name="__main__")
"""


def call(client: Client, *, steps=2, classes=None) -> tuple:
    classes = classes or class_choices(MODEL)[:1]
    return client.predict(MODEL, classes, 3, False, steps, 4.0, "dpm", ["int8"], False, api_name="/generate")


def served_report(log: Path, proc: subprocess.Popen, timeout: float = 120) -> dict:
    """The probe's SERVED line (printed once its own fetch of the page is answered)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        for line in log.read_text().splitlines():
            if line.startswith("SERVED "):
                return json.loads(line.removeprefix("SERVED "))
        time.sleep(0.5)
    raise AssertionError(f"no SERVED line:\n{log.read_text()[-4000:]}")


def test_python_app_py_serves_before_importing_torch_then_answers(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "app.log"
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("SPACES_ZERO_GPU", "DIT_DEMO_MODEL")}
    env |= {"DIT_DEMO_MODEL": MODEL, "CUDA_VISIBLE_DEVICES": ""}  # a CPU host, as on the machines it targets
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", PROBE, str(port), json.dumps(HEAVY)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_until_serving(url, proc, log, timeout=300)
        report = served_report(log, proc)
        assert report["status"] == 200
        assert report["heavy"] == [], f"imported before the page was served: {report['heavy']}"
        assert report["service"] == "StartingService"
        assert report["note"] == startup.LOADING_NOTE
        # the server answers slowly while the engine imports beside it (one interpreter): a patient client
        client = Client(url, verbose=False, httpx_kwargs={"timeout": 300})
        gallery, numbers, summary, download = call(client)  # waits for the engine, then runs
        assert set(numbers["recipes"]) >= {"int8"} and len(gallery) == 2 and Path(download).is_file()
        assert "Engine imported" in log.read_text()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_serve_first_only_on_a_cpu_host_that_is_not_zero_gpu(tmp_path: Path) -> None:
    driver = tmp_path / "nvidiactl"
    assert startup.nvidia_present(markers=(str(driver),), environ={}) is False
    driver.touch()
    assert startup.nvidia_present(markers=(str(driver),), environ={}) is True
    assert startup.nvidia_present(markers=(str(driver),), environ={"CUDA_VISIBLE_DEVICES": ""}) is False
    assert startup.nvidia_present(markers=(str(driver),), environ={"CUDA_VISIBLE_DEVICES": "-1"}) is False
    assert startup.zero_gpu_requested({"SPACES_ZERO_GPU": "true"}) and not startup.zero_gpu_requested({})
    assert not startup.serve_before_torch({"SPACES_ZERO_GPU": "1", "CUDA_VISIBLE_DEVICES": ""})
    assert startup.serve_before_torch({"CUDA_VISIBLE_DEVICES": "-1"})


def test_zero_gpu_switch_is_the_one_zerogpu_reads() -> None:
    from dit_demo.app import zerogpu

    assert startup.ZERO_GPU_ENV == zerogpu.ZERO_GPU_ENV


@pytest.fixture(scope="module")
def starting() -> startup.StartingService:
    return startup.StartingService(MODEL)


def test_before_the_engine_bad_input_is_refused_and_the_page_says_it_loads(starting) -> None:
    with serving(build_demo(service=starting)) as url:
        client = Client(url, verbose=False)
        assert not starting.ready and starting.startup_note() == startup.LOADING_NOTE
        with pytest.raises(Exception, match="steps must be a whole number from 1 to 100, got 150"):
            call(client, steps=150)
        starting.start(preload=False)
        _, numbers, summary, _ = call(client)
        assert starting.ready and starting.service is not None and "int8" in numbers["recipes"]
        assert starting.startup_note() == ""  # nothing failed; the loading line is gone


def test_a_failed_start_up_is_said_on_the_page_and_by_generate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIT_DEMO_MAX_VARIANTS", "many")
    service = startup.StartingService(MODEL)
    service.start(preload=False).join(timeout=300)
    assert service.ready and service.service is None
    assert "Start-up: importing the engine failed (ValueError" in service.startup_note()
    with serving(build_demo(service=service)) as url:
        with pytest.raises(AppError, match="Start-up failed: importing the engine failed"):
            call(Client(url, verbose=False))
