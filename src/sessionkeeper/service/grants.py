"""POST /token: the password grant and the refresh-token grant (rotation rules 1-5)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sessionkeeper.core import refresh_tokens, validation
from sessionkeeper.core.sessions import Action, decide_refresh
from sessionkeeper.errors import AuthError
from sessionkeeper.logs import fingerprint
from sessionkeeper.service.context import (
    AuthContext,
    IssuedSession,
    issue_session,
    mint_refresh_token,
    new_id,
)
from sessionkeeper.store.base import Transaction
from sessionkeeper.store.records import (
    IdentityRecord,
    RefreshTokenRecord,
    SessionRecord,
    UserRecord,
)

log = logging.getLogger("sessionkeeper.auth")


@dataclass(frozen=True)
class NewSession:
    """A session written in a transaction, to be signed (``issue_session``) after it commits."""

    user: UserRecord
    identities: list[IdentityRecord]
    session: SessionRecord
    refresh_token: str = field(repr=False)
    now: float

    def issue(self, ctx: AuthContext) -> IssuedSession:
        return issue_session(
            ctx,
            user=self.user,
            identities=self.identities,
            session=self.session,
            refresh_token=self.refresh_token,
            now=self.now,
        )


def start_session(
    tx: Transaction,
    user: UserRecord,
    *,
    now: float,
    ip: str | None,
    user_agent: str | None,
    method: str = "password",
) -> NewSession:
    """A new session with its first refresh token. Every sign-in makes a new one (no fixation).

    ``method`` is how the user proved who they are (the ``amr`` claim). Signing happens after
    the commit (``NewSession.issue``): key loading may need the store, and nothing slow should
    run while the write lock is held.
    """
    session = SessionRecord(
        id=new_id(),
        user_id=user.id,
        created_at=now,
        updated_at=now,
        aal="aal1",
        amr=[{"method": method, "timestamp": int(now)}],
        refreshed_at=now,
        ip=ip,
        user_agent=(user_agent or "")[:512] or None,
    )
    tx.insert_session(session)
    token, _ = mint_refresh_token(tx, session, now=now)
    user.last_sign_in_at = now
    user.updated_at = now
    tx.update_user(user)
    identities = tx.identities_of(user.id)
    log.info(
        "session started",
        extra={"event": "session_started", "user_id": user.id, "session_id": session.id},
    )
    return NewSession(user, identities, session, token, now)


@dataclass(frozen=True)
class CheckedPassword:
    """A password that matched (argon2, outside any transaction), with the upgraded hash to
    store when the old one used weaker parameters."""

    user: UserRecord
    rehashed: str | None = field(default=None, repr=False)

    def lock(self, tx: Transaction) -> UserRecord:
        """The user again, under its row lock, with the upgraded hash written. Refused with
        ``invalid_credentials`` when the user was deleted or the password changed meanwhile."""
        fresh = tx.lock_user(self.user.id)
        if fresh is None or fresh.password_hash != self.user.password_hash:
            # Deleted, or the password changed while we were hashing: the check no longer holds.
            raise AuthError("invalid_credentials")
        if self.rehashed is not None:
            fresh.password_hash = self.rehashed
            tx.update_user(fresh)
        return fresh


def check_password(ctx: AuthContext, *, email: object, password: object) -> CheckedPassword:
    """The password grant's credential check, shared with hosted sign-in (``service.pkce``):
    the same answer (``invalid_credentials``) for an unknown user and a wrong password, and the
    same argon2 work for both."""
    address = validation.normalize_email(email)
    secret = validation.require_password(password)
    with ctx.store.transaction(write=False) as tx:
        user = tx.user_by_email(address)
    # argon2 runs outside any transaction: a slow hash must not hold the write lock.
    ok = (
        ctx.passwords.check(user.password_hash, secret)
        if user
        else ctx.passwords.check_unknown(secret)
    )
    if user is None or not ok:
        log.info(
            "password check refused",
            extra={"event": "invalid_credentials", "email_fp": fingerprint(address)},
        )
        raise AuthError("invalid_credentials")
    # Upgrade an old hash to the current argon2 parameters, also outside the transaction.
    rehashed = None
    if ctx.passwords.needs_rehash(user.password_hash):
        rehashed = ctx.passwords.hash(secret)
    return CheckedPassword(user, rehashed)


def password_grant(
    ctx: AuthContext,
    *,
    email: object,
    password: object,
    ip: str | None = None,
    user_agent: str | None = None,
) -> IssuedSession:
    checked = check_password(ctx, email=email, password=password)
    now = ctx.clock.now()
    with ctx.store.transaction() as tx:
        user = checked.lock(tx)
        started = start_session(tx, user, now=now, ip=ip, user_agent=user_agent)
    return started.issue(ctx)


def refresh_grant(ctx: AuthContext, *, refresh_token: object) -> IssuedSession:
    """Apply the rotation rules atomically and return the session's (new or current) token."""
    if refresh_token is None or refresh_token == "":
        raise AuthError("validation_failed", "refresh_token required")
    if not isinstance(refresh_token, str) or not refresh_tokens.is_well_formed(refresh_token):
        raise AuthError("validation_failed", "refresh_token is malformed")
    fp = fingerprint(refresh_token)

    token_hash = refresh_tokens.hash_token(refresh_token)
    with ctx.store.transaction() as tx:
        token = tx.refresh_token_by_hash(token_hash)
        session = tx.lock_session(token.session_id) if token else None
        if session is not None:
            # Read again under the family's lock: a concurrent refresh may have rotated this
            # token while we waited (on stores where the first read was not already locked).
            token = tx.refresh_token_by_hash(token_hash)
        now = ctx.clock.now()
        child = tx.live_child_of(token.id) if token and token.revoked_at is not None else None
        decision = decide_refresh(token, session, child, now=now, policy=ctx.policy)
        extra = {
            "event": "refresh",
            "decision": decision.action.value,
            "detail": decision.detail,
            "token_fp": fp,
            "session_id": session.id if session else None,
        }
        if decision.action in _REFUSALS:
            log.info("refresh refused", extra=extra)
            raise AuthError(_REFUSALS[decision.action])
        assert token is not None
        assert session is not None
        if decision.action is Action.REVOKE_FAMILY:
            session.family_revoked_at = session.updated_at = now
            tx.update_session(session)
            revoked = tx.revoke_session_tokens(session.id, now)
            log.warning(
                "refresh token replayed; family revoked", extra={**extra, "tokens_revoked": revoked}
            )
            granted = None  # the revocation commits; the refusal is raised after the block
        else:
            issued_token = _next_token(
                tx, decision.action, token, child, session, refresh_token, now
            )
            session.refreshed_at = session.updated_at = now
            tx.update_session(session)
            user = tx.user_by_id(session.user_id)
            if user is None:
                raise AuthError("refresh_token_not_found")
            granted = (issued_token, user, tx.identities_of(user.id))
    if granted is None:
        raise AuthError("refresh_token_already_used")
    log.info("refresh granted", extra=extra)  # after the commit: only what really happened
    issued_token, user, identities = granted
    return issue_session(
        ctx, user=user, identities=identities, session=session, refresh_token=issued_token, now=now
    )


_REFUSALS = {
    Action.NOT_FOUND: "refresh_token_not_found",
    Action.SESSION_EXPIRED: "session_expired",
    Action.FAMILY_REVOKED: "refresh_token_already_used",
}


def _next_token(
    tx: Transaction,
    action: Action,
    token: RefreshTokenRecord,
    child: RefreshTokenRecord | None,
    session: SessionRecord,
    presented: str,
    now: float,
) -> str:
    """The refresh token to hand back when the decision grants (KEEP, RETURN_CURRENT, ROTATE,
    REUSE)."""
    if action is Action.KEEP:
        return presented
    if action is Action.RETURN_CURRENT:
        assert child is not None
        assert child.sealed is not None
        current = refresh_tokens.unseal(child.sealed, parent_token=presented, child_id=child.id)
        if current is None:  # only if the row was tampered with: refuse rather than guess
            raise AuthError("refresh_token_not_found")
        return current
    tx.revoke_token(token.id, now)  # ROTATE, or REUSE (already revoked: a no-op)
    new_token, _ = mint_refresh_token(tx, session, now=now, parent=token, parent_token=presented)
    return new_token
