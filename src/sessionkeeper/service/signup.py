"""POST /signup (a user with an email identity, signed in at once) and CLI user creation.

sessionkeeper sends no mail, so every address is confirmed on creation (GoTrue's "autoconfirm")
and ``/signup`` answers with a session, as Supabase projects with autoconfirm on do.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sessionkeeper.core import validation
from sessionkeeper.errors import AuthError
from sessionkeeper.service.context import AuthContext, IssuedSession, new_id
from sessionkeeper.service.grants import NewSession, start_session
from sessionkeeper.store.base import DuplicateError, Transaction
from sessionkeeper.store.records import IdentityRecord, UserRecord

T = TypeVar("T")


def signup(
    ctx: AuthContext,
    *,
    email: object,
    password: object,
    data: object = None,
    ip: str | None = None,
    user_agent: str | None = None,
) -> IssuedSession:
    """A new user and their first session. Duplicate email → 422 ``user_already_exists``."""
    if ctx.disable_signup:
        raise AuthError("signup_disabled")

    def sign_in(tx: Transaction, user: UserRecord) -> NewSession:
        return start_session(tx, user, now=user.created_at, ip=ip, user_agent=user_agent)

    started = _create(ctx, email=email, password=password, data=data, then=sign_in)
    assert started is not None
    return started.issue(ctx)


def create_user(
    ctx: AuthContext, *, email: object, password: object, data: object = None
) -> UserRecord:
    """A confirmed user without a session (``sessionkeeper users create``)."""
    created: list[UserRecord] = []

    def keep(tx: Transaction, user: UserRecord) -> None:
        created.append(user)

    _create(ctx, email=email, password=password, data=data, then=keep)
    return created[0]


def _create(
    ctx: AuthContext,
    *,
    email: object,
    password: object,
    data: object,
    then: Callable[[Transaction, UserRecord], T],
) -> T:
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
        email_confirmed_at=now,
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
            "email_verified": True,
            "phone_verified": False,
        },
        created_at=now,
        updated_at=now,
    )
    try:
        with ctx.store.transaction() as tx:
            tx.insert_user(user, identity)
            return then(tx, user)
    except DuplicateError:
        # Two sign-ups of one email raced; the loser gets the same answer as a late one.
        raise AuthError("user_already_exists") from None
