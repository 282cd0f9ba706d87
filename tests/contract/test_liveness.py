"""The guard's session liveness reads the auth server's store: the same answers on every backend."""

from __future__ import annotations

from collections.abc import Callable

from sessionkeeper.clock import ManualClock
from sessionkeeper.guard.liveness import StoreLiveness
from sessionkeeper.store import Store
from tests.contract.test_store import T0, session, user


async def test_liveness_follows_logout_within_the_window(make_store: Callable[..., Store]) -> None:
    store = make_store()
    with store.transaction() as tx:
        tx.insert_user(*user())
        tx.insert_session(session("s1"))
        tx.insert_session(session("s2"))
    clock = ManualClock(T0)
    liveness = StoreLiveness(store, window=5, clock=clock)
    assert await liveness.is_alive("s1") is True
    assert await liveness.is_alive("nope") is False
    with store.transaction() as tx:
        assert tx.delete_sessions("u1", only="s1") == 1
    assert await liveness.is_alive("s1") is True  # cached answer, inside the window
    clock.advance(5)
    assert await liveness.is_alive("s1") is False  # the logout is seen after the window
    assert await liveness.is_alive("s2") is True  # the other session lives on


async def test_a_replayed_family_is_dead(make_store: Callable[..., Store]) -> None:
    store = make_store()
    with store.transaction() as tx:
        tx.insert_user(*user())
        tx.insert_session(session("s1"))
    with store.transaction() as tx:
        s1 = tx.lock_session("s1")
        assert s1 is not None
        s1.family_revoked_at = s1.updated_at = T0 + 1
        tx.update_session(s1)
    assert await StoreLiveness(store, clock=ManualClock(T0 + 2)).is_alive("s1") is False
