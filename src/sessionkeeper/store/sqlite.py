"""The embedded default store: one SQLite file in WAL mode.

Each thread gets its own connection. Write transactions start with ``BEGIN IMMEDIATE``, which
takes SQLite's write lock up front, so a rotation reads and writes a consistent family even when
several processes share the file; inside one process a lock queues writers first, which is
cheaper than letting them spin on SQLite's busy handler.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sessionkeeper.errors import ConfigError, StoreUnavailableError
from sessionkeeper.store.base import DuplicateError, iter_statements
from sessionkeeper.store.migrate import CREATE_LEDGER, load_migrations
from sessionkeeper.store.records import (
    IdentityRecord,
    RefreshTokenRecord,
    SessionRecord,
    StoredKey,
    UserRecord,
)

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


class SQLiteTransaction:
    """Queries of one transaction on one connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._c = conn

    def ping(self) -> None:
        self._c.execute("SELECT 1").fetchone()

    def _one(self, sql: str, params: tuple[Any, ...]) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self._c.execute(sql, params).fetchone()
        return row

    # Users -----------------------------------------------------------------------------------
    def insert_user(self, user: UserRecord, identity: IdentityRecord) -> None:
        try:
            self._c.execute(
                "INSERT INTO users (id, email, password_hash, phone, email_confirmed_at,"
                " last_sign_in_at, app_metadata, user_metadata, is_anonymous, created_at,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    user.id,
                    user.email,
                    user.password_hash,
                    user.phone,
                    user.email_confirmed_at,
                    user.last_sign_in_at,
                    json.dumps(user.app_metadata),
                    json.dumps(user.user_metadata),
                    int(user.is_anonymous),
                    user.created_at,
                    user.updated_at,
                ),
            )
            self._insert_identity(identity)
        except sqlite3.IntegrityError as exc:
            raise DuplicateError(str(exc)) from exc

    def _insert_identity(self, identity: IdentityRecord) -> None:
        self._c.execute(
            "INSERT INTO identities (id, user_id, provider, provider_id, identity_data,"
            " last_sign_in_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                identity.id,
                identity.user_id,
                identity.provider,
                identity.provider_id,
                json.dumps(identity.identity_data),
                identity.last_sign_in_at,
                identity.created_at,
                identity.updated_at,
            ),
        )

    @staticmethod
    def _user(row: sqlite3.Row | None) -> UserRecord | None:
        if row is None:
            return None
        return UserRecord(
            id=row["id"],
            email=row["email"],
            password_hash=row["password_hash"],
            phone=row["phone"],
            email_confirmed_at=row["email_confirmed_at"],
            last_sign_in_at=row["last_sign_in_at"],
            app_metadata=json.loads(row["app_metadata"]),
            user_metadata=json.loads(row["user_metadata"]),
            is_anonymous=bool(row["is_anonymous"]),
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )

    def user_by_id(self, user_id: str) -> UserRecord | None:
        return self._user(self._one("SELECT * FROM users WHERE id = ?", (user_id,)))

    def user_by_email(self, email: str) -> UserRecord | None:
        return self._user(self._one("SELECT * FROM users WHERE email = ?", (email,)))

    def update_user(self, user: UserRecord) -> None:
        try:
            self._c.execute(
                "UPDATE users SET email = ?, password_hash = ?, phone = ?, email_confirmed_at = ?,"
                " last_sign_in_at = ?, app_metadata = ?, user_metadata = ?, updated_at = ?"
                " WHERE id = ?",
                (
                    user.email,
                    user.password_hash,
                    user.phone,
                    user.email_confirmed_at,
                    user.last_sign_in_at,
                    json.dumps(user.app_metadata),
                    json.dumps(user.user_metadata),
                    user.updated_at,
                    user.id,
                ),
            )
        except sqlite3.IntegrityError as exc:
            raise DuplicateError(str(exc)) from exc

    def identities_of(self, user_id: str) -> list[IdentityRecord]:
        rows = self._c.execute(
            "SELECT * FROM identities WHERE user_id = ? ORDER BY created_at", (user_id,)
        ).fetchall()
        return [
            IdentityRecord(
                id=r["id"],
                user_id=r["user_id"],
                provider=r["provider"],
                provider_id=r["provider_id"],
                identity_data=json.loads(r["identity_data"]),
                last_sign_in_at=r["last_sign_in_at"],
                created_at=r["created_at"],
                updated_at=r["updated_at"],
            )
            for r in rows
        ]

    def update_identity_email(self, user_id: str, email: str, now: float) -> None:
        for identity in self.identities_of(user_id):
            if identity.provider != "email":
                continue
            data = {**identity.identity_data, "email": email}
            self._c.execute(
                "UPDATE identities SET identity_data = ?, updated_at = ? WHERE id = ?",
                (json.dumps(data), now, identity.id),
            )

    # Sessions --------------------------------------------------------------------------------
    def insert_session(self, s: SessionRecord) -> None:
        self._c.execute(
            "INSERT INTO sessions (id, user_id, aal, amr, refreshed_at, not_after,"
            " family_revoked_at, user_agent, ip, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                s.id,
                s.user_id,
                s.aal,
                json.dumps(s.amr),
                s.refreshed_at,
                s.not_after,
                s.family_revoked_at,
                s.user_agent,
                s.ip,
                s.created_at,
                s.updated_at,
            ),
        )

    def session_by_id(self, session_id: str) -> SessionRecord | None:
        r = self._one("SELECT * FROM sessions WHERE id = ?", (session_id,))
        if r is None:
            return None
        return SessionRecord(
            id=r["id"],
            user_id=r["user_id"],
            aal=r["aal"],
            amr=json.loads(r["amr"]),
            refreshed_at=r["refreshed_at"],
            not_after=r["not_after"],
            family_revoked_at=r["family_revoked_at"],
            user_agent=r["user_agent"],
            ip=r["ip"],
            created_at=r["created_at"],
            updated_at=r["updated_at"],
        )

    def update_session(self, s: SessionRecord) -> None:
        self._c.execute(
            "UPDATE sessions SET refreshed_at = ?, not_after = ?, family_revoked_at = ?,"
            " updated_at = ? WHERE id = ?",
            (s.refreshed_at, s.not_after, s.family_revoked_at, s.updated_at, s.id),
        )

    def delete_sessions(
        self, user_id: str, *, only: str | None = None, keep: str | None = None
    ) -> int:
        sql, params = "DELETE FROM sessions WHERE user_id = ?", [user_id]
        if only is not None:
            sql, params = sql + " AND id = ?", [*params, only]
        if keep is not None:
            sql, params = sql + " AND id <> ?", [*params, keep]
        return self._c.execute(sql, tuple(params)).rowcount

    # Refresh tokens --------------------------------------------------------------------------
    def insert_refresh_token(self, t: RefreshTokenRecord) -> None:
        self._c.execute(
            "INSERT INTO refresh_tokens (id, token_hash, session_id, user_id, parent_id, sealed,"
            " seq, revoked_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                t.id,
                t.token_hash,
                t.session_id,
                t.user_id,
                t.parent_id,
                t.sealed,
                t.seq,
                t.revoked_at,
                t.created_at,
            ),
        )

    @staticmethod
    def _token(r: sqlite3.Row | None) -> RefreshTokenRecord | None:
        if r is None:
            return None
        return RefreshTokenRecord(
            id=r["id"],
            session_id=r["session_id"],
            user_id=r["user_id"],
            token_hash=r["token_hash"],
            parent_id=r["parent_id"],
            sealed=r["sealed"],
            seq=r["seq"],
            revoked_at=r["revoked_at"],
            created_at=r["created_at"],
        )

    def refresh_token_by_hash(self, token_hash: str) -> RefreshTokenRecord | None:
        return self._token(
            self._one("SELECT * FROM refresh_tokens WHERE token_hash = ?", (token_hash,))
        )

    def live_child_of(self, token_id: str) -> RefreshTokenRecord | None:
        """The newest unrevoked child of ``token_id`` (rotation rule 3)."""
        return self._token(
            self._one(
                "SELECT * FROM refresh_tokens WHERE parent_id = ? AND revoked_at IS NULL"
                " ORDER BY seq DESC LIMIT 1",
                (token_id,),
            )
        )

    def next_token_seq(self, session_id: str) -> int:
        row = self._one(
            "SELECT COALESCE(MAX(seq), 0) + 1 AS next FROM refresh_tokens WHERE session_id = ?",
            (session_id,),
        )
        return int(row["next"]) if row else 1

    def revoke_token(self, token_id: str, at: float) -> None:
        self._c.execute(
            "UPDATE refresh_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
            (at, token_id),
        )

    def revoke_session_tokens(self, session_id: str, at: float) -> int:
        return self._c.execute(
            "UPDATE refresh_tokens SET revoked_at = ? WHERE session_id = ? AND revoked_at IS NULL",
            (at, session_id),
        ).rowcount

    # Keys ------------------------------------------------------------------------------------
    def list_keys(self) -> list[StoredKey]:
        rows = self._c.execute("SELECT * FROM signing_keys ORDER BY created_at").fetchall()
        return [
            StoredKey(
                kid=r["kid"],
                alg=r["alg"],
                material=r["material"],
                status=r["status"],
                created_at=r["created_at"],
                retired_at=r["retired_at"],
            )
            for r in rows
        ]

    def insert_key(self, k: StoredKey) -> None:
        self._c.execute(
            "INSERT INTO signing_keys (kid, alg, material, status, created_at, retired_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (k.kid, k.alg, k.material, k.status, k.created_at, k.retired_at),
        )

    def set_key_status(self, kid: str, status: str, at: float) -> None:
        retired_at = at if status == "retired" else None
        self._c.execute(
            "UPDATE signing_keys SET status = ?, retired_at = ? WHERE kid = ?",
            (status, retired_at, kid),
        )


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
    def transaction(self, *, write: bool = True) -> Iterator[SQLiteTransaction]:
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

    def _run(self, conn: sqlite3.Connection, write: bool) -> Iterator[SQLiteTransaction]:
        try:
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        except sqlite3.Error as exc:
            raise StoreUnavailableError(f"cannot begin a transaction: {exc}") from exc
        try:
            yield SQLiteTransaction(conn)
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
