"""POST /signup: create a user with an email identity; with autoconfirm, sign them in at once."""

from __future__ import annotations

from typing import Any

from sessionkeeper.core import validation
from sessionkeeper.errors import AuthError
from sessionkeeper.service.context import AuthContext, IssuedSession, new_id
from sessionkeeper.service.grants import start_session
from sessionkeeper.store.base import DuplicateError
from sessionkeeper.store.records import IdentityRecord, UserRecord


def signup(
    ctx: AuthContext,
    *,
    email: object,
    password: object,
    data: object = None,
    ip: str | None = None,
    user_agent: str | None = None,
) -> IssuedSession | tuple[UserRecord, list[IdentityRecord]]:
    """A new user (and, with autoconfirm, their first session). Duplicate email → 422."""
    if ctx.disable_signup:
        raise AuthError("signup_disabled")
    address = validation.normalize_email(email)
    secret = validation.require_password(password)
    validation.check_strength(secret, ctx.password_min_length)
    metadata: dict[str, Any] = validation.metadata(data) or {}

    with ctx.store.transaction(write=False) as tx:
        if tx.user_by_email(address) is not None:
            raise AuthError("user_already_exists")
    password_hash = ctx.passwords.hash(secret)  # slow: kept outside any write transaction

    now = ctx.clock.now()
    user_id = new_id()
    user = UserRecord(
        id=user_id,
        email=address,
        password_hash=password_hash,
        created_at=now,
        updated_at=now,
        email_confirmed_at=now if ctx.autoconfirm else None,
        app_metadata={"provider": "email", "providers": ["email"]},
        user_metadata=metadata,
    )
    identity = IdentityRecord(
        id=new_id(),
        user_id=user_id,
        provider="email",
        provider_id=user_id,
        identity_data={
            "sub": user_id,
            "email": address,
            "email_verified": ctx.autoconfirm,
            "phone_verified": False,
        },
        created_at=now,
        updated_at=now,
    )
    try:
        with ctx.store.transaction() as tx:
            tx.insert_user(user, identity)
            started = (
                start_session(tx, user, now=now, ip=ip, user_agent=user_agent)
                if ctx.autoconfirm
                else None
            )
    except DuplicateError:
        # Two sign-ups of one email raced; the loser gets the same answer as a late one.
        raise AuthError("user_already_exists") from None
    return started.issue(ctx) if started else (user, [identity])
