"""Clocks. Every rule that depends on time takes one, so that expiry tests never sleep."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Something that tells the current time as seconds since the Unix epoch."""

    def now(self) -> float: ...


class SystemClock:
    """The wall clock. Used by the server; tests pass a :class:`ManualClock` instead."""

    def now(self) -> float:
        return time.time()


class ManualClock:
    """A clock that only moves when told to: the time source for expiry tests."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds

    def set(self, value: float) -> None:
        self._now = value
