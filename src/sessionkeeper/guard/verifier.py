"""The framework-free access-token verifier: a token in, a :class:`Principal` or a
:class:`Rejection` with one reason out.

Order of checks (each refusal names the first failed one):

1. size (before any decoding), then strict compact-JWS parsing -> ``malformed_token``;
2. ``alg`` on the allow-list -> ``unsupported_alg``; ``crit``, key-offering headers, a non-JWT
   ``typ`` -> ``malformed_token``;
3. the key for ``kid`` -> ``unknown_kid`` (or ``keys_unavailable`` when the key source is down);
   the key's own algorithm must be the header's -> ``unsupported_alg``;
4. the signature -> ``bad_signature``;
5. claims: required ones present -> ``missing_claim``; well-typed -> ``malformed_token``;
   ``iss`` allowed -> ``wrong_issuer``; ``aud`` allowed -> ``wrong_audience``; ``exp`` ->
   ``expired``; ``nbf`` and ``iat`` -> ``not_yet_valid`` (all with ``leeway``, against the
   injected clock).

Claims are only looked at after the signature checks out, so nothing an attacker writes into a
token influences the verdict before then.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from types import MappingProxyType
from typing import Any

from sessionkeeper.clock import Clock, SystemClock
from sessionkeeper.guard.algorithms import ALL_ALGORITHMS, DEFAULT_ALGORITHMS
from sessionkeeper.guard.cache import DEFAULT_MAX_ENTRIES, DEFAULT_MAX_TOKEN_BYTES, TokenCache
from sessionkeeper.guard.jws import (
    CompactJWS,
    DecodeError,
    check_header,
    json_object,
    parse_compact,
)
from sessionkeeper.guard.keys import VerifyKey
from sessionkeeper.guard.principal import Principal
from sessionkeeper.guard.reasons import Reason, Rejection
from sessionkeeper.guard.sources import KeySource

DEFAULT_LEEWAY = 30.0
DEFAULT_MAX_TOKEN_LENGTH = 16 * 1024  # the auth server's own limit; ours stay far below
REQUIRED_CLAIMS = ("exp", "iat", "sub", "iss", "aud")
DEFAULT_AUDIENCES = ("authenticated",)
# RFC 7515 §4.1.9 / RFC 9068: "JWT" (what Supabase and our server write) or "at+jwt"; the
# "application/" prefix may be present. An ID token or anything else typed is refused.
ACCEPTED_TYPES = frozenset({"jwt", "at+jwt", "application/jwt", "application/at+jwt"})
_LOGGED_TEXT = 200  # attacker-controlled strings are truncated before they reach a log line


def _text(value: Any) -> str:
    return str(value)[:_LOGGED_TEXT]


def _number(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Rejection(Reason.MALFORMED_TOKEN, f"{name} is not a number", claim=name)
    try:
        number = float(value)  # an int past float's range (10**400) raises, it is not "finite"
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise Rejection(Reason.MALFORMED_TOKEN, f"{name} is not a number", claim=name)
    return number


class Verifier:
    """Verifies access tokens against configured keys, issuers and audiences.

    ``verify`` is synchronous and never does I/O: use it from any code with static keys.
    ``authenticate`` is the async entry point the adapters use: it may fetch keys (cold start,
    unknown ``kid``) through the key source, never more than its rate limits allow.
    """

    def __init__(
        self,
        keys: KeySource,
        *,
        issuers: Iterable[str],
        audiences: Iterable[str] = DEFAULT_AUDIENCES,
        algorithms: Iterable[str] = DEFAULT_ALGORITHMS,
        leeway: float = DEFAULT_LEEWAY,
        max_token_length: int = DEFAULT_MAX_TOKEN_LENGTH,
        required_claims: Iterable[str] = REQUIRED_CLAIMS,
        clock: Clock | None = None,
        cache_entries: int = DEFAULT_MAX_ENTRIES,
        cache_token_bytes: int = DEFAULT_MAX_TOKEN_BYTES,
    ) -> None:
        self.issuers = frozenset(issuers)
        self.audiences = frozenset(audiences)
        self.algorithms = frozenset(algorithms)
        if not self.issuers:
            raise ValueError("the guard needs at least one allowed issuer")
        if not self.audiences:
            raise ValueError("the guard needs at least one allowed audience")
        unknown = self.algorithms - ALL_ALGORITHMS
        if unknown or not self.algorithms:
            raise ValueError(f"unsupported algorithms in the allow-list: {sorted(unknown)}")
        if not 0 <= leeway <= 300:
            raise ValueError("leeway must be between 0 and 300 seconds")
        self.required_claims = tuple(dict.fromkeys(required_claims))
        self.leeway = leeway
        self.max_token_length = max_token_length
        self.keys = keys
        self.clock = clock or SystemClock()
        self.cache = TokenCache(cache_entries, cache_token_bytes)
        keys.subscribe(self.cache.clear)  # a key removed or replaced: re-verify everything
        self._cached = self.cache.data
        self._now = self.clock.now

    # The hot path: kept flat, one dict lookup and one comparison on a hit.
    def verify(self, token: str) -> Principal:
        entry = self._cached.get(token)
        if entry is not None and entry[1] > self._now():
            return entry[0]
        return self._verify(token)

    def cached(self, token: str) -> Principal | None:
        """The principal of a token verified before and not yet expired, else ``None``. The
        middleware's fast path: no coroutine, no parsing (the key source is still polled)."""
        entry = self._cached.get(token)
        if entry is not None and entry[1] > self._now():
            self.keys.poll()
            return entry[0]
        return None

    async def authenticate(self, token: str) -> Principal:
        """``verify``, plus what needs the network: a refresh of stale keys in the background,
        and one fetch when the key is unknown or no keys are loaded yet."""
        self.keys.poll()
        try:
            return self.verify(token)
        except Rejection as exc:
            if exc.reason not in (Reason.UNKNOWN_KID, Reason.KEYS_UNAVAILABLE):
                raise
            if not await self.keys.refresh(exc.detail.get("kid")):
                if not self.keys.healthy:  # the key may exist where we cannot look: no verdict
                    raise Rejection(
                        Reason.KEYS_UNAVAILABLE, "key source failing", **exc.detail
                    ) from exc
                raise
        return self.verify(token)

    def verify_signature(self, token: str) -> CompactJWS:
        """Steps 1-4 only: a JWS whose signature checks out with one of our keys. Claims are not
        looked at (JWS test vectors sign payloads that are not JWT claims)."""
        return self._signed(token)[0]

    def _signed(self, token: str) -> tuple[CompactJWS, VerifyKey]:
        jws = parse_compact(token, self.max_token_length)
        alg, kid = check_header(jws.header)
        if alg not in self.algorithms:
            raise Rejection(Reason.UNSUPPORTED_ALG, "algorithm not allowed", alg=_text(alg))
        typ = jws.header.get("typ")
        if typ is not None and (not isinstance(typ, str) or typ.lower() not in ACCEPTED_TYPES):
            raise Rejection(Reason.MALFORMED_TOKEN, "not an access token type", typ=_text(typ))
        key = self._key(kid, alg, jws.payload)
        if not key.check(jws.signing_input, jws.signature):
            raise Rejection(
                Reason.BAD_SIGNATURE,
                "signature does not verify",
                kid=_text(kid),
                alg=alg,
                token_issuer=_unverified_issuer(jws.payload),
            )
        return jws, key

    def _verify(self, token: str) -> Principal:
        if not token:
            raise Rejection(Reason.MISSING_TOKEN, "empty token")
        jws, key = self._signed(token)
        try:
            claims = json_object(jws.payload)
        except DecodeError as exc:
            raise Rejection(Reason.MALFORMED_TOKEN, f"claims: {exc}") from None
        principal, exp = self._check_claims(claims, key)
        now = self._now()
        self.cache.put(token, principal, exp, now)
        return principal

    def _key(self, kid: str | None, alg: str, payload: bytes) -> VerifyKey:
        key = self.keys.lookup(kid, alg)
        if key is None:
            reason = Reason.UNKNOWN_KID if self.keys.healthy else Reason.KEYS_UNAVAILABLE
            raise Rejection(
                reason, "no key for kid", kid=_text(kid), token_issuer=_unverified_issuer(payload)
            )
        if key.alg != alg:
            raise Rejection(
                Reason.UNSUPPORTED_ALG,
                "algorithm does not match the key",
                alg=_text(alg),
                key_alg=key.alg,
                kid=_text(kid),
            )
        return key

    def _check_claims(self, claims: dict[str, Any], key: VerifyKey) -> tuple[Principal, float]:
        for name in self.required_claims:
            if claims.get(name) is None:
                raise Rejection(Reason.MISSING_CLAIM, f"no {name} claim", claim=name)
        exp = _number(claims, "exp")
        iat = _number(claims, "iat")
        nbf = _number(claims, "nbf")
        iss = claims.get("iss")
        sub = claims.get("sub")
        aud = claims.get("aud")
        if not isinstance(iss, str) or not isinstance(sub, str) or not sub:
            raise Rejection(Reason.MALFORMED_TOKEN, "iss or sub is not a non-empty string")
        if isinstance(aud, str):
            audience: tuple[str, ...] = (aud,)
        elif isinstance(aud, list) and aud and all(isinstance(a, str) for a in aud):
            audience = tuple(aud)
        else:
            raise Rejection(Reason.MALFORMED_TOKEN, "aud is not a string or list of strings")
        if iss not in self.issuers:
            raise Rejection(
                Reason.WRONG_ISSUER,
                "issuer not allowed",
                expected_issuer=sorted(self.issuers),
                received_issuer=_text(iss),
            )
        if self.audiences.isdisjoint(audience):
            raise Rejection(
                Reason.WRONG_AUDIENCE,
                "audience not allowed",
                expected_audience=sorted(self.audiences),
                received_audience=[_text(a) for a in audience[:5]],
            )
        now = self._now()
        if exp is None:  # exp was made optional by the operator: the token never expires here
            exp = math.inf
        elif now >= exp + self.leeway:
            raise Rejection(
                Reason.EXPIRED, "token expired", expired_seconds_ago=round(now - exp, 3)
            )
        if nbf is not None and nbf > now + self.leeway:
            raise Rejection(
                Reason.NOT_YET_VALID, "nbf in the future", valid_in_seconds=round(nbf - now, 3)
            )
        if iat is not None and iat > now + self.leeway:
            raise Rejection(
                Reason.NOT_YET_VALID, "iat in the future", issued_in_seconds=round(iat - now, 3)
            )
        session_id = claims.get("session_id")
        principal = Principal(
            user_id=sub,
            issuer=iss,
            audience=audience,
            issued_at=iat if iat is not None else math.nan,
            expires_at=exp,
            email=_optional_str(claims.get("email")),
            phone=_optional_str(claims.get("phone")),
            role=_optional_str(claims.get("role")),
            session_id=session_id if isinstance(session_id, str) and session_id else None,
            is_anonymous=claims.get("is_anonymous") is True,
            aal=_optional_str(claims.get("aal")),
            claims=MappingProxyType(_freeze_metadata(claims)),
            kid=key.kid,
            alg=key.alg,
        )
        # Cached until exp exactly (no leeway): a token within its leeway is re-verified.
        return principal, exp


def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _freeze_metadata(claims: dict[str, Any]) -> dict[str, Any]:
    for name in ("app_metadata", "user_metadata"):
        value = claims.get(name)
        if isinstance(value, dict):
            claims[name] = MappingProxyType(value)
    return claims


def _unverified_issuer(payload: bytes) -> str | None:
    """The ``iss`` a refused token *claims*, for the log only: "signed by another project's
    key" is the commonest misconfiguration, and this names the other project."""
    try:
        iss = json_object(payload).get("iss")
    except DecodeError:
        return None
    return _text(iss) if isinstance(iss, str) else None
