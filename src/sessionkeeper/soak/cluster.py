"""The real parts a soak runs on: a private PostgreSQL database, an optional private Redis, and
the server instances (subprocesses on ephemeral loopback ports), with the store faults.

Nothing here is simulated: a restart is SIGTERM and a new process, a crash is SIGKILL, a paused
Redis is SIGSTOP on the soak's own ``redis-server`` (on a unix socket, so no port is taken and
no one else's Redis is touched), a paused PostgreSQL is a transaction holding
``ACCESS EXCLUSIVE`` locks on the session tables of the soak's own database, and a dropped
database connection is ``pg_terminate_backend`` of every connection to that database.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit, urlunsplit

import httpx

LISTENING = re.compile(r'url="http://127\.0\.0\.1:(\d+)/auth/v1"')
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0


class ClusterError(RuntimeError):
    """A part of the soak's set-up could not be started."""


def database_url(admin_url: str, name: str) -> str:
    return urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))


@contextlib.contextmanager
def private_database(admin_url: str) -> Iterator[str]:
    """A new, empty database (``sk_soak_*``) on the server of ``admin_url``; dropped after."""
    import psycopg

    name = f"sk_soak_{secrets.token_hex(6)}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"'.encode())
    try:
        yield database_url(admin_url, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


class PrivateRedis:
    """A ``redis-server`` of the soak's own on a unix socket in ``directory``, with the
    append-only file a deployment keeping sessions in Redis must use."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.socket = directory / "redis.sock"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}?db=0"

    @staticmethod
    def available() -> bool:
        return shutil.which("redis-server") is not None

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        command = [
            "redis-server", "--port", "0", "--unixsocket", str(self.socket),
            "--unixsocketperm", "700", "--save", "", "--appendonly", "yes",
            "--appendfsync", "everysec", "--dir", str(self.directory),
            "--daemonize", "no", "--logfile", str(self.directory / "redis.log"),
        ]  # fmt: skip
        self.proc = subprocess.Popen(command, stdin=subprocess.DEVNULL)  # noqa: S603
        deadline = time.monotonic() + 30
        while not self._up():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise ClusterError("the soak's redis-server did not start")
            time.sleep(0.05)

    def _up(self) -> bool:
        import redis

        try:
            return bool(redis.Redis.from_url(self.url, socket_connect_timeout=1).ping())
        except redis.RedisError:
            return False

    def pause(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.resume()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT)


@dataclass
class Instance:
    """One server process; ``start`` again after a stop or a kill gives a new process and port."""

    name: str
    command: list[str]
    log_path: Path
    proc: subprocess.Popen[str] | None = None
    port: int | None = None
    starts: int = 0
    log_problems: list[str] = field(default_factory=list)
    _log: IO[str] | None = None

    def start(self) -> int:
        self.starts += 1
        if self._log is None:
            self._log = self.log_path.open("a", encoding="utf-8")
        self._log.write(f"--- start {self.starts} ---\n")
        self._log.flush()
        proc = subprocess.Popen(  # noqa: S603
            self.command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        self.proc = proc
        found: list[int] = []
        ready = threading.Event()
        threading.Thread(target=self._pump, args=(proc, found, ready), daemon=True).start()
        if not ready.wait(START_TIMEOUT) or not found:
            self.kill()
            raise ClusterError(f"instance {self.name} did not start (see {self.log_path})")
        self.port = found[0]
        self._wait_healthy()
        return self.port

    def _pump(self, proc: subprocess.Popen[str], found: list[int], ready: threading.Event) -> None:
        assert proc.stdout is not None and self._log is not None
        log = self._log
        in_traceback = False
        for line in proc.stdout:
            log.write(line)
            if not found and (match := LISTENING.search(line)):
                found.append(int(match.group(1)))
                ready.set()
            if line.startswith("Traceback"):
                in_traceback = True
            elif in_traceback and not line[:1].isspace():
                in_traceback = False  # the exception line ends it
                self.log_problems.append(f"Traceback: {line.strip()[:300]}")
            elif " ERROR " in line:
                self.log_problems.append(line.strip()[:300])
        log.flush()
        ready.set()

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                r = httpx.get(f"http://127.0.0.1:{self.port}/auth/v1/health", timeout=2)
                if r.status_code == 200:
                    return
            time.sleep(0.1)
        raise ClusterError(f"instance {self.name} never became healthy")

    def stop(self) -> None:
        """Graceful: SIGTERM, uvicorn finishes what it is serving, then the process exits."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT)

    def kill(self) -> None:
        """``kill -9``: no goodbye; PostgreSQL rolls back whatever it was doing."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT)

    def close(self) -> None:
        self.stop()
        if self._log is not None:
            self._log.close()
            self._log = None


def instance_command(
    name: str, *, database: str, issuer: str, jwt_exp: int, session_store: str | None
) -> list[str]:
    command = [
        sys.executable, "-m", "sessionkeeper.soak.app", "--name", name,
        "--database", database, "--issuer", issuer, "--jwt-exp", str(jwt_exp),
    ]  # fmt: skip
    if session_store:
        command += ["--session-store", session_store]
    return command


def hold_session_tables(url: str, seconds: float) -> None:
    """Pause the store as the server sees it: one transaction holds ACCESS EXCLUSIVE locks on
    the session tables (every read and write of a session waits) for ``seconds``."""
    import psycopg

    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        conn.execute("SET statement_timeout = 0")
        with conn.transaction():
            conn.execute("LOCK TABLE sessions, refresh_tokens IN ACCESS EXCLUSIVE MODE")
            time.sleep(seconds)
            raise _Rollback


class _Rollback(Exception):
    pass


def pause_postgres_sessions(url: str, seconds: float) -> None:
    with contextlib.suppress(_Rollback):
        hold_session_tables(url, seconds)


def terminate_connections(url: str) -> int:
    """Drop every other connection to the soak's database (as a failover or a restart of the
    database would); returns how many were dropped."""
    import psycopg

    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        ).fetchall()
    return len(rows)
