"""The only answers the guard ever gives: 401, 403 (CSRF, cookie transport) and 503, with fixed
bodies.

The body never says why (security.md: the HTTP answer never says *why*, the log says exactly
why), and never carries provider-specific guidance that could leak into a UI. RFC 6750 §3:
``WWW-Authenticate: Bearer`` always, with ``error="invalid_token"`` when a token was sent.
A 503 means "could not judge, retry": clients keep the session (auth-js ends it on any 4xx).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from sessionkeeper.guard.reasons import Rejection

Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

UNAUTHORIZED_BODY = b'{"error":"Unauthorized"}'
UNAVAILABLE_BODY = b'{"error":"Service Unavailable"}'
FORBIDDEN_BODY = b'{"error":"Forbidden"}'
_JSON = (b"content-type", b"application/json")
_NO_STORE = (b"cache-control", b"no-store")


def refusal_headers(
    rejection: Rejection, *, token_sent: bool, retry_after: int, diagnostics: bool
) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """Status, body and headers for a refusal."""
    if rejection.unavailable:
        status, body = 503, UNAVAILABLE_BODY
        headers = [(b"retry-after", str(retry_after).encode())]
    elif rejection.forbidden:
        status, body, headers = 403, FORBIDDEN_BODY, []
    else:
        status, body = 401, UNAUTHORIZED_BODY
        challenge = b'Bearer error="invalid_token"' if token_sent else b"Bearer"
        headers = [(b"www-authenticate", challenge)]
    headers += [_JSON, _NO_STORE, (b"content-length", str(len(body)).encode())]
    if diagnostics:
        headers.append((b"x-auth-reason", rejection.reason.value.encode()))
    return status, body, headers


async def send_refusal(
    scope: MutableMapping[str, Any],
    send: Send,
    rejection: Rejection,
    *,
    token_sent: bool,
    retry_after: int,
    diagnostics: bool,
    extra_headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    status, body, headers = refusal_headers(
        rejection, token_sent=token_sent, retry_after=retry_after, diagnostics=diagnostics
    )
    if extra_headers:
        headers = [*headers, *extra_headers]
    if scope["type"] == "websocket":
        # Before accept, a close becomes an HTTP 403 from the server; 1013 = "try again later".
        await send({"type": "websocket.close", "code": 1013 if status == 503 else 1008})
        return
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
