"""The store protocol.

All writes that must be atomic (a grant, a rotation, a logout) happen inside one
``store.transaction()``; backends serialise conflicting transactions (SQLite ``BEGIN IMMEDIATE``,
PostgreSQL row locks). Backends raise ``StoreUnavailableError`` for any failure to reach or use
the database, which the server answers with 503 — never with a 4xx that would log users out.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

from sessionkeeper.store.records import (
    FlowStateRecord,
    IdentityRecord,
    RefreshTokenRecord,
    SessionRecord,
    StoredKey,
    UserRecord,
)


def redact_url(url: str) -> str:
    """The URL without its password, for logs, ``/health`` and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


class DuplicateError(Exception):
    """A unique constraint refused the write (for example, an email already registered)."""


class Transaction(Protocol):
    # Users and identities
    def insert_user(self, user: UserRecord, identity: IdentityRecord) -> None: ...
    def user_by_id(self, user_id: str) -> UserRecord | None: ...
    def lock_user(self, user_id: str) -> UserRecord | None:
        """``user_by_id`` holding the row until the transaction ends (read-modify-write)."""
        ...

    def user_by_email(self, email: str) -> UserRecord | None: ...
    def update_user(self, user: UserRecord) -> None: ...
    def identities_of(self, user_id: str) -> list[IdentityRecord]: ...
    def update_identity_email(self, user_id: str, email: str, now: float) -> None: ...

    # Sessions
    def insert_session(self, session: SessionRecord) -> None: ...
    def session_by_id(self, session_id: str) -> SessionRecord | None: ...
    def lock_session(self, session_id: str) -> SessionRecord | None:
        """``session_by_id`` that also serialises this family's writers until the transaction
        ends; raises ``StoreConflictError`` when the lock is not granted in bounded time."""
        ...

    def update_session(self, session: SessionRecord) -> None: ...
    def delete_sessions(
        self, user_id: str, *, only: str | None = None, keep: str | None = None
    ) -> int: ...

    # Refresh tokens
    def insert_refresh_token(self, token: RefreshTokenRecord) -> None: ...
    def refresh_token_by_hash(self, token_hash: str) -> RefreshTokenRecord | None: ...
    def live_child_of(self, token_id: str) -> RefreshTokenRecord | None: ...
    def next_token_seq(self, session_id: str) -> int: ...
    def revoke_token(self, token_id: str, at: float) -> None: ...
    def revoke_session_tokens(self, session_id: str, at: float) -> int: ...

    # PKCE flow states
    def insert_flow_state(self, flow: FlowStateRecord) -> None: ...
    def lock_flow_state(self, auth_code_hash: str) -> FlowStateRecord | None:
        """The flow state of an auth code, held until the transaction ends: two redemptions of
        one code run one after the other, and the second finds it gone (``delete_flow_state``)."""
        ...

    def delete_flow_state(self, flow_id: str) -> bool:
        """Delete a flow state; ``False`` when it was already gone."""
        ...

    # Retention
    def delete_ended_sessions(
        self,
        *,
        ended_before: float,
        created_before: float | None,
        idle_before: float | None,
        limit: int,
    ) -> int: ...
    def delete_spent_tokens(self, *, revoked_before: float, limit: int) -> int: ...
    def delete_old_flow_states(self, *, created_before: float, limit: int) -> int: ...

    # Signing keys
    def list_keys(self) -> list[StoredKey]: ...
    def insert_key(self, key: StoredKey) -> None: ...
    def set_key_status(self, kid: str, status: str, at: float) -> None: ...


class Store(Protocol):
    url_for_display: str

    def migrate(self) -> list[str]:
        """Apply pending migrations; return the names applied."""
        ...

    def ping(self) -> None:
        """Raise ``StoreUnavailableError`` unless the store answers a trivial query."""
        ...

    def transaction(self, *, write: bool = True) -> AbstractContextManager[Transaction]: ...

    def close(self) -> None: ...
