"""The queries of the store protocol in portable SQL, over any DB-API connection.

Table columns carry the names of the record fields (``store.records``), so one small codec maps
records to rows and back; JSON columns are text, booleans 0/1. Backends (SQLite now, PostgreSQL
next) supply connections, transactions and the placeholder style; the queries stay here, once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any, Protocol, TypeVar

from sessionkeeper.store.records import (
    FlowStateRecord,
    IdentityRecord,
    RefreshTokenRecord,
    SessionRecord,
    StoredKey,
    UserRecord,
)

JSON_COLUMNS = frozenset({"app_metadata", "user_metadata", "identity_data", "amr"})
BOOL_COLUMNS = frozenset({"is_anonymous"})

R = TypeVar("R")


class Cursor(Protocol):
    rowcount: int

    def fetchone(self) -> Any: ...
    def fetchall(self) -> Sequence[Any]: ...


class Executor(Protocol):
    """A DB-API connection (sqlite3) or anything with the same ``execute``."""

    def execute(self, sql: str, params: Any = ..., /) -> Any: ...


def to_row(record: object) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for f in fields(record):  # type: ignore[arg-type]
        value = getattr(record, f.name)
        if f.name in JSON_COLUMNS:
            value = json.dumps(value)
        elif f.name in BOOL_COLUMNS:
            value = int(value)
        row[f.name] = value
    return row


def from_row(cls: type[R], row: Mapping[str, Any] | None) -> R | None:
    if row is None:
        return None
    values: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        value = row[f.name]
        if f.name in JSON_COLUMNS:
            value = json.loads(value)
        elif f.name in BOOL_COLUMNS:
            value = bool(value)
        values[f.name] = value
    return cls(**values)


class SQLTransaction:
    """The store protocol's queries inside one open transaction."""

    def __init__(self, conn: Executor, *, placeholder: str = "?", row_lock: str = "") -> None:
        self._conn = conn
        self._placeholder = placeholder
        # " FOR UPDATE" in write transactions where the engine has row locks: rows read with
        # ``lock_user`` / ``lock_session`` stay locked until commit, so no update is lost.
        self._row_lock = row_lock

    def _run(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        if self._placeholder != "?":
            sql = sql.replace("?", self._placeholder)
        cursor: Cursor = self._conn.execute(sql, tuple(params))
        return cursor

    def _one(self, cls: type[R], sql: str, params: Sequence[Any]) -> R | None:
        return from_row(cls, self._run(sql, params).fetchone())

    def _all(self, cls: type[R], sql: str, params: Sequence[Any] = ()) -> list[R]:
        return [r for row in self._run(sql, params).fetchall() if (r := from_row(cls, row))]

    def _insert(self, table: str, record: object) -> None:
        row = to_row(record)
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        self._run(f"INSERT INTO {table} ({columns}) VALUES ({marks})", list(row.values()))  # noqa: S608 - names come from dataclass fields

    def ping(self) -> None:
        self._run("SELECT 1").fetchone()

    # Users and identities --------------------------------------------------------------------
    def insert_user(self, user: UserRecord, identity: IdentityRecord) -> None:
        self._insert("users", user)
        self._insert("identities", identity)

    def user_by_id(self, user_id: str) -> UserRecord | None:
        return self._one(UserRecord, "SELECT * FROM users WHERE id = ?", (user_id,))

    def lock_user(self, user_id: str) -> UserRecord | None:
        """``user_by_id`` for a read-modify-write: the row stays locked until commit, so two
        updates of one user (a sign-in, a profile change) never overwrite each other."""
        sql = f"SELECT * FROM users WHERE id = ?{self._row_lock}"  # noqa: S608 - fixed clause
        return self._one(UserRecord, sql, (user_id,))

    def user_by_email(self, email: str) -> UserRecord | None:
        return self._one(UserRecord, "SELECT * FROM users WHERE email = ?", (email,))

    def update_user(self, user: UserRecord) -> None:
        row = to_row(user)
        self._run(
            "UPDATE users SET email = ?, password_hash = ?, phone = ?, email_confirmed_at = ?,"
            " last_sign_in_at = ?, app_metadata = ?, user_metadata = ?, updated_at = ?"
            " WHERE id = ?",
            [row[k] for k in ("email", "password_hash", "phone", "email_confirmed_at",
                              "last_sign_in_at", "app_metadata", "user_metadata", "updated_at",
                              "id")],
        )  # fmt: skip

    def identities_of(self, user_id: str) -> list[IdentityRecord]:
        return self._all(
            IdentityRecord,
            "SELECT * FROM identities WHERE user_id = ? ORDER BY created_at",
            (user_id,),
        )

    def update_identity_email(self, user_id: str, email: str, now: float) -> None:
        for identity in self.identities_of(user_id):
            if identity.provider == "email":
                data = {**identity.identity_data, "email": email}
                self._run(
                    "UPDATE identities SET identity_data = ?, updated_at = ? WHERE id = ?",
                    (json.dumps(data), now, identity.id),
                )

    # Sessions --------------------------------------------------------------------------------
    def insert_session(self, session: SessionRecord) -> None:
        self._insert("sessions", session)

    def session_by_id(self, session_id: str) -> SessionRecord | None:
        return self._one(SessionRecord, "SELECT * FROM sessions WHERE id = ?", (session_id,))

    def lock_session(self, session_id: str) -> SessionRecord | None:
        """Read a session and hold its row lock until the transaction ends, so refreshes of one
        family run one after the other (SQLite's ``BEGIN IMMEDIATE`` already serialises all
        writers; PostgreSQL takes the row lock, waiting at most its ``lock_timeout``)."""
        return self._one(
            SessionRecord,
            f"SELECT * FROM sessions WHERE id = ?{self._row_lock}",  # noqa: S608 - a fixed clause
            (session_id,),
        )

    def update_session(self, s: SessionRecord) -> None:
        self._run(
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
        return self._run(sql, params).rowcount

    # Refresh tokens --------------------------------------------------------------------------
    def insert_refresh_token(self, token: RefreshTokenRecord) -> None:
        self._insert("refresh_tokens", token)

    def refresh_token_by_hash(self, token_hash: str) -> RefreshTokenRecord | None:
        return self._one(
            RefreshTokenRecord, "SELECT * FROM refresh_tokens WHERE token_hash = ?", (token_hash,)
        )

    def live_child_of(self, token_id: str) -> RefreshTokenRecord | None:
        """The newest unrevoked child of ``token_id`` (rotation rule 3)."""
        return self._one(
            RefreshTokenRecord,
            "SELECT * FROM refresh_tokens WHERE parent_id = ? AND revoked_at IS NULL"
            " ORDER BY seq DESC LIMIT 1",
            (token_id,),
        )

    def next_token_seq(self, session_id: str) -> int:
        row = self._run(
            "SELECT COALESCE(MAX(seq), 0) + 1 AS next_seq FROM refresh_tokens WHERE session_id = ?",
            (session_id,),
        ).fetchone()
        return int(row["next_seq"])

    def revoke_token(self, token_id: str, at: float) -> None:
        self._run(
            "UPDATE refresh_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
            (at, token_id),
        )

    def revoke_session_tokens(self, session_id: str, at: float) -> int:
        return self._run(
            "UPDATE refresh_tokens SET revoked_at = ? WHERE session_id = ? AND revoked_at IS NULL",
            (at, session_id),
        ).rowcount

    # PKCE flow states -------------------------------------------------------------------------
    def insert_flow_state(self, flow: FlowStateRecord) -> None:
        self._insert("flow_states", flow)

    def lock_flow_state(self, auth_code_hash: str) -> FlowStateRecord | None:
        """Read a flow state and hold it until the transaction ends (SQLite's ``BEGIN
        IMMEDIATE`` serialises all writers; PostgreSQL takes the row lock, and a second
        redemption waiting on it finds no row once the first has deleted it)."""
        return self._one(
            FlowStateRecord,
            f"SELECT * FROM flow_states WHERE auth_code_hash = ?{self._row_lock}",  # noqa: S608 - a fixed clause
            (auth_code_hash,),
        )

    def delete_flow_state(self, flow_id: str) -> bool:
        return self._run("DELETE FROM flow_states WHERE id = ?", (flow_id,)).rowcount == 1

    # Retention -------------------------------------------------------------------------------
    def delete_ended_sessions(
        self,
        *,
        ended_before: float,
        created_before: float | None,
        idle_before: float | None,
        limit: int,
    ) -> int:
        """Delete up to ``limit`` sessions that ended before ``ended_before`` (their tokens go
        with them): by ``not_after``, by replay revocation, or — when the caller passes the
        bounds — by the timebox (``created_before``) or inactivity (``idle_before``)."""
        conditions = ["not_after <= ?", "family_revoked_at <= ?"]
        params: list[Any] = [ended_before, ended_before]
        if created_before is not None:
            conditions.append("created_at <= ?")
            params.append(created_before)
        if idle_before is not None:
            conditions.append("COALESCE(refreshed_at, created_at) <= ?")
            params.append(idle_before)
        where = " OR ".join(conditions)
        return self._run(
            f"DELETE FROM sessions WHERE id IN (SELECT id FROM sessions WHERE {where} LIMIT ?)",  # noqa: S608 - fixed fragments
            [*params, limit],
        ).rowcount

    def delete_spent_tokens(self, *, revoked_before: float, limit: int) -> int:
        """Delete up to ``limit`` refresh tokens revoked before ``revoked_before``, keeping every
        parent of a live token (rotation rule 3 hands that token's child back)."""
        return self._run(
            "DELETE FROM refresh_tokens WHERE id IN ("
            " SELECT t.id FROM refresh_tokens t"
            " WHERE t.revoked_at IS NOT NULL AND t.revoked_at <= ?"
            " AND NOT EXISTS (SELECT 1 FROM refresh_tokens c"
            "  WHERE c.parent_id = t.id AND c.revoked_at IS NULL)"
            " LIMIT ?)",
            (revoked_before, limit),
        ).rowcount

    def delete_old_flow_states(self, *, created_before: float, limit: int) -> int:
        """Delete up to ``limit`` flow states created before ``created_before`` (redeemed ones
        are deleted on redemption; these are the abandoned and the expired)."""
        return self._run(
            "DELETE FROM flow_states WHERE id IN ("
            " SELECT id FROM flow_states WHERE created_at < ? LIMIT ?)",
            (created_before, limit),
        ).rowcount

    # Signing keys ----------------------------------------------------------------------------
    def list_keys(self) -> list[StoredKey]:
        return self._all(StoredKey, "SELECT * FROM signing_keys ORDER BY created_at")

    def insert_key(self, key: StoredKey) -> None:
        self._insert("signing_keys", key)

    def set_key_status(self, kid: str, status: str, at: float) -> None:
        self._run(
            "UPDATE signing_keys SET status = ?, retired_at = ? WHERE kid = ?",
            (status, at if status == "retired" else None, kid),
        )
