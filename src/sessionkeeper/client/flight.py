"""One refresh (or re-authentication) in progress, which any number of calls can wait for.

A flight's result is a ``concurrent.futures.Future`` because the same flight is awaited by
threads (``future.result``) and by asyncio tasks on any loop (``asyncio.wrap_future``), which is
what lets a sync and an async client share one session and still refresh once. The future is
marked running at creation, so a cancelled waiter cannot cancel the flight for everyone else.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sessionkeeper.client.errors import AuthExpiredError, IssuerUnavailableError
from sessionkeeper.client.session import Session


def running_future() -> concurrent.futures.Future[Session]:
    future: concurrent.futures.Future[Session] = concurrent.futures.Future()
    future.set_running_or_notify_cancel()
    return future


@dataclass
class Flight:
    """A refresh of ``stale``; ``must_replace`` once a caller has no usable token without it."""

    stale: Session
    must_replace: bool
    reauth_only: bool = False
    future: concurrent.futures.Future[Session] = field(default_factory=running_future)
    #: Started because the API answered 401: if the token it brings is refused too, the
    #: session is gone (another refresh would not help).
    after_401: bool = False


@dataclass(frozen=True)
class Wait:
    """What a call must wait for before it has a token, and for how long.

    ``poll`` is called between slices of ``slice_seconds`` (the keeper re-checks shared storage
    there: another process may sign in while this one waits for re-authentication).
    """

    future: concurrent.futures.Future[Session]
    timeout: float
    reauth: bool
    poll: Callable[[], None] | None = None
    slice_seconds: float = 1.0
    #: Why the keeper needs re-authentication, if it does: a refresh that was refused while we
    #: waited turned into a wait for the user, and the call fails as expired, not unavailable.
    expired: Callable[[], str | None] | None = None

    def timed_out(self) -> Exception:
        if self.reauth:
            return AuthExpiredError("reauth_timeout", "timed out waiting for re-authentication")
        if self.expired is not None and (reason := self.expired()) is not None:
            return AuthExpiredError(reason)
        return IssuerUnavailableError("timed out waiting for the token refresh")

    def result(self) -> Session:
        """Block the calling thread until the flight lands (bounded)."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                return self.future.result(self._next_slice(deadline))
            except concurrent.futures.TimeoutError:
                if self.future.done():  # the flight itself failed with a TimeoutError
                    return self.future.result()
                self._between_slices()

    async def aresult(self) -> Session:
        """Await the flight from any event loop without blocking it (bounded)."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                slice_seconds = self._next_slice(deadline)
                return await asyncio.wait_for(asyncio.wrap_future(self.future), slice_seconds)
            except TimeoutError:
                if self.future.done():  # the flight itself failed with a TimeoutError
                    return self.future.result()
                self._between_slices()

    def _next_slice(self, deadline: float) -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise self.timed_out()
        return min(remaining, self.slice_seconds) if self.poll is not None else remaining

    def _between_slices(self) -> None:
        if self.poll is not None:
            self.poll()
