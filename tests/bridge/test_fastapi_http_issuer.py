"""The layout docs/bridge.md recommends, for real: ``sessionkeeper serve`` in its own process, and
a FastAPI API on another origin holding the bridge and a cookie guard that reach the auth server
over HTTP (``HttpIssuer``) and verify with its JWKS."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI

from sessionkeeper.bridge import Bridge, CookiePolicy, HttpIssuer, SessionBridge
from sessionkeeper.guard import Principal, SessionGuard, current_user
from sessionkeeper.origins import AllowedOrigins
from tests.bridge.test_bridge_server import _Form
from tests.conftest import ServerProcess, serve_in_thread, spawn_server
from tests.guard.conftest import free_port

pytestmark = pytest.mark.integration


def create_api(auth_url: str, origin: str) -> FastAPI:
    """What an application writes (docs/bridge.md, "An API on its own origin")."""
    bridge = SessionBridge(
        issuer=HttpIssuer(auth_url),
        allowed_origins=AllowedOrigins([origin]),
        cookies=CookiePolicy(insecure_dev_cookies=True),  # plain http on loopback, in a test
        authorize_url=f"{auth_url}/authorize",
    )
    app = FastAPI()

    @app.get("/api/me")
    def me(user: Principal = Depends(current_user)) -> dict[str, Any]:  # noqa: B008
        return {"id": user.user_id, "email": user.email}

    @app.post("/api/notes")
    def add_note(user: Principal = Depends(current_user)) -> dict[str, Any]:  # noqa: B008
        return {"saved_for": user.user_id}

    app.router.routes.extend(Bridge(bridge).routes())
    app.add_middleware(
        SessionGuard,
        issuer=auth_url,
        jwks_url=f"{auth_url}/.well-known/jwks.json",
        transport="cookie",
        bridge=bridge,
        leeway=0,
    )
    return app


@dataclass
class Deployment:
    auth: ServerProcess
    api_origin: str


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    auth = spawn_server(
        f"sqlite:///{tmp_path}/auth.db", "--jwt-exp", "2", "--allowed-origin", origin
    )
    try:
        httpx.post(
            f"{auth.auth_url}/signup", json={"email": "ada@example.com", "password": "pw-123456"}
        ).raise_for_status()
        with serve_in_thread(create_api(auth.auth_url, origin), port, "api"):
            yield Deployment(auth, origin)
    finally:
        auth.stop()


def sign_in_hosted(d: Deployment, browser: httpx.Client) -> httpx.Response:
    """The browser's trip: the API's /auth/login → the auth server's page → back with a code."""
    start = browser.get("/auth/login?next=/notes")
    assert start.status_code == 302
    authorize = start.headers["location"]
    assert authorize.startswith(f"{d.auth.auth_url}/authorize?")
    page = browser.get(authorize)
    form = _Form()
    form.feed(page.text)
    answer = browser.post(
        httpx.URL(authorize).join(form.action or authorize),
        data={**form.fields, "email": "ada@example.com", "password": "pw-123456"},
        headers={"Origin": d.auth.base_url},  # the form is the auth server's page
    )
    assert answer.status_code == 303, answer.text
    back = browser.get(answer.headers["location"])  # the API's GET /auth/callback
    return back


def test_hosted_sign_in_then_renewal_over_http_then_a_revocation_ends_the_session(
    deployment: Deployment,
) -> None:
    d = deployment
    browser = httpx.Client(base_url=d.api_origin)
    back = sign_in_hosted(d, browser)
    assert back.status_code == 303
    assert back.headers["location"] == "/notes"
    me = browser.get("/api/me")
    assert me.status_code == 200
    assert me.json()["email"] == "ada@example.com"
    saved = browser.post(
        "/api/notes", headers={"Origin": d.api_origin, "X-SessionKeeper-CSRF": "1"}
    )
    assert saved.status_code == 200

    time.sleep(2.2)  # the auth server's clock passes the 2 s access token's expiry
    renewed = browser.get("/api/me")
    assert renewed.status_code == 200  # renewed by the guard through HttpIssuer
    assert "x-session-expires-at" in renewed.headers
    assert "sk-refresh-token=" in renewed.headers["set-cookie"]

    # Another device of the same user signs out everywhere: once the access cookie expires,
    # the issuer refuses the refresh cookie and the guard ends the browser's session.
    other = httpx.post(
        f"{d.auth.auth_url}/token?grant_type=password",
        json={"email": "ada@example.com", "password": "pw-123456"},
    ).json()
    httpx.post(
        f"{d.auth.auth_url}/logout?scope=global",
        headers={"Authorization": f"Bearer {other['access_token']}"},
    ).raise_for_status()
    time.sleep(2.2)
    ended = browser.get("/api/me")
    assert ended.status_code == 401
    assert ended.json() == {"error": "Unauthorized"}
    assert "Max-Age=0" in ended.headers["set-cookie"]
    assert browser.get("/api/me").status_code == 401  # the cookies are gone


def test_a_signed_in_event_from_supabase_js_style_clients_is_verified_with_the_jwks(
    deployment: Deployment,
) -> None:
    d = deployment
    session = httpx.post(
        f"{d.auth.auth_url}/token?grant_type=password",
        json={"email": "ada@example.com", "password": "pw-123456"},
    ).json()
    browser = httpx.Client(base_url=d.api_origin)
    posted = browser.post(
        "/auth/callback",
        json={"event": "SIGNED_IN", "session": session},
        headers={"Origin": d.api_origin},
    )
    assert posted.status_code == 200
    assert browser.get("/api/me").status_code == 200
    signed_out = browser.post(
        "/auth/callback",
        json={"event": "SIGNED_OUT", "scope": "local"},
        headers={"Origin": d.api_origin},
    )
    assert signed_out.json() == {"event": "SIGNED_OUT", "revoked": True}  # logout over HTTP
    refused = httpx.post(
        f"{d.auth.auth_url}/token?grant_type=refresh_token",
        json={"refresh_token": session["refresh_token"]},
    )
    assert refused.status_code == 400
