"""Fixtures for the client tests: a real auth server per test, one protected API per session.

- ``auth``: ``sessionkeeper serve`` with 30-second access tokens, a 1-second reuse interval and
  the rate limits off, on an ephemeral loopback port. Tests reach expiry by moving the keeper's
  clock; the server-side life only has to outlast a test on a loaded 2-core machine (1,000
  calls through a Python API can take several seconds there).
- ``api``: :mod:`tests.client.api_app` in its own process (tokens verified against the issuer's
  JWKS; counters reset before each test).
- ``refresh_requests(server)``: how many refresh grants reached the server, read from its access
  log after a sentinel request (so every earlier line is known to be in).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from sessionkeeper.client import AuthEvent, RefreshPolicy, Session, SessionKeeper
from sessionkeeper.clock import Clock
from tests.conftest import ServerProcess, stop_process

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "client-tests-passw0rd"
TOKEN_LIFE = 30  # seconds; the proactive margin is then min(120, 30 / 2) = 15 s
NO_LIMITS = (
    "--rate-limit-password-per-ip", "0",
    "--rate-limit-password-per-email", "0",
    "--rate-limit-signup-per-ip", "0",
)  # fmt: skip
# Short waits so that failures show up in seconds, not minutes.
FAST = RefreshPolicy(
    lock_timeout=5.0,
    wait_timeout=20.0,
    refresh_deadline=10.0,
    backoff_initial=0.05,
    backoff_max=0.4,
    watch_interval=0.2,
)


@dataclass
class Api:
    proc: subprocess.Popen[str]
    url: str
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=10))

    def stats(self) -> dict[str, Any]:
        body: dict[str, Any] = self.http.get(f"{self.url}/_stats").json()
        return body

    def reject_all(self, on: bool) -> None:
        self.http.post(f"{self.url}/_mode", json={"reject_all": on}).raise_for_status()

    def reset(self) -> None:
        self.http.post(f"{self.url}/_reset").raise_for_status()

    def stop(self) -> None:
        self.http.close()
        stop_process(self.proc)


def spawn_api() -> Api:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.client.api_app"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"listening port=(\d+)", line)
    if not match:
        proc.kill()
        raise RuntimeError(f"test API did not start: {line!r}")
    api = Api(proc, f"http://127.0.0.1:{match.group(1)}")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            api.stats()
            return api
        except httpx.TransportError:
            time.sleep(0.05)
    api.stop()
    raise RuntimeError("test API never answered")


@pytest.fixture(scope="session")
def api_process() -> Iterator[Api]:
    api = spawn_api()
    yield api
    api.stop()


@pytest.fixture
def api(api_process: Api) -> Api:
    api_process.reset()
    return api_process


@pytest.fixture
def auth(start_server: Callable[..., ServerProcess]) -> ServerProcess:
    return start_server("--jwt-exp", str(TOKEN_LIFE), "--reuse-interval", "1", *NO_LIMITS)


def new_user(server: ServerProcess) -> str:
    """Sign up a fresh user (password ``PASSWORD``) and return the email."""
    email = f"client-{uuid.uuid4().hex[:12]}@example.com"
    r = httpx.post(f"{server.auth_url}/signup", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return email


def log_lines_settled(server: ServerProcess) -> list[str]:
    """The server's log once every request sent before this call has been logged."""
    sentinel = f"sentinel-{uuid.uuid4().hex}"
    httpx.get(f"{server.auth_url}/{sentinel}")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = list(server.log_lines)
        if any(sentinel in line for line in lines):
            return lines
        time.sleep(0.02)
    raise AssertionError("the sentinel request never reached the server log")


def refresh_requests(server: ServerProcess) -> int:
    return sum(
        'path="/auth/v1/token"' in line and 'grant_type="refresh_token"' in line
        for line in log_lines_settled(server)
    )


def requests_to(server: ServerProcess, path: str) -> list[str]:
    return [line for line in log_lines_settled(server) if f'path="/auth/v1{path}"' in line]


def in_threads(count: int, target: Callable[[], None], timeout: float = 120) -> None:
    """Run ``target`` in ``count`` threads at once and wait for all of them."""
    threads = [threading.Thread(target=target) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)


class Events:
    """Records a keeper's events, thread-safely (list.append is atomic)."""

    def __init__(self, keeper: SessionKeeper) -> None:
        self.seen: list[tuple[AuthEvent, Session | None]] = []
        keeper.subscribe(lambda event, session: self.seen.append((event, session)))

    def names(self) -> list[AuthEvent]:
        return [event for event, _ in self.seen]

    def count(self, event: AuthEvent) -> int:
        return self.names().count(event)


@dataclass
class Keepers:
    """Builds keepers with the fast test policy and closes them after the test."""

    made: list[SessionKeeper] = field(default_factory=list)

    def __call__(
        self,
        server: ServerProcess,
        *,
        clock: Clock | None = None,
        auth_url: str | None = None,
        **kwargs: Any,
    ) -> SessionKeeper:
        kwargs.setdefault("policy", FAST)
        keeper = SessionKeeper(auth_url or server.auth_url, clock=clock, **kwargs)
        self.made.append(keeper)
        return keeper


@pytest.fixture
def keepers() -> Iterator[Keepers]:
    made = Keepers()
    yield made
    for keeper in made.made:
        keeper.close()
