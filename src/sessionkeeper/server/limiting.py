"""Turning rate-limit verdicts into a 429 with ``Retry-After`` and one log line."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from sessionkeeper.core.ratelimit import Limiter, Verdict
from sessionkeeper.errors import AuthError
from sessionkeeper.logs import fingerprint
from sessionkeeper.server.http import client_ip
from sessionkeeper.server.state import ServerState


def refuse_if_limited(
    state: ServerState,
    request: Request,
    verdicts: Sequence[Verdict],
    *,
    what: str,
    email: str | None = None,
) -> None:
    """Raise 429 ``over_request_rate_limit`` if any verdict refuses; checked before argon2 work."""
    refused = [v for v in verdicts if not v.allowed]
    if not refused:
        return
    wait = max(v.retry_after for v in refused)
    state.log.warning(
        f"{what} rate limited",
        extra={
            "event": "rate_limited",
            "limited": what,
            "ip": client_ip(request),
            "email_fp": fingerprint(email) if email else None,
        },
    )
    raise AuthError("over_request_rate_limit", headers={"Retry-After": str(int(wait) + 1)})


async def hit(limiter: Limiter, key: str) -> Verdict:
    """Count one attempt; counters kept in Redis are reached from a worker thread, so an
    unreachable Redis never stalls the event loop."""
    if limiter.blocking:
        return await run_in_threadpool(limiter.hit, key)
    return limiter.hit(key)


async def refund(limiter: Limiter, key: str) -> None:
    if limiter.blocking:
        await run_in_threadpool(limiter.refund, key)
    else:
        limiter.refund(key)
