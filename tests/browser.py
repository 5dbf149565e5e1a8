"""Drive Debian's real headless Chromium from tests, with nothing downloaded.

The driver and the browser are named explicitly (``/usr/bin/chromedriver``,
``/usr/bin/chromium``): with a driver path in the ``Service``, Selenium skips
selenium-manager, which would otherwise try to download a browser and a driver.
A missing browser is an error, not a skip: a page test that never ran must not
look like one that passed.
"""

from __future__ import annotations

import base64
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

PHONE = (390, 844)
DESKTOP = (1280, 900)

# Quiet, self-contained and safe to run as root in a container: no sandbox (root), no GPU,
# /tmp instead of a small /dev/shm, and nothing that phones home while a test runs.
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
    "--lang=en-US",
)


def require_chromium() -> None:
    """Raise with the fix when Chromium or its driver is not installed."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.is_file()]
    if missing:
        raise RuntimeError(
            f"the browser tests need {' and '.join(missing)}: "
            "apt-get install -y chromium chromium-driver"
        )


@contextmanager
def headless_chromium(window: tuple[int, int] = DESKTOP) -> Iterator[WebDriver]:
    """A fresh headless Chromium with its own throw-away profile; quits on exit."""
    require_chromium()
    profile = Path(tempfile.mkdtemp(prefix="npsloop-chromium-"))
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        *CHROMIUM_FLAGS,
        f"--user-data-dir={profile}",
        f"--window-size={window[0]},{window[1]}",
    ):
        options.add_argument(flag)
    try:
        driver = webdriver.Chrome(
            service=Service(executable_path=str(CHROMEDRIVER)), options=options
        )
        try:
            driver.set_page_load_timeout(30)
            yield driver
        finally:
            driver.quit()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


@contextmanager
def viewport(driver: WebDriver, size: tuple[int, int], *, mobile: bool) -> Iterator[None]:
    """Show the page at exactly ``size`` CSS pixels, as a phone when ``mobile``, for a while.

    Device emulation rather than a window size: the viewport is exactly this size, and with
    mobile=True the page's <meta name=viewport> is honoured as on a phone.
    """
    width, height = size
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {
            "width": width,
            "height": height,
            "deviceScaleFactor": 2 if mobile else 1,
            "mobile": mobile,
        },
    )
    try:
        yield
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def save_screenshot(
    driver: WebDriver, path: Path, size: tuple[int, int] = PHONE, *, mobile: bool = True
) -> Path:
    """Save a PNG of the whole current page at a viewport ``size`` (a phone by default).

    The capture is as tall as the page, so that nothing below the fold goes unseen.
    """
    width, height = size
    with viewport(driver, size, mobile=mobile):
        full_height = int(driver.execute_script("return document.documentElement.scrollHeight"))
        shot = cast(
            dict[str, Any],
            driver.execute_cdp_cmd(
                "Page.captureScreenshot",
                {
                    "format": "png",
                    "captureBeyondViewport": True,
                    "clip": {
                        "x": 0,
                        "y": 0,
                        "width": width,
                        "height": max(height, full_height),
                        "scale": 1,
                    },
                },
            ),
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


def save_phone_and_desktop_screenshots(driver: WebDriver, directory: Path, name: str) -> list[Path]:
    """``<name>-phone.png`` (390x844, as a phone) and ``<name>-desktop.png`` (1280x900)."""
    return [
        save_screenshot(driver, directory / f"{name}-phone.png", PHONE, mobile=True),
        save_screenshot(driver, directory / f"{name}-desktop.png", DESKTOP, mobile=False),
    ]


@dataclass(frozen=True)
class Focused:
    """What had the keyboard focus: the element and what a screen reader would call it."""

    tag: str
    type: str
    name: str
    value: str
    label: str


_DESCRIBE_ACTIVE_ELEMENT = """
const el = document.activeElement;
if (!el || el === document.body || el === document.documentElement) { return null; }
const fromLabels = Array.from(el.labels || []).map((l) => l.innerText.trim()).join(' ');
const label = fromLabels || el.getAttribute('aria-label') || el.innerText.trim() || '';
return {
  tag: el.tagName.toLowerCase(),
  type: el.getAttribute('type') || '',
  name: el.getAttribute('name') || '',
  value: el.value === undefined ? '' : String(el.value),
  label: label.replace(/\\s+/g, ' '),
};
"""


def focused(driver: WebDriver) -> Focused | None:
    """The element with the keyboard focus, or None when nothing on the page has it."""
    found = driver.execute_script(_DESCRIBE_ACTIVE_ELEMENT)
    return None if found is None else Focused(**found)


def press(driver: WebDriver, *keys: str) -> None:
    """Press keys as a keyboard would: they go to whatever element has the focus."""
    actions = ActionChains(driver)
    for key in keys:
        actions.send_keys(key)
    actions.perform()


def tab_through(driver: WebDriver, limit: int = 50) -> list[Focused]:
    """Tab from the top of the page until the focus leaves it; the elements it stopped on.

    Starts with nothing focused, as after loading a page. Stops when the focus leaves the
    document (past the last element) or comes back to the first one.
    """
    driver.execute_script("if (document.activeElement) { document.activeElement.blur(); }")
    stops: list[Focused] = []
    for _ in range(limit):
        press(driver, Keys.TAB)
        now = focused(driver)
        if now is None or (stops and now == stops[0]):
            return stops
        stops.append(now)
    raise AssertionError(f"the focus did not leave the page after {limit} tabs: {stops}")
