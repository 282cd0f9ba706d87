"""The soak API's side effects, recorded in the store's PostgreSQL database (tables of its own).

Two tables, written in one transaction per ``POST /api/effects``:

- ``soak_executions``: one row every time the handler runs (request id, attempt number, user,
  instance). Append-only, no uniqueness: if the same send of a request (same id *and* attempt)
  ever ran twice, it shows here as two rows -- a *duplicated side effect*.
- ``soak_effects``: the business effect, keyed by the request id (the ``Idempotency-Key``), as
  an app that lets its users retry would do. A user-level retry of a request whose answer was
  lost (new attempt, same id) is absorbed here instead of being applied twice.

The harness creates the tables before the instances start (``create_tables``) and reads them
back at the end (``read_back``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

DDL = (
    "CREATE TABLE IF NOT EXISTS soak_executions ("
    " id bigserial PRIMARY KEY, request_id text NOT NULL, attempt integer NOT NULL,"
    " user_id text NOT NULL, instance text NOT NULL, at double precision NOT NULL)",
    "CREATE TABLE IF NOT EXISTS soak_effects ("
    " request_id text PRIMARY KEY, user_id text NOT NULL, instance text NOT NULL,"
    " at double precision NOT NULL)",
)
#: Longest a side-effect write may take; past it the API answers 503 (retry).
STATEMENT_TIMEOUT_MS = 10_000


class EffectsUnavailableError(Exception):
    """The side effect could not be recorded (the database is down or too slow): a 503."""


def create_tables(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        for statement in DDL:
            conn.execute(statement.encode())


class EffectLog:
    """Records side effects from one instance, over a small pool of its own."""

    def __init__(self, url: str, instance: str, *, pool_size: int = 8) -> None:
        from psycopg_pool import ConnectionPool

        self.instance = instance
        self._pool: Any = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            timeout=5,
            open=False,
            check=ConnectionPool.check_connection,
            reconnect_timeout=1.0,
            kwargs={
                "autocommit": True,
                "connect_timeout": 3,
                "options": f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
                "application_name": "sessionkeeper-soak",
            },
        )
        self._opened = False

    def record(self, request_id: str, attempt: int, user_id: str) -> bool:
        """Run the side effect of one send; ``True`` if it was applied now, ``False`` if an
        earlier attempt of the same request had applied it."""
        import psycopg
        from psycopg_pool import PoolTimeout

        if not self._opened:
            self._pool.open(wait=False)
            self._opened = True
        now = time.time()
        try:
            with self._pool.connection() as conn, conn.transaction():
                conn.execute(
                    "INSERT INTO soak_executions (request_id, attempt, user_id, instance, at)"
                    " VALUES (%s, %s, %s, %s, %s)",
                    (request_id, attempt, user_id, self.instance, now),
                )
                cursor = conn.execute(
                    "INSERT INTO soak_effects (request_id, user_id, instance, at)"
                    " VALUES (%s, %s, %s, %s) ON CONFLICT (request_id) DO NOTHING",
                    (request_id, user_id, self.instance, now),
                )
                return bool(cursor.rowcount == 1)
        except (psycopg.Error, PoolTimeout) as exc:
            raise EffectsUnavailableError(type(exc).__name__) from exc

    def close(self) -> None:
        if self._opened:
            self._pool.close()
            self._opened = False


@dataclass(frozen=True)
class Execution:
    request_id: str
    attempt: int
    user_id: str
    instance: str
    at: float


@dataclass(frozen=True)
class RecordedEffects:
    executions: tuple[Execution, ...]
    #: request id -> user id of the applied effect
    effects: dict[str, str]


def read_back(url: str) -> RecordedEffects:
    import psycopg

    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        executions = tuple(
            Execution(str(r[0]), int(r[1]), str(r[2]), str(r[3]), float(r[4]))
            for r in conn.execute(
                "SELECT request_id, attempt, user_id, instance, at FROM soak_executions"
            )
        )
        effects = {
            str(r[0]): str(r[1])
            for r in conn.execute("SELECT request_id, user_id FROM soak_effects")
        }
    return RecordedEffects(executions, effects)
