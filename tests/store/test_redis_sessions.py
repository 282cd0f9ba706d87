"""Redis-specific behaviour of the session store: lock renewal, TTLs of spent tokens, counters."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from sessionkeeper.clock import ManualClock
from sessionkeeper.core.sessions import SessionPolicy
from sessionkeeper.store import redis_sessions
from sessionkeeper.store.redis_limits import RedisRateLimiter
from sessionkeeper.store.redis_sessions import RedisSessions
from tests import backends
from tests.contract.test_store import T0, rtoken, session


@pytest.fixture
def sessions() -> Iterator[RedisSessions]:
    backends.require_redis()
    prefix = backends.new_redis_prefix()
    store = RedisSessions(
        backends.REDIS_URL, policy=SessionPolicy(), retention=3600.0, prefix=prefix
    )
    yield store
    store.close()
    backends.drop_redis_prefix(prefix)


def test_a_logout_of_many_sessions_outlasting_the_lock_life_still_commits(
    sessions: RedisSessions, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Locks gathered one by one are renewed as more are taken, so the first ones do not
    lapse before the commit (which would turn every retry into the same 409)."""
    monkeypatch.setattr(redis_sessions, "LOCK_TTL_MS", 300)
    with sessions.transaction(write=True) as tx:
        for i in range(12):
            tx.insert_session(session(f"s{i}"))
    slow_read = redis_sessions.RedisTransaction.session_by_id

    def session_by_id(self: redis_sessions.RedisTransaction, sid: str) -> object:
        time.sleep(0.05)  # 12 x 50 ms: twice the lock's life
        return slow_read(self, sid)

    monkeypatch.setattr(redis_sessions.RedisTransaction, "session_by_id", session_by_id)
    with sessions.transaction(write=True) as tx:
        assert tx.delete_sessions("u1") == 12
    monkeypatch.undo()
    with sessions.transaction(write=False) as tx:
        assert all(tx.session_by_id(f"s{i}") is None for i in range(12))


def test_the_parent_of_a_live_branch_is_kept_with_its_session(sessions: RedisSessions) -> None:
    """Rule 4 opened a second branch under t1; when the first branch rotates on, t1 is still
    the parent of a live token, so it must not get the spent-token TTL (rule 3 needs it)."""
    with sessions.transaction(write=True) as tx:
        tx.insert_session(session("s1"))
        tx.insert_refresh_token(rtoken("t1", 1, revoked_at=T0 + 1))
        tx.insert_refresh_token(rtoken("t2", 2, parent="t1", revoked_at=T0 + 2))  # branch 1
        tx.insert_refresh_token(rtoken("t3", 3, parent="t1"))  # branch 2 (rule 4), live
    with sessions.transaction(write=True) as tx:
        tx.insert_refresh_token(rtoken("t4", 4, parent="t2"))  # branch 1 rotates on
    client = redis.Redis.from_url(backends.REDIS_URL)
    assert client.pttl(sessions.key("t", "t1")) == -1  # lives as long as the session
    with sessions.transaction(write=False) as tx:
        child = tx.live_child_of("t1")
    assert child is not None and child.id == "t3"


def test_a_spent_token_given_a_new_child_lives_with_its_session_again(
    sessions: RedisSessions,
) -> None:
    with sessions.transaction(write=True) as tx:
        tx.insert_session(session("s1"))
        tx.insert_refresh_token(rtoken("t1", 1, revoked_at=T0 + 1))
        tx.insert_refresh_token(rtoken("t2", 2, parent="t1", revoked_at=T0 + 2))
        tx.insert_refresh_token(rtoken("t3", 3, parent="t2"))  # t1 is now spent
    client = redis.Redis.from_url(backends.REDIS_URL)
    assert client.pttl(sessions.key("t", "t1")) > 0
    with sessions.transaction(write=True) as tx:
        tx.insert_refresh_token(rtoken("t4", 4, parent="t1"))  # rule 4 reuses t1
    assert client.pttl(sessions.key("t", "t1")) == -1
    assert client.pttl(sessions.key("h", "hash-t1")) == -1


def test_a_spent_grandparent_gets_the_retention_ttl(sessions: RedisSessions) -> None:
    with sessions.transaction(write=True) as tx:
        tx.insert_session(session("s1"))
        tx.insert_refresh_token(rtoken("t1", 1, revoked_at=T0 + 1))
        tx.insert_refresh_token(rtoken("t2", 2, parent="t1", revoked_at=T0 + 2))
        tx.insert_refresh_token(rtoken("t3", 3, parent="t2"))
    client = redis.Redis.from_url(backends.REDIS_URL)
    assert 0 < client.pttl(sessions.key("t", "t1")) <= 3600_000
    assert client.pttl(sessions.key("t", "t2")) == -1  # parent of the live t3


def test_a_refund_after_the_window_ended_creates_no_counter(sessions: RedisSessions) -> None:
    clock = ManualClock(T0)
    limiter = RedisRateLimiter(
        sessions.client, name="pw", limit=2, window=60, clock=clock, prefix=sessions.prefix
    )
    assert limiter.hit("ada@example.com").allowed
    clock.advance(60)  # the next window
    limiter.refund("ada@example.com")
    keys = list(sessions.client.scan_iter(match=f"{sessions.prefix}rl:*"))
    assert len(keys) == 1  # only the first window's counter, untouched
    assert sessions.client.get(keys[0]) == "1"
    assert sessions.client.pttl(keys[0]) > 0
