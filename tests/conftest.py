"""Shared fixtures.

- ``app_client``: the real Starlette app on a real SQLite file, driven in-process through httpx
  with a :class:`ManualClock`, for rules that depend on time (no sleeping).
- ``server`` / ``start_server``: a real ``sessionkeeper serve`` process on an ephemeral loopback
  port, for the official clients and for concurrency.
- ``backend`` names the store the app runs on: ``sqlite`` unless a test module parametrizes it
  (``tests/contract`` runs every test on ``sqlite``, ``postgres`` and ``postgres+redis``);
  ``make_store`` opens an empty store of that kind on the real servers (see ``tests/backends``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import argon2
import httpx
import pytest

from sessionkeeper import settings
from sessionkeeper.clock import ManualClock
from sessionkeeper.core.passwords import Passwords
from sessionkeeper.server.app import build_context, create_app
from sessionkeeper.service.context import AuthContext
from sessionkeeper.store import Store, with_session_store
from sessionkeeper.store.sqlite import SQLiteStore
from tests import backends

API_VERSION = {"X-Supabase-Api-Version": "2024-01-01"}
PASSWORD = "correct horse battery"
# Every claim of the wire contract's access token, written out here rather than imported from
# the code under test.
CONTRACT_CLAIMS = frozenset(
    {
        "iss",
        "sub",
        "aud",
        "exp",
        "iat",
        "email",
        "phone",
        "role",
        "aal",
        "amr",
        "session_id",
        "is_anonymous",
        "app_metadata",
        "user_metadata",
    }
)


def fast_passwords() -> Passwords:
    """argon2id with tiny costs: the same code path, milliseconds instead of tens of them."""
    return Passwords(argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@dataclass
class AppHarness:
    client: httpx.AsyncClient
    clock: ManualClock
    ctx: AuthContext
    store: Store
    counter: list[int] = field(default_factory=lambda: [0])

    async def signup(self, email: str | None = None, password: str = PASSWORD) -> dict[str, Any]:
        self.counter[0] += 1
        email = email or f"user{self.counter[0]}@example.com"
        r = await self.client.post("/auth/v1/signup", json={"email": email, "password": password})
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    async def refresh(self, token: str) -> httpx.Response:
        return await self.client.post(
            "/auth/v1/token?grant_type=refresh_token",
            json={"refresh_token": token},
            headers=API_VERSION,
        )


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """One migrated PostgreSQL database for the run; ``make_store`` empties it per test."""
    from sessionkeeper.store.postgres import PostgresStore

    with backends.temp_database() as url:
        store = PostgresStore(url)
        store.migrate()
        store.close()
        yield url


@pytest.fixture
def make_store(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str
) -> Iterator[Callable[..., Store]]:
    """Open an empty, migrated store of kind ``backend``; closed (and emptied) after the test."""
    opened: list[Store] = []
    prefixes: list[str] = []

    def factory(config: settings.Config | None = None) -> Store:
        config = config or settings.load()
        store: Store
        if backend == "sqlite":
            store = SQLiteStore(tmp_path / f"app{len(opened)}.db")
        else:
            from sessionkeeper.store.postgres import PostgresStore

            url = request.getfixturevalue("pg_database")
            backends.truncate(url)
            store = PostgresStore(url, lock_timeout=config.store.store_lock_timeout)
            if backend == "postgres+redis":
                backends.require_redis()
                prefixes.append(backends.new_redis_prefix())
                store = with_session_store(
                    store,
                    backends.REDIS_URL,
                    policy=config.sessions.policy(),
                    retention=config.sessions.cleanup_retention,
                    prefix=prefixes[-1],
                    lock_timeout=config.store.store_lock_timeout,
                )
        store.migrate()
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()
    for prefix in prefixes:
        backends.drop_redis_prefix(prefix)


@pytest.fixture
def make_app(make_store: Callable[..., Store]) -> Callable[..., AppHarness]:
    def factory(**overrides: Any) -> AppHarness:
        overrides.setdefault("issuer", "http://auth.test/auth/v1")
        overrides.setdefault("rate_limit_password_per_ip", 0)
        overrides.setdefault("rate_limit_password_per_email", 0)
        overrides.setdefault("rate_limit_signup_per_ip", 0)
        config = settings.load(**overrides)
        store = make_store(config)
        clock = ManualClock()
        ctx = build_context(config, store, clock=clock, passwords=fast_passwords())
        app = create_app(config, ctx)
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("203.0.113.7", 4000)),
            base_url="http://auth.test",
        )
        return AppHarness(client=client, clock=clock, ctx=ctx, store=store)

    return factory


@pytest.fixture
async def app_client(make_app: Callable[..., AppHarness]) -> AsyncIterator[AppHarness]:
    harness = make_app()
    async with harness.client:
        yield harness


# Real server processes ---------------------------------------------------------------------


@dataclass
class ServerProcess:
    proc: subprocess.Popen[str]
    base_url: str  # http://127.0.0.1:PORT
    database: str
    log_lines: list[str]

    @property
    def auth_url(self) -> str:
        return f"{self.base_url}/auth/v1"

    def stop(self) -> None:
        stop_process(self.proc)


def stop_process(proc: subprocess.Popen[Any]) -> None:
    """Terminate a child process, killing it if it does not exit within 10 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _sessionkeeper() -> list[str]:
    return [sys.executable, "-m", "sessionkeeper.cli"]


def spawn_server(
    database: str,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 30.0,
    command: str = "serve",
) -> ServerProcess:
    """Start ``sessionkeeper serve --port 0`` (or ``demo``) and wait for its 'listening' line."""
    cmd = [*_sessionkeeper(), command, "--port", "0", "--database", database, *args]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        match = re.search(r'url="(http://[^"]+)/auth/v1"', line)
        if match:
            server = ServerProcess(proc, match.group(1), database, lines)
            _drain(proc, lines)
            _wait_healthy(server)
            return server
    proc.kill()
    raise RuntimeError("server did not start:\n" + "".join(lines))


def _drain(proc: subprocess.Popen[str], lines: list[str]) -> None:
    import threading

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)

    threading.Thread(target=pump, daemon=True).start()


def _wait_healthy(server: ServerProcess) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{server.auth_url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError("server never became healthy")


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    started: list[ServerProcess] = []

    def factory(
        *args: str, database: str | None = None, env: dict[str, str] | None = None
    ) -> ServerProcess:
        db = database or f"sqlite:///{tmp_path}/server{len(started)}.db"
        server = spawn_server(db, *args, env=env)
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()


@pytest.fixture
def server(start_server: Callable[..., ServerProcess]) -> ServerProcess:
    return start_server(
        "--rate-limit-password-per-ip", "0",
        "--rate-limit-password-per-email", "0",
        "--rate-limit-signup-per-ip", "0",
    )  # fmt: skip


@contextmanager
def serve_in_thread(app: Any, port: int, what: str = "server") -> Iterator[None]:
    """Run an ASGI app under uvicorn on a daemon thread at 127.0.0.1:``port`` until the block
    ends (for in-process fakes the code under test reaches over real HTTP)."""
    import threading

    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start")
        time.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=10)
