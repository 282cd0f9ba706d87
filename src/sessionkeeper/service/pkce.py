"""PKCE flow states: hosted sign-in hands out a single-use auth code, ``/token?grant_type=pkce``
redeems it with the verifier (RFC 7636), as GoTrue does for OAuth providers.

GoTrue's rules, followed here:
- ``code_challenge`` is 43 to 128 characters of ``[A-Za-z0-9._~-]``; ``code_challenge_method`` is
  ``s256`` or ``plain``, any case; one without the other is ``validation_failed``.
- The code is a UUID4; only its SHA-256 is stored.
- Redemption checks, in order: both fields present (``validation_failed``), the code known
  (404 ``flow_state_not_found``), not past its 300 s (422 ``flow_state_expired``), the verifier
  (400 ``bad_code_verifier``). The verifier's format is not checked on its own: a verifier that
  does not reproduce the challenge is refused, whatever it looks like. A refusal leaves the flow
  state as it was (a wrong verifier does not burn the code for the client that holds the right
  one); a success deletes it in the transaction that starts the session, so a code gives at
  most one session however many redemptions race.

Unlike GoTrue (which finds, then deletes in a separate step), the lookup holds the flow state's
lock until the session is written: concurrent redemptions of one code give exactly one session.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import uuid
from dataclasses import dataclass

from sessionkeeper.errors import AuthError
from sessionkeeper.logs import fingerprint
from sessionkeeper.service.context import AuthContext, IssuedSession, new_id
from sessionkeeper.service.grants import check_password, start_session
from sessionkeeper.store.base import Transaction
from sessionkeeper.store.records import FlowStateRecord

log = logging.getLogger("sessionkeeper.auth")

#: Seconds an auth code may wait for its redemption (GoTrue's default flow-state expiry).
FLOW_STATE_LIFETIME = 300.0
METHODS = ("s256", "plain")
_CHALLENGE = re.compile(r"[A-Za-z0-9._~-]{43,128}")
_PAIR_REQUIRED = "PKCE flow requires code_challenge_method and code_challenge"


@dataclass(frozen=True)
class Challenge:
    """A validated ``code_challenge`` and its method (lower case)."""

    value: str
    method: str


def parse_challenge(code_challenge: object, method: object) -> Challenge:
    """GoTrue's ``validatePKCEParams``, except that both must be given: hosted sign-in has no
    implicit flow."""
    challenge = code_challenge if isinstance(code_challenge, str) else None
    name = method if isinstance(method, str) else None
    if not challenge or not name:
        raise AuthError("validation_failed", _PAIR_REQUIRED)
    if not 43 <= len(challenge) <= 128:
        raise AuthError(
            "validation_failed", "code challenge has to be between 43 and 128 characters"
        )
    if not _CHALLENGE.fullmatch(challenge):
        raise AuthError(
            "validation_failed",
            "code challenge can only contain alphanumeric characters, hyphens, periods,"
            " underscores and tildes",
        )
    lowered = name.lower()
    if lowered not in METHODS:
        raise AuthError("validation_failed", "code challenge method not supported")
    return Challenge(challenge, lowered)


def challenge_of(verifier: str, method: str) -> str:
    """The challenge a verifier answers: ``BASE64URL(SHA256(verifier))`` without padding for
    ``s256``, the verifier itself for ``plain`` (RFC 7636 §4.2)."""
    if method == "plain":
        return verifier
    digest = hashlib.sha256(verifier.encode("utf-8", "surrogatepass")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def verifier_matches(challenge: Challenge, verifier: str) -> bool:
    expected = challenge.value.encode()
    actual = challenge_of(verifier, challenge.method).encode("utf-8", "surrogatepass")
    return hmac.compare_digest(expected, actual)


def hash_code(auth_code: str) -> str:
    return hashlib.sha256(auth_code.encode("utf-8", "surrogatepass")).hexdigest()


def new_flow_state(
    tx: Transaction,
    *,
    user_id: str,
    challenge: Challenge,
    redirect_to: str | None,
    now: float,
    provider: str = "email",
    authentication_method: str = "password",
) -> str:
    """Write a flow state for a signed-in user inside ``tx``; return its auth code (the only
    time it exists in the clear)."""
    code = str(uuid.uuid4())
    flow = FlowStateRecord(
        id=new_id(),
        auth_code_hash=hash_code(code),
        user_id=user_id,
        code_challenge=challenge.value,
        code_challenge_method=challenge.method,
        provider=provider,
        authentication_method=authentication_method,
        created_at=now,
        redirect_to=redirect_to,
    )
    tx.insert_flow_state(flow)
    log.info(
        "flow state created",
        extra={
            "event": "flow_state_created",
            "flow_id": flow.id,
            "user_id": user_id,
            "code_fp": fingerprint(code),
            "method": challenge.method,
        },
    )
    return code


def start_flow(
    ctx: AuthContext,
    *,
    user_id: str,
    code_challenge: object,
    method: object,
    redirect_to: str | None,
    provider: str = "email",
    authentication_method: str = "password",
) -> str:
    """A single-use auth code for a user already authenticated by the caller."""
    challenge = parse_challenge(code_challenge, method)
    with ctx.store.transaction() as tx:
        if tx.user_by_id(user_id) is None:
            raise AuthError("user_not_found")
        return new_flow_state(
            tx,
            user_id=user_id,
            challenge=challenge,
            redirect_to=redirect_to,
            now=ctx.clock.now(),
            provider=provider,
            authentication_method=authentication_method,
        )


def password_flow(
    ctx: AuthContext,
    *,
    email: object,
    password: object,
    code_challenge: object,
    method: object,
    redirect_to: str | None,
) -> str:
    """Hosted sign-in: the password grant's check (same refusals, same argon2 work), then an
    auth code instead of a session."""
    challenge = parse_challenge(code_challenge, method)  # cheap checks before argon2
    checked = check_password(ctx, email=email, password=password)
    now = ctx.clock.now()
    with ctx.store.transaction() as tx:
        user = checked.lock(tx)
        return new_flow_state(
            tx, user_id=user.id, challenge=challenge, redirect_to=redirect_to, now=now
        )


def pkce_grant(
    ctx: AuthContext,
    *,
    auth_code: object,
    code_verifier: object,
    ip: str | None = None,
    user_agent: str | None = None,
    lifetime: float = FLOW_STATE_LIFETIME,
) -> IssuedSession:
    """Redeem an auth code: a new session (a sign-in of its own), or a refusal that changes
    nothing."""
    if not auth_code or not code_verifier:
        raise AuthError(
            "validation_failed",
            "invalid request: both auth code and code verifier should be non-empty",
        )
    if not isinstance(auth_code, str) or not isinstance(code_verifier, str):
        raise AuthError("validation_failed", "auth_code and code_verifier must be strings")
    extra: dict[str, object] = {"event": "pkce_grant", "code_fp": fingerprint(auth_code)}
    with ctx.store.transaction() as tx:
        flow = tx.lock_flow_state(hash_code(auth_code))
        now = ctx.clock.now()
        refusal = _refusal(flow, code_verifier, now=now, lifetime=lifetime)
        if flow is not None:
            extra.update(flow_id=flow.id, user_id=flow.user_id)
        if refusal is not None:
            log.info("pkce grant refused", extra={**extra, "reason": refusal})
            raise AuthError(refusal)
        assert flow is not None
        user = tx.lock_user(flow.user_id)
        if user is None or not tx.delete_flow_state(flow.id):
            log.info("pkce grant refused", extra={**extra, "reason": "flow_state_not_found"})
            raise AuthError("flow_state_not_found")
        started = start_session(
            tx, user, now=now, ip=ip, user_agent=user_agent, method=flow.authentication_method
        )
    log.info("pkce grant", extra={**extra, "session_id": started.session.id})
    return started.issue(ctx)


def _refusal(
    flow: FlowStateRecord | None, verifier: str, *, now: float, lifetime: float
) -> str | None:
    if flow is None:
        return "flow_state_not_found"
    if now >= flow.created_at + lifetime:
        return "flow_state_expired"
    challenge = Challenge(flow.code_challenge, flow.code_challenge_method)
    if not verifier_matches(challenge, verifier):
        return "bad_code_verifier"
    return None
