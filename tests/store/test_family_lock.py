"""A family whose lock is held longer than ``SESSIONKEEPER_STORE_LOCK_TIMEOUT``: 409 ``conflict``.

On the stores with per-family locks (PostgreSQL row locks, the Redis lock) a refresh waits a
bounded time for a concurrent holder and then answers GoTrue's 409 with ``Retry-After``; nothing
changes, and the same token refreshes once the holder is done. (SQLite serialises every writer
instead; its bounded wait ends in a 503, tested with the SQLite store.)
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import jwt
import pytest

from tests.conftest import AppHarness


@pytest.fixture(params=["postgres", "postgres+redis"])
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


async def test_a_held_family_lock_answers_409_then_the_token_still_refreshes(
    make_app: Callable[..., AppHarness],
) -> None:
    app = make_app(store_lock_timeout=0.3)
    async with app.client:
        s0 = await app.signup()
        session_id = jwt.decode(s0["access_token"], options={"verify_signature": False})[
            "session_id"
        ]
        holding, release = threading.Event(), threading.Event()

        def hold() -> None:
            with app.store.transaction() as tx:
                tx.lock_session(session_id)
                holding.set()
                release.wait(10)

        holder = threading.Thread(target=hold)
        holder.start()
        try:
            assert holding.wait(10)
            r = await app.refresh(s0["refresh_token"])
            assert (r.status_code, r.json()["code"]) == (409, "conflict")
            assert r.headers["retry-after"] == "1"
        finally:
            release.set()
            holder.join()
        retry = await app.refresh(s0["refresh_token"])
        assert retry.status_code == 200, retry.text
