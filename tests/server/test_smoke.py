from __future__ import annotations

import httpx

from tests.conftest import API_VERSION, AppHarness, ServerProcess


async def test_signup_then_user(app_client: AppHarness) -> None:
    session = await app_client.signup("smoke@example.com")
    r = await app_client.client.get(
        "/auth/v1/user",
        headers={"Authorization": f"Bearer {session['access_token']}", **API_VERSION},
    )
    assert r.status_code == 200
    assert r.json()["email"] == "smoke@example.com"


def test_real_process_health(server: ServerProcess) -> None:
    r = httpx.get(f"{server.auth_url}/health")
    assert r.json()["status"] == "ok"
