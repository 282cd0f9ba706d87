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
from dataclasses import dataclass
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


FileIdentity = tuple[int, int]  # (st_dev, st_ino): which file a connection really has open


@dataclass
class _Pooled:
    conn: sqlite3.Connection
    identity: FileIdentity


class _ConnectionPool:
    """A bounded set of connections, each checked out for one transaction at a time.

    Worker threads come and go (anyio retires idle ones), so connections belong to the pool,
    not to threads: the number of open files stays bounded however many threads have run. Each
    connection remembers the file it opened, so after a restore (a new inode at the same path)
    no connection to the old file is handed out again.
    """

    def __init__(self, opener: Callable[[], _Pooled], size: int) -> None:
        self._open_new = opener
        self._size = size
        self._idle: list[_Pooled] = []
        self._count = 0
        self._cond = threading.Condition()

    def get(self, timeout: float, identity: FileIdentity) -> _Pooled:
        deadline = time.monotonic() + timeout
        stale: list[_Pooled] = []
        try:
            with self._cond:
                while True:
                    while self._idle:
                        pooled = self._idle.pop()
                        if pooled.identity == identity:
                            return pooled
                        stale.append(pooled)
                        self._count -= 1
                    if self._count < self._size:
                        self._count += 1
                        break
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise StoreUnavailableError(f"all {self._size} store connections are busy")
                    self._cond.wait(remaining)
        finally:
            for pooled in stale:
                _close(pooled.conn)
        try:
            return self._open_new()
        except BaseException:
            with self._cond:
                self._count -= 1
                self._cond.notify()
            raise

    def put(self, pooled: _Pooled) -> None:
        with self._cond:
            self._idle.append(pooled)
            self._cond.notify()

    def discard(self, pooled: _Pooled) -> None:
        _close(pooled.conn)
        with self._cond:
            self._count -= 1
            self._cond.notify()

    def clear(self) -> None:
        """Close every idle connection (checked-out ones are closed when discarded)."""
        with self._cond:
            idle, self._idle = self._idle, []
            self._count -= len(idle)
            self._cond.notify_all()
        for pooled in idle:
            _close(pooled.conn)

    @property
    def open_connections(self) -> int:
        return self._count


def _close(conn: sqlite3.Connection) -> None:
    with suppress(sqlite3.Error):
        conn.close()


class SQLiteStore:
    """A SQLite file shared by the threads of this process (and by other processes, safely)."""

    def __init__(
        self, path: str | Path, *, pool_size: int = POOL_SIZE, busy_timeout: float = BUSY_TIMEOUT
    ) -> None:
        self.path = str(path)
        self.busy_timeout = busy_timeout
        self.url_for_display = f"sqlite:///{self.path}"
        self._write_lock = threading.Lock()
        self._pool = _ConnectionPool(self._open_pooled, pool_size)
        self._identity: FileIdentity | None = None  # the file at self.path when last checked
        self._in_tx = threading.local()

    @classmethod
    def from_url(cls, url: str) -> SQLiteStore:
        return cls(_path_from_url(url))

    @property
    def open_connections(self) -> int:
        return self._pool.open_connections

    def _open_pooled(self) -> _Pooled:
        conn = self._open()
        try:
            st = os.stat(self.path)
        except OSError as exc:
            _close(conn)
            raise StoreUnavailableError(f"database file {self.path} is gone: {exc}") from exc
        return _Pooled(conn, (st.st_dev, st.st_ino))

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

    def _check_file(self) -> FileIdentity:
        """The identity of the file at our path. A vanished file is an outage; a replaced one
        (a restore) is reopened, never written through connections to the old, unlinked inode."""
        try:
            st = os.stat(self.path)
        except OSError as exc:
            self._pool.clear()
            raise StoreUnavailableError(f"database file {self.path} is gone: {exc}") from exc
        identity = (st.st_dev, st.st_ino)
        if self._identity is not None and identity != self._identity:
            self._pool.clear()
        self._identity = identity
        return identity

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
            pooled = self._pool.get(timeout, self._check_file())
            conn = pooled.conn
            try:
                yield from self._run(conn, write)
            except BaseException as exc:
                # A refusal raised by the caller was rolled back cleanly: keep the connection.
                # A database error, or a rollback that did not happen, leaves it suspect.
                suspect = isinstance(exc, StoreUnavailableError | sqlite3.Error)
                self._release(pooled, suspect=suspect or conn.in_transaction)
                raise
            self._release(pooled, suspect=False)
        finally:
            self._in_tx.active = False
            if write:
                self._write_lock.release()

    def _release(self, pooled: _Pooled, *, suspect: bool) -> None:
        if suspect or pooled.identity != self._identity:
            self._pool.discard(pooled)
        else:
            self._pool.put(pooled)

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
