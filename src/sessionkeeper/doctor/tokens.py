"""Reading a token without trusting it: what people paste in, parsed by the guard's own strict
JWS parser, claims and all, before any check.

Input that is not a JWT at all (a refresh token, an ``sb_`` key, garbage) is a usage error,
:class:`NotATokenError` (exit 2), whose message says what it looks like instead and never
repeats the input. The checks are in :mod:`~sessionkeeper.doctor.token_checks`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sessionkeeper.doctor.masking import masked
from sessionkeeper.doctor.supabase import PUBLISHABLE_PREFIX, SECRET_PREFIX
from sessionkeeper.errors import ConfigError
from sessionkeeper.guard.jws import CompactJWS, DecodeError, json_object, parse_compact
from sessionkeeper.guard.reasons import Reason, Rejection
from sessionkeeper.guard.verifier import DEFAULT_MAX_TOKEN_LENGTH


class NotATokenError(ConfigError):
    """The input is not a JWT at all. A usage error (exit 2): there is nothing to diagnose."""


@dataclass(frozen=True)
class UntrustedToken:
    """A parsed, unverified JWT. ``raw`` never appears in a repr (nor anywhere in output)."""

    raw: str = field(repr=False)
    jws: CompactJWS = field(repr=False)
    claims: dict[str, Any]

    @property
    def header(self) -> dict[str, Any]:
        return self.jws.header

    @property
    def label(self) -> str:
        return f"token {masked(self.raw)}"


def clean_token(text: str) -> str:
    """What people paste: surrounding blanks, a ``Bearer`` prefix, quotes. All removed."""
    value = text.strip()
    if value[:7].lower() == "bearer ":
        value = value[7:].strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1].strip()
    return value


def decode_untrusted(text: str) -> UntrustedToken:
    """Parse a compact JWT without checking anything it claims. Raises :class:`NotATokenError`
    (and only that) for anything that is not one, naming what it looks like instead."""
    token = clean_token(text)
    if not token:
        raise NotATokenError("no token given")
    if token.startswith((PUBLISHABLE_PREFIX, SECRET_PREFIX)):
        raise NotATokenError(
            "this is a Supabase API key (sb_...), not a user's access token; "
            "give the access_token of a signed-in session"
        )
    try:
        jws = parse_compact(token, DEFAULT_MAX_TOKEN_LENGTH)
        claims = json_object(jws.payload)
    except (Rejection, DecodeError) as exc:
        why = str(exc).removeprefix(f"{Reason.MALFORMED_TOKEN.value}: ")
        shape = (
            " (one opaque string: a refresh token? doctor token takes the access_token)"
            if "." not in token
            else ""
        )
        raise NotATokenError(f"not a JWT: {why}{shape}") from None
    return UntrustedToken(token, jws, claims)
