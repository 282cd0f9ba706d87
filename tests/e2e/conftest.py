"""End-to-end fixtures: a real ``sessionkeeper demo`` process and Debian's Chromium via Playwright.

Chromium comes from ``apt-get install chromium`` (``.ci/run`` installs it); Playwright never
downloads a browser here. Without Chromium the tests skip on a laptop and fail under ``CI=true``.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ServerProcess, spawn_server

CHROMIUM = os.environ.get("SESSIONKEEPER_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ROOT = Path(__file__).resolve().parents[2]
#: Where the e2e run saves its screenshots (the README shows the copies in docs/screenshots).
SCREENSHOTS = Path(os.environ.get("SESSIONKEEPER_SCREENSHOTS", ROOT / "build" / "screenshots"))

pytestmark = pytest.mark.integration


def _need_browser() -> None:
    try:
        import playwright  # noqa: F401
    except ImportError:
        _unavailable("the Python package playwright is not installed (pip install -e '.[dev]')")
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        _unavailable(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)")


def _unavailable(why: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"end-to-end tests must run under CI: {why}")
    pytest.skip(f"end-to-end tests need a browser: {why}")


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """One Chromium for the e2e package. Not session-wide: Playwright's sync API keeps an event
    loop running in this thread while it is open, which the asyncio tests after it cannot share."""
    _need_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@dataclass
class Demo:
    server: ServerProcess
    email: str
    password: str
    url: str  # http://127.0.0.1:PORT/

    @property
    def origin(self) -> str:
        return self.server.base_url

    def log(self) -> str:
        return "".join(self.server.log_lines)


@pytest.fixture
def start_demo(tmp_path: Path) -> Iterator[Callable[..., Demo]]:
    """Start ``sessionkeeper demo --port 0`` with extra flags; stopped after the test."""
    started: list[Demo] = []

    def factory(*args: str) -> Demo:
        db = f"sqlite:///{tmp_path}/demo{len(started)}.db"
        server = spawn_server(db, *args, command="demo")
        text = "".join(server.log_lines)
        url = re.search(r"open\s+(http://\S+)", text)
        creds = re.search(r"sign in\s+(\S+) / (\S+)", text)
        assert url and creds, f"the demo did not print its URL and credentials:\n{text}"
        demo = Demo(server, creds.group(1), creds.group(2), url.group(1))
        started.append(demo)
        return demo

    yield factory
    for demo in started:
        demo.server.stop()


@dataclass
class NetworkLog:
    """Every request the browser context made, in order, with its answer."""

    entries: list[dict[str, Any]] = field(default_factory=list)

    def attach(self, context: Any) -> None:
        context.on("request", self._started)
        context.on("response", self._answered)
        context.on("requestfailed", self._failed)

    def _started(self, request: Any) -> None:
        # Logged in the order the page sent them; the answer is filled in when it completes
        # (answers can arrive out of order).
        self.entries.append(
            {
                "request": request,
                "method": request.method,
                "url": request.url,
                "status": None,
                "authorization": request.headers.get("authorization"),
                "csrf": request.headers.get("x-sessionkeeper-csrf"),
                "response_headers": {},
            }
        )

    def _entry(self, request: Any) -> dict[str, Any] | None:
        return next((e for e in reversed(self.entries) if e["request"] is request), None)

    def _answered(self, response: Any) -> None:
        entry = self._entry(response.request)
        if entry is not None:
            entry["status"] = response.status
            entry["response_headers"] = response.headers

    def _failed(self, request: Any) -> None:
        entry = self._entry(request)
        if entry is not None and entry["status"] is None:  # not a body cancelled after the answer
            entry["status"] = "failed"

    def mark(self) -> int:
        return len(self.entries)

    def since(self, mark: int) -> list[dict[str, Any]]:
        return self.entries[mark:]

    def api(self, mark: int = 0) -> list[dict[str, Any]]:
        return [e for e in self.since(mark) if "/api/" in e["url"]]

    def wait_api(
        self, page: Any, mark: int, count: int, timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        """The /api entries since ``mark`` once there are ``count`` of them (the browser reports
        a finished request a moment after the page has used its answer)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            entries = self.api(mark)
            if len(entries) >= count and all(e["status"] is not None for e in entries):
                break
            page.wait_for_timeout(20)
        return self.api(mark)

    def settle(self, page: Any, timeout: float = 10.0) -> None:
        """Wait until every request logged so far has its answer."""
        deadline = time.monotonic() + timeout
        while any(e["status"] is None for e in self.entries) and time.monotonic() < deadline:
            page.wait_for_timeout(20)

    def refreshes(self, mark: int = 0) -> list[dict[str, Any]]:
        return [
            e
            for e in self.since(mark)
            if "grant_type=refresh_token" in e["url"] or e["url"].endswith("/auth/refresh")
        ]

    def summary(self, mark: int = 0) -> list[str]:
        return [
            f"{e['method']} {e['url'].split('/', 3)[-1]} {e['status']}" for e in self.since(mark)
        ]


@dataclass
class Browsing:
    context: Any
    network: NetworkLog
    errors: list[str]

    def new_page(self) -> Any:
        page = self.context.new_page()
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        page.on("console", self._console)
        return page

    def _console(self, msg: Any) -> None:
        # The browser reports every non-2xx fetch as a console error; a 401 the client then
        # recovers from is expected in some tests, which check the network log instead.
        if msg.type == "error" and "status of 401" not in msg.text:
            self.errors.append(f"console: {msg.text}")


@pytest.fixture
def browsing(browser: Any) -> Iterator[Browsing]:
    """A fresh browser context (its own storage: two pages of it are two tabs of one user)."""
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 800})
    network = NetworkLog()
    network.attach(context)
    yield Browsing(context, network, [])
    context.close()


def sign_in(page: Any, demo: Demo) -> None:
    page.goto(demo.url)
    page.fill('#signin-form input[name="email"]', demo.email)
    page.fill('#signin-form input[name="password"]', demo.password)
    page.click('#signin-form button[type="submit"]')
    page.wait_for_selector('.page[data-page="jobs"] tbody tr')


def screenshot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def banner_visible(page: Any) -> bool:
    return bool(page.evaluate("() => !document.querySelector('session-expired-banner').hidden"))
