"""The real store servers the tests use: PostgreSQL and Redis on this machine.

URLs come from ``SESSIONKEEPER_TEST_POSTGRES_URL`` (an administrative connection, default
``postgresql://postgres@127.0.0.1:5432/postgres``) and ``SESSIONKEEPER_TEST_REDIS_URL`` (default
``redis://127.0.0.1:6379/0``). Each test run creates its own databases (``sk_test_*``) and Redis
key prefixes (``sktest:*``) and removes them afterwards. Without the servers the tests skip with
a message saying how to enable them — except under ``CI=true``, where they fail instead.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import pytest

BACKENDS = ("sqlite", "postgres", "postgres+redis")
POSTGRES_URL = os.environ.get(
    "SESSIONKEEPER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("SESSIONKEEPER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
TABLES = "users, identities, sessions, refresh_tokens, flow_states, signing_keys"


def _unavailable(what: str, how: str, exc: Exception) -> None:
    message = f"{what} is not reachable ({exc}); {how}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (CI=true: these tests must run)")
    pytest.skip(message)


def require_postgres() -> None:
    import psycopg

    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=3):
            pass
    except psycopg.Error as exc:
        _unavailable(
            f"PostgreSQL at {POSTGRES_URL}",
            "start it (pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start) "
            "or set SESSIONKEEPER_TEST_POSTGRES_URL",
            exc,
        )


def require_redis() -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        _unavailable(
            f"Redis at {REDIS_URL}",
            "start redis-server on 127.0.0.1:6379 or set SESSIONKEEPER_TEST_REDIS_URL",
            exc,
        )


def database_url(name: str) -> str:
    parts = urlsplit(POSTGRES_URL)
    return urlunsplit(parts._replace(path=f"/{name}"))


@contextmanager
def temp_database() -> Iterator[str]:
    """A new, empty PostgreSQL database for one test (or one run); dropped afterwards."""
    import psycopg

    require_postgres()
    name = f"sk_test_{secrets.token_hex(6)}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"'.encode())
    try:
        yield database_url(name)
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


def truncate(url: str) -> None:
    """Empty every table of a migrated test database (faster than a new database per test)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {TABLES} CASCADE".encode())


def new_redis_prefix() -> str:
    return f"sktest:{secrets.token_hex(6)}:"


def drop_redis_prefix(prefix: str) -> None:
    """Delete every key a test wrote under ``prefix``."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
    finally:
        client.close()
