"""The page at `/` in a real headless Chromium: pick real images, read the labels it renders.

Needs Debian's chromium and chromium-driver (`.ci/run` installs them). Set EDGECLS_SERVE_SCREENSHOT=PATH to
keep the screenshot (docs/serve-page.png is made that way).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from edgecls.runtime import Classifier

from .test_serve import REFERENCE, running_server

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
CHROMIUM_ARGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1100,900")
PICKS = ("cat", "ship", "frog", "truck", "horse", "airplane")


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail("the browser test needs Debian's chromium and chromium-driver: "
                    "apt-get install -y chromium chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in CHROMIUM_ARGS:
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()


def test_page_classifies_picked_images(browser, cifar_dir, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    picks = []
    for name in PICKS:  # CIFAR-10 file names repeat across classes; the page shows the name, so make them unique
        picks.append(tmp_path / f"{name}.jpg")
        shutil.copy(sorted((cifar_dir / "test" / name).iterdir())[1], picks[-1])
    expected = {p.name: pred.label for p, pred in zip(picks, Classifier.load(REFERENCE).predict(
        [str(p) for p in picks]))}
    with running_server() as (url, _, _):
        browser.get(f"{url}/")
        WebDriverWait(browser, 60).until(lambda d: "resnet20" in d.find_element(By.ID, "model").text)
        browser.find_element(By.ID, "files").send_keys("\n".join(str(p) for p in picks))
        WebDriverWait(browser, 60).until(lambda d: _finished(d, len(picks)))
        cards = browser.find_elements(By.CSS_SELECTOR, "[data-testid=result]")
        rendered = {c.find_element(By.CSS_SELECTOR, ".name").text: c for c in cards}
        assert sorted(rendered) == sorted(expected)
        for name, label in expected.items():
            card = rendered[name]
            assert card.find_element(By.CSS_SELECTOR, ".label").text == label
            assert len(card.find_elements(By.CSS_SELECTOR, ".bar")) == 5
            assert "ms round trip" in card.find_element(By.CSS_SELECTOR, ".latency").text
        shot = tmp_path / "serve-page.png"
        browser.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
        if os.environ.get("EDGECLS_SERVE_SCREENSHOT"):
            shutil.copy(shot, os.environ["EDGECLS_SERVE_SCREENSHOT"])


def _finished(driver, count: int) -> bool:
    """Every card has its bars (or an error, which the assertions then report)."""
    from selenium.webdriver.common.by import By

    cards = driver.find_elements(By.CSS_SELECTOR, "[data-testid=result]")
    return len(cards) == count and all(c.find_elements(By.CSS_SELECTOR, ".bar, .error") for c in cards)
