"""Store outages under load: PostgreSQL stopped for 10 s, then Redis stopped for 10 s.

The promise under test: while a dependency is down, clients get 503 (which keeps them signed
in: auth clients end the session only on a 4xx), ``/health`` says which dependency is down,
and when it returns the servers resume by themselves — no restart — and every session that
existed before the outage still refreshes.

PostgreSQL is this machine's cluster, stopped and started with ``pg_ctlcluster``. Redis is a
``redis-server`` of the test's own (append-only file in a temporary directory, as a deployment
that keeps sessions in Redis must run it), so stopping it disturbs nothing else.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests import backends
from tests.conftest import API_VERSION, ServerProcess
from tests.integration.test_concurrency import NO_LIMITS, signup

pytestmark = pytest.mark.integration

OUTAGE = 10.0  # seconds, as the acceptance asks
SESSIONS = 6


def _pg_cluster(action: str) -> None:
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action, "-m", "fast"]
        if action == "stop"
        else ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action],
        check=True,
        capture_output=True,
        timeout=60,
    )


def _wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _pg_up() -> bool:
    import psycopg

    try:
        with psycopg.connect(backends.POSTGRES_URL, connect_timeout=1):
            return True
    except psycopg.Error:
        return False


class Load:
    """Clients refreshing their sessions in a loop (keeping the newest token each answer
    gives them, as a real client does) and a monitor polling ``/health``."""

    def __init__(self, servers: list[ServerProcess], sessions: list[dict[str, object]]) -> None:
        self.servers = servers
        self.tokens = [str(s["refresh_token"]) for s in sessions]
        self.statuses: Counter[tuple[int, str]] = Counter()
        self.health: list[dict[str, object]] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._refresher, args=(i,), daemon=True)
            for i in range(len(self.tokens))
        ] + [threading.Thread(target=self._monitor, daemon=True)]

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)

    def _refresher(self, i: int) -> None:
        with httpx.Client(timeout=20) as client:
            n = 0
            while not self._stop.is_set():
                server = self.servers[(i + n) % len(self.servers)]
                n += 1
                try:
                    r = client.post(
                        f"{server.auth_url}/token?grant_type=refresh_token",
                        json={"refresh_token": self.tokens[i]},
                        headers=API_VERSION,
                    )
                except httpx.HTTPError as exc:
                    self.statuses[(0, type(exc).__name__)] += 1
                    continue
                code = r.headers.get("x-sb-error-code", "")
                self.statuses[(r.status_code, code)] += 1
                if r.status_code == 200:
                    self.tokens[i] = r.json()["refresh_token"]
                else:
                    time.sleep(0.05)

    def _monitor(self) -> None:
        with httpx.Client(timeout=20) as client:
            while not self._stop.is_set():
                try:
                    r = client.get(f"{self.servers[0].auth_url}/health")
                    self.health.append({**r.json(), "http": r.status_code})
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)


def _assert_outage_handled(load: Load, dependency: str) -> None:
    refused = {key: n for key, n in load.statuses.items() if key[0] != 200}
    assert set(refused) <= {(503, "service_unavailable")}, load.statuses  # never a 4xx or 500
    assert refused, f"no request met the outage: {load.statuses}"
    down = [h for h in load.health if h["http"] == 503]
    assert down, "health never reported the outage"
    assert all(h["dependencies"][dependency] == "down" for h in down)  # type: ignore[index]


def _assert_all_sessions_refresh(servers: list[ServerProcess], tokens: list[str]) -> None:
    for server in servers:
        for i, token in enumerate(tokens):
            r = httpx.post(
                f"{server.auth_url}/token?grant_type=refresh_token",
                json={"refresh_token": token},
                headers=API_VERSION,
            )
            assert r.status_code == 200, r.text
            tokens[i] = r.json()["refresh_token"]


def test_postgres_stopped_for_ten_seconds_under_load(
    start_server: Callable[..., ServerProcess],
) -> None:
    with backends.temp_database() as url:
        servers = [start_server(*NO_LIMITS, database=url) for _ in range(2)]
        sessions = [signup(servers[i % 2]) for i in range(SESSIONS)]
        try:
            with Load(servers, sessions) as load:
                time.sleep(1)
                _pg_cluster("stop")
                time.sleep(OUTAGE)
                _pg_cluster("start")
                _wait_for(_pg_up, 60, "PostgreSQL to accept connections")
                _wait_for(
                    lambda: bool(load.health) and load.health[-1]["http"] == 200,
                    30,
                    "health to recover",
                )
                time.sleep(1)
        finally:
            if not _pg_up():
                _pg_cluster("start")
                _wait_for(_pg_up, 60, "PostgreSQL to accept connections")
        _assert_outage_handled(load, "database")
        assert load.statuses[(200, "")] > 0
        # No restart: the same processes serve every pre-outage session.
        assert all(s.proc.poll() is None for s in servers)
        _assert_all_sessions_refresh(servers, load.tokens)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[str, Callable[[], None], Callable[[], None]]]:
    """A private redis-server with an append-only file: (url, stop, start)."""
    port = _free_port()
    data = tmp_path / "redis"
    data.mkdir()
    command = [
        "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
        "--appendonly", "yes", "--appendfsync", "always", "--dir", str(data),
        "--daemonize", "no", "--logfile", str(data / "redis.log"),
    ]  # fmt: skip
    procs: list[subprocess.Popen[bytes]] = []
    url = f"redis://127.0.0.1:{port}/0"

    def up() -> bool:
        import redis

        try:
            return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
        except redis.RedisError:
            return False

    def start() -> None:
        procs.append(subprocess.Popen(command))
        _wait_for(up, 30, "redis-server to start")

    def stop() -> None:
        subprocess.run(["redis-cli", "-p", str(port), "shutdown"], capture_output=True, timeout=30)
        procs[-1].wait(timeout=30)

    start()
    try:
        yield url, stop, start
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_redis_stopped_for_ten_seconds_under_load(
    start_server: Callable[..., ServerProcess],
    own_redis: tuple[str, Callable[[], None], Callable[[], None]],
) -> None:
    redis_url, stop_redis, start_redis = own_redis
    with backends.temp_database() as url:
        args = (*NO_LIMITS, "--session-store", redis_url)
        servers = [start_server(*args, database=url) for _ in range(2)]
        sessions = [signup(servers[i % 2]) for i in range(SESSIONS)]
        with Load(servers, sessions) as load:
            time.sleep(1)
            stop_redis()
            time.sleep(OUTAGE)
            start_redis()
            _wait_for(
                lambda: bool(load.health) and load.health[-1]["http"] == 200,
                30,
                "health to recover",
            )
            time.sleep(1)
        _assert_outage_handled(load, "session_store")
        assert all(h["dependencies"]["database"] == "ok" for h in load.health)  # type: ignore[index]
        assert all(s.proc.poll() is None for s in servers)
        _assert_all_sessions_refresh(servers, load.tokens)
