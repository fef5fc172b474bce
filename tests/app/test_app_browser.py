"""The page itself in headless Chromium, on a 1400 px desktop and a 390 px phone: the first screen shows the
shipped pre-computed example, marked so, with the download button disabled; Generate, then the button is enabled,
every tile has a visible caption, no table header breaks onto a second line, every tab loads, and no request
answers ≥ 400 (from the browser's network log). On every tab, with every disclosure opened, every table, chart,
key, tile and text block is measured against its container: the test fails on any overflow (a box whose content
is wider than the box, or an element whose edge passes its container's), and on any text drawn in the bundled
font's broken semibold face.

Full-page screenshots go to test-artifacts/ (app-compare-1400.png, app-gallery-390.png, ...). Skipped only where
chromium/chromedriver are not installed (CI installs Debian's `chromium` and `chromium-driver`).
"""

from __future__ import annotations

import base64
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import serving

from app import build_demo
from dit_demo.app.config import default_model, embedded_available
from dit_demo.app.service import DemoService

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
# what a visitor gets: the shipped default (MNIST), whose pre-computed example the first screen shows
MODEL = default_model(None, {}) if embedded_available() else "tiny-random"
VIEWPORTS = [(1400, 1800, False), (390, 844, True)]

# Height of each visible header cell's text in lines, and whether its text overflows the cell.
HEADER_LINES = """
return [...document.querySelectorAll(arguments[0])].filter(e => e.offsetParent !== null).map(e => {
  const s = getComputedStyle(e), r = e.getBoundingClientRect();
  const line = parseFloat(s.lineHeight) || 1.25 * parseFloat(s.fontSize);
  const inner = r.height - parseFloat(s.paddingTop) - parseFloat(s.paddingBottom)
    - parseFloat(s.borderTopWidth) - parseFloat(s.borderBottomWidth);
  return [e.textContent, inner / line, e.scrollWidth - e.clientWidth];
});
"""


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
        "--window-size=1400,1800",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
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


def set_viewport(driver, width: int, height: int, mobile: bool) -> None:
    metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)


def screenshot(driver, name: str) -> Path:
    """The whole page (not only the viewport), as a PNG under test-artifacts/."""
    ARTIFACTS.mkdir(exist_ok=True)
    width = driver.execute_script("return document.documentElement.clientWidth")
    height = driver.execute_script("return document.documentElement.scrollHeight")
    clip = {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}
    options = {"format": "png", "captureBeyondViewport": True, "clip": clip}
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", options)
    path = ARTIFACTS / name
    path.write_bytes(base64.b64decode(shot["data"]))
    assert path.stat().st_size > 10_000
    return path


def failed_requests(driver) -> list[tuple[int, str]]:
    """Every response with a status ≥ 400 since the last call (the performance log is drained on reading)."""
    failed = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.responseReceived":
            response = message["params"]["response"]
            if response["status"] >= 400:
                failed.append((response["status"], response["url"]))
    return failed


# Every box of a tab that must fit: [description, kind, pixels] for each overflow found (empty = all fit).
OVERFLOWS = """
const root = document.querySelector(arguments[0]);
root.querySelectorAll('details').forEach(d => { d.open = true; });
const sel = 'table, th, .dq-table-wrap, .dq-chart, .dq-chart svg, .dq-key, .dq-tile, .dq-strip, .dq-grid, '
  + '.dq-grid img, .dq-row, .dq-rows, .dq-gpu, details, ul, ol, p, h3, h4, figure, img';
const found = [];
const name = e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + '[' + (e.getAttribute('class') || '')
  + '] "' + (e.textContent || '').trim().slice(0, 40) + '"';
const viewport = document.documentElement.clientWidth;
if (document.documentElement.scrollWidth > viewport + 1)
  found.push(['page', 'scroll', document.documentElement.scrollWidth - viewport]);
for (const e of [root, ...root.querySelectorAll(sel)]) {
  if (!e.getClientRects().length) continue;
  const r = e.getBoundingClientRect();
  if (r.width === 0) continue;
  const hidden = e.scrollWidth - e.clientWidth;
  if (hidden > 1 && e.clientWidth > 0) found.push([name(e), 'scroll', hidden]);
  const c = (e === root ? document.documentElement : e.parentElement).getBoundingClientRect();
  if (r.right > c.right + 1) found.push([name(e), 'right', Math.round(r.right - c.right)]);
  if (r.left < c.left - 1) found.push([name(e), 'left', Math.round(c.left - r.left)]);
  if (r.right > viewport + 1) found.push([name(e), 'viewport', Math.round(r.right - viewport)]);
}
return found;
"""

# Our pages' text (inside Gradio's HTML/Markdown `.prose`) drawn in semibold (600): Gradio's
# SourceSansPro-SemiBold.woff2 is a 5 KB subset without A, B, I and more, which Chromium then draws from a fallback
# as small capitals ("NVIDIᴀ", "Mɪʙ", "dʙ"); our text uses the complete regular and bold faces only.
SEMIBOLD = """
const root = document.querySelector(arguments[0]);
return [...root.querySelectorAll('.prose *')].filter(e => e.getClientRects().length && e.childNodes.length
  && [...e.childNodes].some(n => n.nodeType === 3 && n.textContent.trim())
  && getComputedStyle(e).fontWeight === '600'
  && /source sans pro/i.test(getComputedStyle(e).fontFamily.split(',')[0])).map(e => e.textContent.trim().slice(0, 40));
"""


def assert_nothing_overflows(driver, selector: str, where: str) -> None:
    overflows = driver.execute_script(OVERFLOWS, selector)
    assert overflows == [], f"{where}: overflowing boxes {overflows}"
    semibold = driver.execute_script(SEMIBOLD, selector)
    assert semibold == [], f"{where}: text in the broken semibold face {semibold}"
    bold = "return [...document.fonts].some(f => /Source Sans Pro/.test(f.family) && f.weight === '700' "
    bold += "&& f.status === 'loaded')"
    assert driver.execute_script(bold), "the complete bold face (700) is not loaded"


def assert_headers_on_one_line(driver, selector: str) -> None:
    for text, lines, overflow in driver.execute_script(HEADER_LINES, selector):
        assert lines < 1.5, f"header {text!r} takes {lines:.1f} lines"
        assert overflow <= 1, f"header {text!r} overflows its cell by {overflow} px"


def images_loaded(driver, selector: str) -> bool:
    script = "return [...document.querySelectorAll(arguments[0])].every(i => i.complete && i.naturalWidth > 0)"
    return driver.execute_script(script, selector)


def assert_first_screen(driver, wait, width: int) -> None:
    """Before any request: the shipped example, marked as pre-computed, the call to action, download disabled."""
    from selenium.webdriver.common.by import By

    wait.until(lambda d: images_loaded(d, "#tiles .dq-example img"))
    example = driver.find_element(By.CSS_SELECTOR, "#tiles figure.dq-example")
    image = example.find_element(By.TAG_NAME, "img")
    assert image.is_displayed() and image.size["width"] >= 200  # the comparison itself, not a broken icon
    assert example.find_element(By.TAG_NAME, "figcaption").text.startswith("Pre-computed example, generated on ")
    summary = driver.find_element(By.CSS_SELECTOR, "#summary").text
    assert "Press Generate to run this comparison live" in summary and "Pre-computed example" in summary
    assert "int8: " in summary and "on that machine" in summary  # its verdicts, not claimed for this server
    download = driver.find_element(By.CSS_SELECTOR, "#download")
    assert not download.is_enabled() and download.get_attribute("disabled") is not None
    screenshot(driver, f"app-first-screen-{width}.png")
    assert_nothing_overflows(driver, "#tab-compare", f"first screen at {width} px")


@pytest.mark.parametrize("width, height, mobile", VIEWPORTS, ids=["desktop-1400", "phone-390"])
def test_page_reads_at_a_glance(driver, url: str, width: int, height: int, mobile: bool) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    set_viewport(driver, width, height, mobile)
    failed_requests(driver)  # start a clean log
    driver.get(url)
    wait = WebDriverWait(driver, 120)
    button = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "#generate")))
    assert_first_screen(driver, wait, width)
    button.click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#tiles figure:not(.dq-example)")) >= 4)
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#download").is_enabled())  # enabled by the result
    assert not driver.find_elements(By.CSS_SELECTOR, ".dq-example")  # the live result replaced the example
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#dq-table"))
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#chart svg"))
    wait.until(lambda d: images_loaded(d, "#tiles img, #diff img"))

    figures = driver.find_elements(By.CSS_SELECTOR, "#tiles figure")
    assert len(figures) == 4  # two classes × (reference + int8)
    for figure in figures:
        caption = figure.find_element(By.TAG_NAME, "figcaption")
        image = figure.find_element(By.TAG_NAME, "img")
        assert caption.is_displayed() and caption.size["height"] > 10
        assert caption.text.startswith(("fp32 reference · ", "int8 · ")) and "(seed " in caption.text
        box = driver.execute_script("const r = arguments[0].getBoundingClientRect(); return [r.left, r.right]", image)
        assert image.size["width"] >= 64 and 0 <= box[0] and box[1] <= width  # a real tile, not cut off
        assert driver.execute_script("return arguments[0].naturalWidth", image) >= 128  # upscaled crisply
    summary = driver.find_element(By.CSS_SELECTOR, "#summary").text
    assert "int8: " in summary and "the fp32 reference here" in summary and "dB PSNR" in summary
    diff = driver.find_element(By.CSS_SELECTOR, "#diff").text
    assert "Largest error" in diff or "identical pixels" in diff
    assert len(driver.find_elements(By.CSS_SELECTOR, "#chart .dq-point")) == 2
    assert_headers_on_one_line(driver, "#dq-table thead th")
    fits = "const w = document.querySelector('#dq-table').parentElement; return w.scrollWidth - w.clientWidth"
    assert driver.execute_script(fits) <= 1  # the last column is not cut off
    screenshot(driver, f"app-compare-{width}.png")  # before the checks, so a failure can be looked at
    assert_nothing_overflows(driver, "#tab-compare", f"compare tab at {width} px")

    for tab, content in (("Gallery", "#precomputed"), ("GPU benchmark", "#bench")):  # the compare tab is above
        buttons = [b for b in driver.find_elements(By.CSS_SELECTOR, "button[role=tab]") if b.text.strip() == tab]
        if not buttons:
            continue  # the benchmark tab exists only where bench/*/results.json does
        driver.execute_script("arguments[0].click()", buttons[0])  # a "Loading…" toast may lie over the tab bar
        wait.until(lambda d, sel=content: d.find_elements(By.CSS_SELECTOR, f"{sel} svg"))
        wait.until(lambda d, sel=content: images_loaded(d, f"{sel} img"))
        assert_headers_on_one_line(driver, f"{content} table:not(.dq-wide) thead th")  # wide: between words only
        assert "issue #" not in driver.find_element(By.CSS_SELECTOR, content).text
        screenshot(driver, f"app-{tab.split()[-1].lower()}-{width}.png")
        assert_nothing_overflows(driver, content, f"{tab} tab at {width} px")
    assert failed_requests(driver) == []


def test_page_names_a_bad_field(driver, url: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    set_viewport(driver, 1400, 1000, False)
    driver.get(url)
    wait = WebDriverWait(driver, 60)
    wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "#generate")))
    classes = driver.find_element(By.CSS_SELECTOR, "#classes input")
    classes.click()
    classes.send_keys("zzqx-not-a-class", Keys.ENTER)
    classes.send_keys(Keys.ESCAPE)  # close the option list, which covers the button
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, "#classes"), "zzqx-not-a-class"))
    wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "#generate"))).click()
    # refused before queueing: the message stands under the field it names
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, "#classes"), "Unknown class 'zzqx-not-a-class'"))
    assert not driver.find_elements(By.CSS_SELECTOR, "#tiles figure:not(.dq-example)")
    assert not driver.find_element(By.CSS_SELECTOR, "#download").is_enabled()  # still nothing to download
    screenshot(driver, "app-error.png")


def test_page_refuses_out_of_range_steps_with_the_api_message(driver, url: str) -> None:
    """The number box keeps what was typed (no silent clamping) and the validator's message stands under it."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    set_viewport(driver, 1400, 1000, False)
    driver.get(url)
    wait = WebDriverWait(driver, 60)
    wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "#generate")))
    for typed in ("150", "0"):
        steps = driver.find_element(By.CSS_SELECTOR, "#steps input")
        steps.send_keys(Keys.CONTROL, "a")
        steps.send_keys(typed, Keys.TAB)
        wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "#generate"))).click()
        message = f"steps must be a whole number from 1 to 100, got {typed}"
        wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, "#steps"), message))
        assert driver.find_element(By.CSS_SELECTOR, "#steps input").get_attribute("value") == typed
    assert not driver.find_elements(By.CSS_SELECTOR, "#tiles figure:not(.dq-example)")
    screenshot(driver, "app-steps-refused.png")
