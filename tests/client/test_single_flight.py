"""Acceptance 1: many concurrent calls with an expired or refused token make one refresh.

Complaints answered: several requests refresh the same token at once and the issuer revokes the
family (auth-js #213, #620); several requests get 401 at once and only the first is retried
(axios-auth-refresh #56, #123). Expiry is reached by moving the keeper's clock, not by sleeping.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections import Counter

import httpx
import pytest

from sessionkeeper.client import AuthEvent, Session, SessionAuth, SessionKeeper
from sessionkeeper.clock import ManualClock
from sessionkeeper.logs import fingerprint
from tests.client.conftest import (
    PASSWORD,
    TOKEN_LIFE,
    Api,
    Events,
    Keepers,
    in_threads,
    new_user,
    refresh_requests,
)
from tests.conftest import ServerProcess

pytestmark = pytest.mark.integration

# httpcore's pool slows down sharply with hundreds of queued requests; 20 connections is fastest.
LIMITS = httpx.Limits(max_connections=20)


async def _async_calls(keeper_auth: SessionAuth, url: str, n: int) -> Counter[int]:
    async with httpx.AsyncClient(auth=keeper_auth, limits=LIMITS, timeout=60) as client:
        responses = await asyncio.gather(
            *(client.get(url, headers={"X-Call-Id": uuid.uuid4().hex}) for _ in range(n))
        )
    return Counter(r.status_code for r in responses)


def _thread_calls(keeper_auth: SessionAuth, url: str, threads: int, each: int) -> Counter[int]:
    statuses: Counter[int] = Counter()
    barrier = threading.Barrier(threads)
    lock = threading.Lock()

    def work() -> None:
        with httpx.Client(auth=keeper_auth, timeout=60) as client:
            barrier.wait()
            for _ in range(each):
                status = client.get(url, headers={"X-Call-Id": uuid.uuid4().hex}).status_code
                with lock:
                    statuses[status] += 1

    in_threads(threads, work)
    return statuses


def _access_token(keeper: SessionKeeper) -> str:
    assert keeper.session is not None
    return keeper.session.access_token


def _expired_keeper(auth: ServerProcess, keepers: Keepers) -> SessionKeeper:
    """A signed-in keeper whose token has expired by its own clock (the server still takes it)."""
    clock = ManualClock(1_900_000_000.0)
    keeper = keepers(auth, clock=clock)
    keeper.sign_in(new_user(auth), PASSWORD)
    clock.advance(TOKEN_LIFE + 1)
    return keeper


async def test_1000_asyncio_calls_with_an_expired_token_refresh_once(
    auth: ServerProcess, api: Api, keepers: Keepers
) -> None:
    keeper = _expired_keeper(auth, keepers)
    expired = _access_token(keeper)
    events = Events(keeper)

    statuses = await _async_calls(SessionAuth(keeper), f"{api.url}/api/echo", 1000)

    assert statuses == {200: 1000}
    assert refresh_requests(auth) == 1
    assert events.names() == [AuthEvent.TOKEN_REFRESHED]
    # Nobody needed a second attempt: the token was replaced before any call went out, and the
    # API saw only the new one — the expired token never left the client.
    assert set(api.stats()["attempts"].values()) == {1}
    assert api.stats()["tokens"] == {fingerprint(_access_token(keeper)): 1000}
    assert _access_token(keeper) != expired


def test_50_threads_with_an_expired_token_refresh_once(
    auth: ServerProcess, api: Api, keepers: Keepers
) -> None:
    keeper = _expired_keeper(auth, keepers)
    expired = _access_token(keeper)

    statuses = _thread_calls(SessionAuth(keeper), f"{api.url}/api/echo", threads=50, each=4)

    assert statuses == {200: 200}
    assert refresh_requests(auth) == 1
    assert api.stats()["tokens"] == {fingerprint(_access_token(keeper)): 200}
    assert _access_token(keeper) != expired


def test_a_sync_and_an_async_client_sharing_one_keeper_refresh_once(
    auth: ServerProcess, api: Api, keepers: Keepers
) -> None:
    keeper = _expired_keeper(auth, keepers)
    shared = SessionAuth(keeper)
    url = f"{api.url}/api/echo"
    async_statuses: list[Counter[int]] = []
    loop_thread = threading.Thread(
        target=lambda: async_statuses.append(asyncio.run(_async_calls(shared, url, 300)))
    )
    loop_thread.start()
    thread_statuses = _thread_calls(shared, url, threads=20, each=3)
    loop_thread.join(timeout=120)

    assert thread_statuses == {200: 60}
    assert async_statuses == [Counter({200: 300})]
    assert refresh_requests(auth) == 1


async def test_200_calls_refused_with_401_share_one_refresh_and_each_retries_once(
    auth: ServerProcess, api: Api, keepers: Keepers
) -> None:
    """The keeper believes its token is fine; the API refuses it: a 401 storm."""
    keeper = keepers(auth)
    session = await keeper.asign_in(new_user(auth), PASSWORD)
    # A token the API cannot verify (as if revoked), with the session's real refresh token.
    keeper.set_session(
        Session(
            access_token="revoked." + session.access_token.split(".", 1)[1],
            refresh_token=session.refresh_token,
            expires_in=session.expires_in,
            expires_at=session.expires_at,
            user=session.user,
        )
    )
    events = Events(keeper)

    statuses = await _async_calls(SessionAuth(keeper), f"{api.url}/api/echo", 200)

    assert statuses == {200: 200}
    assert refresh_requests(auth) == 1
    assert events.names() == [AuthEvent.TOKEN_REFRESHED]
    attempts = api.stats()["attempts"]
    assert len(attempts) == 200
    assert set(attempts.values()) <= {1, 2}  # at most one retry each
    assert 2 in set(attempts.values())  # and the refused ones were retried
