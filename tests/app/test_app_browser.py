"""The page itself in headless Chromium: load, click Generate, see both images and the numbers.

Saves a screenshot to test-artifacts/app.png. Skipped only where chromium/chromedriver are not installed
(CI installs Debian's `chromium` and `chromium-driver`).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import serving

from app import build_demo
from dit_demo.app.config import embedded_available
from dit_demo.app.service import DemoService

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
MODEL = "embedded" if embedded_available() else "tiny-random"


@pytest.fixture(scope="module")
def driver() -> Iterator[object]:
    if not (Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()):
        pytest.skip(f"headless browser test needs chromium and chromedriver ({CHROMIUM}, {CHROMEDRIVER} not found)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="dit-demo-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1400,2200",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield browser
    finally:
        browser.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    service = DemoService(MODEL, device="cpu")
    with serving(build_demo(service=service)) as local_url:
        yield local_url


def test_page_generates_a_comparison(driver, url: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    wait = WebDriverWait(driver, 60)
    button = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "#generate")))
    assert not driver.find_elements(By.CSS_SELECTOR, "#gallery img")
    button.click()

    def gallery_images(drv):
        images = drv.find_elements(By.CSS_SELECTOR, "#gallery img")
        loaded = [
            i for i in images if drv.execute_script("return arguments[0].complete && arguments[0].naturalWidth", i)
        ]
        return loaded if len(loaded) >= 2 else False

    images = wait.until(gallery_images)
    sources = {img.get_attribute("src") for img in images}
    assert len(sources) >= 2  # reference and int8 are distinct files

    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, "#numbers"), "latency_s"))
    numbers = driver.find_element(By.CSS_SELECTOR, "#numbers").text
    assert "int8" in numbers and "bf16" in numbers and "weight_bytes" in numbers
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, "#table"), "int8"))
    summary = driver.find_element(By.CSS_SELECTOR, "#summary").text
    assert "seed 0" in summary
    wait.until(lambda drv: drv.find_elements(By.CSS_SELECTOR, "#slider img"))

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "app.png"
    driver.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000


def test_page_shows_a_clear_error(driver, url: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    wait = WebDriverWait(driver, 60)
    wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "#generate")))
    classes = driver.find_element(By.CSS_SELECTOR, "#classes input")
    classes.click()
    classes.send_keys("zzqx-not-a-class", Keys.ENTER)
    classes.send_keys(Keys.ESCAPE)  # close the option list, which covers the button
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, "#classes"), "zzqx-not-a-class"))
    wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "#generate"))).click()
    toast = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, ".toast-body.error")))
    assert "Unknown class 'zzqx-not-a-class'" in toast.text
    ARTIFACTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / "app-error.png"))
