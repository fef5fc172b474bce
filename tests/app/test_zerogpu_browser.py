"""A ZeroGPU Space folder (`deploy-space --hardware zero-a10g`) started in ZeroGPU mode under the real `spaces`
0.51.3 (tests/app/zerogpu_harness.py, its device API a local stand-in), in headless Chromium at 1400 px:
  * with host memory standing in for the GPU inside the worker: Generate gives the captioned tiles, the compile
    box says what it does on ZeroGPU, nothing failed at start-up, no request answers ≥ 400;
  * without it (a CPU machine, as far as it goes): the GPU call stops in `spaces`' CUDA init, the page shows the
    error `spaces` passes back, and the page still works (Generate can be clicked again).
Screenshots: test-artifacts/zerogpu-space-*.png.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_app_browser import driver, failed_requests, images_loaded, screenshot  # noqa: F401 - driver: fixture
from zerogpu_device_api import DeviceApi, started, zero_gpu_env

from dit_demo.cli.publish import deploy_space
from dit_demo.engine.model.resolver import EMBEDDED_MODEL_DIR

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not (EMBEDDED_MODEL_DIR / "model_index.json").is_file(), reason="embedded model not trained"),
]


@pytest.fixture(scope="module")
def space_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("zero-space")
    out, cache = root / "space", root / "dit.bin"  # a shipped compile cache (never ticked here: its bytes are unread)
    cache.write_bytes(b"torch.compile artifacts")
    cache.with_suffix(".json").write_text("{}")
    argv = ["--repo-id", "alice/zero", "--model", "embedded", "--out", str(out), "--hardware", "zero-a10g"]
    assert deploy_space.main([*argv, "--compile-cache", str(cache)]) == 0
    return out


@pytest.fixture
def space_url(request, space_folder: Path, tmp_path: Path) -> Iterator[str]:
    (tmp_path / "cgroup").write_text("0::/stand-in\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DIT_DEMO", "SPACES", "GRADIO"))}
    env.pop("PYTHONPATH", None)  # the Space imports its own copy of dit_demo
    with DeviceApi() as api:
        env.update(zero_gpu_env(api, str(tmp_path / "offload"), str(tmp_path / "cgroup")))
        env.update(SPACE_ID="alice/zero", GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1")
        env.update(HARNESS_HOST_DEVICE="1" if request.param else "0")
        with started(sys.executable, space_folder / "space_app.py", env, tmp_path / "app.log") as url:
            yield url


def _open(driver, url: str):  # noqa: F811 - the fixture's value
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride", {"width": 1400, "height": 1800, "deviceScaleFactor": 1, "mobile": False}
    )
    failed_requests(driver)
    driver.get(url)
    wait = WebDriverWait(driver, 240)
    button = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "#generate")))
    label = driver.find_element(By.CSS_SELECTOR, "#compile").text
    assert "shipped compile cache" in label  # says what it does there (offered: the Space ships a cache)
    assert driver.find_element(By.CSS_SELECTOR, "#startup").text.strip() == ""  # nothing failed at start-up
    return wait, button


@pytest.mark.parametrize("space_url", [True], ids=["host-as-gpu"], indirect=True)
def test_a_zero_gpu_space_generates_in_the_browser(driver, space_url: str):  # noqa: F811
    from selenium.webdriver.common.by import By

    wait, button = _open(driver, space_url)
    button.click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#tiles figure")) >= 4)
    wait.until(lambda d: images_loaded(d, "#tiles img"))
    captions = [
        f.find_element(By.TAG_NAME, "figcaption").text for f in driver.find_elements(By.CSS_SELECTOR, "#tiles figure")
    ]
    assert len(captions) == 4 and all(c.startswith(("bf16 reference · ", "int8 · ")) for c in captions), captions
    screenshot(driver, "zerogpu-space-generated-1400.png")
    assert failed_requests(driver) == []


@pytest.mark.parametrize("space_url", [False], ids=["cpu-only"], indirect=True)
def test_without_a_gpu_the_page_shows_the_zero_gpu_error_and_keeps_working(driver, space_url: str):  # noqa: F811
    from selenium.webdriver.common.by import By

    wait, button = _open(driver, space_url)
    button.click()
    wait.until(lambda d: "AssertionError" in d.find_element(By.TAG_NAME, "body").text)
    screenshot(driver, "zerogpu-space-no-gpu-1400.png")
    assert not driver.find_elements(By.CSS_SELECTOR, "#tiles figure:not(.dq-example)")  # no live result
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#generate").is_enabled())  # the page still works
