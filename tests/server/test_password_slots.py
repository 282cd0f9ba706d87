"""The cap on concurrent password hashing: waits on the event loop (never in a worker thread),
answers 503 when no slot frees in time, and keeps per-email limits exact under concurrency."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest
from starlette.concurrency import run_in_threadpool

from sessionkeeper.errors import AuthError
from sessionkeeper.server.password_slots import PasswordSlots
from tests.conftest import API_VERSION, PASSWORD, AppHarness


async def test_no_slot_in_time_is_a_503_with_retry_after() -> None:
    slots = PasswordSlots(slots=1, wait=0.05)
    release = threading.Event()
    holder = asyncio.create_task(slots.run(release.wait, 5))
    await asyncio.sleep(0.02)
    with pytest.raises(AuthError) as busy:
        await slots.run(lambda: "never")
    assert (busy.value.code, busy.value.status) == ("service_unavailable", 503)
    assert busy.value.headers == {"Retry-After": "1"}
    release.set()
    assert await holder is True
    assert await slots.run(lambda: "free again") == "free again"


async def test_waiting_for_a_slot_does_not_occupy_worker_threads() -> None:
    slots = PasswordSlots(slots=1, wait=10)
    release = threading.Event()
    # One hash runs; 60 more wait — more than the 40 worker threads anyio keeps.
    tasks = [asyncio.create_task(slots.run(release.wait, 5)) for _ in range(61)]
    await asyncio.sleep(0.05)
    # Other work (a refresh, /user) still gets a thread at once.
    assert await asyncio.wait_for(run_in_threadpool(lambda: "refresh"), timeout=2) == "refresh"
    release.set()
    assert all(await asyncio.gather(*tasks))


async def test_concurrent_guesses_cannot_slip_past_the_per_email_limit(
    make_app: Callable[..., AppHarness],
) -> None:
    app = make_app(rate_limit_password_per_email=3, rate_limit_window=60)
    async with app.client:
        await app.signup("target@example.com")
        results = await asyncio.gather(
            *(
                app.client.post(
                    "/auth/v1/token?grant_type=password",
                    json={"email": "target@example.com", "password": f"guess {i}"},
                    headers=API_VERSION,
                )
                for i in range(12)
            )
        )
        codes = sorted(r.json()["code"] for r in results)
        assert codes == ["invalid_credentials"] * 3 + ["over_request_rate_limit"] * 9
        # Validation errors and refusals of other kinds do not use up the budget.
        app.clock.advance(60)
        for _ in range(5):
            r = await app.client.post(
                "/auth/v1/token?grant_type=password",
                json={"email": "target@example.com"},
                headers=API_VERSION,
            )
            assert r.json()["code"] == "validation_failed"
        r = await app.client.post(
            "/auth/v1/token?grant_type=password",
            json={"email": "target@example.com", "password": PASSWORD},
            headers=API_VERSION,
        )
        assert r.status_code == 200
