"""A fixed-window rate limiter with bounded memory, driven by an injected clock.

Used for password grants per email and per client IP. In-process state: each server instance
counts on its own; with ``--session-store`` the counters live in Redis instead
(``store.redis_limits``), shared by every instance. Both satisfy :class:`Limiter`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol

from sessionkeeper.clock import Clock


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: float = 0.0


class Limiter(Protocol):
    limit: int
    #: ``True`` when ``hit``/``refund`` do network I/O (the server runs them in a thread).
    blocking: bool

    def hit(self, key: str) -> Verdict: ...
    def refund(self, key: str) -> None: ...


class RateLimiter:
    """At most ``limit`` hits per key per ``window`` seconds; ``limit=0`` turns it off.

    Memory is bounded by ``max_keys``: when full, windows that have ended are dropped first, then
    the oldest windows (which errs towards allowing, never towards locking a user out forever).
    """

    blocking = False

    def __init__(self, limit: int, window: float, clock: Clock, max_keys: int = 100_000) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._max_keys = max_keys
        self._windows: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str) -> Verdict:
        if self.limit <= 0:
            return Verdict(True)
        now = self._clock.now()
        with self._lock:
            start, count = self._windows.get(key, (now, 0))
            if now - start >= self.window:
                start, count = now, 0
            if count >= self.limit:
                return Verdict(False, retry_after=max(0.0, start + self.window - now))
            if key not in self._windows and len(self._windows) >= self._max_keys:
                self._evict(now)
            self._windows[key] = (start, count + 1)
            return Verdict(True)

    def refund(self, key: str) -> None:
        """Give back a hit counted by ``hit`` (an attempt that turned out not to count)."""
        with self._lock:
            window = self._windows.get(key)
            if window is not None and window[1] > 0:
                self._windows[key] = (window[0], window[1] - 1)

    def _evict(self, now: float) -> None:
        stale = [k for k, (start, _) in self._windows.items() if now - start >= self.window]
        for k in stale:
            del self._windows[k]
        if len(self._windows) >= self._max_keys:
            oldest = sorted(self._windows, key=lambda k: self._windows[k][0])
            for k in oldest[: max(1, len(oldest) // 10)]:
                del self._windows[k]

    def __len__(self) -> int:
        return len(self._windows)
