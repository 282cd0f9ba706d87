"""What every operation needs: store, clock, keys, passwords and the session policy."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from sessionkeeper.clock import Clock, SystemClock
from sessionkeeper.core import access_tokens, refresh_tokens
from sessionkeeper.core.passwords import Passwords
from sessionkeeper.core.sessions import SessionPolicy
from sessionkeeper.service.keyring import KeyRing
from sessionkeeper.store.base import Store, Transaction
from sessionkeeper.store.records import (
    IdentityRecord,
    RefreshTokenRecord,
    SessionRecord,
    UserRecord,
)

log = logging.getLogger("sessionkeeper.auth")


@dataclass
class AuthContext:
    store: Store
    keyring: KeyRing
    issuer: str
    jwt_exp: int = 3600
    policy: SessionPolicy = field(default_factory=SessionPolicy)
    passwords: Passwords = field(default_factory=Passwords)
    clock: Clock = field(default_factory=SystemClock)
    disable_signup: bool = False
    password_min_length: int = 6


@dataclass(frozen=True)
class IssuedSession:
    """A session as the wire contract returns it (tokens in the clear, once, to their owner)."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_in: int
    expires_at: int
    user: UserRecord
    identities: list[IdentityRecord]


@dataclass(frozen=True)
class Principal:
    """The caller of ``/user`` or ``/logout``: verified claims, their user (with identities,
    read in the same transaction) and live session."""

    claims: dict[str, Any]
    user: UserRecord
    identities: list[IdentityRecord]
    session: SessionRecord


def new_id() -> str:
    return str(uuid.uuid4())


def mint_refresh_token(
    tx: Transaction,
    session: SessionRecord,
    *,
    now: float,
    parent: RefreshTokenRecord | None = None,
    parent_token: str | None = None,
) -> tuple[str, RefreshTokenRecord]:
    """Create a refresh token in ``session``'s family; a child is sealed under its parent."""
    token = refresh_tokens.generate()
    record_id = new_id()
    sealed = (
        refresh_tokens.seal(token, parent_token=parent_token, child_id=record_id)
        if parent_token is not None
        else None
    )
    record = RefreshTokenRecord(
        id=record_id,
        session_id=session.id,
        user_id=session.user_id,
        token_hash=refresh_tokens.hash_token(token),
        seq=tx.next_token_seq(session.id),
        created_at=now,
        parent_id=parent.id if parent else None,
        sealed=sealed,
    )
    tx.insert_refresh_token(record)
    return token, record


def issue_session(
    ctx: AuthContext,
    *,
    user: UserRecord,
    identities: list[IdentityRecord],
    session: SessionRecord,
    refresh_token: str,
    now: float,
) -> IssuedSession:
    """Sign an access token for ``session`` and package the wire-contract session."""
    issued_at = int(now)
    claims = access_tokens.build_claims(
        access_tokens.AccessTokenInput(
            user_id=user.id,
            email=user.email,
            phone=user.phone,
            session_id=session.id,
            app_metadata=user.app_metadata,
            user_metadata=user.user_metadata,
            amr=session.amr,
            aal=session.aal,
            is_anonymous=user.is_anonymous,
        ),
        issuer=ctx.issuer,
        issued_at=issued_at,
        lifetime=ctx.jwt_exp,
    )
    access = ctx.keyring.current().sign(claims)
    return IssuedSession(
        access_token=access,
        refresh_token=refresh_token,
        expires_in=ctx.jwt_exp,
        expires_at=issued_at + ctx.jwt_exp,
        user=user,
        identities=identities,
    )
