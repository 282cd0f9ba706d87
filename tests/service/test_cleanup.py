"""Retention clean-up on the real app and store: what goes, what must stay (rule 3's parents,
sessions within retention), and that live sessions keep working afterwards."""

from __future__ import annotations

from collections.abc import Callable

import jwt

from sessionkeeper.service.cleanup import cleanup
from tests.conftest import AppHarness

DAY = 86400.0


def count(app: AppHarness, table: str) -> int:
    with app.store.transaction(write=False) as tx:
        row = tx._run(f"SELECT count(*) FROM {table}").fetchone()
    return int(row[0])


async def test_spent_tokens_go_after_retention_but_the_parent_of_a_live_token_stays(
    app_client: AppHarness,
) -> None:
    first = (await app_client.signup())["refresh_token"]
    chain = [first]
    for _ in range(5):
        app_client.clock.advance(60)
        chain.append((await app_client.refresh(chain[-1])).json()["refresh_token"])
    assert count(app_client, "refresh_tokens") == 6

    app_client.clock.advance(DAY)  # within the 7-day retention: nothing goes
    assert cleanup(app_client.ctx, retention=7 * DAY).tokens == 0
    app_client.clock.advance(7 * DAY)
    report = cleanup(app_client.ctx, retention=7 * DAY)
    assert report.tokens == 4  # five revoked, minus the parent of the live token
    assert count(app_client, "refresh_tokens") == 2

    # Rule 3 still repairs a lost answer through the kept parent, and the chain goes on.
    again = await app_client.refresh(chain[-2])
    assert again.status_code == 200
    assert again.json()["refresh_token"] == chain[-1]
    assert (await app_client.refresh(chain[-1])).status_code == 200
    # A deleted old token is still refused.
    assert (await app_client.refresh(chain[0])).json()["code"] == "refresh_token_not_found"


async def test_ended_sessions_go_after_retention(make_app: Callable[..., AppHarness]) -> None:
    app = make_app(session_timebox="1d", reuse_interval=0)
    async with app.client:
        ended = await app.signup()
        replayed = await app.signup()
        first = replayed["refresh_token"]
        second = (await app.refresh(first)).json()["refresh_token"]
        await app.refresh(second)
        assert (await app.refresh(first)).json()["code"] == "refresh_token_already_used"
        app.clock.advance(DAY - 60)
        live = await app.signup()  # signed in late: its timebox has most of a day left
        app.clock.advance(60)
        assert (await app.refresh(ended["refresh_token"])).json()["code"] == "session_expired"

        # The replayed family was revoked a day ago: past the 1 h retention, it goes. The
        # timeboxed session ended just now: it stays (refresh still says session_expired).
        assert cleanup(app.ctx, retention=3600).sessions == 1
        assert (await app.refresh(ended["refresh_token"])).json()["code"] == "session_expired"
        app.clock.advance(3600)
        assert cleanup(app.ctx, retention=3600).sessions == 1
        remaining = jwt.decode(live["access_token"], options={"verify_signature": False})
        with app.store.transaction(write=False) as tx:
            assert tx.session_by_id(remaining["session_id"]) is not None
        assert (await app.refresh(live["refresh_token"])).status_code == 200
        assert count(app, "sessions") == 1


async def test_cleanup_works_through_a_backlog_in_batches(app_client: AppHarness) -> None:
    token = (await app_client.signup())["refresh_token"]
    for _ in range(30):
        app_client.clock.advance(1)
        token = (await app_client.refresh(token)).json()["refresh_token"]
    app_client.clock.advance(8 * DAY)
    report = cleanup(app_client.ctx, retention=7 * DAY, batch=7)
    assert report.tokens == 29
    assert (await app_client.refresh(token)).status_code == 200
