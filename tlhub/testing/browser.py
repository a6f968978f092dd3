"""Open a page in headless Chromium (Selenium + the Debian packages ``chromium`` and ``chromium-driver``) and
report what a person would see: images that did not load, console errors, the visible text, a screenshot.

``find_chromium()`` says why the browser cannot run (tests skip with that reason); ``look_at(path)``
returns a ``PageView``.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
DRIVER = ("chromedriver",)


@dataclass(frozen=True)
class Browser:
    binary: str
    driver: str


def find_chromium() -> Browser | str:
    """The browser and its driver, or a sentence saying what is missing."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    binary = next((p for p in map(shutil.which, CHROMIUM) if p), None)
    driver = next((p for p in map(shutil.which, DRIVER) if p), None) or (
        "/usr/lib/chromium/chromedriver" if Path("/usr/lib/chromium/chromedriver").is_file() else None)
    if not binary:
        return "no Chromium on PATH (apt-get install chromium chromium-driver)"
    if not driver:
        return "no chromedriver on PATH (apt-get install chromium-driver)"
    return Browser(binary, driver)


@dataclass
class PageView:
    text: str  # the rendered, visible text of <body>
    images: list[dict]  # per <img>: src prefix, complete, naturalWidth, naturalHeight, displayed width
    console_errors: list[str]  # SEVERE browser log entries
    screenshot: bytes  # PNG of the whole page
    height: int


def look_at(path: Path, width: int = 1280, browser: Browser | None = None) -> PageView:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    found = browser or find_chromium()
    if isinstance(found, str):
        raise RuntimeError(found)  # noqa: TRY004 - a missing program, not an argument of the wrong type
    opts = webdriver.ChromeOptions()
    opts.binary_location = found.binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-extensions", f"--window-size={width},900", "--hide-scrollbars"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=opts, service=Service(found.driver))
    try:
        driver.set_page_load_timeout(60)
        driver.get(Path(path).resolve().as_uri())
        images = driver.execute_script(
            "return Array.from(document.images).map(i => ({src: i.src.slice(0, 40), complete: i.complete, "
            "naturalWidth: i.naturalWidth, naturalHeight: i.naturalHeight, width: i.width}));")
        height = int(driver.execute_script("return document.documentElement.scrollHeight;"))
        driver.set_window_size(width, min(max(height, 600), 16000))  # the whole page in one screenshot
        shot = driver.get_screenshot_as_png()
        text = driver.find_element(By.TAG_NAME, "body").text
        errors = [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
    finally:
        driver.quit()
    return PageView(text, images, errors, shot, height)
