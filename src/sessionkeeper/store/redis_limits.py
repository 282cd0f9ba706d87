"""Rate-limit counters in Redis, shared by every server instance (with ``--session-store``).

Fixed windows aligned on the injected clock: one ``INCR`` and one ``PEXPIRE`` per hit, in one
round trip. Keys hold a fingerprint of the counted key (an email, an IP), never the value.
Calls block on the network, so the server runs them in a worker thread (``blocking = True``).
"""

from __future__ import annotations

import math

import redis

from sessionkeeper.clock import Clock
from sessionkeeper.core.ratelimit import Verdict
from sessionkeeper.errors import StoreUnavailableError
from sessionkeeper.logs import fingerprint

_REFUND = """
local n = tonumber(redis.call('get', KEYS[1]) or '0')
if n > 0 then return redis.call('decr', KEYS[1]) end
return 0
"""


class RedisRateLimiter:
    """At most ``limit`` hits per key per window, counted across instances; 0 turns it off."""

    blocking = True

    def __init__(
        self,
        client: redis.Redis,
        *,
        name: str,
        limit: int,
        window: float,
        clock: Clock,
        prefix: str,
    ) -> None:
        self.limit = limit
        self.window = window
        self._client = client
        self._clock = clock
        self._base = f"{prefix}rl:{name}:"
        self._refund = client.register_script(_REFUND)

    def _key(self, key: str) -> tuple[str, float]:
        now = self._clock.now()
        index = math.floor(now / self.window)
        return f"{self._base}{fingerprint(key)}:{index}", (index + 1) * self.window - now

    def hit(self, key: str) -> Verdict:
        if self.limit <= 0:
            return Verdict(True)
        counter, remaining = self._key(key)
        try:
            pipe = self._client.pipeline(transaction=False)
            pipe.incr(counter)
            pipe.pexpire(counter, int(self.window * 1000) + 1000)
            count, _ = pipe.execute()
        except redis.RedisError as exc:
            raise StoreUnavailableError(f"rate-limit counters unreachable: {exc}") from exc
        if int(count) > self.limit:
            return Verdict(False, retry_after=max(0.0, remaining))
        return Verdict(True)

    def refund(self, key: str) -> None:
        if self.limit <= 0:
            return
        counter, _ = self._key(key)
        try:
            # Only a counter that exists and is above zero: a refund that arrives after its
            # window ended must not create a key (with no TTL) or credit the next window.
            self._refund(keys=[counter])
        except redis.RedisError as exc:
            raise StoreUnavailableError(f"rate-limit counters unreachable: {exc}") from exc
