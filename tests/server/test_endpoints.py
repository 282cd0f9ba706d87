"""The endpoints of the wire contract: shapes, both error formats, sessions, CORS, outages."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest

from tests.conftest import API_VERSION, PASSWORD, AppHarness


def bearer(token: str, versioned: bool = True) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **(API_VERSION if versioned else {})}


def claims(token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return decoded


async def sign_in(
    app: AppHarness, email: str, password: str = PASSWORD, **kw: Any
) -> httpx.Response:
    return await app.client.post(
        "/auth/v1/token?grant_type=password",
        json={"email": email, "password": password},
        headers=API_VERSION,
        **kw,
    )


async def test_error_format_follows_the_api_version_header(app_client: AppHarness) -> None:
    await app_client.signup("fmt@example.com")
    new = await sign_in(app_client, "fmt@example.com", "wrong password")
    assert new.status_code == 400
    assert new.json() == {"code": "invalid_credentials", "message": "Invalid login credentials"}
    assert new.headers["x-sb-error-code"] == "invalid_credentials"
    assert new.headers["x-supabase-api-version"] == "2024-01-01"

    legacy = await app_client.client.post(
        "/auth/v1/token?grant_type=password",
        json={"email": "fmt@example.com", "password": "nope!!"},
    )
    assert legacy.json() == {
        "code": 400,
        "error_code": "invalid_credentials",
        "msg": "Invalid login credentials",
    }
    assert legacy.headers["x-sb-error-code"] == "invalid_credentials"
    assert "x-supabase-api-version" not in legacy.headers


async def test_unknown_user_and_wrong_password_get_the_same_answer(app_client: AppHarness) -> None:
    await app_client.signup("known@example.com")
    wrong = await sign_in(app_client, "known@example.com", "not the password")
    unknown = await sign_in(app_client, "nobody@example.com", "not the password")
    assert (wrong.status_code, wrong.json()) == (unknown.status_code, unknown.json())


async def test_session_and_user_shapes(app_client: AppHarness) -> None:
    s = await app_client.signup("shape@example.com")
    assert s["token_type"] == "bearer"
    assert s["expires_in"] == 3600
    assert s["expires_at"] == int(app_client.clock.now()) + 3600
    user = s["user"]
    for key in (
        "id",
        "aud",
        "role",
        "email",
        "email_confirmed_at",
        "phone",
        "confirmed_at",
        "last_sign_in_at",
        "app_metadata",
        "user_metadata",
        "identities",
        "created_at",
        "updated_at",
        "is_anonymous",
    ):
        assert key in user, key
    assert user["app_metadata"] == {"provider": "email", "providers": ["email"]}
    identity = user["identities"][0]
    for key in ("id", "identity_id", "user_id", "identity_data", "provider", "created_at"):
        assert key in identity, key
    assert identity["provider"] == "email"
    assert identity["identity_data"]["email"] == "shape@example.com"


async def test_access_token_carries_every_contract_claim(app_client: AppHarness) -> None:
    s = await app_client.signup("claims@example.com")
    header = jwt.get_unverified_header(s["access_token"])
    assert header["alg"] == "ES256"
    assert header["typ"] == "JWT"
    assert header["kid"]
    c = claims(s["access_token"])
    assert c["iss"] == "http://auth.test/auth/v1"
    assert c["sub"] == s["user"]["id"]
    assert c["aud"] == "authenticated"
    assert c["exp"] - c["iat"] == 3600
    assert c["email"] == "claims@example.com"
    assert c["phone"] == ""
    assert c["role"] == "authenticated"
    assert c["aal"] == "aal1"
    assert c["amr"] == [{"method": "password", "timestamp": c["iat"]}]
    assert c["is_anonymous"] is False
    assert c["app_metadata"]["provider"] == "email"
    assert isinstance(c["user_metadata"], dict)
    assert isinstance(c["session_id"], str)


async def test_each_sign_in_makes_a_new_session(app_client: AppHarness) -> None:
    first = await app_client.signup("fixation@example.com")
    second = (await sign_in(app_client, "fixation@example.com")).json()
    third = (await sign_in(app_client, "fixation@example.com")).json()
    ids = {claims(s["access_token"])["session_id"] for s in (first, second, third)}
    assert len(ids) == 3


async def test_password_change_ends_other_sessions_and_keeps_this_one(
    app_client: AppHarness,
) -> None:
    here = await app_client.signup("change@example.com")
    elsewhere = (await sign_in(app_client, "change@example.com")).json()
    r = await app_client.client.put(
        "/auth/v1/user",
        json={"password": "a brand new password"},
        headers=bearer(here["access_token"]),
    )
    assert r.status_code == 200
    # The other session can neither refresh nor call /user.
    assert (await app_client.refresh(elsewhere["refresh_token"])).json()[
        "code"
    ] == "refresh_token_not_found"
    gone = await app_client.client.get("/auth/v1/user", headers=bearer(elsewhere["access_token"]))
    assert (gone.status_code, gone.json()["code"]) == (403, "session_not_found")
    # This session goes on; the new password signs in, the old one does not.
    assert (await app_client.refresh(here["refresh_token"])).status_code == 200
    assert (
        await sign_in(app_client, "change@example.com", "a brand new password")
    ).status_code == 200
    assert (await sign_in(app_client, "change@example.com")).status_code == 400


async def test_same_password_is_refused(app_client: AppHarness) -> None:
    s = await app_client.signup("same@example.com")
    r = await app_client.client.put(
        "/auth/v1/user", json={"password": PASSWORD}, headers=bearer(s["access_token"])
    )
    assert (r.status_code, r.json()["code"]) == (422, "same_password")


async def test_update_metadata_and_email(app_client: AppHarness) -> None:
    s = await app_client.signup("meta@example.com")
    await app_client.signup("taken@example.com")
    h = bearer(s["access_token"])
    r = await app_client.client.put(
        "/auth/v1/user", json={"data": {"plan": "pro", "n": 1}}, headers=h
    )
    assert r.json()["user_metadata"] == {"plan": "pro", "n": 1}
    r = await app_client.client.put(
        "/auth/v1/user", json={"data": {"n": None, "x": [1]}}, headers=h
    )
    assert r.json()["user_metadata"] == {"plan": "pro", "x": [1]}
    r = await app_client.client.put("/auth/v1/user", json={"email": "Taken@Example.com"}, headers=h)
    assert (r.status_code, r.json()["code"]) == (422, "email_exists")
    r = await app_client.client.put(
        "/auth/v1/user", json={"email": "renamed@example.com"}, headers=h
    )
    assert r.json()["email"] == "renamed@example.com"
    assert (await sign_in(app_client, "renamed@example.com")).status_code == 200
    # A new access token carries the new metadata.
    refreshed = (await app_client.refresh(s["refresh_token"])).json()
    assert claims(refreshed["access_token"])["user_metadata"] == {"plan": "pro", "x": [1]}


@pytest.mark.parametrize(
    ("scope", "alive"),
    [
        ("local", [False, True, True]),
        ("others", [True, False, False]),
        ("global", [False, False, False]),
    ],
)
async def test_logout_scopes(app_client: AppHarness, scope: str, alive: list[bool]) -> None:
    sessions = [await app_client.signup(f"logout-{scope}@example.com")]
    sessions += [
        (await sign_in(app_client, f"logout-{scope}@example.com")).json() for _ in range(2)
    ]
    r = await app_client.client.post(
        f"/auth/v1/logout?scope={scope}", headers=bearer(sessions[0]["access_token"])
    )
    assert r.status_code == 204
    assert r.content == b""
    for session, expected in zip(sessions, alive, strict=True):
        ok = (await app_client.refresh(session["refresh_token"])).status_code == 200
        assert ok is expected


async def test_logout_twice_is_harmless(app_client: AppHarness) -> None:
    s = await app_client.signup()
    for _ in range(2):
        r = await app_client.client.post("/auth/v1/logout", headers=bearer(s["access_token"]))
        assert r.status_code == 204


async def test_user_needs_a_valid_unexpired_token(app_client: AppHarness) -> None:
    s = await app_client.signup()
    none = await app_client.client.get("/auth/v1/user", headers=API_VERSION)
    assert (none.status_code, none.json()["code"]) == (401, "no_authorization")
    app_client.clock.advance(3600)
    expired = await app_client.client.get("/auth/v1/user", headers=bearer(s["access_token"]))
    assert (expired.status_code, expired.json()["code"]) == (403, "bad_jwt")


async def test_settings_and_jwks(app_client: AppHarness) -> None:
    r = await app_client.client.get("/auth/v1/settings")
    body = r.json()
    assert body["external"]["email"] is True
    assert body["disable_signup"] is False
    assert body["mailer_autoconfirm"] is True
    r = await app_client.client.get("/auth/v1/.well-known/jwks.json")
    assert r.headers["cache-control"] == "public, max-age=600"
    [key] = r.json()["keys"]
    assert key["kty"] == "EC" and key["crv"] == "P-256"
    assert key["use"] == "sig" and key["key_ops"] == ["verify"] and key["alg"] == "ES256"
    assert "d" not in key  # never the private part


async def test_hs256_keys_are_never_published(
    make_app: Callable[..., AppHarness], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SESSIONKEEPER_JWT_SECRET", "x" * 40)
    app = make_app(signing_alg="HS256")
    async with app.client:
        s = await app.signup()
        assert jwt.get_unverified_header(s["access_token"])["alg"] == "HS256"
        jwt.decode(
            s["access_token"],
            "x" * 40,
            algorithms=["HS256"],
            audience="authenticated",
            options={"verify_exp": False, "verify_iat": False},
        )
        assert (await app.client.get("/auth/v1/.well-known/jwks.json")).json() == {"keys": []}
        assert (
            await app.client.get("/auth/v1/user", headers=bearer(s["access_token"]))
        ).status_code == 200


async def test_signup_disabled(make_app: Callable[..., AppHarness]) -> None:
    closed = make_app(disable_signup=True)
    async with closed.client:
        r = await closed.client.post(
            "/auth/v1/signup", json={"email": "a@b.co", "password": PASSWORD}, headers=API_VERSION
        )
        assert (r.status_code, r.json()["code"]) == (422, "signup_disabled")


async def test_cors(make_app: Callable[..., AppHarness]) -> None:
    app = make_app(cors_origins=["http://app.test"])
    async with app.client:
        pre = await app.client.options(
            "/auth/v1/token",
            headers={
                "Origin": "http://app.test",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, apikey, x-client-info, "
                "x-supabase-api-version, content-type",
            },
        )
        assert pre.status_code == 200
        assert pre.headers["access-control-allow-origin"] == "http://app.test"
        r = await app.client.get("/auth/v1/settings", headers={"Origin": "http://app.test"})
        assert r.headers["access-control-allow-origin"] == "http://app.test"
        assert "X-Supabase-Api-Version" in r.headers["access-control-expose-headers"]
        other = await app.client.get("/auth/v1/settings", headers={"Origin": "http://evil.test"})
        assert "access-control-allow-origin" not in other.headers


async def test_store_outage_is_503_never_4xx(
    make_app: Callable[..., AppHarness], tmp_path: Any
) -> None:
    app = make_app()
    async with app.client:
        s = await app.signup("outage@example.com")
        # A real outage: the database file's directory disappears under the running server.
        app.store.close()
        moved = tmp_path.parent / (tmp_path.name + "-moved")
        shutil.move(str(tmp_path), str(moved))
        try:
            health = await app.client.get("/auth/v1/health")
            assert health.status_code == 503
            assert health.json()["dependencies"] == {"database": "down"}
            for r in (
                await app.refresh(s["refresh_token"]),
                await sign_in(app, "outage@example.com"),
                await app.client.get("/auth/v1/user", headers=bearer(s["access_token"])),
            ):
                assert r.status_code == 503, r.text
                assert r.json()["code"] == "service_unavailable"
                assert r.headers["retry-after"] == "1"
        finally:
            shutil.move(str(moved), str(tmp_path))
        # Service resumes by itself once the store is back: nothing was lost.
        assert (await app.client.get("/auth/v1/health")).status_code == 200
        assert (await app.refresh(s["refresh_token"])).status_code == 200


async def test_wrong_method_names_the_allowed_ones(app_client: AppHarness) -> None:
    r = await app_client.client.get("/auth/v1/signup", headers=API_VERSION)
    assert (r.status_code, r.json()["code"]) == (405, "method_not_allowed")
    assert r.headers["allow"] == "POST"


async def test_metadata_is_capped_so_every_token_stays_usable(app_client: AppHarness) -> None:
    from sessionkeeper.core.validation import MAX_METADATA_BYTES

    # The largest allowed metadata, in characters that expand most in the token (\\uXXXX).
    biggest = {"bio": "\u00e9" * ((MAX_METADATA_BYTES - 12) // 6)}
    r = await app_client.client.post(
        "/auth/v1/signup",
        json={"email": "big@example.com", "password": PASSWORD, "data": biggest},
        headers=API_VERSION,
    )
    assert r.status_code == 200, r.text
    s = r.json()
    assert (
        await app_client.client.get("/auth/v1/user", headers=bearer(s["access_token"]))
    ).status_code == 200
    # Growing it past the cap by merging is refused; the account can still be edited after.
    h = bearer(s["access_token"])
    grow = await app_client.client.put(
        "/auth/v1/user", json={"data": {"more": "x" * 100}}, headers=h
    )
    assert (grow.status_code, grow.json()["code"]) == (400, "validation_failed")
    shrink = await app_client.client.put("/auth/v1/user", json={"data": {"bio": None}}, headers=h)
    assert shrink.status_code == 200
    assert shrink.json()["user_metadata"] == {}


def test_issued_sessions_do_not_show_tokens_in_their_repr() -> None:
    from sessionkeeper.service.context import IssuedSession
    from sessionkeeper.store.records import UserRecord

    user = UserRecord(id="u", email="e@example.com", password_hash="h", created_at=0, updated_at=0)
    issued = IssuedSession("access-secret", "refresh-secret", 3600, 3600, user, [])
    assert "access-secret" not in repr(issued)
    assert "refresh-secret" not in repr(issued)


async def test_every_request_is_logged_once_with_the_refusal_code(
    app_client: AppHarness, caplog: pytest.LogCaptureFixture
) -> None:
    s = await app_client.signup("logged@example.com")
    caplog.clear()
    with caplog.at_level("INFO", logger="sessionkeeper.access"):
        await app_client.refresh("B" * 43)
        await app_client.client.get("/auth/v1/health")
    lines = [r for r in caplog.records if r.name == "sessionkeeper.access"]
    assert len(lines) == 2
    refused, ok = lines
    assert refused.__dict__["status"] == 400
    assert refused.__dict__["error_code"] == "refresh_token_not_found"
    assert refused.__dict__["grant_type"] == "refresh_token"
    assert refused.__dict__["path"] == "/auth/v1/token"
    assert ok.__dict__["status"] == 200
    assert "error_code" not in ok.__dict__
    # Nothing logged anywhere carries a token.
    text = " ".join(str(vars(r)) for r in caplog.records)
    assert s["refresh_token"] not in text
    assert s["access_token"] not in text


async def test_an_unexpected_failure_is_one_log_line_and_a_catalogue_500(
    app_client: AppHarness, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")  # not a store outage: a plain programming error

    monkeypatch.setattr(app_client.ctx.store, "ping", broken)
    with caplog.at_level("ERROR"):
        r = await app_client.client.get("/auth/v1/health", headers=API_VERSION)
    assert r.status_code == 500
    assert r.json() == {"code": "unexpected_failure", "message": "Unexpected failure"}
    assert r.headers["x-sb-error-code"] == "unexpected_failure"
    failures = [rec for rec in caplog.records if rec.getMessage() == "unexpected failure"]
    assert len(failures) == 1
    assert failures[0].exc_info is not None
