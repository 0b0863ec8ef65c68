"""End-to-end test of the web demo in headless Chromium (Debian's chromium + chromium-driver).

Starts `serve`'s app on a free loopback port with the bundled toy models, types a prompt,
presses Generate, waits for the grid, checks its size and saves a screenshot; then an empty
prompt must show the error in the page. Skips where Chromium or the bundled models are absent;
.ci/run installs Chromium so that it runs in CI.
"""
from __future__ import annotations

import base64
import io
import json
import os
import shutil
import time

import pytest
from PIL import Image

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="Chromium/chromedriver not installed (apt-get install chromium chromium-driver)")


def _bundled_ready() -> bool:
    from model.bundled import bundled_path

    return all(bundled_path(n, required=False) is not None for n in ("clip", "generator", "flow"))


@pytest.fixture(scope="module")
def server():
    if not _bundled_ready():
        pytest.skip("bundled toy models (clip, generator, flow) not present")
    from model.server import ServerThread, available_methods, create_app, pipeline_generate_fn

    fn = pipeline_generate_fn()
    fn(prompt="a face", model="flow", n=1, seed=0, temperature=1.0, trunc=1.0, image=None, mix=None)  # warm up
    srv = ServerThread(create_app(fn, available_methods(), "bundled toy models"), "127.0.0.1", 0)
    srv.start()
    yield f"http://127.0.0.1:{srv.port}/"
    srv.shutdown()


@pytest.fixture(scope="module")
def browser():
    pytest.importorskip("selenium")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1200,900"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _wait(cond, timeout=60.0):
    t0 = time.time()
    while time.time() - t0 < timeout:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out waiting in the browser")


def test_generate_in_browser(server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    browser.get(server)
    prompt = browser.find_element(By.ID, "prompt")
    prompt.clear()
    prompt.send_keys("a smiling woman with blond hair")
    n = browser.find_element(By.ID, "n")
    n.clear()
    n.send_keys("4")
    t0 = time.perf_counter()
    browser.find_element(By.ID, "generate").click()
    _wait(lambda: browser.find_element(By.ID, "grid").get_attribute("data-client-ms"))
    wall_ms = (time.perf_counter() - t0) * 1000
    img = browser.find_element(By.ID, "grid")
    client_ms = float(img.get_attribute("data-client-ms"))
    src = img.get_attribute("src")
    assert src.startswith("data:image/png;base64,")
    png = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
    # 4 toy faces (64x64) side by side below the prompt row.
    assert png.width >= 4 * 64 and png.height >= 64
    assert png.convert("L").getextrema()[1] > png.convert("L").getextrema()[0]  # not a blank picture
    assert browser.find_element(By.ID, "error").text == ""
    shot = tmp_path / "demo.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 0
    out = os.environ.get("TEXT2FACE_SCREENSHOT")  # set to keep the screenshot (README asset)
    if out:
        browser.save_screenshot(out)
    timing = {"first_image_ms_in_page": client_ms, "first_image_ms_wall": wall_ms}
    print("browser timing:", json.dumps(timing))
    (tmp_path / "timing.json").write_text(json.dumps(timing))


def test_empty_prompt_shows_error(server, browser):
    from selenium.webdriver.common.by import By

    browser.get(server)
    browser.find_element(By.ID, "prompt").clear()
    browser.find_element(By.ID, "generate").click()
    msg = _wait(lambda: browser.find_element(By.ID, "error").text)
    assert "please type a prompt" in msg
