"""Access tokens: the claims of the wire contract, issued and checked by the auth server.

The claims mirror Supabase Auth so that code written for Supabase (RLS policies, ``auth.uid()``,
the official clients' ``get_claims``) works unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jwt

from sessionkeeper.core.keys import KeySet

AUDIENCE = "authenticated"
MAX_TOKEN_LENGTH = 16 * 1024  # our own tokens stay far below (metadata is capped at 4 KiB)
LEEWAY = 30.0  # seconds of clock difference tolerated on iat/nbf (RFC 8725 practice)
ROLE = "authenticated"


@dataclass(frozen=True)
class AccessTokenInput:
    """What an access token is made from: the user, the session and the time of issue."""

    user_id: str
    email: str
    phone: str
    session_id: str
    app_metadata: dict[str, Any]
    user_metadata: dict[str, Any]
    amr: list[dict[str, Any]]
    aal: str
    is_anonymous: bool


def build_claims(
    data: AccessTokenInput, *, issuer: str, issued_at: int, lifetime: int
) -> dict[str, Any]:
    """Every claim of the contract, in one place. ``issued_at`` comes from the injected clock."""
    return {
        "iss": issuer,
        "sub": data.user_id,
        "aud": AUDIENCE,
        "exp": issued_at + lifetime,
        "iat": issued_at,
        "email": data.email,
        "phone": data.phone,
        "app_metadata": data.app_metadata,
        "user_metadata": data.user_metadata,
        "role": ROLE,
        "aal": data.aal,
        "amr": data.amr,
        "session_id": data.session_id,
        "is_anonymous": data.is_anonymous,
    }


class InvalidAccessTokenError(Exception):
    """The bearer token is not one of ours, or is expired. The message is for logs only."""


def peek_kid(token: str, max_length: int = MAX_TOKEN_LENGTH) -> str | None:
    """The unverified ``kid`` header, or ``None``. Only ever a lookup key, never trusted."""
    if len(token) > max_length or not token.isascii():
        return None
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError:
        return None
    return kid if isinstance(kid, str) else None


def verify(
    token: str, keys: KeySet, *, issuer: str, now: float, max_length: int = MAX_TOKEN_LENGTH
) -> dict[str, Any]:
    """Check an access token this server issued: kid known, algorithm bound to the key, signature,
    issuer, audience, expiry (no leeway: the issuer's own clock is the reference), ``iat`` and
    ``nbf`` (30 s leeway) and subject. All times against the injected ``now``."""
    if len(token) > max_length:
        raise InvalidAccessTokenError("token too long")
    if not token.isascii():  # a JWS compact serialisation is base64url and dots only
        raise InvalidAccessTokenError("malformed token: not ASCII")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise InvalidAccessTokenError(f"malformed token: {exc}") from exc
    kid = header.get("kid")
    key = keys.get(kid) if isinstance(kid, str) else None
    if key is None:
        raise InvalidAccessTokenError("unknown kid")
    if header.get("alg") != key.alg:
        raise InvalidAccessTokenError("algorithm does not match the key")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key.verification_key(),
            algorithms=[key.alg],
            audience=AUDIENCE,
            issuer=issuer,
            # Time checks use the injected ``now`` below, not PyJWT's wall clock.
            options={
                "require": ["exp", "iat", "sub"],
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
            },
        )
    except jwt.PyJWTError as exc:
        raise InvalidAccessTokenError(f"{type(exc).__name__}: {exc}") from exc
    exp, iat, nbf = claims["exp"], claims["iat"], claims.get("nbf")
    if not isinstance(exp, int | float) or exp <= now:
        # No leeway on exp: this server issued the token, so its clock is the reference.
        raise InvalidAccessTokenError("token expired")
    if not isinstance(iat, int | float) or iat > now + LEEWAY:
        raise InvalidAccessTokenError("iat is in the future")
    if nbf is not None and (not isinstance(nbf, int | float) or nbf > now + LEEWAY):
        raise InvalidAccessTokenError("token not yet valid (nbf)")
    if not isinstance(claims["sub"], str):
        raise InvalidAccessTokenError("sub is not a string")
    return claims
