"""Acceptance 3, 5, 6 and 7: 401 handling, revoked families, POST replay, clock skew.

Complaints answered: retry-on-401 asked for and never built (httpx-auth #23, requests-oauthlib
#510); retries that loop; "Already Used" signs the user out although another instance holds a
newer token (auth-js #213); a wrong local clock causing refresh loops or spurious 401s.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
import requests

from sessionkeeper.client import (
    AuthEvent,
    AuthExpiredError,
    FileStorage,
    RefreshPolicy,
    Session,
    SessionAuth,
    SessionKeeper,
)
from sessionkeeper.client.requests_auth import RequestsSessionAuth
from sessionkeeper.clock import ManualClock
from tests.client.conftest import (
    FAST,
    PASSWORD,
    TOKEN_LIFE,
    Api,
    Events,
    Keepers,
    in_threads,
    new_user,
    refresh_requests,
    requests_to,
)
from tests.conftest import API_VERSION, ServerProcess

pytestmark = pytest.mark.integration


def _revoked_copy(session: Session) -> Session:
    """The same session with an access token the API cannot verify (as if revoked)."""
    return Session(
        access_token="revoked." + session.access_token.split(".", 1)[1],
        refresh_token=session.refresh_token,
        expires_in=session.expires_in,
        expires_at=session.expires_at,
        user=session.user,
    )


def _call(client: httpx.Client, url: str) -> tuple[str, int | str]:
    call_id = uuid.uuid4().hex
    try:
        return call_id, client.get(url, headers={"X-Call-Id": call_id}).status_code
    except AuthExpiredError as exc:
        return call_id, exc.reason


# Acceptance 3 ------------------------------------------------------------------------------


def test_an_api_that_refuses_everything_gets_two_attempts_one_refresh_then_auth_expired(
    auth: ServerProcess, api: Api, keepers: Keepers
) -> None:
    keeper = keepers(auth)
    keeper.sign_in(new_user(auth), PASSWORD)
    events = Events(keeper)
    api.reject_all(True)
    url = f"{api.url}/api/echo"
    with httpx.Client(auth=SessionAuth(keeper)) as client:
        first_id, first = _call(client, url)
        assert first == "rejected"
        assert api.stats()["attempts"] == {first_id: 2}
        assert refresh_requests(auth) == 1
        assert events.names() == [AuthEvent.TOKEN_REFRESHED, AuthEvent.NEEDS_REAUTH]

        # Later calls fail at once: no attempt, no refresh, no second event. No loop.
        later = [_call(client, url) for _ in range(5)]
    assert [outcome for _, outcome in later] == ["rejected"] * 5
    assert api.stats()["attempts"] == {first_id: 2}
    assert refresh_requests(auth) == 1
    assert events.count(AuthEvent.NEEDS_REAUTH) == 1
    assert keeper.session is not None  # the app's state is kept: no sign-out of its own
    assert keeper.needs_reauth

    # Signing in again leaves the state, and calls go through once the API accepts them.
    api.reject_all(False)
    keeper.sign_in(keeper.session.user["email"], PASSWORD)
    assert events.names()[-1] == AuthEvent.REAUTHENTICATED
    with httpx.Client(auth=SessionAuth(keeper)) as client:
        assert client.get(url).status_code == 200


def test_concurrent_calls_to_an_api_that_refuses_everything_never_loop(
    auth: ServerProcess, api: Api, keepers: Keepers
) -> None:
    keeper = keepers(auth)
    keeper.sign_in(new_user(auth), PASSWORD)
    events = Events(keeper)
    api.reject_all(True)
    outcomes: list[tuple[str, int | str]] = []
    with httpx.Client(auth=SessionAuth(keeper)) as client:
        in_threads(10, lambda: outcomes.append(_call(client, f"{api.url}/api/echo")))
    assert [outcome for _, outcome in outcomes] == ["rejected"] * 10
    # A call whose first 401 lands after the state is known skips the pointless retry.
    assert set(api.stats()["attempts"].values()) <= {1, 2}
    assert refresh_requests(auth) == 1
    assert events.count(AuthEvent.NEEDS_REAUTH) == 1


# Acceptance 6 ------------------------------------------------------------------------------


def test_a_post_refused_with_401_is_replayed_exactly_once(
    auth: ServerProcess, api: Api, keepers: Keepers
) -> None:
    keeper = keepers(auth)
    keeper.set_session(_revoked_copy(keeper.sign_in(new_user(auth), PASSWORD)))
    with httpx.Client(auth=SessionAuth(keeper)) as client:
        created = client.post(f"{api.url}/api/items", json={"id": "json-body"})
        # A streamed body is read up front, so it can be replayed byte for byte too.
        streamed = client.post(
            f"{api.url}/api/items",
            content=iter([b'{"id": ', b'"streamed"}']),
            headers={"Content-Type": "application/json"},
        )
        api.reject_all(True)
        with pytest.raises(AuthExpiredError):
            client.post(f"{api.url}/api/items", json={"id": "refused"})
    stats = api.stats()
    assert created.status_code == 201
    assert streamed.status_code == 201
    assert stats["received"] == {"json-body": 2, "streamed": 1, "refused": 2}
    assert stats["created"] == {"json-body": 1, "streamed": 1}
    assert refresh_requests(auth) == 2  # one per 401 on a current token, never one per attempt


def test_requests_adapter_retries_a_post_once_and_raises_after_a_second_401(
    auth: ServerProcess, api: Api, keepers: Keepers
) -> None:
    keeper = keepers(auth)
    keeper.set_session(_revoked_copy(keeper.sign_in(new_user(auth), PASSWORD)))
    with requests.Session() as http:
        http.auth = RequestsSessionAuth(keeper)
        created = http.post(f"{api.url}/api/items", json={"id": "via-requests"}, timeout=10)
        assert http.get(f"{api.url}/api/echo", timeout=10).status_code == 200
        api.reject_all(True)
        with pytest.raises(AuthExpiredError):
            http.post(f"{api.url}/api/items", json={"id": "refused"}, timeout=10)
    assert created.status_code == 201
    assert [r.status_code for r in created.history] == [401]
    stats = api.stats()
    assert stats["received"] == {"via-requests": 2, "refused": 2}
    assert stats["created"] == {"via-requests": 1}
    assert refresh_requests(auth) == 2  # the 401 recovery, then the refresh before giving up


# Acceptance 5 ------------------------------------------------------------------------------


def _revoke_family(auth: ServerProcess, refresh_token: str) -> None:
    """Someone elsewhere rotates the token twice, then replays the first after the reuse
    interval (replaying the newest token's parent would just return the newest token again)."""
    url = f"{auth.auth_url}/token?grant_type=refresh_token"
    body = {"refresh_token": refresh_token}
    child = httpx.post(url, json=body, headers=API_VERSION)
    assert child.status_code == 200
    grandchild = {"refresh_token": child.json()["refresh_token"]}
    assert httpx.post(url, json=grandchild, headers=API_VERSION).status_code == 200
    time.sleep(1.2)  # the test server's reuse interval is 1 s
    replay = httpx.post(url, json=body, headers=API_VERSION)
    assert replay.headers["x-sb-error-code"] == "refresh_token_already_used"


class WriterDuringRefresh(FileStorage):
    """A session file that another process rewrites while this one's refresh is on the wire
    (as one whose lock wait timed out would)."""

    def __init__(self, path: Path, newer: Session) -> None:
        super().__init__(path)
        self.newer: Session | None = newer
        self.loads = 0

    def load(self) -> Session | None:
        loaded = super().load()
        self.loads += 1
        if self.loads == 2 and self.newer is not None:  # 1: the keeper starts; 2: in the lock
            FileStorage(self.path).save(self.newer)
        return loaded


def test_a_revoked_family_adopts_the_newer_session_another_process_stored(
    auth: ServerProcess, api: Api, keepers: Keepers, tmp_path: Path
) -> None:
    path = tmp_path / "session.json"
    clock = ManualClock(1_900_000_000.0)
    email = new_user(auth)
    signer = keepers(auth, storage=FileStorage(tmp_path / "other.json"))
    newer = signer.sign_in(email, PASSWORD)  # the other process's fresh sign-in
    quiet = RefreshPolicy(**{**vars(FAST), "watch_interval": 3600.0})
    keeper = keepers(auth, clock=clock, storage=FileStorage(path), policy=quiet)
    old = keeper.sign_in(email, PASSWORD)
    assert old.refresh_token is not None
    _revoke_family(auth, old.refresh_token)
    keeper.close()
    # Same file, reopened through a storage that lets the other process write mid-refresh.
    keeper = keepers(auth, clock=clock, storage=WriterDuringRefresh(path, newer), policy=quiet)
    events = Events(keeper)
    clock.advance(TOKEN_LIFE + 1)

    with httpx.Client(auth=SessionAuth(keeper)) as client:
        assert client.get(f"{api.url}/api/echo").status_code == 200

    assert keeper.session is not None
    assert keeper.session.access_token == newer.access_token
    assert events.names() == [AuthEvent.TOKEN_REFRESHED]
    assert not keeper.needs_reauth
    refused = [line for line in requests_to(auth, "/token") if "refresh_token_already_used" in line]
    assert len(refused) == 2  # the replay above, and this keeper's refresh


def test_a_revoked_family_without_a_newer_session_needs_reauth_once(
    auth: ServerProcess, api: Api, keepers: Keepers, tmp_path: Path
) -> None:
    path = tmp_path / "session.json"
    clock = ManualClock(1_900_000_000.0)
    keeper = keepers(auth, clock=clock, storage=FileStorage(path))
    old = keeper.sign_in(new_user(auth), PASSWORD)
    assert old.refresh_token is not None
    _revoke_family(auth, old.refresh_token)
    events = Events(keeper)
    clock.advance(TOKEN_LIFE + 1)

    with httpx.Client(auth=SessionAuth(keeper)) as client:
        outcomes = [_call(client, f"{api.url}/api/echo")[1] for _ in range(3)]

    assert outcomes == ["refresh_token_already_used"] * 3
    assert events.names() == [AuthEvent.NEEDS_REAUTH]
    assert refresh_requests(auth) == 4  # 2 rotations + the replay above, 1 from the keeper
    assert api.stats()["statuses"] == {}  # nothing was sent with a token known to be dead
    assert path.exists()  # no sign-out of its own


# Acceptance 7 ------------------------------------------------------------------------------


class SkewedClock:
    """The wall clock, wrong by ``offset`` seconds, plus time the test moves forward."""

    def __init__(self, offset: float) -> None:
        self.offset = offset

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@pytest.mark.parametrize("skew", [600.0, -600.0], ids=["ahead", "behind"])
def test_a_local_clock_ten_minutes_off_causes_no_refresh_loop_and_no_401(
    skew: float, auth: ServerProcess, api: Api, keepers: Keepers
) -> None:
    clock = SkewedClock(skew)
    keeper = keepers(auth, clock=clock)
    keeper.sign_in(new_user(auth), PASSWORD)
    events = Events(keeper)
    with httpx.Client(auth=SessionAuth(keeper)) as client:
        for _ in range(10):
            assert client.get(f"{api.url}/api/echo").status_code == 200
        assert refresh_requests(auth) == 0
        # Past the margin, and past expiry, by the local clock measured from receipt.
        clock.advance(TOKEN_LIFE / 2 + 1)
        for _ in range(10):
            assert client.get(f"{api.url}/api/echo").status_code == 200
        clock.advance(TOKEN_LIFE)
        for _ in range(10):
            assert client.get(f"{api.url}/api/echo").status_code == 200
    assert api.stats()["statuses"] == {"200": 30}  # not a single 401
    assert 1 <= refresh_requests(auth) <= 2
    assert set(events.names()) == {AuthEvent.TOKEN_REFRESHED}


# Issuers without refresh tokens ------------------------------------------------------------


def test_without_a_refresh_token_a_401_validates_once_reauthenticates_and_replays(
    auth: ServerProcess, api: Api, keepers: Keepers
) -> None:
    email = new_user(auth)
    calls_to_callback: list[int] = []

    def reauthenticate(keeper: SessionKeeper) -> Session | None:
        calls_to_callback.append(1)
        time.sleep(0.2)  # e.g. a prompt; the waiting calls queue meanwhile
        return keeper.sign_in(email, PASSWORD)

    keeper = keepers(auth, reauthenticate=reauthenticate)
    # An access token only (as from an OAuth redirect), which the API refuses.
    fresh = keeper.sign_in(email, PASSWORD)
    keeper.set_session(Session(access_token=_revoked_copy(fresh).access_token, expires_in=60))
    events = Events(keeper)
    outcomes: list[tuple[str, int | str]] = []
    with httpx.Client(auth=SessionAuth(keeper)) as client:
        in_threads(5, lambda: outcomes.append(_call(client, f"{api.url}/api/echo")))

    assert [outcome for _, outcome in outcomes] == [200] * 5
    assert calls_to_callback == [1]
    assert events.names() == [AuthEvent.NEEDS_REAUTH, AuthEvent.REAUTHENTICATED]
    assert len(requests_to(auth, "/user")) == 1  # validated once
    assert set(api.stats()["attempts"].values()) <= {1, 2}
    assert refresh_requests(auth) == 0


def test_calls_in_needs_reauth_wait_for_a_sign_in_when_reauth_wait_is_set(
    auth: ServerProcess, api: Api, keepers: Keepers
) -> None:
    policy = RefreshPolicy(**{**vars(FAST), "reauth_wait": 10.0})
    keeper = keepers(auth, policy=policy)
    email = new_user(auth)
    keeper.sign_in(email, PASSWORD)
    api.reject_all(True)
    with httpx.Client(auth=SessionAuth(keeper)) as client:
        assert _call(client, f"{api.url}/api/echo")[1] == "rejected"
        api.reject_all(False)
        timer = threading.Timer(0.3, keeper.sign_in, args=(email, PASSWORD))
        timer.start()
        started = time.monotonic()
        assert client.get(f"{api.url}/api/echo").status_code == 200
        timer.join()
    assert time.monotonic() - started >= 0.25  # it waited for the sign-in, then went out
