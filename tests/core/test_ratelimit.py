"""Protects the password-grant rate limiter: windows, retry_after, off switch, bounded memory."""

from __future__ import annotations

import threading

import pytest

from sessionkeeper.clock import ManualClock
from sessionkeeper.core.ratelimit import RateLimiter, Verdict


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def test_hits_up_to_the_limit_are_allowed(clock: ManualClock) -> None:
    limiter = RateLimiter(limit=3, window=60, clock=clock)
    assert [limiter.hit("ip").allowed for _ in range(3)] == [True, True, True]


def test_limit_reached_is_refused_with_retry_after(clock: ManualClock) -> None:
    limiter = RateLimiter(limit=3, window=60, clock=clock)
    for _ in range(3):
        limiter.hit("ip")
        clock.advance(5)
    verdict = limiter.hit("ip")  # 15 s into the window
    assert verdict == Verdict(allowed=False, retry_after=45.0)
    clock.advance(40)
    assert limiter.hit("ip") == Verdict(allowed=False, retry_after=5.0)


def test_refused_hits_do_not_extend_the_window(clock: ManualClock) -> None:
    limiter = RateLimiter(limit=1, window=60, clock=clock)
    limiter.hit("ip")
    for _ in range(10):
        clock.advance(5)
        assert not limiter.hit("ip").allowed
    clock.advance(10)  # 60 s after the first hit
    assert limiter.hit("ip").allowed


def test_window_passing_allows_again(clock: ManualClock) -> None:
    limiter = RateLimiter(limit=2, window=60, clock=clock)
    start = clock.now()
    limiter.hit("ip")
    limiter.hit("ip")
    clock.set(start + 59.999)
    assert not limiter.hit("ip").allowed
    clock.set(start + 60)  # exactly one window after the first hit
    assert limiter.hit("ip") == Verdict(allowed=True)
    assert limiter.hit("ip").allowed
    assert not limiter.hit("ip").allowed  # the new window has its own limit


def test_keys_are_counted_separately(clock: ManualClock) -> None:
    limiter = RateLimiter(limit=1, window=60, clock=clock)
    assert limiter.hit("a@example.com").allowed
    assert not limiter.hit("a@example.com").allowed
    assert limiter.hit("b@example.com").allowed


@pytest.mark.parametrize("limit", [0, -1])
def test_limit_zero_is_always_allowed(clock: ManualClock, limit: int) -> None:
    limiter = RateLimiter(limit=limit, window=60, clock=clock)
    assert all(limiter.hit("ip").allowed for _ in range(1000))
    assert len(limiter) == 0  # and keeps no state


def test_memory_is_bounded_by_max_keys(clock: ManualClock) -> None:
    limiter = RateLimiter(limit=5, window=60, clock=clock, max_keys=100)
    for i in range(5000):
        assert limiter.hit(f"key-{i}").allowed
        assert len(limiter) <= 100
        if i % 50 == 0:
            clock.advance(0.01)


def test_ended_windows_are_dropped_before_live_ones(clock: ManualClock) -> None:
    limiter = RateLimiter(limit=1, window=60, clock=clock, max_keys=3)
    limiter.hit("old-1")
    limiter.hit("old-2")
    clock.advance(50)
    limiter.hit("attacker")
    assert not limiter.hit("attacker").allowed
    clock.advance(20)  # old-* windows have ended, the attacker's has not
    assert limiter.hit("newcomer").allowed
    assert len(limiter) == 2
    assert not limiter.hit("attacker").allowed  # still limited: eviction spared a live window


def test_full_of_live_windows_evicts_the_oldest(clock: ManualClock) -> None:
    limiter = RateLimiter(limit=1, window=600, clock=clock, max_keys=3)
    for key in ("first", "second", "third"):
        limiter.hit(key)
        clock.advance(1)
    assert limiter.hit("fourth").allowed
    assert len(limiter) <= 3
    assert limiter.hit("first").allowed  # the oldest window was dropped: errs towards allowing
    assert not limiter.hit("third").allowed


def test_concurrent_hits_never_exceed_the_limit(clock: ManualClock) -> None:
    limiter = RateLimiter(limit=100, window=60, clock=clock)
    allowed: list[bool] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(50):
            verdict = limiter.hit("shared")
            with lock:
                allowed.append(verdict.allowed)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(allowed) == 400
    assert allowed.count(True) == 100


def test_refund_gives_back_a_hit_within_the_window() -> None:
    clock = ManualClock()
    limiter = RateLimiter(2, 60, clock)
    assert limiter.hit("k").allowed
    assert limiter.hit("k").allowed
    assert not limiter.hit("k").allowed
    limiter.refund("k")
    assert limiter.hit("k").allowed
    limiter.refund("never-seen")  # harmless
    assert limiter.hit("never-seen").allowed
