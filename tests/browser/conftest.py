"""Headless Chromium (Debian's /usr/bin/chromium, driven by Playwright) for the browser tests.

These tests FAIL, never skip, when Chromium or Playwright is missing: CI installs them with
scripts/install-chromium.sh. Playwright's own browser download is never used (it cannot
reach its CDN here); it drives the system Chromium through `executable_path`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.ports import printed_port

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = os.environ.get("TOOTLAKE_CHROMIUM", "/usr/bin/chromium")
# As root, in a sandbox with no network but the package registries: no sandboxing of its own,
# no GPU, and none of the background connections Chromium would try at every start.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HINT = "Install it with: bash scripts/install-chromium.sh"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.browser)


# Package scope: Playwright's sync API keeps an event loop marked as running in this thread
# while it is open, which would break every later asyncio.run() of the session.
@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    executable = shutil.which(CHROMIUM) or (CHROMIUM if os.access(CHROMIUM, os.X_OK) else None)
    if executable is None:
        pytest.fail(
            f"Chromium not found at {CHROMIUM} (or $TOOTLAKE_CHROMIUM). {HINT}", pytrace=False
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(f"Playwright is not installed in this Python. {HINT}", pytrace=False)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@dataclass
class Watched:
    """A page and everything it said: console errors, uncaught errors, dialogs."""

    page: Any
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def assert_quiet(self) -> None:
        assert self.console_errors == []
        assert self.page_errors == []
        assert self.dialogs == []


def watch(page: Any) -> Watched:
    watched = Watched(page)
    page.on("console", lambda m: m.type == "error" and watched.console_errors.append(m.text))
    page.on("pageerror", lambda e: watched.page_errors.append(str(e)))

    def on_dialog(dialog: Any) -> None:
        watched.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    page.on("dialog", on_dialog)
    return watched


@pytest.fixture
def new_page(browser: Any) -> Iterator[Any]:
    """new_page(bypass_csp=False) -> Watched, on a fresh context (closed after the test)."""
    contexts = []

    def make(*, bypass_csp: bool = False) -> Watched:
        context = browser.new_context(
            viewport={"width": 1280, "height": 900}, bypass_csp=bypass_csp
        )
        contexts.append(context)
        return watch(context.new_page())

    yield make
    for context in contexts:
        context.close()


def screenshot(watched: Watched, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    watched.page.screenshot(path=str(path), full_page=True)
    return path


def chart_sizes(page: Any) -> list[tuple[float, float]]:
    """(width, height) as laid out of every chart on the page."""
    return [
        (box["width"], box["height"])
        for box in (svg.bounding_box() for svg in page.locator("svg.chart").all())
        if box is not None
    ]


def injected(page: Any) -> dict[str, Any]:
    """What a leak would have put in the page: elements, handlers, javascript: links."""
    return page.evaluate(
        """() => ({
            pwned: window.__pwned === undefined ? null : window.__pwned,
            scripts: document.querySelectorAll('script').length,
            images: document.querySelectorAll('img').length,
            handlers: [...document.querySelectorAll('*')].flatMap(e => [...e.attributes]
                .filter(a => a.name.startsWith('on')).map(a => e.tagName + ' ' + a.name)),
            javascript_links: [...document.querySelectorAll('[href]')].filter(
                e => e.getAttribute('href').trim().toLowerCase().startsWith('javascript')).length,
            foreign: document.querySelectorAll('iframe, object, embed, foreignObject').length,
        })"""
    )


NOTHING_INJECTED = {
    "pwned": None,
    "scripts": 0,
    "images": 0,
    "handlers": [],
    "javascript_links": 0,
    "foreign": 0,
}


class DashboardServer:
    """`tootlake dashboard` as a user starts it: a real uvicorn server on a loopback port."""

    def __init__(self, lake: str, *, refresh: int = 2, log: Path) -> None:
        # Port 0: the server takes a free port itself and prints it (a port picked here was
        # free when picked, not necessarily when the server bound it seconds later).
        self.port = 0
        self.url = ""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TOOTLAKE_", "AWS_"))}
        env["TOOTLAKE_CONFIG"] = os.devnull  # no config file: defaults only
        self._log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tootlake",
                "dashboard",
                "--lake",
                lake,
                "--port",
                "0",
                "--refresh",
                str(refresh),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=log.parent,
        )
        self.log = log
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"the dashboard exited: {self.log.read_text(errors='replace')}"
                )
            self.port = self.port or printed_port(self.log.read_text())
            if not self.port:
                time.sleep(0.2)
                continue
            self.url = f"http://127.0.0.1:{self.port}/"
            try:
                with urllib.request.urlopen(self.url + "healthz", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"the dashboard did not answer in {timeout} s: {self.log.read_text()}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


@pytest.fixture
def dashboard_server(tmp_path: Path) -> Iterator[Any]:
    servers: list[DashboardServer] = []

    def start(lake: str, *, refresh: int = 2) -> DashboardServer:
        server = DashboardServer(
            lake, refresh=refresh, log=tmp_path / f"dashboard-{len(servers)}.log"
        )
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
