"""Hosted sign-in (GET/POST /auth/v1/authorize) and the PKCE grant over HTTP, in-process with a
manual clock."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from sessionkeeper.service.pkce import FLOW_STATE_LIFETIME, challenge_of
from tests.conftest import API_VERSION, PASSWORD, AppHarness

VERIFIER = "a-verifier-of-the-right-shape_" + "0123456789" * 3
CHALLENGE = challenge_of(VERIFIER, "s256")
HTML = {"Accept": "text/html,application/xhtml+xml"}
OWN = "http://auth.test"  # the issuer's origin in the harness


def flow_params(**overrides: str | None) -> dict[str, str]:
    params: dict[str, str | None] = {
        "provider": "email",
        "redirect_to": "/app/done",
        "code_challenge": CHALLENGE,
        "code_challenge_method": "s256",
        **overrides,
    }
    return {k: v for k, v in params.items() if v is not None}


async def authorize(
    app: AppHarness, email: str, password: str = PASSWORD, headers: dict[str, str] | None = None,
    **overrides: str | None,
) -> httpx.Response:  # fmt: skip
    return await app.client.post(
        "/auth/v1/authorize",
        data={**flow_params(**overrides), "email": email, "password": password},
        headers={**HTML, **(headers or {})},
    )


def code_of(r: httpx.Response) -> str:
    assert r.status_code == 303, r.text
    return parse_qs(urlsplit(r.headers["location"]).query)["code"][0]


async def redeem(app: AppHarness, code: str, verifier: str = VERIFIER, **headers: str) -> Any:
    return await app.client.post(
        "/auth/v1/token?grant_type=pkce",
        json={"auth_code": code, "code_verifier": verifier},
        headers=headers or API_VERSION,
    )


@pytest.fixture
async def user(app_client: AppHarness) -> str:
    email: str = (await app_client.signup())["user"]["email"]
    return email


# The page -----------------------------------------------------------------------------------


async def test_get_serves_an_accessible_form_under_a_strict_csp(app_client: AppHarness) -> None:
    r = await app_client.client.get("/auth/v1/authorize", params=flow_params(), headers=HTML)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "script-src" not in csp and "'unsafe-inline'" not in csp
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["referrer-policy"] == "same-origin"
    page = r.text
    assert "<script" not in page and "<style" not in page and " style=" not in page
    assert '<label for="email">' in page and '<label for="password">' in page
    assert 'autocomplete="current-password"' in page
    assert f'name="code_challenge" value="{CHALLENGE}"' in page
    assert 'name="redirect_to" value="/app/done"' in page
    css = await app_client.client.get("/auth/v1/authorize/style.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"provider": None}, "provider is required"),
        ({"provider": "github"}, "provider not supported"),
        ({"code_challenge": None, "code_challenge_method": None}, "needs PKCE"),
        ({"code_challenge_method": None}, "requires code_challenge_method"),
        ({"code_challenge_method": "S512"}, "method not supported"),
        ({"code_challenge": "short"}, "between 43 and 128"),
        ({"code_challenge": "=" * 43}, "alphanumeric"),
        ({"redirect_to": "https://evil.example/cb"}, "redirect_to is not allowed"),
        ({"redirect_to": "//evil.example/cb"}, "redirect_to is not allowed"),
        ({"redirect_to": "/\\evil.example"}, "redirect_to is not allowed"),
        ({"redirect_to": "javascript:alert(1)"}, "redirect_to is not allowed"),
        ({"redirect_to": "http://auth.test.evil.example/"}, "redirect_to is not allowed"),
        ({"redirect_to": "http://user:pw@auth.test/"}, "redirect_to is not allowed"),
        ({"redirect_to": "/%2F%2Fevil.example"}, "redirect_to is not allowed"),
    ],
)
async def test_bad_parameters_are_a_400_in_both_forms(
    app_client: AppHarness, overrides: dict[str, str | None], message: str
) -> None:
    params = flow_params(**overrides)
    r = await app_client.client.get("/auth/v1/authorize", params=params, headers=API_VERSION)
    assert r.status_code == 400
    assert r.json()["code"] == "validation_failed" and message in r.json()["message"]
    page = await app_client.client.get("/auth/v1/authorize", params=params, headers=HTML)
    assert page.status_code == 400
    assert page.headers["x-sb-error-code"] == "validation_failed"
    assert page.headers["content-type"].startswith("text/html")
    assert message in page.text.replace("&#x27;", "'")
    assert page.headers["cache-control"] == "no-store"


async def test_a_parameter_given_twice_is_refused(app_client: AppHarness) -> None:
    query = urlencode([*flow_params().items(), ("redirect_to", "https://evil.example")])
    r = await app_client.client.get(f"/auth/v1/authorize?{query}", headers=API_VERSION)
    assert r.status_code == 400 and "more than once" in r.json()["message"]


# Signing in ---------------------------------------------------------------------------------


async def test_sign_in_redirects_with_a_code_that_redeems_once(
    app_client: AppHarness, user: str
) -> None:
    r = await authorize(app_client, user)
    location = r.headers["location"]
    assert location.startswith(f"{OWN}/app/done?code=")
    assert r.headers["cache-control"] == "no-store"
    code = code_of(r)
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", code
    )

    session = await redeem(app_client, code)
    assert session.status_code == 200
    body = session.json()
    password_grant = await app_client.client.post(
        "/auth/v1/token?grant_type=password", json={"email": user, "password": PASSWORD}
    )
    assert set(body) == set(password_grant.json())  # the same Session JSON
    assert body["user"]["email"] == user and body["token_type"] == "bearer"

    again = await redeem(app_client, code)
    assert (again.status_code, again.json()["code"]) == (404, "flow_state_not_found")


async def test_existing_query_parameters_and_fragment_are_kept(
    app_client: AppHarness, user: str
) -> None:
    r = await authorize(app_client, user, redirect_to="/cb?next=%2Freports&code=stale&a=1#top")
    parts = urlsplit(r.headers["location"])
    assert parts.path == "/cb" and parts.fragment == "top"
    assert parts.query.startswith("next=%2Freports&a=1&code=")
    assert parse_qs(parts.query)["code"] != ["stale"]


async def test_absolute_targets_on_the_own_origin_or_an_allowed_one(
    make_app: Callable[..., AppHarness],
) -> None:
    app = make_app(allowed_origins=["https://App.example:443"])
    async with app.client:
        email = (await app.signup())["user"]["email"]
        for target in ("http://auth.test/x?y=1", "https://app.example/cb"):
            r = await authorize(app, email, redirect_to=target)
            assert r.headers["location"].startswith(f"{target}{'&' if '?' in target else '?'}code=")
        page = await app.client.get(
            "/auth/v1/authorize", params=flow_params(redirect_to="https://app.example/cb")
        )
        assert "form-action 'self' https://app.example;" in page.headers["content-security-policy"]
        refused = await authorize(app, email, redirect_to="https://other.example/cb")
        assert refused.status_code == 400


async def test_no_redirect_to_goes_to_the_servers_root(app_client: AppHarness, user: str) -> None:
    r = await authorize(app_client, user, redirect_to=None)
    assert r.headers["location"].startswith(f"{OWN}/?code=")


async def test_wrong_password_shows_the_page_again_without_the_password(
    app_client: AppHarness, user: str
) -> None:
    r = await authorize(app_client, user, password="Wr0ng-Secret-123")
    assert r.status_code == 400
    assert r.headers["x-sb-error-code"] == "invalid_credentials"
    assert "Invalid login credentials" in r.text and 'role="alert"' in r.text
    assert f'value="{user}"' in r.text
    assert "Wr0ng-Secret-123" not in r.text
    unknown = await authorize(app_client, "nobody@example.com")
    assert unknown.status_code == 400 and "Invalid login credentials" in unknown.text
    json_answer = await app_client.client.post(
        "/auth/v1/authorize",
        data={**flow_params(), "email": user, "password": "nope"},
        headers=API_VERSION,
    )
    assert json_answer.json()["code"] == "invalid_credentials"


async def test_the_form_shares_the_password_rate_limits(
    make_app: Callable[..., AppHarness],
) -> None:
    app = make_app(rate_limit_password_per_email=2)
    async with app.client:
        email = (await app.signup())["user"]["email"]
        for _ in range(2):
            assert (await authorize(app, email, password="wrong!")).status_code == 400
        limited = await authorize(app, email)
        assert limited.status_code == 429 and "retry-after" in limited.headers
        assert limited.headers["x-sb-error-code"] == "over_request_rate_limit"
        grant = await app.client.post(
            "/auth/v1/token?grant_type=password", json={"email": email, "password": PASSWORD}
        )
        assert grant.status_code == 429


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        (None, True),
        (OWN, True),
        ("http://auth.test:8080", False),
        ("https://evil.example", False),
        ("null", False),
    ],
)
async def test_the_form_checks_origin(
    app_client: AppHarness, user: str, origin: str | None, allowed: bool
) -> None:
    r = await authorize(app_client, user, headers={"Origin": origin} if origin else None)
    if allowed:
        assert r.status_code == 303
    else:
        assert r.status_code == 400 and "allowed origin" in r.text


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b'{"email": "a@b.c"}', "application/json"),
        (b"email=%ff&password=x", "application/x-www-form-urlencoded"),
        ("email=é".encode(), "application/x-www-form-urlencoded"),
        (b"&".join(b"f%d=1" % i for i in range(50)), "application/x-www-form-urlencoded"),
        (b"email=a@b.c&email=c@d.e", "application/x-www-form-urlencoded"),
    ],
)
async def test_unreadable_forms_are_a_400(
    app_client: AppHarness, content: bytes, content_type: str
) -> None:
    r = await app_client.client.post(
        "/auth/v1/authorize", content=content, headers={"Content-Type": content_type, **HTML}
    )
    assert r.status_code == 400 and r.headers["x-sb-error-code"] == "validation_failed"


async def test_missing_email_or_password_shows_the_page_with_a_400(
    app_client: AppHarness, user: str
) -> None:
    r = await app_client.client.post(
        "/auth/v1/authorize", data={**flow_params(), "email": user}, headers=HTML
    )
    assert r.status_code == 400 and '<form method="post"' in r.text


# The grant ----------------------------------------------------------------------------------


async def test_pkce_grant_refusals(app_client: AppHarness, user: str) -> None:
    code = code_of(await authorize(app_client, user))
    wrong = await redeem(app_client, code, "x" * 50)
    assert (wrong.status_code, wrong.json()["code"]) == (400, "bad_code_verifier")
    assert wrong.headers["x-sb-error-code"] == "bad_code_verifier"
    legacy = await redeem(app_client, code, "x" * 50, **{"Accept": "application/json"})
    assert legacy.json() == {
        "code": 400,
        "error_code": "bad_code_verifier",
        "msg": "Code verifier does not match the code challenge",
    }
    unknown = await redeem(app_client, "00000000-0000-4000-8000-000000000000")
    assert (unknown.status_code, unknown.json()["code"]) == (404, "flow_state_not_found")
    missing: list[dict[str, object]] = [
        {},
        {"auth_code": code},
        {"code_verifier": VERIFIER},
        {"auth_code": 5, "code_verifier": VERIFIER},
    ]
    for body in missing:
        r = await app_client.client.post(
            "/auth/v1/token?grant_type=pkce", json=body, headers=API_VERSION
        )
        assert (r.status_code, r.json()["code"]) == (400, "validation_failed")
    # the wrong verifier did not use the code up
    assert (await redeem(app_client, code)).status_code == 200


async def test_pkce_grant_expired(app_client: AppHarness, user: str) -> None:
    code = code_of(await authorize(app_client, user))
    app_client.clock.advance(FLOW_STATE_LIFETIME + 1)
    r = await redeem(app_client, code)
    assert (r.status_code, r.json()["code"]) == (422, "flow_state_expired")


async def test_plain_method(app_client: AppHarness, user: str) -> None:
    verifier = "p" * 43
    code = code_of(
        await authorize(app_client, user, code_challenge=verifier, code_challenge_method="PLAIN")
    )
    assert (await redeem(app_client, code, "q" * 43)).json()["code"] == "bad_code_verifier"
    assert (await redeem(app_client, code, verifier)).status_code == 200


async def test_logs_carry_reasons_never_secrets(
    app_client: AppHarness, user: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="sessionkeeper")
    await authorize(app_client, user, password="Wr0ng-Secret-123")
    await app_client.client.get(
        "/auth/v1/authorize", params=flow_params(redirect_to="https://evil.example")
    )
    code = code_of(await authorize(app_client, user))
    await redeem(app_client, code, "not-the-verifier-" * 3)
    session = (await redeem(app_client, code)).json()
    text = " ".join(str(vars(r)) for r in caplog.records)
    for secret in (code, VERIFIER, PASSWORD, "Wr0ng-Secret-123", session["access_token"],
                   session["refresh_token"]):  # fmt: skip
        assert secret not in text
    reasons = [getattr(r, "reason", None) for r in caplog.records]
    assert {"invalid_credentials", "bad_parameters", "bad_code_verifier"} <= set(reasons)
