"""The embedded default store: one SQLite file in WAL mode.

Each thread gets its own connection. Write transactions start with ``BEGIN IMMEDIATE``, which
takes SQLite's write lock up front, so a rotation reads and writes a consistent family even when
several processes share the file; inside one process a lock queues writers first, which is
cheaper than letting them spin on SQLite's busy handler.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import quote

from sessionkeeper.errors import ConfigError, StoreUnavailableError
from sessionkeeper.store.base import DuplicateError
from sessionkeeper.store.migrate import CREATE_LEDGER, iter_statements, load_migrations
from sessionkeeper.store.sql import SQLTransaction

BUSY_TIMEOUT = 10.0  # seconds a transaction may wait for a connection or the write lock
POOL_SIZE = 16  # readers in parallel; writers are serialised anyway


def _path_from_url(url: str) -> str:
    # sqlite:///relative/file.db, sqlite:////absolute/file.db, sqlite:///:memory: is refused:
    # each thread would get its own empty database.
    rest = url[len("sqlite://") :]
    if not rest.startswith("/") or rest in ("/", "/:memory:"):
        raise ConfigError(
            f"--database / SESSIONKEEPER_DATABASE: expected sqlite:///path/to/file.db, got {url!r}"
        )
    return rest[1:]


class _ConnectionPool:
    """A bounded set of connections, each checked out for one transaction at a time.

    Worker threads come and go (anyio retires idle ones), so connections belong to the pool,
    not to threads: the number of open files stays bounded however many threads have run.
    """

    def __init__(self, opener: Callable[[], sqlite3.Connection], size: int) -> None:
        self._open_new = opener
        self._size = size
        self._idle: list[sqlite3.Connection] = []
        self._count = 0
        self._cond = threading.Condition()

    def get(self, timeout: float) -> sqlite3.Connection:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._idle and self._count >= self._size:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise StoreUnavailableError(f"all {self._size} store connections are busy")
                self._cond.wait(remaining)
            if self._idle:
                return self._idle.pop()
            self._count += 1
        try:
            return self._open_new()
        except BaseException:
            with self._cond:
                self._count -= 1
                self._cond.notify()
            raise

    def put(self, conn: sqlite3.Connection) -> None:
        with self._cond:
            self._idle.append(conn)
            self._cond.notify()

    def discard(self, conn: sqlite3.Connection) -> None:
        with suppress(sqlite3.Error):
            conn.close()
        with self._cond:
            self._count -= 1
            self._cond.notify()

    def clear(self) -> None:
        """Close every idle connection (checked-out ones are closed when discarded)."""
        with self._cond:
            idle, self._idle = self._idle, []
            self._count -= len(idle)
            self._cond.notify_all()
        for conn in idle:
            with suppress(sqlite3.Error):
                conn.close()

    @property
    def open_connections(self) -> int:
        return self._count


class SQLiteStore:
    """A SQLite file shared by the threads of this process (and by other processes, safely)."""

    def __init__(
        self, path: str | Path, *, pool_size: int = POOL_SIZE, busy_timeout: float = BUSY_TIMEOUT
    ) -> None:
        self.path = str(path)
        self.busy_timeout = busy_timeout
        self.url_for_display = f"sqlite:///{self.path}"
        self._write_lock = threading.Lock()
        self._pool = _ConnectionPool(self._open, pool_size)
        self._identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the file we opened
        self._in_tx = threading.local()

    @classmethod
    def from_url(cls, url: str) -> SQLiteStore:
        return cls(_path_from_url(url))

    @property
    def open_connections(self) -> int:
        return self._pool.open_connections

    def _open(self, *, create: bool = False) -> sqlite3.Connection:
        """A new connection. Only ``migrate`` may create the file: anywhere else a missing file
        is an outage (503), never a fresh empty database that loses every session."""
        parent = Path(self.path).parent
        if not parent.exists():
            raise StoreUnavailableError(f"directory {parent} does not exist")
        try:
            conn = sqlite3.connect(
                f"file:{quote(os.path.abspath(self.path))}?mode={'rwc' if create else 'rw'}",
                uri=True,
                timeout=self.busy_timeout,
                isolation_level=None,  # we issue BEGIN/COMMIT ourselves
                check_same_thread=False,  # a pooled connection serves one thread at a time
            )
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed rotation survives power loss. With NORMAL the last rotations
            # could vanish, leaving clients holding tokens the store never heard of.
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
        except sqlite3.Error as exc:
            raise StoreUnavailableError(f"cannot open {self.path}: {exc}") from exc
        self._restrict_permissions()
        return conn

    def _restrict_permissions(self) -> None:
        """Owner-only access: the file holds password hashes and signing keys."""
        for suffix in ("", "-wal", "-shm"):
            with suppress(OSError):
                os.chmod(self.path + suffix, 0o600)

    def _check_file(self) -> None:
        """A vanished file is an outage; a replaced one (a restore) is reopened, not written
        through stale connections into the old, unlinked inode."""
        try:
            st = os.stat(self.path)
        except OSError as exc:
            self._pool.clear()
            raise StoreUnavailableError(f"database file {self.path} is gone: {exc}") from exc
        identity = (st.st_dev, st.st_ino)
        if self._identity is not None and identity != self._identity:
            self._pool.clear()
        self._identity = identity

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[SQLTransaction]:
        if getattr(self._in_tx, "active", False):
            # A programming error (it would deadlock other backends): say so plainly.
            raise RuntimeError("nested store transaction on one thread")
        timeout = self.busy_timeout
        if write and not self._write_lock.acquire(timeout=timeout):
            raise StoreUnavailableError(f"no write slot within {timeout:.0f} s")
        self._in_tx.active = True
        try:
            self._check_file()
            conn = self._pool.get(timeout)
            identity = self._identity
            try:
                yield from self._run(conn, write)
            except BaseException as exc:
                # A refusal raised by the caller was rolled back cleanly: keep the connection.
                # A database error, or a rollback that did not happen, leaves it suspect.
                if conn.in_transaction or isinstance(exc, StoreUnavailableError | sqlite3.Error):
                    self._pool.discard(conn)
                else:
                    self._pool.put(conn)
                raise
            if identity != self._identity:
                self._pool.discard(conn)
            else:
                self._pool.put(conn)
        finally:
            self._in_tx.active = False
            if write:
                self._write_lock.release()

    def _run(self, conn: sqlite3.Connection, write: bool) -> Iterator[SQLTransaction]:
        try:
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        except sqlite3.Error as exc:
            raise StoreUnavailableError(f"cannot begin a transaction: {exc}") from exc
        try:
            yield SQLTransaction(conn)
        except sqlite3.IntegrityError as exc:
            self._rollback_quietly(conn)
            if "UNIQUE" in str(exc):
                raise DuplicateError(str(exc)) from exc
            raise
        except sqlite3.Error as exc:
            self._rollback_quietly(conn)
            raise StoreUnavailableError(str(exc)) from exc
        except BaseException:
            self._rollback_quietly(conn)
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback_quietly(conn)
            raise StoreUnavailableError(f"commit failed: {exc}") from exc

    @staticmethod
    def _rollback_quietly(conn: sqlite3.Connection) -> None:
        with suppress(sqlite3.Error):
            conn.execute("ROLLBACK")

    def migrate(self) -> list[str]:
        """Apply pending migrations (creating the file if needed) in one connection."""
        applied: list[str] = []
        with self._write_lock:
            conn = self._open(create=True)
            try:
                conn.execute(CREATE_LEDGER)
                for migration in load_migrations():
                    conn.execute("BEGIN IMMEDIATE")
                    done = conn.execute(
                        "SELECT 1 FROM schema_migrations WHERE version = ?", (migration.version,)
                    ).fetchone()
                    if done:
                        conn.execute("COMMIT")
                        continue
                    for statement in iter_statements(migration.sql):
                        conn.execute(statement)
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name, applied_at)"
                        " VALUES (?, ?, ?)",
                        (migration.version, migration.name, time.time()),
                    )
                    conn.execute("COMMIT")
                    applied.append(migration.name)
            except sqlite3.Error as exc:
                self._rollback_quietly(conn)
                raise StoreUnavailableError(f"migration failed: {exc}") from exc
            finally:
                conn.close()
            self._restrict_permissions()
        return applied

    def ping(self) -> None:
        with self.transaction(write=False) as tx:
            tx.ping()

    def close(self) -> None:
        self._pool.clear()
