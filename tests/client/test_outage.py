"""Acceptance 4: the auth server goes away (503, then connection refused) and comes back.

Complaints answered: a failed refresh deletes a session whose access token was still valid, and
refresh storms of thousands of ``/token`` calls (supabase-js #2145). The outage is a switchable
proxy in front of the real server; the keeper's clock is moved, so "10 s of outage" costs no
real waiting.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from sessionkeeper.client import (
    AuthEvent,
    IssuerUnavailableError,
    RefreshPolicy,
    SessionAuth,
)
from sessionkeeper.clock import ManualClock
from tests.client.conftest import (
    FAST,
    PASSWORD,
    TOKEN_LIFE,
    Api,
    Events,
    Keepers,
    new_user,
    refresh_requests,
)
from tests.client.outage import SwitchableProxy
from tests.conftest import ServerProcess

pytestmark = pytest.mark.integration


@pytest.fixture
def proxy(auth: ServerProcess) -> Iterator[SwitchableProxy]:
    host, port = auth.base_url.removeprefix("http://").split(":")
    switch = SwitchableProxy(host, int(port))
    switch.start()
    yield switch
    switch.stop()


def test_an_outage_while_the_token_is_valid_is_invisible_and_calls_recover_after_expiry(
    auth: ServerProcess, api: Api, keepers: Keepers, proxy: SwitchableProxy
) -> None:
    clock = ManualClock(1_900_000_000.0)
    keeper = keepers(auth, clock=clock, auth_url=proxy.url("/auth/v1"))
    keeper.sign_in(new_user(auth), PASSWORD)
    events = Events(keeper)
    url = f"{api.url}/api/echo"
    with httpx.Client(auth=SessionAuth(keeper)) as client:
        clock.advance(TOKEN_LIFE / 2 + 1)  # inside the proactive margin, still valid
        proxy.set_mode("503")
        for _ in range(20):  # 10 s of the keeper's time
            assert client.get(url).status_code == 200
            clock.advance(0.5)
            time.sleep(0.01)
        proxy.set_mode("refuse")
        for _ in range(6):
            assert client.get(url).status_code == 200
            clock.advance(0.5)
            time.sleep(0.01)
        assert events.names() == []  # the caller saw nothing
        # Background attempts backed off (0.05 s doubling to 0.4 s here): a handful in the
        # fraction of a second this took, not one per call.
        assert 1 <= proxy.unavailable_answers <= 12

        clock.advance(TOKEN_LIFE)  # now expired: calls must wait for a refresh
        threading.Timer(0.5, proxy.set_mode, args=("pass",)).start()
        statuses: list[int] = []
        waiting = [
            threading.Thread(target=lambda: statuses.append(client.get(url).status_code))
            for _ in range(10)
        ]
        for thread in waiting:
            thread.start()
        for thread in waiting:
            thread.join(timeout=30)

    assert statuses == [200] * 10
    assert events.names() == [AuthEvent.TOKEN_REFRESHED]  # no NEEDS_REAUTH, no sign-out
    assert refresh_requests(auth) == 1  # what reached the server once it was back


def test_an_outage_longer_than_the_refresh_deadline_raises_unavailable_and_keeps_the_session(
    auth: ServerProcess, api: Api, keepers: Keepers, proxy: SwitchableProxy
) -> None:
    clock = ManualClock(1_900_000_000.0)
    policy = RefreshPolicy(**{**vars(FAST), "refresh_deadline": 0.5})
    keeper = keepers(auth, clock=clock, policy=policy, auth_url=proxy.url("/auth/v1"))
    session = keeper.sign_in(new_user(auth), PASSWORD)
    events = Events(keeper)
    proxy.set_mode("refuse")
    clock.advance(TOKEN_LIFE + 1)
    with httpx.Client(auth=SessionAuth(keeper)) as client:
        with pytest.raises(IssuerUnavailableError):
            client.get(f"{api.url}/api/echo")
        assert keeper.session == session
        assert not keeper.needs_reauth
        proxy.set_mode("pass")
        time.sleep(policy.backoff_max)
        assert client.get(f"{api.url}/api/echo").status_code == 200
    assert events.names() == [AuthEvent.TOKEN_REFRESHED]
