"""Adapters: FastAPI dependencies, the Starlette scope, transports, paths, whoami, metrics,
diagnostics and websockets."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute

with warnings.catch_warnings():  # starlette's note about httpx vs httpx2: not ours to act on
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient
from starlette.websockets import WebSocket, WebSocketDisconnect

from sessionkeeper.core.keys import SigningKey
from sessionkeeper.errors import ConfigError
from sessionkeeper.guard import (
    PRINCIPAL_KEY,
    Principal,
    SessionGuard,
    current_user,
    optional_user,
)
from tests.guard.answers import assert_refused, assert_unavailable
from tests.guard.conftest import ISSUER, NOW, SECRET, Guarded, bearer, claims, free_port, jwks_of


def fastapi_app() -> FastAPI:
    app = FastAPI()

    @app.get("/api/me")
    async def me(user: Annotated[Principal, Depends(current_user)]) -> dict[str, Any]:
        return {"id": user.user_id, "email": user.email}

    @app.get("/feed")
    async def feed(user: Annotated[Principal | None, Depends(optional_user)]) -> dict[str, Any]:
        return {"id": user.user_id if user else None}

    @app.get("/open/me")
    async def open_me(user: Annotated[Principal, Depends(current_user)]) -> dict[str, Any]:
        return {"id": user.user_id}

    return app


def fastapi_guarded(guarded: Callable[..., Guarded], es_key: SigningKey, **config: Any) -> Guarded:
    app = fastapi_app()
    g = guarded(app=_Noop(), **config)  # only for the clock and log capture
    app.add_middleware(SessionGuard, issuer=ISSUER, jwks=jwks_of(es_key), clock=g.clock, **config)
    g.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
    return g


class _Noop:
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("not used")


async def test_fastapi_current_user(guarded: Callable[..., Guarded], es_key: SigningKey) -> None:
    g = fastapi_guarded(guarded, es_key)
    token = es_key.sign(claims())
    response = await g.client.get("/api/me", headers=bearer(token))
    assert response.json() == {"id": "8d3f7a4e-user", "email": "ada@example.com"}
    assert_refused(await g.client.get("/api/me"), g, "missing_token", token_sent=False)


async def test_fastapi_current_user_outside_protect_refuses_the_same_way(
    guarded: Callable[..., Guarded], es_key: SigningKey
) -> None:
    g = fastapi_guarded(guarded, es_key)
    assert (await g.client.get("/open/me", headers=bearer(es_key.sign(claims())))).json() == {
        "id": "8d3f7a4e-user"
    }
    assert_refused(await g.client.get("/open/me"), g, "missing_token", token_sent=False)
    expired = es_key.sign(claims(exp=NOW - 60))
    assert_refused(await g.client.get("/open/me", headers=bearer(expired)), g, "expired")


async def test_fastapi_optional_user(guarded: Callable[..., Guarded], es_key: SigningKey) -> None:
    g = fastapi_guarded(guarded, es_key)
    assert (await g.client.get("/feed")).json() == {"id": None}
    ok = await g.client.get("/feed", headers=bearer(es_key.sign(claims())))
    assert ok.json() == {"id": "8d3f7a4e-user"}
    # A token that was sent and fails is refused, never silently anonymous.
    bad = await g.client.get("/feed", headers=bearer(es_key.sign(claims(exp=NOW - 3600))))
    assert_refused(bad, g, "expired")


async def test_starlette_scope_carries_the_principal(
    guarded: Callable[..., Guarded], es_key: SigningKey
) -> None:
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope.get(PRINCIPAL_KEY))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    g = guarded(app=app)
    await g.client.get("/api/x", headers=bearer(es_key.sign(claims())))
    assert isinstance(seen[0], Principal) and seen[0].session_id == "5e55-session"
    with pytest.raises(TypeError):
        seen[0].claims["role"] = "service_role"  # shared through the cache: read-only


@pytest.mark.parametrize("transport", [["bearer", "cookie"], "both", "Bearer", ("cookie",)])
def test_exactly_one_transport(transport: Any) -> None:
    with pytest.raises(ConfigError, match="exactly one"):
        SessionGuard(_Noop(), issuer=ISSUER, secret=SECRET, transport=transport)


def test_cookie_name_with_bearer_transport_is_a_startup_error() -> None:
    with pytest.raises(ConfigError, match="one transport"):
        SessionGuard(_Noop(), issuer=ISSUER, secret=SECRET, cookie_name="sb")


@pytest.mark.parametrize(
    "config",
    [
        {},  # no key source
        {"secret": "too-short"},
        {"secret": SECRET, "issuer": []},
        {"secret": SECRET, "protect": ["api/"]},
        {"secret": SECRET, "algorithms": ["HS256", "none"]},
    ],
)
def test_bad_configuration_fails_at_start_up(config: dict[str, Any]) -> None:
    config.setdefault("issuer", ISSUER)
    with pytest.raises(ConfigError):
        SessionGuard(_Noop(), **config)


async def test_cookie_transport(guarded: Callable[..., Guarded], es_key: SigningKey) -> None:
    g = guarded(transport="cookie")
    token = es_key.sign(claims())
    ok = await g.client.get("/api/hello", headers={"Cookie": f"a=1; sk-access-token={token}"})
    assert ok.status_code == 200
    # The header is ignored under cookie transport (never mix the two).
    logged = assert_refused(
        await g.client.get("/api/hello", headers=bearer(token)),
        g,
        "missing_token",
        token_sent=False,
    )
    assert logged["authorization_header_present"] is True
    assert logged["session_cookie_present"] is False
    twice = {"Cookie": f"sk-access-token={token}; sk-access-token={token}"}
    logged = assert_refused(await g.client.get("/api/hello", headers=twice), g, "malformed_token")
    assert logged["session_cookie_present"] is True


async def test_custom_cookie_name(guarded: Callable[..., Guarded], es_key: SigningKey) -> None:
    g = guarded(transport="cookie", cookie_name="__Host-sk")
    token = es_key.sign(claims())
    assert (
        await g.client.get("/api/hello", headers={"Cookie": f"__Host-sk={token}"})
    ).status_code == 200


async def test_bearer_ignores_the_cookie(
    guarded: Callable[..., Guarded], es_key: SigningKey
) -> None:
    g = guarded()
    response = await g.client.get(
        "/api/hello", headers={"Cookie": f"sk-access-token={es_key.sign(claims())}"}
    )
    logged = assert_refused(response, g, "missing_token", token_sent=False)
    assert logged["session_cookie_present"] is True


async def test_protect_and_public_paths(guarded: Callable[..., Guarded]) -> None:
    g = guarded(public=["/api/public/"])
    assert (await g.client.get("/health")).status_code == 200
    assert (await g.client.get("/api/public/info")).status_code == 200
    assert (await g.client.get("/api/hello")).status_code == 401
    assert (await g.client.get("/api")).status_code == 401  # the prefix without its slash


async def test_several_authorization_headers_are_malformed(
    guarded: Callable[..., Guarded], es_key: SigningKey
) -> None:
    g = guarded()
    token = es_key.sign(claims())
    headers = [("Authorization", f"Bearer {token}"), ("Authorization", "Bearer other")]
    assert_refused(await g.client.get("/api/hello", headers=headers), g, "malformed_token")


async def test_whoami(guarded: Callable[..., Guarded], es_key: SigningKey) -> None:
    g = guarded()
    token = es_key.sign(claims())
    g.clock.advance(100)
    response = await g.client.get("/api/debug/whoami", headers=bearer(token))
    assert response.status_code == 200
    body = response.json()
    assert body["user_id"] == "8d3f7a4e-user"
    assert body["email"] == "ada@example.com"
    assert body["role"] == "authenticated"
    assert body["session_id"] == "5e55-session"
    assert body["transport"] == "bearer"
    assert body["authorization_header_present"] is True
    assert body["session_cookie_present"] is False
    assert body["issuer"] == ISSUER
    assert body["issued_at"] == NOW
    assert body["expires_at"] == NOW + 3600
    assert body["seconds_left"] == 3500
    assert body["expires_at_iso"].endswith("Z")
    assert_refused(await g.client.get("/api/debug/whoami"), g, "missing_token", token_sent=False)


async def test_whoami_can_be_disabled(guarded: Callable[..., Guarded], es_key: SigningKey) -> None:
    g = guarded(whoami_path=None)
    response = await g.client.get("/api/debug/whoami", headers=bearer(es_key.sign(claims())))
    assert response.status_code == 404


async def test_diagnostics_header_is_opt_in(
    guarded: Callable[..., Guarded], es_key: SigningKey
) -> None:
    g = guarded(diagnostics=True)
    response = await g.client.get("/api/hello", headers=bearer(es_key.sign(claims(exp=NOW - 100))))
    assert response.status_code == 401
    assert response.headers["x-auth-reason"] == "expired"
    assert response.content == b'{"error":"Unauthorized"}'


async def test_metrics_endpoint(guarded: Callable[..., Guarded], es_key: SigningKey) -> None:
    g = guarded(metrics_path="/metrics")
    await g.client.get("/api/hello")
    await g.client.get("/api/hello", headers=bearer("x.y.z"))
    await g.client.get("/api/hello", headers=bearer(es_key.sign(claims())))
    text = (await g.client.get("/metrics")).text
    assert 'sessionkeeper_guard_refused_total{reason="missing_token"} 1' in text
    assert 'sessionkeeper_guard_refused_total{reason="malformed_token"} 1' in text
    assert "sessionkeeper_guard_accepted_total 1" in text
    assert (await guarded().client.get("/metrics")).status_code == 404  # off by default


async def test_metrics_parse_with_prometheus_client(guarded: Callable[..., Guarded]) -> None:
    parser = pytest.importorskip("prometheus_client.parser")
    g = guarded(metrics_path="/metrics")
    await g.client.get("/api/hello")
    families = {
        f.name: f
        for f in parser.text_string_to_metric_families((await g.client.get("/metrics")).text)
    }
    samples = {
        s.labels.get("reason"): s.value for s in families["sessionkeeper_guard_refused"].samples
    }
    assert samples["missing_token"] == 1


def test_websocket_is_guarded(es_key: SigningKey) -> None:
    async def echo(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_text("hi")
        await ws.close()

    app = SessionGuard(
        Starlette(routes=[WebSocketRoute("/api/ws", echo)]), issuer=ISSUER, jwks=jwks_of(es_key)
    )
    with TestClient(app) as client:
        with pytest.raises(WebSocketDisconnect) as closed, client.websocket_connect("/api/ws"):
            pass
        assert closed.value.code == 1008
        token = es_key.sign(claims(exp=2**40, iat=1))
        with client.websocket_connect("/api/ws", headers=bearer(token)) as ws:
            assert ws.receive_text() == "hi"


async def test_hs256_secret_accepts_any_kid_of_its_algorithm(
    guarded: Callable[..., Guarded],
) -> None:
    """Supabase's legacy JWT secret: tokens carry a kid naming the secret, not a JWKS key."""
    import jwt

    g = guarded(secret=SECRET)
    token = jwt.encode(claims(), SECRET, algorithm="HS256", headers={"kid": "supabase-legacy"})
    assert (await g.client.get("/api/hello", headers=bearer(token))).status_code == 200
    unkeyed = jwt.encode(claims(), SECRET, algorithm="HS256")
    assert (await g.client.get("/api/hello", headers=bearer(unkeyed))).status_code == 200


async def test_unavailable_through_fastapi_dependency(
    guarded: Callable[..., Guarded], es_key: SigningKey
) -> None:
    port = free_port()
    app = fastapi_app()
    g = guarded()
    app.add_middleware(
        SessionGuard,
        issuer=ISSUER,
        jwks_url=f"http://127.0.0.1:{port}/jwks",
        jwks_timeout=0.5,
        clock=g.clock,
    )
    g.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
    response = await g.client.get("/open/me", headers=bearer(es_key.sign(claims())))
    assert_unavailable(response, g, "keys_unavailable")
