"""Review of issue 7 (cookie mode): reproductions of the defects found, kept as regressions.

An in-process app: the bridge's ``/auth/*`` routes, a protected ``/api/hello``, an unprotected
``/account/delete`` that authenticates with ``current_user`` (docs/guard.md's pattern for routes
outside ``protect``), all behind ``SessionGuard(transport="cookie", bridge=...)`` with a
scripted issuer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sessionkeeper.bridge import Bridge, CookiePolicy, SessionBridge
from sessionkeeper.clock import ManualClock
from sessionkeeper.core.keys import SigningKey
from sessionkeeper.guard import SessionGuard
from sessionkeeper.guard.dependencies import current_user
from sessionkeeper.origins import AllowedOrigins
from tests.bridge.scripted import ScriptedIssuer
from tests.guard.conftest import ISSUER, NOW, claims

APP = "http://api.test"


@dataclass
class Setup:
    client: httpx.AsyncClient
    app: Starlette
    issuer: ScriptedIssuer
    key: SigningKey
    caplog: pytest.LogCaptureFixture

    def refusal(self) -> dict[str, object]:
        records = [r for r in self.caplog.records if r.getMessage() == "request refused"]
        assert records, "no refusal was logged"
        return dict(vars(records[-1]))


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey.generate("ES256", kid="es-1")


@pytest.fixture
def setup(key: SigningKey, caplog: pytest.LogCaptureFixture) -> Callable[..., Setup]:
    caplog.set_level(logging.INFO, logger="sessionkeeper")

    def factory(base_url: str = APP, routes: Sequence[BaseRoute] = ()) -> Setup:
        clock = ManualClock(NOW)
        issuer = ScriptedIssuer(key, clock)
        bridge = SessionBridge(
            issuer=issuer,
            allowed_origins=AllowedOrigins([APP]),
            cookies=CookiePolicy(),
            clock=clock,
        )

        async def hello(request: Request) -> Response:
            return JSONResponse({"user": current_user(request).user_id})

        async def delete_account(request: Request) -> Response:
            return JSONResponse({"deleted": current_user(request).user_id})

        # add_middleware-style, as docs/guard.md asks for current_user on unprotected routes
        app = Starlette(
            routes=[
                *Bridge(bridge).routes(),
                Route("/api/hello", hello, methods=["GET", "POST"]),
                Route("/account/delete", delete_account, methods=["POST"]),
                *routes,
            ],
            middleware=[
                Middleware(
                    SessionGuard,
                    issuer=ISSUER,
                    jwks={"keys": [key.public_jwk()]},
                    transport="cookie",
                    bridge=bridge,
                    clock=clock,
                )
            ],
        )
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)
        return Setup(client, app, issuer, key, caplog)

    return factory


def jar(access: str | None, refresh: str | None = "rt-1", prefix: str = "") -> dict[str, str]:
    pairs = []
    if access is not None:
        pairs.append(f"{prefix}sk-access-token={access}")
    if refresh is not None:
        pairs.append(f"{prefix}sk-refresh-token={refresh}")
    return {"Cookie": "; ".join(pairs)}


def expired(key: SigningKey) -> str:
    return key.sign(claims(iat=NOW - 4000, exp=NOW - 400))


# -- 1. CSRF: an unprotected route that authenticates with current_user -----------------------


async def test_a_cross_site_post_to_an_unprotected_route_using_current_user_is_refused(
    setup: Callable[..., Setup], key: SigningKey
) -> None:
    """The CSRF rule ran only for ``protect``ed paths; an unprotected route calling
    ``current_user`` got the cookie's principal on a POST with no Origin and no CSRF header."""
    s = setup()
    forged = await s.client.post("/account/delete", headers=jar(key.sign(claims())))
    assert forged.status_code == 403, forged.text
    assert s.refusal()["reason"] == "origin_not_allowed"
    evil = await s.client.post(
        "/account/delete",
        headers={**jar(key.sign(claims())), "Origin": "https://evil.example"},
    )
    assert evil.status_code == 403
    ok = await s.client.post(
        "/account/delete",
        headers={**jar(key.sign(claims())), "Origin": APP, "X-SessionKeeper-CSRF": "1"},
    )
    assert ok.status_code == 200, ok.text
    assert ok.json() == {"deleted": "8d3f7a4e-user"}


async def test_an_anonymous_post_to_an_unprotected_route_needs_no_csrf_header(
    setup: Callable[..., Setup],
) -> None:
    """Without a session cookie there is nothing to forge: public forms keep working."""

    async def public(request: Request) -> Response:
        return JSONResponse({"ok": True})

    s = setup(routes=[Route("/contact", public, methods=["POST"])])
    response = await s.client.post("/contact")
    assert response.status_code == 200


# -- 4. CSRF: method spelling ------------------------------------------------------------------


async def _raw_call(app: object, method: str, path: str, headers: dict[str, str]) -> int:
    """Drive the ASGI app with a method spelled exactly as given (httpx upper-cases it)."""
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        + [(b"host", b"api.test")],
        "client": ("127.0.0.1", 1234),
        "server": ("api.test", 80),
    }
    await app(scope, receive, send)  # type: ignore[operator]
    return int(sent[0]["status"])  # type: ignore[call-overload]


@pytest.mark.parametrize("method", ["post", "Post", "PROPFIND", "PURGE", "MKCOL"])
async def test_an_unsafe_method_in_any_spelling_needs_the_csrf_defence(
    setup: Callable[..., Setup], key: SigningKey, method: str
) -> None:
    """Only the exact upper-case POST/PUT/PATCH/DELETE were checked: ``post`` or a WebDAV
    method reached an app that routes methods case-insensitively (or accepts any) with the
    cookie's principal. Safe methods are the closed list; everything else is unsafe."""

    class Anything:  # a plain ASGI endpoint: Starlette applies no method filter to it
        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            user = current_user(Request(scope)).user_id
            await JSONResponse({"user": user})(scope, receive, send)

    s = setup(routes=[Route("/api/any", Anything())])
    status = await _raw_call(s.app, method, "/api/any", jar(key.sign(claims())))
    assert status == 403


# -- 5. CSRF: cross-site WebSocket hijacking ---------------------------------------------------


def test_a_websocket_from_an_origin_not_allowed_gets_no_cookie_session(
    setup: Callable[..., Setup], key: SigningKey
) -> None:
    """A WebSocket handshake carries the cookies and an ``Origin`` but can set no custom header;
    without an Origin check, any page of the same site (a sibling subdomain: SameSite=Lax does
    not stop it) could open a socket as the signed-in user."""
    from starlette.routing import WebSocketRoute
    from starlette.testclient import TestClient
    from starlette.websockets import WebSocket, WebSocketDisconnect

    async def socket(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_json({"user": current_user(websocket).user_id})
        await websocket.close()

    s = setup(routes=[WebSocketRoute("/api/ws", socket)])
    client = TestClient(s.app, base_url=APP)
    cookie = jar(key.sign(claims()))
    with client.websocket_connect("/api/ws", headers={**cookie, "Origin": APP}) as ws:
        assert ws.receive_json() == {"user": "8d3f7a4e-user"}
    for origin in ("https://evil.example", None):
        headers = {**cookie, **({"Origin": origin} if origin else {})}
        with (
            pytest.raises(WebSocketDisconnect),
            client.websocket_connect("/api/ws", headers=headers) as ws,
        ):
            ws.receive_json()


# -- 2. Malformed input: a deeply nested JSON body -------------------------------------------


async def test_a_deeply_nested_json_body_is_a_400_not_a_500(setup: Callable[..., Setup]) -> None:
    s = setup()
    response = await s.client.post(
        "/auth/callback",
        content=b"[" * 60_000,
        headers={"Origin": APP, "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error_code"] == "bad_json"


# -- 3. Logs: session_cookie_present under the bridge's cookie names --------------------------


async def test_the_refusal_log_sees_the_bridge_cookies_that_were_sent(
    setup: Callable[..., Setup], key: SigningKey
) -> None:
    """The log line said ``session_cookie_present: false`` for __Host- cookies (https), for a
    chunked access cookie and for a refresh cookie alone: it looked for ``sk-access-token``."""
    s = setup("https://api.test")
    s.issuer.mode = "refuse"
    response = await s.client.get("/api/hello", headers=jar(expired(key), prefix="__Host-"))
    assert response.status_code == 401
    assert s.refusal()["session_cookie_present"] is True
    plain = setup()
    plain.issuer.mode = "refuse"
    response = await plain.client.get("/api/hello", headers=jar(None, "rt-1"))
    assert response.status_code == 401
    assert plain.refusal()["session_cookie_present"] is True


async def test_whoami_sees_the_host_prefixed_cookie(
    setup: Callable[..., Setup], key: SigningKey
) -> None:
    s = setup("https://api.test")
    response = await s.client.get(
        "/api/debug/whoami", headers=jar(key.sign(claims()), None, "__Host-")
    )
    assert response.status_code == 200, response.text
    assert response.json()["session_cookie_present"] is True
