"""Where the token travels: the ``Authorization: Bearer`` header or one cookie, never both.

fastapi-users separates *transport* (where the token is) from *strategy* (what it means); so do
we. A guard reads exactly one transport: mixing header and cookie auth is how an app ends up
with calls that carry no token (architecture.md, failure 1), and how a cookie can ride along on
a request the app meant to authenticate with a header.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from sessionkeeper.guard.reasons import Reason, Rejection

Transport = Literal["bearer", "cookie"]
TRANSPORTS: tuple[Transport, ...] = ("bearer", "cookie")
#: The cookie the session bridge sets. ``__Host-`` prefixed variants are configured by name.
DEFAULT_COOKIE_NAME = "sk-access-token"

Headers = Iterable[tuple[bytes, bytes]]


def bearer_token(headers: Headers) -> str | None:
    """The token of the one ``Authorization: Bearer`` header; ``None`` when there is none.

    Another scheme (``Basic``...) is "no bearer token" (RFC 6750 §3.1: no error code). Two
    Authorization headers, or ``Bearer`` with nothing after it, is a malformed request.
    """
    found: bytes | None = None
    for name, value in headers:
        if name == b"authorization":
            if found is not None:
                raise Rejection(Reason.MALFORMED_TOKEN, "several Authorization headers")
            found = value
    if found is None:
        return None
    scheme, _, credentials = found.strip().partition(b" ")
    if scheme.lower() != b"bearer":
        return None
    credentials = credentials.strip()
    if not credentials:
        raise Rejection(Reason.MALFORMED_TOKEN, "Bearer without a token")
    return credentials.decode("latin-1")


def cookie_token(headers: Headers, cookie_name: str) -> str | None:
    """The value of the named cookie; refused when the request carries it more than once (a
    sibling subdomain could have planted the second one: "cookie tossing")."""
    wanted = cookie_name.encode("latin-1")
    found: bytes | None = None
    for name, value in headers:
        if name != b"cookie":
            continue
        for pair in value.split(b";"):
            key, sep, raw = pair.strip().partition(b"=")
            if sep and key.strip() == wanted:
                if found is not None:
                    raise Rejection(Reason.MALFORMED_TOKEN, "the cookie is present twice")
                found = raw.strip()
    if found is None:
        return None
    if len(found) >= 2 and found[:1] == found[-1:] == b'"':
        found = found[1:-1]
    if not found:
        raise Rejection(Reason.MALFORMED_TOKEN, "empty cookie")
    return found.decode("latin-1")


def presence(headers: Headers, cookie_name: str) -> tuple[bool, bool]:
    """``(authorization_header_present, session_cookie_present)``, for logs and ``whoami``:
    whichever transport is configured, the operator sees what the client actually sent."""
    wanted = cookie_name.encode("latin-1")
    authorization = cookie = False
    for name, value in headers:
        if name == b"authorization":
            authorization = True
        elif name == b"cookie" and not cookie:
            cookie = any(
                pair.strip().partition(b"=")[0].strip() == wanted for pair in value.split(b";")
            )
    return authorization, cookie
