"""Driving Debian's headless Chromium with Selenium, and what every console page is put
through: a screenshot, axe-core, and the browser's own timing of the page.

The server runs in this process (uvicorn on a thread, on loopback) so that its clock
can be moved: each containment action needs a TOTP code never used before, and
waiting 30 s for the next one would make the flow slow.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from tests.e2e.console.timing import NAVIGATION_ENTRY, figures, write_render_report
from tests.support.server import free_port

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
AXE = Path(__file__).parent / "vendor" / "axe-4.14.1.min.js"
#: Where the run leaves its screenshots and timings (CAREVAULT_CONSOLE_OUTPUT to change).
OUTPUT = Path(os.environ.get("CAREVAULT_CONSOLE_OUTPUT", str(Path(__file__).parent / "output")))
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
)


@contextmanager
def chromium(downloads: Path) -> Iterator[WebDriver]:
    """One headless Chromium with a fresh profile, downloading into ``downloads``."""
    profile = Path(tempfile.mkdtemp(prefix="carevault-chromium-"))
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.add_experimental_option(
        "prefs",
        {
            "download.default_directory": str(downloads),
            "download.prompt_for_download": False,
            "plugins.always_open_pdf_externally": True,
        },
    )
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        driver.execute_cdp_cmd(
            "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
        )
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """``app`` on http://localhost:PORT, for as long as the block runs."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, name="console-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://localhost:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@dataclass
class PageCheck:
    """Screenshots, axe findings and timings of every page the flow visits."""

    driver: WebDriver
    directory: Path
    label: str
    timings: list[dict[str, Any]] = field(default_factory=list)
    findings: list[dict[str, Any]] = field(default_factory=list)
    axe_source: str = field(default_factory=lambda: AXE.read_text(encoding="utf-8"))

    def visit(self, base: str, path: str) -> None:
        self.driver.get(base + path)
        self.wait_loaded()

    def wait_loaded(self) -> None:
        WebDriverWait(self.driver, 15).until(
            lambda d: d.execute_script("return document.readyState") == "complete"
        )

    def check(self, name: str) -> None:
        """Screenshot, accessibility and timing of the page now shown, as ``name``."""
        self.wait_loaded()
        self.timings.append({"page": name, **self.timing()})
        self._screenshot(name)
        self.findings.extend({"page": name, **item} for item in self._axe())

    def timing(self) -> dict[str, Any]:
        """Navigation Timing of the page now shown (see ``timing.figures``)."""
        entry = self.driver.execute_script(NAVIGATION_ENTRY)
        assert entry is not None
        path = self.driver.current_url.split("//", 1)[1].split("/", 1)[1].split("?")[0]
        return {"path": "/" + path, **figures(entry)}

    def _screenshot(self, name: str) -> None:
        height = self.driver.execute_script("return document.documentElement.scrollHeight")
        self.driver.set_window_size(1280, max(900, min(int(height) + 40, 4000)))
        self.driver.save_screenshot(str(self.directory / f"{name}.png"))
        self.driver.set_window_size(1280, 900)

    def _axe(self) -> list[dict[str, Any]]:
        if not self.driver.execute_script("return typeof window.axe !== 'undefined'"):
            self.driver.execute_script(self.axe_source)
        result = self.driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "axe.run(document, {resultTypes: ['violations']})"
            ".then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact,"
            " help: v.help, nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}))))"
            ".catch(e => done([{id: 'axe-error', impact: 'critical', help: String(e),"
            " nodes: []}]));"
        )
        return list(result)

    def serious(self) -> list[dict[str, Any]]:
        return [item for item in self.findings if item["impact"] in ("serious", "critical")]

    def write_report(self) -> Path:
        """Timings (into the render report, see ``timing``) and accessibility findings."""
        report = write_render_report(self.label, self.timings, self.directory)
        (self.directory / f"timings-{self.label}.json").write_text(
            json.dumps({"timings": self.timings, "axe": self.findings}, indent=2),
            encoding="utf-8",
        )
        return report


def click(driver: WebDriver, css: str) -> None:
    driver.find_element(By.CSS_SELECTOR, css).click()


def fill(driver: WebDriver, css: str, text: str) -> None:
    element = driver.find_element(By.CSS_SELECTOR, css)
    element.clear()
    element.send_keys(text)


def text_of(driver: WebDriver) -> str:
    """The visible text of the page (read in one script call, so a page that is being
    replaced cannot leave a stale element behind)."""
    return str(driver.execute_script("return document.body ? document.body.innerText : ''"))


def wait_for_text(driver: WebDriver, text: str, seconds: float = 10) -> None:
    WebDriverWait(driver, seconds).until(lambda d: text in text_of(d))


def wait_for_url(driver: WebDriver, fragment: str, seconds: float = 10) -> None:
    """Until the browser is on a page whose address holds ``fragment`` (a form's
    redirect), so that text the page had before the form was sent is not mistaken."""
    WebDriverWait(driver, seconds).until(lambda d: fragment in d.current_url)
