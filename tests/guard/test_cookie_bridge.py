"""The guard's cookie transport with a bridge: verify, renew server-side, refuse, CSRF."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from sessionkeeper.bridge import CookiePolicy, SessionBridge
from sessionkeeper.bridge.cookies import CHUNK_SIZE
from sessionkeeper.core.keys import SigningKey
from sessionkeeper.origins import AllowedOrigins
from tests.bridge.scripted import ScriptedIssuer
from tests.guard.answers import assert_refused, assert_unavailable
from tests.guard.conftest import NOW, Guarded, claims

APP = "http://api.test"


@pytest.fixture
def cookie_guard(
    guarded: Callable[..., Guarded], es_key: SigningKey
) -> Callable[..., tuple[Guarded, ScriptedIssuer]]:
    def factory(**config: object) -> tuple[Guarded, ScriptedIssuer]:
        from sessionkeeper.clock import ManualClock

        clock = ManualClock(NOW)
        issuer = ScriptedIssuer(es_key, clock)
        bridge = SessionBridge(
            issuer=issuer,
            allowed_origins=AllowedOrigins([APP]),
            cookies=CookiePolicy(**config),  # type: ignore[arg-type]
            clock=clock,
        )
        return guarded(transport="cookie", bridge=bridge, clock=clock), issuer

    return factory


def cookies(
    access: str | None = None, refresh: str | None = "rt-1", prefix: str = ""
) -> dict[str, str]:
    jar = {}
    if access is not None:
        jar[f"{prefix}sk-access-token"] = access
    if refresh is not None:
        jar[f"{prefix}sk-refresh-token"] = refresh
    return {"Cookie": "; ".join(f"{k}={v}" for k, v in jar.items())}


def expired(key: SigningKey) -> str:
    return key.sign(claims(iat=NOW - 4000, exp=NOW - 400))


async def test_a_valid_access_cookie_is_let_through_without_new_cookies(
    cookie_guard: Callable[..., tuple[Guarded, ScriptedIssuer]], es_key: SigningKey
) -> None:
    g, issuer = cookie_guard()
    response = await g.client.get("/api/hello", headers=cookies(es_key.sign(claims())))
    assert response.status_code == 200
    assert "set-cookie" not in response.headers
    assert issuer.refreshed == []


async def test_an_expired_access_cookie_is_renewed_and_the_new_cookies_are_set(
    cookie_guard: Callable[..., tuple[Guarded, ScriptedIssuer]], es_key: SigningKey
) -> None:
    g, issuer = cookie_guard()
    response = await g.client.get("/api/hello", headers=cookies(expired(es_key)))
    assert response.status_code == 200, response.text
    assert response.json() == {"user": "8d3f7a4e-user"}
    assert issuer.refreshed == ["rt-1"]
    set_cookies = response.headers.get_list("set-cookie")
    names = [value.split("=", 1)[0] for value in set_cookies]
    assert names == ["sk-access-token", "sk-refresh-token"]
    for value in set_cookies:
        attributes = value.split("; ")[1:]
        assert attributes == ["Max-Age=34560000", "Path=/", "HttpOnly", "SameSite=Lax", "Secure"]
    assert set_cookies[1].startswith("sk-refresh-token=rt-1-next;")
    assert response.headers["x-session-expires-at"] == str(int(NOW + 3600))


async def test_only_a_refresh_cookie_is_enough_to_resume(
    cookie_guard: Callable[..., tuple[Guarded, ScriptedIssuer]],
) -> None:
    g, issuer = cookie_guard()
    response = await g.client.get("/api/hello", headers=cookies(None))
    assert response.status_code == 200
    assert issuer.refreshed == ["rt-1"]


async def test_ten_parallel_requests_with_an_expired_cookie_make_one_refresh(
    cookie_guard: Callable[..., tuple[Guarded, ScriptedIssuer]], es_key: SigningKey
) -> None:
    g, issuer = cookie_guard()
    headers = cookies(expired(es_key))
    answers = await asyncio.gather(
        *(g.client.get("/api/hello", headers=headers) for _ in range(10))
    )
    assert [a.status_code for a in answers] == [200] * 10
    assert issuer.refreshed == ["rt-1"]
    new = {a.headers.get_list("set-cookie")[1].split(";")[0] for a in answers}
    assert new == {"sk-refresh-token=rt-1-next"}  # every answer hands back the same new session
    # A late request still carrying the old cookie (sent before the browser stored the new one)
    # gets the remembered answer, not a second spend of the old refresh token.
    late = await g.client.get("/api/hello", headers=headers)
    assert late.status_code == 200
    assert issuer.refreshed == ["rt-1"]


async def test_a_token_near_expiry_is_renewed_early_and_served_even_if_that_fails(
    cookie_guard: Callable[..., tuple[Guarded, ScriptedIssuer]], es_key: SigningKey
) -> None:
    g, issuer = cookie_guard()
    soon = es_key.sign(claims(iat=NOW - 3590, exp=NOW + 10))  # inside the 60 s margin
    renewed = await g.client.get("/api/hello", headers=cookies(soon))
    assert renewed.status_code == 200
    assert issuer.refreshed == ["rt-1"]
    assert len(renewed.headers.get_list("set-cookie")) == 2
    issuer.mode = "down"
    kept = await g.client.get("/api/hello", headers=cookies(soon, "rt-2"))
    assert kept.status_code == 200  # still valid: an early refresh failing is no reason to refuse
    assert "set-cookie" not in kept.headers


async def test_a_refused_refresh_is_a_401_that_clears_the_cookies(
    cookie_guard: Callable[..., tuple[Guarded, ScriptedIssuer]], es_key: SigningKey
) -> None:
    g, issuer = cookie_guard()
    issuer.mode = "refuse"
    response = await g.client.get("/api/hello", headers=cookies(expired(es_key)))
    logged = assert_refused(response, g, "refresh_refused")
    assert logged["error_code"] == "refresh_token_already_used"
    assert "rt-1" not in str(logged)
    cleared = response.headers.get_list("set-cookie")
    assert [c.split(";")[0] for c in cleared] == ["sk-access-token=", "sk-refresh-token="]
    assert all("Max-Age=0" in c for c in cleared)


async def test_an_unreachable_issuer_is_a_503_that_keeps_the_cookies(
    cookie_guard: Callable[..., tuple[Guarded, ScriptedIssuer]], es_key: SigningKey
) -> None:
    g, issuer = cookie_guard()
    issuer.mode = "down"
    response = await g.client.get("/api/hello", headers=cookies(expired(es_key)))
    assert_unavailable(response, g, "issuer_unavailable")
    assert "set-cookie" not in response.headers


async def test_an_expired_cookie_without_a_refresh_cookie_is_expired(
    cookie_guard: Callable[..., tuple[Guarded, ScriptedIssuer]], es_key: SigningKey
) -> None:
    g, issuer = cookie_guard()
    response = await g.client.get("/api/hello", headers=cookies(expired(es_key), None))
    assert_refused(response, g, "expired")
    assert issuer.refreshed == []


async def test_a_bad_signature_is_not_papered_over_by_a_refresh(
    cookie_guard: Callable[..., tuple[Guarded, ScriptedIssuer]],
) -> None:
    g, issuer = cookie_guard()
    stranger = SigningKey.generate("ES256", kid="es-1")
    response = await g.client.get("/api/hello", headers=cookies(stranger.sign(claims())))
    assert_refused(response, g, "bad_signature")
    assert issuer.refreshed == []
    assert "set-cookie" not in response.headers  # a configuration problem keeps the cookies


async def test_no_cookie_at_all_is_a_missing_token(
    cookie_guard: Callable[..., tuple[Guarded, ScriptedIssuer]],
) -> None:
    g, _ = cookie_guard()
    assert_refused(await g.client.get("/api/hello"), g, "missing_token")


async def test_a_chunked_access_cookie_is_read_whole(
    cookie_guard: Callable[..., tuple[Guarded, ScriptedIssuer]], es_key: SigningKey
) -> None:
    g, issuer = cookie_guard()
    token = es_key.sign(claims(user_metadata={"bio": "x" * 5000}))
    parts = [token[i : i + CHUNK_SIZE] for i in range(0, len(token), CHUNK_SIZE)]
    assert len(parts) >= 2
    header = "; ".join(f"sk-access-token.{i}={p}" for i, p in enumerate(parts))
    response = await g.client.get("/api/hello", headers={"Cookie": header})
    assert response.status_code == 200
    assert issuer.refreshed == []


async def test_a_cookie_sent_twice_is_refused_as_malformed(
    cookie_guard: Callable[..., tuple[Guarded, ScriptedIssuer]], es_key: SigningKey
) -> None:
    g, _ = cookie_guard()
    token = es_key.sign(claims())
    header = f"sk-access-token={token}; sk-access-token={token}"
    assert_refused(
        await g.client.get("/api/hello", headers={"Cookie": header}), g, "malformed_token"
    )


async def test_over_https_the_host_prefixed_cookies_are_read_and_written(
    cookie_guard: Callable[..., tuple[Guarded, ScriptedIssuer]], es_key: SigningKey
) -> None:
    import httpx

    g, _ = cookie_guard()
    secure = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=g.guard), base_url="https://api.test"
    )
    plain_name = await secure.get("/api/hello", headers=cookies(expired(es_key)))
    assert plain_name.status_code == 401  # over https only the __Host- names count
    response = await secure.get("/api/hello", headers=cookies(expired(es_key), prefix="__Host-"))
    assert response.status_code == 200
    for value in response.headers.get_list("set-cookie"):
        assert value.startswith("__Host-sk-")
        assert value.endswith("; Path=/; HttpOnly; SameSite=Lax; Secure")


@pytest.mark.parametrize(
    ("host", "dev", "secure"),
    [
        ("127.0.0.1", True, False),
        ("localhost", True, False),
        ("api.test", True, True),  # development cookies only on loopback
        ("127.0.0.1", False, True),
    ],
)
async def test_secure_is_dropped_only_for_development_cookies_on_loopback(
    cookie_guard: Callable[..., tuple[Guarded, ScriptedIssuer]],
    es_key: SigningKey,
    host: str,
    dev: bool,
    secure: bool,
) -> None:
    g, _ = cookie_guard(insecure_dev_cookies=dev)
    headers = {**cookies(expired(es_key)), "Host": f"{host}:8000"}
    response = await g.client.get("/api/hello", headers=headers)
    assert response.status_code == 200
    for value in response.headers.get_list("set-cookie"):
        assert value.endswith("; Secure") is secure


# -- CSRF -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("origin", "check"),
    [
        (None, "origin_missing"),
        ("null", "origin_null"),
        ("https://evil.example", "origin_not_allowed"),
        ("http://API.test", "origin_not_allowed"),  # compared exactly, as browsers send it
    ],
)
async def test_an_unsafe_method_from_an_origin_not_allowed_is_a_403(
    cookie_guard: Callable[..., tuple[Guarded, ScriptedIssuer]],
    es_key: SigningKey,
    origin: str | None,
    check: str,
) -> None:
    g, issuer = cookie_guard()
    headers = {**cookies(es_key.sign(claims())), "X-SessionKeeper-CSRF": "1"}
    if origin is not None:
        headers["Origin"] = origin
    response = await g.client.post("/api/hello", headers=headers)
    assert response.status_code == 403
    assert response.content == b'{"error":"Forbidden"}'
    assert "www-authenticate" not in response.headers
    logged = g.last_refusal()
    assert logged["reason"] == "origin_not_allowed"
    assert logged["origin_check"] == check
    assert issuer.refreshed == []


async def test_a_cross_site_form_post_is_a_403(
    cookie_guard: Callable[..., tuple[Guarded, ScriptedIssuer]], es_key: SigningKey
) -> None:
    g, _ = cookie_guard()
    headers = {
        **cookies(es_key.sign(claims())),
        "Origin": "https://evil.example",
        "Content-Type": "application/x-www-form-urlencoded",
    }
    response = await g.client.post("/api/hello", headers=headers, content=b"amount=1000")
    assert response.status_code == 403
    assert g.last_refusal()["reason"] == "origin_not_allowed"


async def test_an_unsafe_method_without_the_custom_header_is_a_403(
    cookie_guard: Callable[..., tuple[Guarded, ScriptedIssuer]], es_key: SigningKey
) -> None:
    g, _ = cookie_guard()
    headers = {**cookies(es_key.sign(claims())), "Origin": APP}
    response = await g.client.delete("/api/hello", headers=headers)
    assert response.status_code == 403
    assert g.last_refusal()["reason"] == "csrf_header_missing"


async def test_an_unsafe_method_from_the_app_with_the_header_passes_the_csrf_check(
    cookie_guard: Callable[..., tuple[Guarded, ScriptedIssuer]], es_key: SigningKey
) -> None:
    g, _ = cookie_guard()
    headers = {**cookies(es_key.sign(claims())), "Origin": APP, "X-SessionKeeper-CSRF": "1"}
    response = await g.client.post("/api/hello", headers=headers)
    assert response.status_code != 403  # the route is GET-only: past the guard, the app says 405
    assert g.refusals() == []


async def test_safe_methods_need_no_origin(
    cookie_guard: Callable[..., tuple[Guarded, ScriptedIssuer]], es_key: SigningKey
) -> None:
    g, _ = cookie_guard()
    response = await g.client.get("/api/hello", headers=cookies(es_key.sign(claims())))
    assert response.status_code == 200


async def test_a_cookie_guard_without_a_bridge_refuses_unsafe_methods_unless_allowed(
    guarded: Callable[..., Guarded], es_key: SigningKey
) -> None:
    token = es_key.sign(claims())
    headers = {"Cookie": f"sk-access-token={token}", "Origin": APP, "X-SessionKeeper-CSRF": "1"}
    closed = guarded(transport="cookie")
    assert (await closed.client.post("/api/hello", headers=headers)).status_code == 403
    opened = guarded(transport="cookie", allowed_origins=[APP])
    assert (await opened.client.post("/api/hello", headers=headers)).status_code == 405


# -- unprotected paths and csrf=False ---------------------------------------------------------


async def test_an_unprotected_route_gets_the_renewed_user_and_the_new_cookies(
    cookie_guard: Callable[..., tuple[Guarded, ScriptedIssuer]], es_key: SigningKey
) -> None:
    g, issuer = cookie_guard()
    response = await g.client.get("/health", headers=cookies(expired(es_key)))
    assert response.json() == {"user": "8d3f7a4e-user"}  # not None: renewed, not "expired"
    assert issuer.refreshed == ["rt-1"]
    assert [c.split("=", 1)[0] for c in response.headers.get_list("set-cookie")] == [
        "sk-access-token",
        "sk-refresh-token",
    ]
    only_refresh = await g.client.get("/health", headers=cookies(None, "rt-9"))
    assert only_refresh.json() == {"user": "8d3f7a4e-user"}


async def test_an_unprotected_route_with_a_session_that_is_over_clears_it_and_serves_anonymously(
    cookie_guard: Callable[..., tuple[Guarded, ScriptedIssuer]], es_key: SigningKey
) -> None:
    g, issuer = cookie_guard()
    issuer.mode = "refuse"
    response = await g.client.get("/health", headers=cookies(expired(es_key)))
    assert response.status_code == 200
    assert response.json() == {"user": None}
    assert all("Max-Age=0" in c for c in response.headers.get_list("set-cookie"))
    assert g.refusals() == []  # an unprotected route is never refused by the guard


async def test_an_unprotected_route_without_cookies_is_untouched(
    cookie_guard: Callable[..., tuple[Guarded, ScriptedIssuer]],
) -> None:
    g, issuer = cookie_guard()
    response = await g.client.get("/health")
    assert response.json() == {"user": None}
    assert "set-cookie" not in response.headers
    assert issuer.refreshed == []


async def test_with_csrf_off_a_protected_route_still_renews_through_the_bridge(
    guarded: Callable[..., Guarded], es_key: SigningKey
) -> None:
    from sessionkeeper.clock import ManualClock

    clock = ManualClock(NOW)
    issuer = ScriptedIssuer(es_key, clock)
    bridge = SessionBridge(issuer=issuer, allowed_origins=AllowedOrigins([APP]), clock=clock)
    g = guarded(transport="cookie", bridge=bridge, csrf=False, clock=clock)
    response = await g.client.post("/api/hello", headers=cookies(expired(es_key)))
    assert response.status_code == 405  # past the guard (no CSRF check asked), renewed
    assert issuer.refreshed == ["rt-1"]


async def test_a_websocket_renewed_on_its_handshake_gets_the_new_cookies_on_accept(
    cookie_guard: Callable[..., tuple[Guarded, ScriptedIssuer]], es_key: SigningKey
) -> None:
    """ASGI 2.1 lets ``websocket.accept`` carry headers: the renewed session's cookies ride on
    the handshake's answer, so the page's next HTTP call does not spend the old refresh token."""
    g, issuer = cookie_guard()
    sent: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "websocket.accept", "headers": []})

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    g.guard.app = app
    header = cookies(expired(es_key))["Cookie"]
    scope = {
        "type": "websocket",
        "path": "/api/ws",
        "scheme": "ws",
        "headers": [
            (b"host", b"api.test"),
            (b"origin", APP.encode()),
            (b"cookie", header.encode()),
        ],
    }
    await g.guard(scope, receive, send)
    assert issuer.refreshed == ["rt-1"]
    (accept,) = sent
    names = [v.split(b"=", 1)[0] for k, v in accept["headers"] if k == b"set-cookie"]
    assert names == [b"sk-access-token", b"sk-refresh-token"]
