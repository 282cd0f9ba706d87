"""Rotation rules 1-5 and session validity over HTTP, on the real app and each store backend.

Time is a ManualClock, so "outside the reuse interval" and "past the timebox" are reached by
moving the clock, never by sleeping. The same rules run against a real server process in
tests/integration/test_concurrency.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx

from tests.conftest import API_VERSION, AppHarness


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **API_VERSION}


def code(r: httpx.Response) -> str:
    return str(r.json()["code"])


async def test_rule2_rotation_returns_a_new_token_and_revokes_the_old(
    app_client: AppHarness,
) -> None:
    s0 = await app_client.signup()
    r = await app_client.refresh(s0["refresh_token"])
    assert r.status_code == 200
    s1 = r.json()
    assert s1["refresh_token"] != s0["refresh_token"]
    assert s1["access_token"] != s0["access_token"] or s1["expires_at"] >= s0["expires_at"]
    # The child works; the parent is now revoked (but still inside the reuse interval).
    assert (await app_client.refresh(s1["refresh_token"])).status_code == 200


async def test_rule1_unknown_token(app_client: AppHarness) -> None:
    r = await app_client.refresh("A" * 43)
    assert r.status_code == 400
    assert code(r) == "refresh_token_not_found"


async def test_chain_of_four_then_replay_outside_interval_revokes_the_family(
    app_client: AppHarness,
) -> None:
    chain = [(await app_client.signup())["refresh_token"]]
    access = []
    for _ in range(4):
        app_client.clock.advance(1)
        r = await app_client.refresh(chain[-1])
        assert r.status_code == 200
        chain.append(r.json()["refresh_token"])
        access.append(r.json()["access_token"])
    app_client.clock.advance(11)  # past the 10 s reuse interval of chain[0]'s revocation

    replay = await app_client.refresh(chain[0])
    assert replay.status_code == 400
    assert code(replay) == "refresh_token_already_used"
    assert replay.headers["x-sb-error-code"] == "refresh_token_already_used"

    # Every token of the family is refused afterwards, the newest included ...
    for token in chain:
        r = await app_client.refresh(token)
        assert r.status_code == 400, token
        assert code(r) == "refresh_token_already_used"
    # ... and the session's access tokens no longer reach /user.
    r = await app_client.client.get("/auth/v1/user", headers=bearer(access[-1]))
    assert r.status_code == 403
    assert code(r) == "session_not_found"


async def test_rule3_lost_response_gets_the_current_child_back_with_no_time_limit(
    app_client: AppHarness,
) -> None:
    s0 = await app_client.signup()
    first = (await app_client.refresh(s0["refresh_token"])).json()
    app_client.clock.advance(3600)  # far outside the reuse interval
    retry = await app_client.refresh(s0["refresh_token"])
    assert retry.status_code == 200
    assert retry.json()["refresh_token"] == first["refresh_token"]
    # The returned token is the live one: it rotates normally.
    assert (await app_client.refresh(first["refresh_token"])).status_code == 200


async def test_rule4_reuse_inside_interval_issues_another_child(app_client: AppHarness) -> None:
    s0 = await app_client.signup()
    c1 = (await app_client.refresh(s0["refresh_token"])).json()["refresh_token"]
    app_client.clock.advance(1)
    c2 = (await app_client.refresh(c1)).json()["refresh_token"]
    # s0 is revoked and no longer the parent of the newest live token (c2's parent is c1),
    # but it was revoked 1 s ago: inside the interval → another child, not a revocation.
    app_client.clock.advance(1)
    r = await app_client.refresh(s0["refresh_token"])
    assert r.status_code == 200
    other = r.json()["refresh_token"]
    assert other not in (c1, c2)
    # Both branches remain usable: a second tab is not logged out.
    assert (await app_client.refresh(other)).status_code == 200
    assert (await app_client.refresh(c2)).status_code == 200


async def test_rule5_replay_just_after_the_interval(app_client: AppHarness) -> None:
    s0 = await app_client.signup()
    c1 = (await app_client.refresh(s0["refresh_token"])).json()["refresh_token"]
    await app_client.refresh(c1)  # c1 revoked now; s0 is no longer the current token's parent
    app_client.clock.advance(10.0)  # exactly at the end of s0's interval: outside
    r = await app_client.refresh(s0["refresh_token"])
    assert code(r) == "refresh_token_already_used"


async def test_twenty_concurrent_refreshes_all_succeed_and_leave_a_usable_family(
    app_client: AppHarness,
) -> None:
    s0 = await app_client.signup()
    results = await asyncio.gather(*(app_client.refresh(s0["refresh_token"]) for _ in range(20)))
    assert [r.status_code for r in results] == [200] * 20
    tokens = {r.json()["refresh_token"] for r in results}
    # Rule 3 hands every loser the winner's child: one family, one current token.
    assert len(tokens) == 1
    app_client.clock.advance(60)
    assert (await app_client.refresh(tokens.pop())).status_code == 200


async def test_logout_ends_refresh(app_client: AppHarness) -> None:
    s0 = await app_client.signup()
    r = await app_client.client.post(
        "/auth/v1/logout?scope=local", headers=bearer(s0["access_token"])
    )
    assert r.status_code == 204
    r = await app_client.refresh(s0["refresh_token"])
    assert code(r) == "refresh_token_not_found"


async def test_timebox_ends_the_session(make_app: Callable[..., AppHarness]) -> None:
    app = make_app(session_timebox="1h")
    async with app.client:
        s0 = await app.signup()
        app.clock.advance(3599)
        r = await app.refresh(s0["refresh_token"])
        assert r.status_code == 200
        app.clock.advance(1)
        r = await app.refresh(r.json()["refresh_token"])
        assert r.status_code == 400
        assert code(r) == "session_expired"


async def test_inactivity_timeout_counts_from_the_last_refresh(
    make_app: Callable[..., AppHarness],
) -> None:
    app = make_app(session_inactivity_timeout="30m")
    async with app.client:
        token = (await app.signup())["refresh_token"]
        for _ in range(4):  # active every 29 minutes: two hours in all, never idle for 30
            app.clock.advance(29 * 60)
            r = await app.refresh(token)
            assert r.status_code == 200
            token = r.json()["refresh_token"]
        app.clock.advance(30 * 60)
        r = await app.refresh(token)
        assert code(r) == "session_expired"


async def test_not_after_ends_the_session(app_client: AppHarness) -> None:
    s0 = await app_client.signup()
    session_id = _session_id(s0["access_token"])
    with app_client.store.transaction() as tx:
        session = tx.session_by_id(session_id)
        assert session is not None
        session.not_after = app_client.clock.now() + 5
        tx.update_session(session)
    app_client.clock.advance(5)
    r = await app_client.refresh(s0["refresh_token"])
    assert code(r) == "session_expired"


async def test_rotation_off_keeps_the_same_refresh_token(
    make_app: Callable[..., AppHarness],
) -> None:
    app = make_app(rotation=False)
    async with app.client:
        s0 = await app.signup()
        for _ in range(3):
            app.clock.advance(60)
            r = await app.refresh(s0["refresh_token"])
            assert r.status_code == 200
            assert r.json()["refresh_token"] == s0["refresh_token"]


def _session_id(access_token: str) -> str:
    import jwt

    claims = jwt.decode(access_token, options={"verify_signature": False})
    return str(claims["session_id"])


async def test_rule3_repairs_a_lost_answer_even_after_concurrent_reuse_opened_a_branch(
    app_client: AppHarness,
) -> None:
    """The reviewer's sequence: A→B→C by one tab; a stale A (inside the interval) opens sibling
    D; C→E's answer is lost; a stale A again opens F. The retry of C must still get E back."""
    a = (await app_client.signup())["refresh_token"]
    b = (await app_client.refresh(a)).json()["refresh_token"]
    c = (await app_client.refresh(b)).json()["refresh_token"]
    assert (await app_client.refresh(a)).status_code == 200  # D, inside the interval
    e = (await app_client.refresh(c)).json()["refresh_token"]  # the answer the client loses
    assert (await app_client.refresh(a)).status_code == 200  # F, newest token of the session
    app_client.clock.advance(30)
    retry = await app_client.refresh(c)
    assert retry.status_code == 200, retry.text
    assert retry.json()["refresh_token"] == e
