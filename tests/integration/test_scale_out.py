"""Several ``sessionkeeper serve`` processes sharing PostgreSQL (and Redis): the scale-out checks.

Each test gets its own database and Redis key prefix on this machine's real servers. Nothing
here is simulated: instances are real processes on loopback, a crash is ``kill -9``.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests import backends
from tests.conftest import API_VERSION, ServerProcess
from tests.integration.test_concurrency import NO_LIMITS, refresh, refresh_many, signup

pytestmark = pytest.mark.integration

ISSUER = ("--issuer", "http://auth.shared.test/auth/v1")  # the same on every instance


@dataclass
class Shared:
    """What every instance of one deployment is started with."""

    database: str
    args: tuple[str, ...]
    env: dict[str, str]


@pytest.fixture(params=["postgres", "postgres+redis"])
def shared(request: pytest.FixtureRequest) -> Iterator[Shared]:
    with backends.temp_database() as url:
        if request.param == "postgres":
            yield Shared(url, (), {})
            return
        backends.require_redis()
        prefix = backends.new_redis_prefix()
        try:
            yield Shared(
                url,
                ("--session-store", backends.REDIS_URL),
                {"SESSIONKEEPER_SESSION_STORE_PREFIX": prefix},
            )
        finally:
            backends.drop_redis_prefix(prefix)


def start_pair(
    start_server: Callable[..., ServerProcess], shared: Shared, *extra: str
) -> tuple[ServerProcess, ServerProcess]:
    args = (*NO_LIMITS, *ISSUER, *shared.args, *extra)
    a, b = (start_server(*args, database=shared.database, env=shared.env) for _ in range(2))
    return a, b


def test_fifty_concurrent_refreshes_over_two_instances_all_succeed(
    start_server: Callable[..., ServerProcess], shared: Shared
) -> None:
    a, b = start_pair(start_server, shared)
    s0 = signup(a)
    results = asyncio.run(refresh_many([a.auth_url, b.auth_url], s0["refresh_token"], 50))
    assert [r.status_code for r in results] == [200] * 50, {r.text for r in results}
    current = {r.json()["refresh_token"] for r in results}
    assert len(current) == 1  # one consistent family, whichever instance answered
    # Tokens minted by one instance are accepted by the other (one shared key set).
    r = httpx.get(f"{b.auth_url}/user", headers={"Authorization": f"Bearer {s0['access_token']}"})
    assert r.status_code == 200
    assert refresh(b, current.pop()).status_code == 200


def test_replay_on_one_instance_revokes_the_family_on_both(
    start_server: Callable[..., ServerProcess], shared: Shared
) -> None:
    a, b = start_pair(start_server, shared, "--reuse-interval", "0")
    chain = [signup(a)["refresh_token"]]
    for i in range(4):  # rotate alternately on each instance
        r = refresh((a, b)[i % 2], chain[-1])
        assert r.status_code == 200, r.text
        chain.append(r.json()["refresh_token"])
    replay = refresh(b, chain[0])
    assert (replay.status_code, replay.json()["code"]) == (400, "refresh_token_already_used")
    for server in (a, b):
        for token in chain:
            assert refresh(server, token).json()["code"] == "refresh_token_already_used"


def test_logout_on_one_instance_is_seen_by_the_other_at_once(
    start_server: Callable[..., ServerProcess], shared: Shared
) -> None:
    a, b = start_pair(start_server, shared)
    s0 = signup(a)
    current = refresh(b, s0["refresh_token"]).json()
    bearer = {"Authorization": f"Bearer {current['access_token']}", **API_VERSION}
    assert httpx.post(f"{a.auth_url}/logout?scope=global", headers=bearer).status_code == 204
    assert refresh(b, current["refresh_token"]).json()["code"] == "refresh_token_not_found"
    r = httpx.get(f"{b.auth_url}/user", headers=bearer)
    assert (r.status_code, r.json()["code"]) == (403, "session_not_found")


async def _burst_then_kill(a: ServerProcess, b: ServerProcess, token: str) -> list[object]:
    """60 refreshes of one token, alternating between the instances; ``a`` is killed with
    SIGKILL while they are in flight. Returns each response, or the exception for the
    requests that the crash interrupted."""
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=60)) as client:

        async def one(i: int) -> object:
            url = (a, b)[i % 2].auth_url
            await asyncio.sleep(i * 0.002)  # spread the burst so the kill lands mid-way
            try:
                return await client.post(
                    f"{url}/token?grant_type=refresh_token",
                    json={"refresh_token": token},
                    headers=API_VERSION,
                )
            except httpx.HTTPError as exc:
                return exc

        tasks = [asyncio.create_task(one(i)) for i in range(60)]
        await asyncio.sleep(0.05)
        a.proc.send_signal(signal.SIGKILL)
        return list(await asyncio.gather(*tasks))


def test_kill_9_mid_burst_wrongly_revokes_nothing_and_retries_get_the_current_token(
    start_server: Callable[..., ServerProcess], shared: Shared
) -> None:
    a, b = start_pair(start_server, shared)
    s0 = signup(b)
    outcomes = asyncio.run(_burst_then_kill(a, b, s0["refresh_token"]))
    a.proc.wait(timeout=10)
    interrupted = [o for o in outcomes if not isinstance(o, httpx.Response)]
    answered = [o for o in outcomes if isinstance(o, httpx.Response)]
    assert interrupted, "the kill landed after the burst: nothing was interrupted"
    assert all(r.status_code in (200, 503) for r in answered), {r.text for r in answered}
    # Every client whose refresh was interrupted retries on the surviving instance and gets
    # the family's current token (rule 3, or rule 4 inside the interval) — never a revocation.
    retried = [refresh(b, s0["refresh_token"]) for _ in interrupted]
    assert [r.status_code for r in retried] == [200] * len(retried), [r.text for r in retried]
    current = {r.json()["refresh_token"] for r in retried}
    assert len(current) == 1
    # The family is alive: the current token rotates normally.
    nxt = refresh(b, current.pop())
    assert nxt.status_code == 200, nxt.text
    assert refresh(b, nxt.json()["refresh_token"]).status_code == 200


async def test_guard_liveness_reads_the_shared_store(
    start_server: Callable[..., ServerProcess], shared: Shared
) -> None:
    """The API guard, configured like the servers, sees a logout made on any instance."""
    import jwt

    from sessionkeeper.guard.liveness import StoreLiveness

    a, b = start_pair(start_server, shared)
    s0 = signup(a)
    session_id = jwt.decode(s0["access_token"], options={"verify_signature": False})["session_id"]
    redis_url = shared.args[1] if shared.args else None
    prefix = shared.env.get("SESSIONKEEPER_SESSION_STORE_PREFIX", "sk:")
    liveness = StoreLiveness.from_url(
        shared.database, session_store=redis_url, session_store_prefix=prefix, window=0
    )
    try:
        assert await liveness.is_alive(session_id) is True
        bearer = {"Authorization": f"Bearer {s0['access_token']}", **API_VERSION}
        async with httpx.AsyncClient() as client:
            r = await client.post(f"{b.auth_url}/logout?scope=local", headers=bearer)
        assert r.status_code == 204
        assert await liveness.is_alive(session_id) is False
    finally:
        liveness.close()
