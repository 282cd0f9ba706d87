"""What a soak run records while it runs: one record per user request, per revocation, per auth
event and per fault, and a per-second timeline of counters. Times are seconds since the run's
start on the harness's monotonic clock (never a user's skewed clock)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

#: The final outcome of one user request (after the user's own retries, see ``users``).
OK = "ok"
AUTH_EXPIRED = "auth_expired"  # AuthExpiredError: the client told the user to sign in again
FAILED = "failed"  # 5xx, network errors or IssuerUnavailableError until the retry budget ran out
NO_OUTCOME = "no_outcome"  # the request never finished within its bound
UNEXPECTED = "unexpected"  # an answer no correct system gives here (a 4xx other than 401)
OUTCOMES = (OK, AUTH_EXPIRED, FAILED, NO_OUTCOME, UNEXPECTED)


@dataclass
class RequestRecord:
    user: int
    kind: str  # "get" or "post"
    request_id: str
    started: float
    ended: float | None = None
    outcome: str | None = None
    status: int | None = None  # the last HTTP status seen
    attempts: int = 0  # sends by the user's code (SessionAuth's own 401 retry is inside one)
    five_xx: int = 0  # 5xx answers the user's code saw
    transport_errors: int = 0  # connection failures / time-outs the user's code saw
    unavailable: int = 0  # IssuerUnavailableError raised to the user's code
    reason: str | None = None  # AuthExpiredError.reason


@dataclass
class Revocation:
    """A user signed out everywhere on purpose, from a second session of theirs."""

    user: int
    planned_at: float
    started: float | None = None  # the first /logout?scope=global was sent
    done: float | None = None  # a /logout answered 204: the session is gone


@dataclass(frozen=True)
class SignInRecord:
    """The user signed in again (after ``NEEDS_REAUTH`` or an ``AuthExpiredError``)."""

    user: int
    started: float
    ended: float


@dataclass(frozen=True)
class AuthEventRecord:
    user: int
    at: float
    event: str  # an AuthEvent name: NEEDS_REAUTH, TOKEN_REFRESHED, REAUTHENTICATED, ...


@dataclass
class FaultRecord:
    kind: str
    started: float
    ended: float | None = None
    target: str = ""
    detail: str = ""
    error: str | None = None  # the fault could not be applied as planned


def to_json(obj: Any) -> Any:
    return asdict(obj)


@dataclass
class Timeline:
    """Counters per second of the run, safe to bump from any thread."""

    t0: float = field(default_factory=time.monotonic)
    buckets: dict[int, Counter[str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def now(self) -> float:
        return time.monotonic() - self.t0

    def count(self, name: str, n: int = 1) -> None:
        second = max(0, int(self.now()))
        with self.lock:
            bucket = self.buckets.get(second)
            if bucket is None:
                bucket = self.buckets[second] = Counter()
            bucket[name] += n

    def total(self, name: str) -> int:
        with self.lock:
            return sum(b[name] for b in self.buckets.values())

    def series(self, name: str, seconds: int) -> list[int]:
        with self.lock:
            return [self.buckets.get(s, Counter())[name] for s in range(seconds)]

    def names(self) -> list[str]:
        with self.lock:
            return sorted({n for b in self.buckets.values() for n in b})
