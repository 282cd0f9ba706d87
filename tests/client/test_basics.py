"""Sign-in, a call, a proactive refresh and the events, through httpx sync and async."""

from __future__ import annotations

import time

import httpx
import pytest

from sessionkeeper.client import (
    AuthEvent,
    AuthExpiredError,
    IssuerError,
    RefreshPolicy,
    SessionAuth,
)
from sessionkeeper.clock import ManualClock
from tests.client.conftest import (
    PASSWORD,
    REPO,
    TOKEN_LIFE,
    Api,
    Events,
    Keepers,
    new_user,
    refresh_requests,
)
from tests.conftest import ServerProcess

pytestmark = pytest.mark.integration


def test_sync_client_signs_in_calls_and_refreshes_before_expiry(
    auth: ServerProcess, api: Api, keepers: Keepers
) -> None:
    clock = ManualClock(1_900_000_000.0)
    keeper = keepers(auth, clock=clock)
    events = Events(keeper)
    keeper.sign_in(new_user(auth), PASSWORD)
    first = keeper.session
    assert first is not None
    with httpx.Client(auth=SessionAuth(keeper)) as client:
        assert client.get(f"{api.url}/api/echo").status_code == 200
        assert refresh_requests(auth) == 0
        # 30 s token: the margin is min(120, 30 / 2) = 15 s. At 14 s nothing happens...
        clock.advance(14.0)
        assert client.get(f"{api.url}/api/echo").status_code == 200
        assert refresh_requests(auth) == 0
        # ...past 15 s the token is still valid: the call goes on and a refresh runs beside it.
        clock.advance(2.0)
        assert client.get(f"{api.url}/api/echo").status_code == 200
        # ...and an expired token makes the next call wait for the refresh.
        clock.advance(30.0)
        assert client.get(f"{api.url}/api/echo").status_code == 200
    assert keeper.session is not None
    assert keeper.session.access_token != first.access_token
    assert events.names()[0] == AuthEvent.SIGNED_IN
    assert set(events.names()[1:]) == {AuthEvent.TOKEN_REFRESHED}
    assert 1 <= refresh_requests(auth) <= 2


async def test_async_client_works_the_same(auth: ServerProcess, api: Api, keepers: Keepers) -> None:
    clock = ManualClock(1_900_000_000.0)
    keeper = keepers(auth, clock=clock)
    await keeper.asign_in(new_user(auth), PASSWORD)
    async with httpx.AsyncClient(auth=SessionAuth(keeper)) as client:
        assert (await client.get(f"{api.url}/api/echo")).status_code == 200
        clock.advance(60)
        assert (await client.get(f"{api.url}/api/echo")).status_code == 200
    assert refresh_requests(auth) == 1


def test_wrong_password_raises_issuer_error_and_keeps_no_session(
    auth: ServerProcess, keepers: Keepers
) -> None:
    keeper = keepers(auth)
    with pytest.raises(IssuerError) as caught:
        keeper.sign_in(new_user(auth), "not the password")
    assert caught.value.code == "invalid_credentials"
    assert keeper.session is None


def test_a_call_without_a_session_raises_auth_expired(
    auth: ServerProcess, api: Api, keepers: Keepers
) -> None:
    keeper = keepers(auth)
    with httpx.Client(auth=SessionAuth(keeper)) as client, pytest.raises(AuthExpiredError):
        client.get(f"{api.url}/api/echo")
    assert api.stats()["statuses"] == {}


def test_auto_refresh_refreshes_an_idle_session_and_stops_on_close(
    auth: ServerProcess, keepers: Keepers
) -> None:
    clock = ManualClock(1_900_000_000.0)
    keeper = keepers(auth, clock=clock)
    events = Events(keeper)
    first = keeper.sign_in(new_user(auth), PASSWORD)
    keeper.start_auto_refresh(tick=0.05)
    clock.advance(TOKEN_LIFE / 2 + 1)  # inside the margin; no call is made
    deadline = time.monotonic() + 10
    while keeper.session == first and time.monotonic() < deadline:
        time.sleep(0.02)
    assert keeper.session != first
    assert events.names() == [AuthEvent.SIGNED_IN, AuthEvent.TOKEN_REFRESHED]
    keeper.close()
    clock.advance(TOKEN_LIFE)
    time.sleep(0.2)
    assert refresh_requests(auth) == 1  # the closed keeper's timer did not fire again


def test_every_policy_field_and_event_is_documented() -> None:
    text = (REPO / "docs" / "client.md").read_text()
    for name in vars(RefreshPolicy()):
        assert f"`{name}`" in text, name
    for event in AuthEvent:
        assert f"`{event.value}`" in text, event
