"""GET/PUT /user and bearer authentication for the endpoints that need it."""

from __future__ import annotations

import logging
from typing import Any

from sessionkeeper.core import access_tokens, validation
from sessionkeeper.errors import AuthError
from sessionkeeper.logs import fingerprint
from sessionkeeper.service.context import AuthContext, Principal
from sessionkeeper.store.base import DuplicateError
from sessionkeeper.store.records import IdentityRecord, UserRecord

log = logging.getLogger("sessionkeeper.auth")


def authenticate(
    ctx: AuthContext, bearer: str | None, *, require_session: bool = True
) -> Principal | None:
    """The principal behind a bearer token. ``None`` only when the session is gone and
    ``require_session`` is false (logout is idempotent)."""
    if not bearer:
        raise AuthError("no_authorization")
    kid = access_tokens.peek_kid(bearer)
    keys = ctx.keyring.refresh_if_unknown(kid) if kid else ctx.keyring.current()
    try:
        claims = access_tokens.verify(bearer, keys, issuer=ctx.issuer, now=ctx.clock.now())
    except access_tokens.InvalidAccessTokenError as exc:
        log.info(
            "bearer refused",
            extra={"event": "bad_jwt", "reason": str(exc)[:200], "token_fp": fingerprint(bearer)},
        )
        raise AuthError("bad_jwt", "invalid JWT: unable to parse or verify signature") from exc
    session_id = claims.get("session_id")
    with ctx.store.transaction(write=False) as tx:
        session = tx.session_by_id(session_id) if isinstance(session_id, str) else None
        user = tx.user_by_id(claims["sub"])
        identities = tx.identities_of(user.id) if user is not None else []
    if (
        session is None
        or session.family_revoked_at is not None
        or (user is not None and session.user_id != user.id)
    ):
        if not require_session:
            return None
        raise AuthError("session_not_found")
    if user is None:
        if not require_session:
            return None
        raise AuthError("user_not_found")
    return Principal(claims=claims, user=user, identities=identities, session=session)


def update_user(
    ctx: AuthContext,
    principal: Principal,
    *,
    email: object = None,
    password: object = None,
    data: object = None,
) -> tuple[UserRecord, list[IdentityRecord]]:
    """Apply an email, password or metadata change. A new password ends all *other* sessions
    (ASVS 7.4.3); the caller's session stays, so the user is not signed out mid-action."""
    new_email = validation.normalize_email(email) if email is not None else None
    new_password = validation.require_password(password) if password is not None else None
    metadata: dict[str, Any] | None = validation.metadata(data)
    new_hash = None
    if new_password is not None:
        validation.check_strength(new_password, ctx.password_min_length)
        if ctx.passwords.check(principal.user.password_hash, new_password):
            raise AuthError("same_password")
        new_hash = ctx.passwords.hash(new_password)

    now = ctx.clock.now()
    try:
        with ctx.store.transaction() as tx:
            user = tx.lock_user(principal.user.id)
            if user is None:
                raise AuthError("user_not_found")
            if new_email is not None and new_email != user.email:
                if tx.user_by_email(new_email) is not None:
                    raise AuthError("email_exists")
                user.email = new_email
                tx.update_identity_email(user.id, new_email, now)
            if metadata is not None:
                merged = {**user.user_metadata, **metadata}
                merged = {k: v for k, v in merged.items() if v is not None}
                # The merged result is what every token carries: cap it, not just the patch.
                validation.check_metadata_size(merged)
                user.user_metadata = merged
            ended = 0
            if new_hash is not None:
                user.password_hash = new_hash
                ended = tx.delete_sessions(user.id, keep=principal.session.id)
            user.updated_at = now
            tx.update_user(user)
            identities = tx.identities_of(user.id)
    except DuplicateError:
        raise AuthError("email_exists") from None
    if new_hash is not None:
        log.info(
            "password changed",
            extra={"event": "password_changed", "user_id": user.id, "other_sessions_ended": ended},
        )
    return user, identities
