"""Hosted mode against a launched app, through gradio_client and raw HTTP: every bad input answered with a message
naming its field (and the app alive after each), models outside the allow-list refused at once, budgets enforced,
one transformer shared by every scheduler, and 100 concurrent clients all answered.

Uses the embedded digits model (or the tiny random DiT where it is missing) with 2 steps.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace

import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError, ValidationError

from dit_demo.app import service as app_service
from dit_demo.app.config import Limits, embedded_available
from dit_demo.app.inputs import FIELDS
from dit_demo.app.service import DemoService

MODEL = "embedded" if embedded_available() else "tiny-random"
LIMITS = Limits(hosted=True, allowed_models=(MODEL,), max_images=4, max_step_images=40, max_seconds=30.0)
GOOD = {
    "model": MODEL,
    "classes": ["1"],
    "seed": 7,
    "randomize_seed": False,
    "steps": 2,
    "guidance_scale": 4.0,
    "scheduler": "dpm",
    "recipes": [],
    "compile_gpu": False,
}


@pytest.fixture(scope="module")
def service() -> DemoService:
    return DemoService(MODEL, device="cpu", limits=LIMITS)


def values(**changes) -> list:
    return [{**GOOD, **changes}[field] for field in FIELDS]


def refusal(client: Client, **changes) -> str:
    """The message a bad request gets (it must be refused)."""
    with pytest.raises((ValidationError, AppError)) as info:
        client.predict(*values(**changes), api_name="/generate")
    return str(info.value)


def raw_call(url: str, body: str) -> httpx.Response:
    """POST /generate as raw HTTP (JSON text as given: NaN and Infinity included) and read its answer."""
    answer = httpx.post(
        url + "gradio_api/call/generate", content=body, headers={"content-type": "application/json"}, timeout=30
    )
    if answer.status_code == 200:
        return httpx.get(url + f"gradio_api/call/generate/{answer.json()['event_id']}", timeout=60)
    return answer


def assert_alive(url: str) -> None:
    assert httpx.get(url + "gradio_api/info", timeout=30).status_code == 200


BATTERY = [
    ("model", 3, "model must be text"),
    ("model", None, "model must be text"),
    ("model", "", "model must be text"),
    ("model", ["embedded"], "model must be text"),
    ("model", "dit-xl-2-256-random", "is not offered on this server"),
    ("model", "facebook/DiT-XL-2-256", "is not offered on this server"),
    ("model", "../../etc", "is not offered on this server"),
    ("classes", "zzqx-not-a-class", "Unknown class 'zzqx-not-a-class'"),
    ("classes", [], "No class selected"),
    ("classes", [1.5], "classes[0] must be a class name"),
    ("classes", [None], "classes[0] must be a class name"),
    ("classes", [True], "classes[0] must be a class name"),
    ("classes", [["1"]], "classes[0] must be a class name"),
    ("classes", {"a": 1}, "classes must be a list"),
    ("classes", 12345, "out of range"),
    ("classes", ["1"] * 5, "Too many images in one request: 5 classes > 4"),
    ("seed", "abc", "seed must be a whole number from 0 to 4294967295, got 'abc' (text)"),
    ("seed", -1, "seed must be a whole number from 0"),
    ("seed", 2**33, "seed must be a whole number from 0"),
    ("seed", 1.5, "seed must be a whole number from 0"),
    ("seed", None, "seed is empty"),
    ("seed", [1], "seed must be a whole number from 0"),
    ("randomize_seed", "yes", "randomize_seed must be true or false"),
    ("randomize_seed", None, "randomize_seed must be true or false"),
    ("steps", "ten", "steps must be a whole number from 1 to 100, got 'ten' (text)"),
    ("steps", 0, "steps must be a whole number from 1 to 100"),
    ("steps", 101, "steps must be a whole number from 1 to 100"),
    ("steps", 2.5, "steps must be a whole number from 1 to 100"),
    ("steps", [2], "steps must be a whole number from 1 to 100"),
    ("steps", 41, "steps × images = 41 × 1 = 41 is over this server's budget of 40"),
    ("guidance_scale", "abc", "guidance_scale must be a number from 1 to 15"),
    ("guidance_scale", 0.5, "guidance_scale must be a number from 1 to 15"),
    ("guidance_scale", 16, "guidance_scale must be a number from 1 to 15"),
    ("guidance_scale", None, "guidance_scale must be a number from 1 to 15"),
    ("guidance_scale", True, "guidance_scale must be a number from 1 to 15"),
    ("scheduler", "foo", "scheduler must be one of dpm, ddim, euler"),
    ("scheduler", 3, "scheduler must be one of dpm, ddim, euler"),
    ("recipes", ["int3"], "Unknown recipe(s) ['int3']"),
    ("recipes", 3, "recipes must be a list of recipe names"),
    ("compile_gpu", "yes", "compile_gpu must be true or false"),
]


@pytest.mark.parametrize("field, value, expected", BATTERY, ids=[f"{f}={v!r}"[:40] for f, v, _ in BATTERY])
def test_bad_input_is_named(client: Client, url: str, field: str, value, expected: str) -> None:
    message = refusal(client, **{field: value})
    assert f"- {field}: " in message, message  # the API names the parameter ...
    assert field in message.split(f"- {field}: ", 1)[1], message  # ... and the message itself names it too
    assert expected in message, message
    assert_alive(url)


@pytest.mark.parametrize(
    "field, literal",
    [("seed", "NaN"), ("seed", "Infinity"), ("steps", "-Infinity"), ("guidance_scale", "NaN"), ("classes", "[NaN]")],
)
def test_raw_http_nan_and_inf_are_named(url: str, field: str, literal: str) -> None:
    data = values()
    data[FIELDS.index(field)] = "__VALUE__"
    body = json.dumps({"data": data}).replace('"__VALUE__"', literal)
    answer = raw_call(url, body)
    assert answer.status_code == 422, answer.text
    detail = {d["parameter_name"]: d for d in answer.json()["detail"]}
    assert not detail[field]["is_valid"] and field in detail[field]["message"], detail[field]
    assert "not a finite number" in detail[field]["message"] or "nan" in detail[field]["message"].lower()
    assert_alive(url)


@pytest.mark.parametrize("count", [0, 2, 8, 10])
def test_wrong_argument_counts_are_named(url: str, count: int) -> None:
    data = (values() + [False])[:count]
    answer = raw_call(url, json.dumps({"data": data}))
    assert answer.status_code == 400, answer.text
    message = answer.json()["detail"]
    assert message == (
        f"/generate takes 9 values (model, classes, seed, randomize_seed, steps, guidance_scale, scheduler, recipes, "
        f"compile_gpu), got {count}."
    )
    assert_alive(url)


def test_app_answers_after_the_battery(client: Client) -> None:
    _, numbers, _, _ = client.predict(*values(), api_name="/generate")
    assert numbers["seed"] == 7 and list(numbers["recipes"]) == ["bf16"]


def test_model_outside_the_allow_list_is_refused_at_once_even_while_busy(
    client: Client, service: DemoService, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = app_service.run_comparison

    def slow(*args, **kwargs):
        time.sleep(4)  # a long request holds the one queue slot
        return real(*args, **kwargs)

    monkeypatch.setattr(app_service, "run_comparison", slow)
    busy = threading.Thread(target=lambda: Client(url, verbose=False).predict(*values(), api_name="/generate"))
    busy.start()
    time.sleep(1)
    cached = service.cache.keys()
    start = time.perf_counter()
    message = refusal(client, model="dit-xl-2-256-random")
    elapsed = time.perf_counter() - start
    busy.join(timeout=60)
    assert elapsed < 1.0, elapsed
    assert f"model 'dit-xl-2-256-random' is not offered on this server: choose one of {MODEL}" in message
    assert service.cache.keys() == cached  # nothing was loaded for it


def test_seconds_budget_before_and_during_sampling(
    client: Client, service: DemoService, monkeypatch: pytest.MonkeyPatch
) -> None:
    client.predict(*values(), api_name="/generate")  # measured: the service now knows its cost per image-step
    monkeypatch.setattr(service, "limits", replace(LIMITS, max_seconds=1e-6))
    message = refusal(client)
    assert "- steps: This request would take about" in message and "time budget" in message
    monkeypatch.setattr(service, "_seconds_per_image_step", {})  # unmeasured: the clock stops it while sampling
    with pytest.raises(AppError, match=r"ran past this server's time budget of 1e-06 s per request \(seconds\)"):
        client.predict(*values(), api_name="/generate")
    monkeypatch.undo()
    assert client.predict(*values(), api_name="/generate")[1]["seed"] == 7


def test_scheduler_switches_share_one_transformer(client: Client, service: DemoService) -> None:
    seen = []
    for scheduler, name in [("dpm", "DPMSolver"), ("ddim", "DDIM"), ("euler", "Euler"), ("dpm", "DPMSolver")]:
        _, numbers, _, _ = client.predict(*values(scheduler=scheduler, recipes=["int8"]), api_name="/generate")
        assert numbers["scheduler"].startswith(name)
        reference, int8 = service.cache.reference(MODEL), service.cache.get(MODEL, "int8")
        seen.append((reference.pipe.transformer, int8.pipe.transformer, len(service.cache)))
    first = seen[0]
    for transformer, quantized, size in seen[1:]:
        assert transformer is first[0] and quantized is first[1] and size == first[2]
    assert sum(1 for key in service.cache.keys() if key[0] == MODEL and key[1] != "int8") == 1


def test_hundred_concurrent_clients_are_all_answered(url: str) -> None:
    answers: dict[int, int] = {}
    failures: list[BaseException] = []

    def one(i: int) -> None:
        try:
            # a client of its own each (generous timeouts: 100 clients share this machine's 2 cores with the server)
            _, numbers, _, _ = Client(url, verbose=False, httpx_kwargs={"timeout": 120}).predict(
                *values(classes=[str(i % 10)], seed=1000 + i), api_name="/generate"
            )
            answers[i] = numbers["seed"]
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            failures.append(exc)

    start = time.perf_counter()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max(1.0, 300 - (time.perf_counter() - start)))
    assert not failures, failures[:3]
    assert answers == {i: 1000 + i for i in range(100)}
    assert time.perf_counter() - start < 300
