"""One server-side refresh per refresh token, however many requests ask at once.

A page that wakes up fires several API calls together, each carrying the same expired access
cookie and the same refresh cookie. Refreshing once per request would spend one refresh token N
times: inside the reuse interval the issuer forgives it, but each spend forks the family, and a
slow request arriving after the interval would revoke the whole family — the user signed out by
their own page. So within a process the first request refreshes and the others wait for its
answer (single flight), and the answer is remembered for ``remember`` seconds so that requests
sent before the browser stored the new cookie get the same new tokens without asking again.
Across processes, the issuer's reuse interval covers the same race (rotation rules 3 and 4).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict

from sessionkeeper.bridge.issuer import IssuerClient, SessionTokens
from sessionkeeper.clock import Clock, SystemClock


def _key(refresh_token: str) -> str:
    return hashlib.sha256(refresh_token.encode()).hexdigest()


def _retrieve(flight: asyncio.Future[SessionTokens]) -> None:
    """Mark a failed flight's exception as seen: its waiters may all have gone."""
    if not flight.cancelled():
        flight.exception()


class SingleFlightRefresher:
    def __init__(
        self,
        issuer: IssuerClient,
        *,
        remember: float = 10.0,
        max_entries: int = 10_000,
        clock: Clock | None = None,
    ) -> None:
        self.issuer = issuer
        self.remember = remember
        self.max_entries = max_entries
        self.clock = clock or SystemClock()
        self._flights: dict[str, asyncio.Future[SessionTokens]] = {}
        self._recent: OrderedDict[str, tuple[float, SessionTokens]] = OrderedDict()

    def _remembered(self, key: str) -> SessionTokens | None:
        entry = self._recent.get(key)
        if entry is None:
            return None
        at, tokens = entry
        if self.clock.now() - at > self.remember:
            del self._recent[key]
            return None
        return tokens

    async def refresh(self, refresh_token: str) -> SessionTokens:
        key = _key(refresh_token)
        remembered = self._remembered(key)
        if remembered is not None:
            return remembered
        flight = self._flights.get(key)
        if flight is None:
            # A task of its own: a browser that disconnects must not cancel the refresh the
            # other requests are waiting for (nor leave the family half-rotated).
            flight = asyncio.ensure_future(self._fly(key, refresh_token))
            flight.add_done_callback(_retrieve)
            self._flights[key] = flight
        return await asyncio.shield(flight)

    async def _fly(self, key: str, refresh_token: str) -> SessionTokens:
        try:
            tokens = await self.issuer.refresh(refresh_token)
            self._recent[key] = (self.clock.now(), tokens)
            while len(self._recent) > self.max_entries:
                self._recent.popitem(last=False)
            return tokens
        finally:
            self._flights.pop(key, None)
