"""The session bridge end to end against real processes: ``sessionkeeper demo --mode cookie``
(auth server, bridge and guarded API in one process, SQLite), and for the issuer-down cases a
bridge on uvicorn whose issuer URL points at a closed port."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.conftest import ServerProcess, spawn_server

EVIL = "https://evil.example"


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    started: list[ServerProcess] = []

    def factory(*args: str) -> ServerProcess:
        server = spawn_server(
            f"sqlite:///{tmp_path}/bridge{len(started)}.db",
            "--mode",
            "cookie",
            "--rate-limit-password-per-ip",
            "0",
            *args,
            command="demo",
        )
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One cookie-mode demo for the tests that need no flags of their own (each starts fresh
    sessions, so they do not see each other)."""
    path = tmp_path_factory.mktemp("bridge")
    server = spawn_server(
        f"sqlite:///{path}/shared.db",
        "--mode",
        "cookie",
        "--rate-limit-password-per-ip",
        "0",
        "--rate-limit-password-per-email",
        "0",
        command="demo",
    )
    yield server
    server.stop()


def password_session(server: ServerProcess) -> dict[str, Any]:
    response = httpx.post(
        f"{server.auth_url}/token?grant_type=password",
        json={"email": "demo@example.com", "password": "demo-password"},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def signed_in(server: ServerProcess) -> httpx.Client:
    """A client holding the bridge's cookies after a SIGNED_IN post."""
    client = httpx.Client(base_url=server.base_url)
    response = client.post(
        "/auth/callback",
        json={"event": "SIGNED_IN", "session": password_session(server)},
        headers={"Origin": server.base_url},
    )
    assert response.status_code == 200, response.text
    return client


def logged(server: ServerProcess, pattern: str, since: int = 0, timeout: float = 5.0) -> str:
    """The first log line of the server from line ``since`` on matching ``pattern`` (waits)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in list(server.log_lines)[since:]:
            if re.search(pattern, line):
                return line
        time.sleep(0.05)
    raise AssertionError(f"no log line matches {pattern!r}:\n" + "".join(server.log_lines[-20:]))


# -- POST /auth/callback --------------------------------------------------------------------


def test_signed_in_sets_httponly_cookies_with_every_attribute(
    shared: ServerProcess,
) -> None:
    server = shared
    session = password_session(server)
    response = httpx.post(
        f"{server.base_url}/auth/callback",
        json={"event": "SIGNED_IN", "session": session},
        headers={"Origin": server.base_url},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["event"] == "SIGNED_IN"
    assert body["user"]["email"] == "demo@example.com"
    assert body["expires_in"] > 0
    assert session["access_token"] not in response.text  # the answer never carries a token
    assert session["refresh_token"] not in response.text
    assert response.headers["cache-control"] == "no-store"
    access, refresh = response.headers.get_list("set-cookie")
    # The demo runs on plain http on loopback and asks for development cookies by name, so
    # Secure is the one attribute left out; tests/bridge/test_cookies.py asserts it elsewhere.
    attributes = "; Max-Age=34560000; Path=/; HttpOnly; SameSite=Lax"
    assert access == f"sk-access-token={session['access_token']}{attributes}"
    assert refresh == f"sk-refresh-token={session['refresh_token']}{attributes}"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"event": "SIGNED_IN"}, "missing_tokens"),
        ({"event": "SIGNED_IN", "session": {"access_token": "x"}}, "missing_tokens"),
        (
            {"event": "SIGNED_IN", "session": {"access_token": "", "refresh_token": "r"}},
            "missing_tokens",
        ),
        ({"event": "SIGNED_IN", "session": "token"}, "missing_tokens"),
        ({"event": "PASSWORD_RECOVERY", "session": None}, "bad_event"),
        ({"session": None}, "bad_event"),
        ({"event": "SIGNED_OUT", "scope": "everything"}, "bad_scope"),
    ],
)
def test_a_malformed_event_is_a_400_with_a_stable_code(
    shared: ServerProcess, body: dict[str, Any], code: str
) -> None:
    server = shared
    mark = len(server.log_lines)
    response = httpx.post(
        f"{server.base_url}/auth/callback", json=body, headers={"Origin": server.base_url}
    )
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_request", "error_code": code}
    assert "set-cookie" not in response.headers
    logged(server, rf'bridge refused .*status=400 error_code="{code}"', mark)


@pytest.mark.parametrize("content", [b"{", b"[]", b"\xff\xfe", b"null"])
def test_a_body_that_is_not_a_json_object_is_a_400(shared: ServerProcess, content: bytes) -> None:
    server = shared
    response = httpx.post(
        f"{server.base_url}/auth/callback",
        content=content,
        headers={"Origin": server.base_url, "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error_code"] == "bad_json"


@pytest.mark.parametrize(
    ("origin", "reason"),
    [(EVIL, "origin_not_allowed"), ("null", "origin_null"), (None, "origin_missing")],
)
def test_a_refused_origin_is_a_403_and_logged_with_its_reason(
    shared: ServerProcess, origin: str | None, reason: str
) -> None:
    server = shared
    mark = len(server.log_lines)
    headers = {"Origin": origin} if origin else {}
    response = httpx.post(
        f"{server.base_url}/auth/callback",
        json={"event": "SIGNED_IN", "session": password_session(server)},
        headers=headers,
    )
    assert response.status_code == 403
    assert response.json() == {"error": "Forbidden", "error_code": "origin_not_allowed"}
    assert "set-cookie" not in response.headers
    logged(server, rf'bridge refused .*status=403 .*reason="{reason}"', mark)


def test_an_explicitly_allowed_origin_and_a_vercel_preview_are_accepted(
    tmp_path: Path,
) -> None:
    server = spawn_server(
        f"sqlite:///{tmp_path}/vercel.db",
        "--mode",
        "cookie",
        "--allowed-origin",
        "https://app.example.com",
        command="demo",
        env={"VERCEL_URL": "my-app-git-preview-team.vercel.app"},
    )
    try:
        for origin, status in [
            ("https://app.example.com", 200),
            ("https://my-app-git-preview-team.vercel.app", 200),
            ("https://my-app-git-other-team.vercel.app", 403),
        ]:
            response = httpx.post(
                f"{server.base_url}/auth/callback",
                json={"event": "SIGNED_IN", "session": password_session(server)},
                headers={"Origin": origin},
            )
            assert response.status_code == status, origin
    finally:
        server.stop()


def test_a_forged_session_is_a_401_and_sets_no_cookie(shared: ServerProcess) -> None:
    server = shared
    mark = len(server.log_lines)
    session = password_session(server)
    header, payload, _ = session["access_token"].split(".")
    forged = {**session, "access_token": f"{header}.{payload}.AAAA"}
    response = httpx.post(
        f"{server.base_url}/auth/callback",
        json={"event": "SIGNED_IN", "session": forged},
        headers={"Origin": server.base_url},
    )
    assert response.status_code == 401
    assert response.json() == {"error": "Unauthorized", "error_code": "invalid_session"}
    assert "set-cookie" not in response.headers
    logged(server, r'bridge refused .*status=401 .*reason="bad_signature"', mark)


def test_signed_out_clears_the_cookies_and_ends_the_session_at_the_issuer(
    shared: ServerProcess,
) -> None:
    server = shared
    client = signed_in(server)
    refresh_token = client.cookies["sk-refresh-token"]
    assert client.get("/api/jobs").status_code == 200
    response = client.post(
        "/auth/callback", json={"event": "SIGNED_OUT"}, headers={"Origin": server.base_url}
    )
    assert response.status_code == 200
    assert response.json() == {"event": "SIGNED_OUT", "revoked": True}
    assert all("Max-Age=0" in c for c in response.headers.get_list("set-cookie"))
    assert client.get("/api/jobs").status_code == 401
    refused = httpx.post(
        f"{server.auth_url}/token?grant_type=refresh_token", json={"refresh_token": refresh_token}
    )
    assert refused.status_code == 400  # the session is gone at the issuer too


# -- the guarded API under cookie mode ------------------------------------------------------


def test_a_cross_origin_form_post_and_a_fetch_without_the_header_are_403_and_logged(
    shared: ServerProcess,
) -> None:
    server = shared
    mark = len(server.log_lines)
    client = signed_in(server)
    form = client.post(
        "/api/jobs",
        content=b"title=pwned",
        headers={"Origin": EVIL, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert form.status_code == 403
    assert form.content == b'{"error":"Forbidden"}'
    logged(server, r'request refused .*method="POST" .*reason="origin_not_allowed"', mark)
    bare = client.post("/api/jobs", json={}, headers={"Origin": server.base_url})
    assert bare.status_code == 403
    logged(server, r'request refused .*reason="csrf_header_missing"', mark)
    allowed = client.post(
        "/api/jobs", json={}, headers={"Origin": server.base_url, "X-SessionKeeper-CSRF": "1"}
    )
    assert allowed.status_code != 403  # past the CSRF check (the demo has no POST here: 405)


def _family(database: Path) -> tuple[int, int, int, list[Any]]:
    """(sessions, refresh tokens, revoked tokens, family_revoked_at values) in the demo's DB."""
    with sqlite3.connect(database) as db:
        sessions = db.execute("SELECT family_revoked_at FROM sessions").fetchall()
        tokens, revoked = db.execute(
            "SELECT count(*), count(revoked_at) FROM refresh_tokens"
        ).fetchone()
    return len(sessions), tokens, revoked, [row[0] for row in sessions]


def test_ten_parallel_requests_with_an_expired_access_cookie_make_one_family_no_revocation(
    demo: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = demo("--jwt-exp", "1")
    client = signed_in(server)
    assert _family(tmp_path / "bridge0.db")[:3] == (1, 1, 0)
    time.sleep(1.2)  # a real process: its clock, not ours, has to pass exp

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.base_url, cookies=client.cookies) as http:
            return await asyncio.gather(*(http.get("/api/jobs") for _ in range(10)))

    answers = asyncio.run(burst())
    assert [a.status_code for a in answers] == [200] * 10
    new_tokens = {
        a.headers.get_list("set-cookie")[1].split(";")[0]
        for a in answers
        if "set-cookie" in a.headers
    }
    assert len(new_tokens) == 1  # every renewed answer hands back the same new session
    sessions, tokens, revoked, family_revoked = _family(tmp_path / "bridge0.db")
    assert (sessions, tokens, revoked) == (1, 2, 1)  # one rotation: the old token and its child
    assert family_revoked == [None]
    # The family is healthy: the new refresh token renews again.
    renewed = new_tokens.pop().split("=", 1)[1]
    again = httpx.post(
        f"{server.auth_url}/token?grant_type=refresh_token", json={"refresh_token": renewed}
    )
    assert again.status_code == 200


def test_a_revoked_session_is_a_401_that_clears_the_cookies(
    shared: ServerProcess,
) -> None:
    server = shared
    client = signed_in(server)
    other = password_session(server)
    httpx.post(
        f"{server.auth_url}/logout?scope=global",
        headers={"Authorization": f"Bearer {other['access_token']}"},
    )
    response = client.get("/api/jobs")
    assert response.status_code == 401
    assert all("Max-Age=0" in c for c in response.headers.get_list("set-cookie"))
    session = client.get("/auth/session")
    assert session.status_code == 401


def test_auth_session_reports_the_user_and_expiry_never_a_token(
    shared: ServerProcess,
) -> None:
    server = shared
    client = signed_in(server)
    response = client.get("/auth/session")
    assert response.status_code == 200
    assert set(response.json()) == {"user", "expires_at", "expires_in"}
    assert client.cookies["sk-access-token"] not in response.text
    anonymous = httpx.get(f"{server.base_url}/auth/session")
    assert anonymous.status_code == 401
    assert anonymous.json() == {"error": "Unauthorized", "error_code": "no_session"}


def test_auth_refresh_needs_the_csrf_defence_and_renews_the_cookies(
    shared: ServerProcess,
) -> None:
    server = shared
    client = signed_in(server)
    before = client.cookies["sk-refresh-token"]
    assert client.post("/auth/refresh").status_code == 403
    assert client.post("/auth/refresh", headers={"Origin": server.base_url}).status_code == 403
    response = client.post(
        "/auth/refresh", headers={"Origin": server.base_url, "X-SessionKeeper-CSRF": "1"}
    )
    assert response.status_code == 200
    assert client.cookies["sk-refresh-token"] != before
    assert response.headers["cache-control"] == "no-store"


# -- hosted sign-in: /auth/login → /auth/v1/authorize → GET /auth/callback ------------------


class _Form(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}
        self.action = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "form":
            self.action = values.get("action") or ""
        if tag == "input" and values.get("name"):
            self.fields[str(values["name"])] = values.get("value") or ""


def hosted_sign_in(server: ServerProcess, client: httpx.Client, next_path: str) -> httpx.Response:
    """Follow the hosted sign-in up to the redirect back to /auth/callback (not followed)."""
    start = client.get(f"/auth/login?next={next_path}")
    assert start.status_code == 302
    page = client.get(start.headers["location"])
    assert page.status_code == 200
    form = _Form()
    form.feed(page.text)
    fields = {**form.fields, "email": "demo@example.com", "password": "demo-password"}
    action = form.action or start.headers["location"]
    answer = client.post(
        httpx.URL(start.headers["location"]).join(action),
        data=fields,
        headers={"Origin": server.base_url},
    )
    assert answer.status_code == 303, answer.text
    return answer


def test_the_hosted_sign_in_sets_the_cookies_and_lands_on_next(
    shared: ServerProcess,
) -> None:
    server = shared
    client = httpx.Client(base_url=server.base_url)
    back = hosted_sign_in(server, client, "/reports?tab=1")
    location = back.headers["location"]
    assert location.startswith(f"{server.base_url}/auth/callback?")
    assert "code" in parse_qs(urlsplit(location).query)
    landed = client.get(location)
    assert landed.status_code == 303
    assert landed.headers["location"] == "/reports?tab=1"
    names = [c.split("=", 1)[0] for c in landed.headers.get_list("set-cookie")]
    assert names == ["sk-access-token", "sk-refresh-token", "sk-code-verifier"]
    assert client.get("/api/jobs").status_code == 200
    reused = client.get(location)  # the code is single-use
    assert reused.status_code == 303
    assert "error=" in reused.headers["location"]


def test_a_callback_without_the_verifier_cookie_redirects_with_an_error(
    shared: ServerProcess,
) -> None:
    server = shared
    client = httpx.Client(base_url=server.base_url)
    back = hosted_sign_in(server, client, "/jobs")
    stranger = httpx.Client(base_url=server.base_url)  # another browser: no verifier cookie
    answer = stranger.get(back.headers["location"])
    assert answer.status_code == 303
    query = parse_qs(urlsplit(answer.headers["location"]).query)
    assert urlsplit(answer.headers["location"]).path == "/jobs"
    assert query["error"] == ["invalid_request"]
    assert query["error_description"][0]
    assert "set-cookie" not in answer.headers or all(
        c.startswith("sk-code-verifier=;") for c in answer.headers.get_list("set-cookie")
    )


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example",
        "https://evil.example",
        "/\\evil.example",
        "%2F%2Fevil.example",
        "/%5Cevil.example",
        "HTTPS://evil.example",
        "hTtPs://evil.example/x",
    ],
)
def test_open_redirects_through_the_callback_land_on_the_root(
    shared: ServerProcess, target: str
) -> None:
    server = shared
    answer = httpx.get(
        f"{server.base_url}/auth/callback",
        params={"error": "access_denied", "error_description": "no", "next": target},
    )
    assert answer.status_code == 303
    assert urlsplit(answer.headers["location"]).path == "/"
    assert not urlsplit(answer.headers["location"]).netloc
    start = httpx.get(f"{server.base_url}/auth/login", params={"next": target})
    redirect_to = parse_qs(urlsplit(start.headers["location"]).query)["redirect_to"][0]
    assert parse_qs(urlsplit(redirect_to).query)["next"] == ["/"]


# -- the issuer cannot be reached: 503, never a 4xx that would sign the user out ------------


@pytest.fixture
def unreachable_issuer_bridge(tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    """A bridge on uvicorn whose issuer URL is a closed port; keys from a real server's JWKS.
    Yields (bridge base URL, an expired access token, its refresh token)."""
    from starlette.applications import Starlette

    from sessionkeeper.bridge import Bridge, HttpIssuer, SessionBridge
    from sessionkeeper.guard.sources import JwksUrlKeys
    from sessionkeeper.guard.verifier import Verifier
    from sessionkeeper.origins import AllowedOrigins
    from tests.conftest import serve_in_thread
    from tests.guard.conftest import free_port

    server = spawn_server(f"sqlite:///{tmp_path}/issuer.db", "--jwt-exp", "1")
    try:
        httpx.post(
            f"{server.auth_url}/signup", json={"email": "a@example.com", "password": "secret-pw"}
        ).raise_for_status()
        session = httpx.post(
            f"{server.auth_url}/token?grant_type=password",
            json={"email": "a@example.com", "password": "secret-pw"},
        ).json()
        verifier = Verifier(
            JwksUrlKeys(f"{server.auth_url}/.well-known/jwks.json"),
            issuers=(server.auth_url,),
            audiences=("authenticated",),
            leeway=0,
        )
        port = free_port()
        origin = f"http://127.0.0.1:{port}"
        bridge = SessionBridge(
            authenticate=verifier.authenticate,
            issuer=HttpIssuer(f"http://127.0.0.1:{free_port()}/auth/v1", timeout=2),
            allowed_origins=AllowedOrigins([origin]),
        )
        time.sleep(1.2)  # the access token expires (the issuer's clock is its own)
        with serve_in_thread(Starlette(routes=Bridge(bridge).routes()), port, "bridge"):
            yield origin, session["access_token"], session["refresh_token"]
    finally:
        server.stop()


def test_an_unreachable_issuer_is_a_503_on_callback_refresh_and_session(
    unreachable_issuer_bridge: tuple[str, str, str],
) -> None:
    origin, access, refresh = unreachable_issuer_bridge
    posted = httpx.post(
        f"{origin}/auth/callback",
        json={
            "event": "TOKEN_REFRESHED",
            "session": {"access_token": access, "refresh_token": refresh},
        },
        headers={"Origin": origin},
    )
    assert posted.status_code == 503
    assert posted.json() == {"error": "issuer_unavailable", "error_code": "issuer_unavailable"}
    assert posted.headers["retry-after"] == "1"
    cookies = {"sk-access-token": access, "sk-refresh-token": refresh}
    renewed = httpx.post(
        f"{origin}/auth/refresh",
        cookies=cookies,
        headers={"Origin": origin, "X-SessionKeeper-CSRF": "1"},
    )
    assert renewed.status_code == 503
    assert "set-cookie" not in renewed.headers  # the browser keeps its session
    session = httpx.get(f"{origin}/auth/session", cookies=cookies)
    assert session.status_code == 503


# -- sessionkeeper serve carries the bridge too ---------------------------------------------


def test_serve_mounts_the_bridge_with_its_settings_and_refuses_a_logged_out_session(
    tmp_path: Path,
) -> None:
    app = "http://127.0.0.1:3000"
    server = spawn_server(
        f"sqlite:///{tmp_path}/serve.db", "--allowed-origin", app, "--insecure-dev-cookies"
    )
    try:
        httpx.post(
            f"{server.auth_url}/signup", json={"email": "b@example.com", "password": "pw-123456"}
        ).raise_for_status()

        def session() -> dict[str, Any]:
            body: dict[str, Any] = httpx.post(
                f"{server.auth_url}/token?grant_type=password",
                json={"email": "b@example.com", "password": "pw-123456"},
            ).json()
            return body

        first = session()
        stored = httpx.post(
            f"{server.base_url}/auth/callback",
            json={"event": "SIGNED_IN", "session": first},
            headers={"Origin": app},
        )
        assert stored.status_code == 200
        for cookie in stored.headers.get_list("set-cookie"):
            assert cookie.endswith("; HttpOnly; SameSite=Lax")  # loopback http, dev cookies
        assert (
            httpx.post(
                f"{server.base_url}/auth/callback",
                json={"event": "SIGNED_IN", "session": first},
                headers={"Origin": server.base_url},  # not on --allowed-origin
            ).status_code
            == 403
        )
        httpx.post(
            f"{server.auth_url}/logout?scope=local",
            headers={"Authorization": f"Bearer {first['access_token']}"},
        ).raise_for_status()
        late = httpx.post(
            f"{server.base_url}/auth/callback",
            json={"event": "SIGNED_IN", "session": first},
            headers={"Origin": app},
        )
        assert late.status_code == 401  # the store says the session is over: no cookies
        assert "set-cookie" not in late.headers
    finally:
        server.stop()


def test_behind_a_proxy_the_hosted_sign_in_returns_to_the_configured_public_origin(
    tmp_path: Path,
) -> None:
    server = spawn_server(
        f"sqlite:///{tmp_path}/proxied.db", "--issuer", "https://app.example.com/auth/v1"
    )
    try:
        start = httpx.get(f"{server.base_url}/auth/login", params={"next": "/x"})
        redirect_to = parse_qs(urlsplit(start.headers["location"]).query)["redirect_to"][0]
        assert redirect_to == "https://app.example.com/auth/callback?next=%2Fx"
    finally:
        server.stop()
