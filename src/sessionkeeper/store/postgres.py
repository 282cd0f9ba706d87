"""The production store: PostgreSQL, shared by any number of server processes.

The queries are the portable ones of ``store.sql``; this module adds connections (a bounded
``psycopg_pool`` pool, each connection checked before use so a restarted database is noticed
instead of failing one request per stale connection), transactions, and the family lock: a
rotation takes ``SELECT ... FOR UPDATE`` on its session row and waits at most ``lock_timeout``
for it, after which the request is answered 409 ``conflict`` (as GoTrue does) rather than
queueing without bound. Every failure to reach or use the database is a
``StoreUnavailableError`` (a 503), never an answer that would log a user out.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from sessionkeeper.errors import StoreConflictError, StoreUnavailableError
from sessionkeeper.store.base import DuplicateError, redact_url
from sessionkeeper.store.migrate import CREATE_LEDGER, iter_statements, load_migrations
from sessionkeeper.store.sql import SQLTransaction

POOL_SIZE = 20  # per process; PostgreSQL's default max_connections is 100
IDLE_CHECK = 1.0  # seconds unused after which a pooled connection is pinged before use
POOL_TIMEOUT = 5.0  # seconds a request waits for a connection before a 503
CONNECT_TIMEOUT = 3  # seconds to open one connection (libpq's connect_timeout)
LOCK_TIMEOUT = 5.0  # seconds a refresh waits for its family's row lock before a 409
STATEMENT_TIMEOUT = 15.0  # seconds any statement may run: a stuck query must not pin a worker
FAIL_FAST_WINDOW = 1.0  # seconds after a failed connection in which requests fail at once
RECONNECT_TIMEOUT = 1.0  # seconds the pool retries one failed connection in the background
MIGRATION_LOCK = 0x5E55_10_4B  # pg_advisory_xact_lock key: one instance migrates at a time


class PostgresStore:
    """A PostgreSQL database (``postgresql://user:pass@host:port/dbname``) behind a pool."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = POOL_SIZE,
        pool_timeout: float = POOL_TIMEOUT,
        lock_timeout: float = LOCK_TIMEOUT,
        statement_timeout: float = STATEMENT_TIMEOUT,
    ) -> None:
        self.url_for_display = redact_url(url)
        self.pool_timeout = pool_timeout
        options = (
            f"-c lock_timeout={int(lock_timeout * 1000)}"
            f" -c statement_timeout={int(statement_timeout * 1000)}"
            # The rotation rules rely on READ COMMITTED (each statement sees what committed
            # before it, so the re-read under the row lock is fresh), whatever the server's
            # default_transaction_isolation says.
            " -c default_transaction_isolation=read\\ committed"
        )
        self._failed_at = -FAIL_FAST_WINDOW
        self._errors_at_success = 0  # the pool's connection-error count at the last good connection
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            timeout=pool_timeout,
            open=False,
            check=self._check_if_idle,
            # Give up a background reconnection quickly: the next request asks for a new one, so
            # service resumes as soon as the database is back, not after an exponential backoff.
            reconnect_timeout=RECONNECT_TIMEOUT,
            reconnect_failed=self._note_failure,
            kwargs={
                "autocommit": True,  # transactions are explicit blocks
                "row_factory": dict_row,
                "connect_timeout": CONNECT_TIMEOUT,
                "options": options,
                "application_name": "sessionkeeper",
            },
        )
        self._opened = False
        self._last_used: weakref.WeakKeyDictionary[psycopg.Connection[Any], float] = (
            weakref.WeakKeyDictionary()
        )

    def _note_failure(self, pool: ConnectionPool[Any] | None = None) -> None:
        self._failed_at = time.monotonic()

    def _check_if_idle(self, conn: psycopg.Connection[Any]) -> None:
        """Ping a connection that sat unused for a while (a restarted database leaves every
        pooled connection broken); skip the round trip for one used a moment ago."""
        if time.monotonic() - self._last_used.get(conn, 0.0) > IDLE_CHECK:
            ConnectionPool.check_connection(conn)

    def _open_pool(self) -> None:
        if not self._opened:
            self._pool.open(wait=False)
            self._opened = True

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        self._open_pool()
        if (
            time.monotonic() - self._failed_at < FAIL_FAST_WINDOW
            and self._pool.get_stats().get("pool_available", 0) == 0
        ):
            # The database refused a connection a moment ago and none is ready: answer 503 now
            # instead of holding a worker for the whole pool timeout. The window is not extended
            # here: once it ends, requests wait on the pool again, which is how the pool notices
            # the database is back (a new failure opens a new window).
            raise StoreUnavailableError("database unreachable (a connection failed just now)")
        try:
            with self._pool.connection(timeout=self.pool_timeout) as conn:
                self._errors_at_success = self._pool.get_stats().get("connections_errors", 0)
                try:
                    yield conn
                finally:
                    self._last_used[conn] = time.monotonic()
        except PoolTimeout as exc:
            wait = f"{self.pool_timeout:.0f} s"
            if self._pool.get_stats().get("connections_errors", 0) > self._errors_at_success:
                # Not a busy pool: connection attempts failed since the last good one, the
                # database refuses connections. Let the next requests fail fast instead of each
                # waiting out the pool timeout (the pool's own failure notice can come later
                # than this on a loaded machine).
                self._note_failure()
                raise StoreUnavailableError(
                    f"database unreachable: no connection within {wait}"
                ) from exc
            raise StoreUnavailableError(f"no database connection within {wait}") from exc
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            self._note_failure()
            raise StoreUnavailableError(f"database unreachable: {_first_line(exc)}") from exc

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[SQLTransaction]:
        with self._connection() as conn:
            try:
                with conn.transaction():
                    lock = " FOR UPDATE" if write else ""
                    yield SQLTransaction(conn, placeholder="%s", row_lock=lock)
            except pg_errors.UniqueViolation as exc:
                raise DuplicateError(_first_line(exc)) from exc
            except pg_errors.LockNotAvailable as exc:
                raise StoreConflictError("the session is locked by another request") from exc
            except (pg_errors.DeadlockDetected, pg_errors.SerializationFailure) as exc:
                raise StoreConflictError(f"concurrent update: {_first_line(exc)}") from exc
            except psycopg.ProgrammingError:
                raise  # a bug in a query, not an outage: let it surface as one
            except psycopg.Error as exc:
                raise StoreUnavailableError(f"database failed: {_first_line(exc)}") from exc

    def migrate(self) -> list[str]:
        """Apply pending migrations in one transaction under an advisory lock, so instances
        starting together neither race nor apply a migration twice."""
        applied: list[str] = []
        with self._connection() as conn:
            try:
                with conn.transaction():
                    # Another instance may be migrating: wait for it as long as it takes, and
                    # let DDL on a large table run past the per-request statement timeout.
                    conn.execute("SET LOCAL lock_timeout = 0")
                    conn.execute("SET LOCAL statement_timeout = 0")
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
                    conn.execute(CREATE_LEDGER)
                    done = {
                        row["version"]
                        for row in conn.execute("SELECT version FROM schema_migrations")
                    }
                    for migration in load_migrations():
                        if migration.version in done:
                            continue
                        for statement in iter_statements(migration.sql):
                            conn.execute(statement.encode())  # DDL: no parameters
                        conn.execute(
                            "INSERT INTO schema_migrations (version, name, applied_at)"
                            " VALUES (%s, %s, %s)",
                            (migration.version, migration.name, time.time()),
                        )
                        applied.append(migration.name)
            except psycopg.Error as exc:
                raise StoreUnavailableError(f"migration failed: {_first_line(exc)}") from exc
        return applied

    def ping(self) -> None:
        with self.transaction(write=False) as tx:
            tx.ping()

    def close(self) -> None:
        if self._opened:
            self._pool.close()
            self._opened = False


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
