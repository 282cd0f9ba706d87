"""The cap on concurrent password hashing, enforced before a worker thread is taken."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
from starlette.concurrency import run_in_threadpool

from sessionkeeper.errors import AuthError

T = TypeVar("T")


class PasswordSlots:
    """At most ``slots`` argon2 operations at once (default: one per CPU; each takes ~64 MiB).

    Waiting happens on the event loop, not in a worker thread, so a flood of sign-ins cannot
    occupy the thread pool that refreshes and ``/user`` need. A request that gets no slot within
    ``wait`` seconds is answered 503 with ``Retry-After``.
    """

    def __init__(self, slots: int | None = None, wait: float = 10.0) -> None:
        self.slots = slots or max(2, os.cpu_count() or 2)
        self.wait = wait
        self._limiter: anyio.CapacityLimiter | None = None  # made inside the event loop

    async def run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.slots)
        limiter = self._limiter
        try:
            with anyio.fail_after(self.wait):
                await limiter.acquire()
        except TimeoutError:
            raise AuthError(
                "service_unavailable",
                "Too many password checks at once; retry shortly",
                headers={"Retry-After": "1"},
            ) from None
        try:
            return await run_in_threadpool(fn, *args, **kwargs)
        finally:
            limiter.release()
