"""The slider and the blind test in headless Chromium, at 1400 px and 390 px: after Generate, the reference-vs-recipe
slider shows both images and its handle follows a drag; in "Spot the quantized" a round shows two images, a click
votes, the answer and the page's tally follow; 100 gradio_client sessions voting at once lose no vote; a restarted
app on the same data folder shows the same tally. Every box of both tabs is measured for overflow (the shared
helper of test_app_browser), and full-page screenshots go to test-artifacts/ (app-slider-1400.png,
app-blind-390.png, ...)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from gradio_client import Client
from helpers import serving
from test_app_browser import (  # noqa: F401 - driver: fixture
    assert_nothing_overflows,
    driver,
    failed_requests,
    images_loaded,
    screenshot,
    set_viewport,
)
from test_blind_api import concurrent_votes, votes

from app import build_demo
from dit_demo.app.blind import game as blind_game
from dit_demo.app.blind.store import DATA_DIR_ENV
from dit_demo.app.service import DemoService

pytestmark = [pytest.mark.browser, pytest.mark.slow]
VIEWPORTS = [(1400, 1800, False), (390, 844, True)]

HANDLE = "#slider [data-testid='slider']"
LEFT = "const r = document.querySelector(arguments[0]).getBoundingClientRect(); return r.left + r.width / 2"
PAGE_VOTES = """const cell = document.querySelector('#blind-tally-table td[data-label="votes"]');
return cell ? parseInt(cell.textContent) : 0"""

# Gradio draws buttons at 600, whose bundled face lacks capitals such as A and B: ours are drawn at 700.
BUTTON_WEIGHTS = """return Object.fromEntries([...document.querySelectorAll('#tab-blind button')]
  .filter(b => b.getClientRects().length && b.textContent.trim())
  .map(b => [b.textContent.trim(), getComputedStyle(b).fontWeight]))"""
# Each image of a round drawn whole: its box inside its frame, its natural aspect kept.
IMAGES_FIT = """return [...document.querySelectorAll('#blind-a img, #blind-b img')].filter(i => {
  const r = i.getBoundingClientRect(), c = i.closest('.image-container').getBoundingClientRect();
  return r.left < c.left - 1 || r.right > c.right + 1 || r.bottom > c.bottom + 1
    || Math.abs(r.width / r.height - i.naturalWidth / i.naturalHeight) > 0.02; }).map(i => i.alt || i.src.slice(-20))"""


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("blind-browser-data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(DATA_DIR_ENV, str(folder))
        patch.setenv(blind_game.SEEDS_ENV, "3")
        patch.setenv(blind_game.RECIPES_ENV, "int8")
        yield folder


def new_app():
    return serving(build_demo(service=DemoService(device="cpu")))  # the app's default model


@pytest.fixture(scope="module")
def app_url(data: Path) -> Iterator[str]:
    with new_app() as url:
        yield url


def open_tab(browser, wait, name: str) -> None:
    from selenium.webdriver.common.by import By

    button = wait.until(
        lambda d: next((b for b in d.find_elements(By.CSS_SELECTOR, "button[role=tab]") if b.text.strip() == name), 0)
    )
    browser.execute_script("arguments[0].click()", button)  # a toast may lie over the tab bar


@pytest.mark.parametrize("width, height, mobile", VIEWPORTS, ids=["desktop-1400", "phone-390"])
def test_slider_handle_follows_a_drag(driver, app_url: str, width: int, height: int, mobile: bool) -> None:  # noqa: F811
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    set_viewport(driver, width, height, mobile)
    failed_requests(driver)
    driver.get(app_url)
    wait = WebDriverWait(driver, 180)
    wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "#generate"))).click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#slider img")) == 2)
    wait.until(lambda d: images_loaded(d, "#slider img, #tiles img"))
    assert "right: int8" in driver.find_element(By.CSS_SELECTOR, "#slider").text  # its label says which is which
    handle = driver.find_element(By.CSS_SELECTOR, HANDLE)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", handle)
    start = driver.execute_script(LEFT, HANDLE)
    ActionChains(driver).click_and_hold(handle).move_by_offset(-60, 0).move_by_offset(-40, 0).release().perform()
    moved = driver.execute_script(LEFT, HANDLE)
    assert moved < start - 50, f"the handle stayed at {start:.0f} px (now {moved:.0f} px)"
    driver.execute_script("window.scrollTo(0, 0)")
    screenshot(driver, f"app-slider-{width}.png")
    assert_nothing_overflows(driver, "#tab-compare", f"compare tab with the slider at {width} px")
    assert failed_requests(driver) == []


def vote_on_the_page(browser, wait, width: int) -> None:
    from selenium.webdriver.common.by import By

    open_tab(browser, wait, "Spot the quantized")
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#blind-new").is_enabled())
    browser.execute_script("arguments[0].click()", browser.find_element(By.CSS_SELECTOR, "#blind-new"))
    wait.until(
        lambda d: images_loaded(d, "#blind-a img, #blind-b img") and d.find_elements(By.CSS_SELECTOR, "#blind-a img")
    )
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#blind-pick-a").is_enabled())
    assert "which one is quantized?" in browser.find_element(By.CSS_SELECTOR, "#blind-prompt").text
    assert "int8" not in browser.find_element(By.CSS_SELECTOR, "#tab-blind").text.split("Guessing")[-1]  # no answer yet
    screenshot(browser, f"app-blind-round-{width}.png")
    weights = browser.execute_script(BUTTON_WEIGHTS)
    assert set(weights.values()) == {"700"}, f"buttons not in the complete bold face: {weights}"
    assert browser.execute_script(IMAGES_FIT) == [], "a round's image is cut off"
    browser.find_element(By.CSS_SELECTOR, "#blind-pick-a").click()
    wait.until(lambda d: "was quantized" in d.find_element(By.CSS_SELECTOR, "#blind-answer").text)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#blind-tally-table"))
    assert not browser.find_element(By.CSS_SELECTOR, "#blind-pick-a").is_enabled()  # one vote per round


def test_vote_tally_100_concurrent_votes_and_a_restart(driver, app_url: str, data: Path) -> None:  # noqa: F811
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, 180)
    for width, height, mobile in VIEWPORTS:
        set_viewport(driver, width, height, mobile)
        failed_requests(driver)
        driver.get(app_url)
        before = votes(Client(app_url, verbose=False))
        vote_on_the_page(driver, wait, width)
        assert driver.execute_script(PAGE_VOTES) == before + 1 == votes(Client(app_url, verbose=False))
        screenshot(driver, f"app-blind-{width}.png")
        assert_nothing_overflows(driver, "#tab-blind", f"blind tab at {width} px")
        assert failed_requests(driver) == []

    before = votes(Client(app_url, verbose=False))
    answers = concurrent_votes(app_url, 100)
    assert len(answers) == 100 and votes(Client(app_url, verbose=False)) == before + 100
    with new_app() as restarted:  # a second app on the same data folder: the page shows every vote
        driver.get(restarted)
        open_tab(driver, wait, "Spot the quantized")
        wait.until(lambda d: d.execute_script(PAGE_VOTES) > 0)
        assert driver.execute_script(PAGE_VOTES) == before + 100
