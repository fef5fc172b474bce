"""Hosted mode: on by default on a Space (SPACE_ID), opt-in locally; its allow-list and budgets."""

from __future__ import annotations

import pytest

import app
from dit_demo.app import config
from dit_demo.app.inputs import Request
from dit_demo.errors import InvalidRequestError


def test_hosted_mode_is_on_for_a_space_and_opt_in_locally() -> None:
    assert not config.hosted(None, {})
    assert config.hosted(None, {config.SPACE_ENV: "someone/dit-quanto-demo"})
    assert not config.hosted(None, {config.SPACE_ENV: "someone/x", config.HOSTED_ENV: "0"})
    assert config.hosted(None, {config.HOSTED_ENV: "yes"})
    assert config.hosted(True, {}) and not config.hosted(False, {config.SPACE_ENV: "x"})
    with pytest.raises(ValueError, match="DIT_DEMO_HOSTED must be"):
        config.hosted(None, {config.HOSTED_ENV: "maybe"})
    args = app.build_parser().parse_args(["--hosted", "--allowed-models", "embedded, tiny-random"])
    assert args.hosted is True and args.allowed_models == "embedded, tiny-random"
    assert app.build_parser().parse_args(["--no-hosted"]).hosted is False
    assert app.build_parser().parse_args([]).hosted is None


def test_limits_allow_list_and_budgets() -> None:
    assert config.limits("tiny-random", environ={}) == config.Limits()  # local: anything, engine batch cap only
    hosted = config.limits("tiny-random", environ={config.SPACE_ENV: "x"})
    assert hosted.hosted and hosted.allowed_models[-1] == "tiny-random"
    assert hosted.allowed_models[:-1] == (("embedded",) if config.embedded_available() else ())
    assert (hosted.max_images, hosted.max_step_images, hosted.max_seconds) == (8, 400, 60.0)
    custom = config.limits(
        "tiny-random",
        environ={
            config.SPACE_ENV: "x",
            config.ALLOWED_MODELS_ENV: "a/b, c/d",
            config.MAX_IMAGES_ENV: "2",
            config.MAX_STEP_IMAGES_ENV: "20",
            config.MAX_SECONDS_ENV: "5.5",
        },
    )
    assert custom.allowed_models == ("a/b", "c/d", "tiny-random")  # the default model is always offered
    assert (custom.max_images, custom.max_step_images, custom.max_seconds) == (2, 20, 5.5)
    assert config.limits("tiny-random", hosted_mode=True, allowed_models=["x/y"], environ={}).allowed_models == (
        "x/y",
        "tiny-random",
    )


def test_hosted_requests_are_checked_against_the_limits() -> None:
    limits = config.Limits(hosted=True, allowed_models=("tiny-random",), max_images=2, max_step_images=10)
    ok = Request.parse("tiny-random", ["1", "2"], 0, False, 5, 4.0, "dpm", [], False, limits=limits)
    assert ok.images == 2 and ok.sampling.steps == 5 and ok.sampling.scheduler == "dpm"
    with pytest.raises(InvalidRequestError, match="model 'dit-xl-2-256-random' is not offered on this server"):
        Request.parse("dit-xl-2-256-random", ["1"], 0, False, 2, 4.0, "dpm", [], False, limits=limits)
    with pytest.raises(InvalidRequestError, match="Too many images in one request: 3 classes > 2"):
        Request.parse("tiny-random", ["1"] * 3, 0, False, 2, 4.0, "dpm", [], False, limits=limits)
    with pytest.raises(InvalidRequestError, match=r"steps × images = 6 × 2 = 12 is over this server's budget of 10"):
        Request.parse("tiny-random", ["1", "2"], 0, False, 6, 4.0, "dpm", [], False, limits=limits)


def test_calibration_steps_come_from_the_environment_and_reach_the_variant_cache(monkeypatch) -> None:
    from dit_demo.app.service import DemoService
    from dit_demo.engine.quant.quantize import CalibrationConfig

    assert config.calibration_steps({}) is None
    assert config.calibration_steps({config.CALIBRATION_STEPS_ENV: "3"}) == 3
    with pytest.raises(ValueError, match="DIT_DEMO_CALIBRATION_STEPS must be a whole number of at least 1, not 0"):
        config.calibration_steps({config.CALIBRATION_STEPS_ENV: "0"})
    assert DemoService("tiny-random", device="cpu").cache.calibration is None  # the engine's default (25 steps)
    monkeypatch.setenv(config.CALIBRATION_STEPS_ENV, "3")
    assert DemoService("tiny-random", device="cpu").cache.calibration == CalibrationConfig(steps=3)
    passed = CalibrationConfig(steps=7)
    assert DemoService("tiny-random", device="cpu", calibration=passed).cache.calibration is passed  # callers win
