"""``GET /api/debug/whoami``: what the guard made of this request, for the person debugging it.

It answers the questions behind "why am I logged out?": which user and session the token names,
how long it has left, which issuer signed it, and whether the request carried the header or the
cookie. It only ever shows the caller their own token's facts, and it sits behind the guard
(the guard serves it at ``whoami_path``; set that to ``None`` to disable it). It is also a plain
ASGI app, mountable anywhere behind the guard.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any

from sessionkeeper.guard.answers import send_refusal
from sessionkeeper.guard.context import AUTH_KEY, RequestAuth, principal_of
from sessionkeeper.guard.reasons import Reason, Rejection
from sessionkeeper.guard.transport import presence


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _iso(epoch: float) -> str | None:
    if not math.isfinite(epoch):
        return None
    try:
        return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")
    except (ValueError, OverflowError, OSError):
        return None


def whoami_payload(scope: MutableMapping[str, Any]) -> dict[str, Any]:
    principal = principal_of(scope)
    auth = scope.get(AUTH_KEY)
    if principal is None or not isinstance(auth, RequestAuth):
        raise LookupError("no verified principal on this request")
    guard = auth.guard
    now = guard.clock.now() if guard is not None else time.time()
    authorization, cookie = presence(scope["headers"], guard.cookie_name if guard else "")
    if guard is not None:
        cookie = guard.session_cookie_present(scope)
    return {
        "user_id": principal.user_id,
        "email": principal.email,
        "role": principal.role,
        "session_id": principal.session_id,
        "is_anonymous": principal.is_anonymous,
        "aal": principal.aal,
        "transport": auth.transport,
        "authorization_header_present": authorization,
        "session_cookie_present": cookie,
        "issuer": principal.issuer,
        "audience": list(principal.audience),
        "alg": principal.alg,
        "kid": principal.kid,
        "issued_at": _finite(principal.issued_at),
        "issued_at_iso": _iso(principal.issued_at),
        "expires_at": _finite(principal.expires_at),
        "expires_at_iso": _iso(principal.expires_at),
        "seconds_left": _finite(round(principal.expires_at - now, 3)),
    }


async def whoami(
    scope: MutableMapping[str, Any],
    receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
    send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
) -> None:
    """The ASGI app. Without a verified principal (mounted outside the guard) it refuses."""
    try:
        body = json.dumps(whoami_payload(scope), allow_nan=False).encode()
    except (LookupError, ValueError):
        rejection = Rejection(Reason.MISSING_TOKEN, "whoami outside the guard")
        await send_refusal(
            scope, send, rejection, token_sent=False, retry_after=5, diagnostics=False
        )
        return
    headers = [
        (b"content-type", b"application/json"),
        (b"cache-control", b"no-store"),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
