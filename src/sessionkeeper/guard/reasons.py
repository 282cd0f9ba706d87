"""Why a token was refused: one stable code per failed check.

PyJWT raises one exception class per check; we go one step further and give every refusal a
machine-readable :class:`Reason`, because the reason is the product: it goes to the log line, the
per-reason counter and (opt-in) the ``X-Auth-Reason`` header, while the HTTP body never says why.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class Reason(StrEnum):
    MISSING_TOKEN = "missing_token"  # noqa: S105 - a reason code, not a secret
    MALFORMED_TOKEN = "malformed_token"  # noqa: S105
    UNSUPPORTED_ALG = "unsupported_alg"
    UNKNOWN_KID = "unknown_kid"
    BAD_SIGNATURE = "bad_signature"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    WRONG_ISSUER = "wrong_issuer"
    WRONG_AUDIENCE = "wrong_audience"
    MISSING_CLAIM = "missing_claim"
    SESSION_REVOKED = "session_revoked"
    KEYS_UNAVAILABLE = "keys_unavailable"
    # Not a verdict on the token: the session store could not answer the liveness question.
    # Answered 503 like keys_unavailable, and kept apart so the log points at the store.
    STORE_UNAVAILABLE = "store_unavailable"
    # Cookie transport: the access cookie could not be renewed server-side.
    REFRESH_REFUSED = "refresh_refused"  # the issuer refused the refresh cookie: session over
    ISSUER_UNAVAILABLE = "issuer_unavailable"  # the issuer could not be asked: retry later
    # Cookie transport, unsafe methods (CSRF defence): answered 403, not 401.
    ORIGIN_NOT_ALLOWED = "origin_not_allowed"
    CSRF_HEADER_MISSING = "csrf_header_missing"


#: Reasons answered 503 (retry later, keep the session) rather than 401.
UNAVAILABLE = frozenset(
    {Reason.KEYS_UNAVAILABLE, Reason.STORE_UNAVAILABLE, Reason.ISSUER_UNAVAILABLE}
)
#: Reasons answered 403: the request, not the session, is refused (a cross-site request).
FORBIDDEN = frozenset({Reason.ORIGIN_NOT_ALLOWED, Reason.CSRF_HEADER_MISSING})


class Rejection(Exception):
    """A refused token. ``detail`` holds log-safe facts (never the token itself)."""

    def __init__(self, reason: Reason, message: str = "", **detail: Any) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason.value}: {message}" if message else reason.value)

    @property
    def unavailable(self) -> bool:
        """True when the token could not be judged (keys or store down): answer 503, not 401."""
        return self.reason in UNAVAILABLE

    @property
    def forbidden(self) -> bool:
        """True for a CSRF refusal: answer 403; the session itself is fine."""
        return self.reason in FORBIDDEN
