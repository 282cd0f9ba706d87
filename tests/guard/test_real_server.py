"""End to end with a real ``sessionkeeper serve`` process: its tokens pass the guard via its
JWKS URL, logout is seen through its store, and killing it leaves a warm guard working."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from sessionkeeper.clock import SystemClock
from sessionkeeper.guard import StoreLiveness
from sessionkeeper.store import open_store
from tests.conftest import PASSWORD, ServerProcess
from tests.guard.answers import assert_refused
from tests.guard.conftest import Guarded, bearer

pytestmark = pytest.mark.integration


async def test_real_server_tokens_jwks_and_logout(
    guarded: Callable[..., Guarded], server: ServerProcess
) -> None:
    async with httpx.AsyncClient(base_url=server.auth_url) as auth:
        signup = await auth.post("/signup", json={"email": "g@example.com", "password": PASSWORD})
        assert signup.status_code == 200, signup.text
        token = signup.json()["access_token"]
        store = open_store(server.database)
        try:
            g = guarded(
                issuer=server.auth_url,
                jwks_url=f"{server.auth_url}/.well-known/jwks.json",
                liveness=StoreLiveness(store, window=0.0),
                clock=SystemClock(),
            )
            who = await g.client.get("/api/debug/whoami", headers=bearer(token))
            assert who.status_code == 200, who.text
            assert who.json()["issuer"] == server.auth_url
            logout = await auth.post("/logout?scope=local", headers=bearer(token))
            assert logout.status_code == 204
            response = await g.client.get("/api/hello", headers=bearer(token))
            assert_refused(response, g, "session_revoked")
        finally:
            store.close()


async def test_warm_guard_survives_the_auth_server_going_away(
    guarded: Callable[..., Guarded], server: ServerProcess
) -> None:
    async with httpx.AsyncClient(base_url=server.auth_url) as auth:
        signup = await auth.post("/signup", json={"email": "w@example.com", "password": PASSWORD})
        token = signup.json()["access_token"]
    g = guarded(
        issuer=server.auth_url,
        jwks_url=f"{server.auth_url}/.well-known/jwks.json",
        jwks_ttl=0.0,  # every request wants a refresh: the worst case for an outage
        clock=SystemClock(),
    )
    assert (await g.client.get("/api/hello", headers=bearer(token))).status_code == 200
    server.stop()
    for _ in range(3):
        g.guard.verifier.cache.clear()  # force a full verification with the cached keys
        assert (await g.client.get("/api/hello", headers=bearer(token))).status_code == 200
