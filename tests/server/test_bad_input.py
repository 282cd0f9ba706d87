"""Bad input gets the documented 4xx, never a 5xx.

Why this exists: auth-js and supabase-py retry a refresh on 5xx and end the session on any 4xx,
so the status class is part of the wire contract. A crash on junk input (a traceback, a 500)
both hides a bug and answers "retry" where the contract says "refused". Every malformed request
below must get its documented status and error code, in both error formats (with and without
``X-Supabase-Api-Version: 2024-01-01``) and in the ``x-sb-error-code`` header; a hypothesis test
then throws arbitrary bodies at ``/signup`` and ``/token`` and checks that nothing is a 5xx and
every refusal carries a catalogued code.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sessionkeeper.core.keys import SigningKey
from sessionkeeper.core.validation import MAX_METADATA_DEPTH
from sessionkeeper.errors import CATALOGUE
from sessionkeeper.server.limits import MAX_BODY_BYTES
from tests.conftest import API_VERSION, PASSWORD, AppHarness

AUTH = "/auth/v1"
TAKEN_EMAIL = "taken@example.com"
UNKNOWN_REFRESH_TOKEN = "A" * 21 + "-_" + "b" * 20  # the 43-char base64url shape, never issued
SQL = "' OR 1=1 --"

Setup = Callable[[AppHarness], Awaitable[dict[str, str]]]


@dataclass(frozen=True)
class Chunked:
    """A body streamed without Content-Length (httpx sends an async generator chunked)."""

    chunk: bytes
    count: int

    async def stream(self) -> AsyncIterator[bytes]:
        for _ in range(self.count):
            yield self.chunk


Body = bytes | dict[str, Any] | Chunked | None


@dataclass(frozen=True)
class Case:
    """One malformed request and the refusal the contract documents for it."""

    id: str
    method: str
    path: str
    status: int
    code: str
    body: Body = None  # dict: sent as JSON (non-ASCII escaped, so lone surrogates survive)
    headers: Mapping[str, str] = field(default_factory=dict)
    setup: Setup | None = None  # runs first; returns extra request headers (e.g. a bearer)
    expect: Mapping[str, Any] = field(default_factory=dict)  # further fields of the error body


# Setups ------------------------------------------------------------------------------------


async def _taken(h: AppHarness) -> dict[str, str]:
    await h.signup(TAKEN_EMAIL)
    return {}


async def _bearer(h: AppHarness) -> dict[str, str]:
    session = await h.signup()
    return {"Authorization": f"Bearer {session['access_token']}"}


async def _genuine(h: AppHarness) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """A real access token with its header and claims, to forge look-alikes from."""
    token = (await h.signup())["access_token"]
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    return token, header, claims


def _as_bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _expired(h: AppHarness) -> dict[str, str]:
    headers = await _bearer(h)
    h.clock.advance(3601)
    return headers


async def _foreign_key(h: AppHarness) -> dict[str, str]:
    _, _, claims = await _genuine(h)
    return _as_bearer(SigningKey.generate("ES256").sign(claims))


async def _foreign_key_our_kid(h: AppHarness) -> dict[str, str]:
    _, header, claims = await _genuine(h)
    return _as_bearer(SigningKey.generate("ES256", kid=header["kid"]).sign(claims))


async def _alg_none(h: AppHarness) -> dict[str, str]:
    _, header, claims = await _genuine(h)
    return _as_bearer(jwt.encode(claims, "", algorithm="none", headers={"kid": header["kid"]}))


async def _alg_hs256(h: AppHarness) -> dict[str, str]:
    _, header, claims = await _genuine(h)
    forged = jwt.encode(claims, b"k" * 32, algorithm="HS256", headers={"kid": header["kid"]})
    return _as_bearer(forged)


async def _tampered(h: AppHarness) -> dict[str, str]:
    token, _, claims = await _genuine(h)
    head, _, signature = token.split(".")
    payload = json.dumps({**claims, "sub": str(uuid.uuid4())}).encode()
    body = base64.urlsafe_b64encode(payload).rstrip(b"=").decode()
    return _as_bearer(f"{head}.{body}.{signature}")


# The table ---------------------------------------------------------------------------------

EMAIL_OK = "someone@example.com"
SIGNUP_OK: dict[str, Any] = {"email": EMAIL_OK, "password": PASSWORD}


def _signup(case_id: str, body: Body, status: int, code: str, **kw: Any) -> Case:
    return Case(case_id, "POST", "/signup", status, code, body, **kw)


def _grant(grant: str, case_id: str, body: Body, status: int, code: str, **kw: Any) -> Case:
    return Case(case_id, "POST", f"/token?grant_type={grant}", status, code, body, **kw)


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def _nested_data(depth: int) -> bytes:
    """A sign-up whose ``data`` nests ``depth`` containers deep (``data`` itself counts)."""
    inner = _nested(depth - 1)
    return b'{"email": "deep@example.com", "password": "secret12", "data": {"x": ' + inner + b"}}"


_WRONG_TYPES: dict[str, Any] = {
    "int": 42,
    "list": ["a@example.com"],
    "object": {"address": "a@example.com"},
    "null": None,
    "bool": True,
}

CASES: list[Case] = [
    # Body that is not a JSON object ------------------------------------------------------
    _signup("invalid-json", b'{"email": "a@example.com",', 400, "bad_json"),
    _signup("json-array", b'[{"email": "a@example.com", "password": "secret12"}]', 400, "bad_json"),
    _signup("json-string", b'"a@example.com"', 400, "bad_json"),
    _signup("json-number", b"42", 400, "bad_json"),
    _signup("json-null", b"null", 400, "bad_json"),
    _signup("invalid-utf8", b'{"email": "\xff\xfe@example.com", "password": "x"}', 400, "bad_json"),
    _signup("utf8-bom", b'\xef\xbb\xbf{"email": "a@example.com"}', 400, "bad_json"),
    _signup("nested-100000-arrays", _nested(100_000), 400, "bad_json"),
    _signup("nested-100000-in-data", _nested_data(100_000), 400, "bad_json"),
    _signup("nan-literal", b'{"email": "a@example.com", "password": NaN}', 400, "bad_json"),
    _signup("infinity-literal", b'{"email": "a@x.io", "data": {"n": -Infinity}}', 400, "bad_json"),
    _signup("int-over-4300-digits", b'{"data": {"n": ' + b"7" * 5000 + b"}}", 400, "bad_json"),
    _grant("password", "token-invalid-json", b"{", 400, "bad_json"),
    _grant("refresh_token", "token-json-array", b'["refresh"]', 400, "bad_json"),
    # Missing, empty and wrongly typed fields ---------------------------------------------
    _signup("empty-body", b"", 400, "validation_failed"),
    _signup("empty-object", {}, 400, "validation_failed"),
    _signup("missing-email", {"password": PASSWORD}, 400, "validation_failed"),
    _signup("missing-password", {"email": EMAIL_OK}, 400, "validation_failed"),
    _signup("empty-email", {"email": "", "password": PASSWORD}, 400, "validation_failed"),
    _signup("empty-password", {"email": EMAIL_OK, "password": ""}, 400, "validation_failed"),
    *(
        _signup(f"email-{name}", {"email": value, "password": PASSWORD}, 400, "validation_failed")
        for name, value in _WRONG_TYPES.items()
    ),
    *(
        _signup(
            f"password-{name}", {"email": EMAIL_OK, "password": value}, 400, "validation_failed"
        )
        for name, value in _WRONG_TYPES.items()
    ),
    _signup(
        "email-overflows-to-inf", b'{"email": 1e400, "password": "x"}', 400, "validation_failed"
    ),
    # Values of the right type that are still wrong ---------------------------------------
    _signup("email-blank", {"email": "   ", "password": PASSWORD}, 400, "email_address_invalid"),
    _signup(
        "email-without-at",
        {**SIGNUP_OK, "email": "someone.example.com"},
        400,
        "email_address_invalid",
    ),
    _signup(
        "email-two-ats", {**SIGNUP_OK, "email": "a@b@example.com"}, 400, "email_address_invalid"
    ),
    _signup(
        "email-256-chars",
        {**SIGNUP_OK, "email": "a" * 244 + "@example.com"},
        400,
        "email_address_invalid",
    ),
    _signup("password-1025-chars", {**SIGNUP_OK, "password": "p" * 1025}, 400, "validation_failed"),
    _signup(
        "password-too-short",
        {**SIGNUP_OK, "password": "12345"},
        422,
        "weak_password",
        expect={"weak_password": {"reasons": ["length"]}},
    ),
    _signup(
        "email-already-registered",
        {"email": TAKEN_EMAIL, "password": PASSWORD},
        422,
        "user_already_exists",
        setup=_taken,
    ),
    _signup(
        "email-registered-other-case",
        {"email": "  TAKEN@Example.COM ", "password": "secret9"},
        422,
        "user_already_exists",
        setup=_taken,
    ),
    _signup("sql-email", {"email": SQL, "password": PASSWORD}, 400, "email_address_invalid"),
    # Odd Unicode ---------------------------------------------------------------------------
    _signup(
        "email-lone-surrogate",
        {"email": "\ud800@example.com", "password": PASSWORD},
        400,
        "validation_failed",
    ),
    _signup(
        "password-lone-surrogate",
        {"email": EMAIL_OK, "password": "secret\udfff"},
        400,
        "validation_failed",
    ),
    _signup(
        "data-value-lone-surrogate",
        {**SIGNUP_OK, "data": {"name": "\ud800"}},
        400,
        "validation_failed",
    ),
    _signup(
        "data-key-lone-surrogate", {**SIGNUP_OK, "data": {"\udbff": 1}}, 400, "validation_failed"
    ),
    _signup(
        "email-nul", {**SIGNUP_OK, "email": "a\x00b@example.com"}, 400, "email_address_invalid"
    ),
    _signup(
        "email-rtl-override",
        {**SIGNUP_OK, "email": "moc.elpmaxe\u202e@example.com"},
        400,
        "email_address_invalid",
    ),
    _signup(
        "email-zero-width-space",
        {**SIGNUP_OK, "email": "admin\u200b@example.com"},
        400,
        "email_address_invalid",
    ),
    _signup(
        "email-zero-width-joiner",
        {**SIGNUP_OK, "email": "ad\u200dmin@example.com"},
        400,
        "email_address_invalid",
    ),
    _signup(
        "email-bom-inside",
        {**SIGNUP_OK, "email": "admin@exam\ufeffple.com"},
        400,
        "email_address_invalid",
    ),
    # User metadata -------------------------------------------------------------------------
    _signup("data-list", {**SIGNUP_OK, "data": [1, 2]}, 400, "validation_failed"),
    _signup("data-string", {**SIGNUP_OK, "data": "name=x"}, 400, "validation_failed"),
    _signup("data-number", {**SIGNUP_OK, "data": 7}, 400, "validation_failed"),
    _signup(
        "data-overflows-to-inf",
        b'{"email": "a@example.com", "password": "secret12", "data": {"n": 1e400}}',
        400,
        "validation_failed",
    ),
    _signup(
        "data-over-16kb", {**SIGNUP_OK, "data": {"bio": "x" * 17_000}}, 400, "validation_failed"
    ),
    _signup(
        f"data-nested-{MAX_METADATA_DEPTH + 1}",
        _nested_data(MAX_METADATA_DEPTH + 1),
        400,
        "validation_failed",
    ),
    _signup("data-nested-500", _nested_data(500), 400, "validation_failed"),
    # Grant types ---------------------------------------------------------------------------
    _grant("magic_link", "grant-unknown", SIGNUP_OK, 400, "unsupported_grant_type"),
    _grant("PASSWORD", "grant-wrong-case", SIGNUP_OK, 400, "unsupported_grant_type"),
    _grant(SQL, "grant-sql", SIGNUP_OK, 400, "unsupported_grant_type"),
    Case("grant-missing", "POST", "/token", 400, "validation_failed", SIGNUP_OK),
    _grant("", "grant-empty", SIGNUP_OK, 400, "validation_failed"),
    # Password grant ------------------------------------------------------------------------
    _grant(
        "password",
        "signin-sql-email",
        {"email": SQL, "password": PASSWORD},
        400,
        "email_address_invalid",
    ),
    _grant(
        "password",
        "signin-sql-shaped-email",
        {"email": "admin'--@example.com", "password": SQL},
        400,
        "invalid_credentials",
    ),
    _grant(
        "password",
        "signin-sql-password",
        {"email": TAKEN_EMAIL, "password": SQL},
        400,
        "invalid_credentials",
        setup=_taken,
    ),
    _grant(
        "password",
        "signin-email-list",
        {"email": [TAKEN_EMAIL], "password": PASSWORD},
        400,
        "validation_failed",
        setup=_taken,
    ),
    _grant(
        "password",
        "signin-password-object",
        {"email": TAKEN_EMAIL, "password": {}},
        400,
        "validation_failed",
        setup=_taken,
    ),
    _grant("password", "signin-missing-password", {"email": TAKEN_EMAIL}, 400, "validation_failed"),
    _grant(
        "password",
        "signin-zero-width-email",
        {"email": "taken\u200b@example.com", "password": PASSWORD},
        400,
        "email_address_invalid",
        setup=_taken,
    ),
    # Refresh grant -------------------------------------------------------------------------
    _grant("refresh_token", "refresh-missing", {}, 400, "validation_failed"),
    _grant("refresh_token", "refresh-null", {"refresh_token": None}, 400, "validation_failed"),
    _grant("refresh_token", "refresh-empty", {"refresh_token": ""}, 400, "validation_failed"),
    _grant("refresh_token", "refresh-int", {"refresh_token": 12345}, 400, "validation_failed"),
    _grant(
        "refresh_token",
        "refresh-list",
        {"refresh_token": [UNKNOWN_REFRESH_TOKEN]},
        400,
        "validation_failed",
    ),
    _grant(
        "refresh_token", "refresh-garbage", {"refresh_token": "garbage"}, 400, "validation_failed"
    ),
    _grant("refresh_token", "refresh-sql", {"refresh_token": SQL}, 400, "validation_failed"),
    _grant(
        "refresh_token",
        "refresh-44-chars",
        {"refresh_token": UNKNOWN_REFRESH_TOKEN + "A"},
        400,
        "validation_failed",
    ),
    _grant(
        "refresh_token",
        "refresh-nul",
        {"refresh_token": UNKNOWN_REFRESH_TOKEN[:42] + "\x00"},
        400,
        "validation_failed",
    ),
    _grant(
        "refresh_token",
        "refresh-lone-surrogate",
        {"refresh_token": UNKNOWN_REFRESH_TOKEN[:42] + "\ud800"},
        400,
        "validation_failed",
    ),
    _grant(
        "refresh_token",
        "refresh-well-formed-unknown",
        {"refresh_token": UNKNOWN_REFRESH_TOKEN},
        400,
        "refresh_token_not_found",
    ),
    # Size ----------------------------------------------------------------------------------
    _signup(
        "oversize-content-length",
        b'{"email": "a@example.com", "password": "' + b"x" * MAX_BODY_BYTES + b'"}',
        413,
        "request_entity_too_large",
    ),
    _signup(
        "oversize-chunked",
        Chunked(b" " * 65_536, MAX_BODY_BYTES // 65_536 + 1),
        413,
        "request_entity_too_large",
    ),
    _grant(
        "refresh_token",
        "oversize-token-body",
        b"[" * (MAX_BODY_BYTES + 1),
        413,
        "request_entity_too_large",
    ),
    _signup(
        "content-length-5000-digits",
        b"{}",
        413,
        "request_entity_too_large",
        headers={"Content-Length": "9" * 5000},
    ),
    _signup(
        "content-length-lies-big",
        b"{}",
        413,
        "request_entity_too_large",
        headers={"Content-Length": str(MAX_BODY_BYTES + 1)},
    ),
    _grant(
        "password",
        "body-of-exactly-1mb-is-read",
        b'{"email": "a@example.com", "password": "secret12"}'.ljust(MAX_BODY_BYTES),
        400,
        "invalid_credentials",
    ),
    # Bearer tokens -------------------------------------------------------------------------
    Case("user-no-authorization", "GET", "/user", 401, "no_authorization"),
    Case(
        "user-basic-auth",
        "GET",
        "/user",
        401,
        "no_authorization",
        headers={"Authorization": "Basic dXNlcjpwYXNz"},
    ),
    Case(
        "user-empty-bearer",
        "GET",
        "/user",
        401,
        "no_authorization",
        headers={"Authorization": "Bearer "},
    ),
    Case(
        "user-garbage-bearer",
        "GET",
        "/user",
        403,
        "bad_jwt",
        headers={"Authorization": "Bearer not.a.jwt"},
    ),
    Case(
        "user-sql-bearer",
        "GET",
        "/user",
        403,
        "bad_jwt",
        headers={"Authorization": f"Bearer {SQL}"},
    ),
    Case(
        "user-oversize-bearer",
        "GET",
        "/user",
        403,
        "bad_jwt",
        headers={"Authorization": "Bearer " + "e" * 20_000},
    ),
    Case("user-jwt-foreign-key", "GET", "/user", 403, "bad_jwt", setup=_foreign_key),
    Case(
        "user-jwt-foreign-key-our-kid", "GET", "/user", 403, "bad_jwt", setup=_foreign_key_our_kid
    ),
    Case("user-jwt-alg-none", "GET", "/user", 403, "bad_jwt", setup=_alg_none),
    Case("user-jwt-alg-hs256-our-kid", "GET", "/user", 403, "bad_jwt", setup=_alg_hs256),
    Case("user-jwt-tampered-payload", "GET", "/user", 403, "bad_jwt", setup=_tampered),
    Case("user-jwt-expired", "GET", "/user", 403, "bad_jwt", setup=_expired),
    Case("put-user-no-authorization", "PUT", "/user", 401, "no_authorization", {"data": {}}),
    Case("put-user-invalid-json", "PUT", "/user", 400, "bad_json", b"{nope", setup=_bearer),
    Case(
        "put-user-data-list", "PUT", "/user", 400, "validation_failed", {"data": []}, setup=_bearer
    ),
    Case(
        "put-user-email-rtl",
        "PUT",
        "/user",
        400,
        "email_address_invalid",
        {"email": "x\u202e@example.com"},
        setup=_bearer,
    ),
    Case(
        "put-user-data-nested-500",
        "PUT",
        "/user",
        400,
        "validation_failed",
        b'{"data": {"x": ' + _nested(499) + b"}}",
        setup=_bearer,
    ),
    # Logout --------------------------------------------------------------------------------
    Case(
        "logout-bad-scope",
        "POST",
        "/logout?scope=everyone",
        400,
        "validation_failed",
        setup=_bearer,
    ),
    Case(
        "logout-sql-scope", "POST", f"/logout?scope={SQL}", 400, "validation_failed", setup=_bearer
    ),
    Case("logout-no-authorization", "POST", "/logout", 401, "no_authorization"),
    Case(
        "logout-garbage-bearer",
        "POST",
        "/logout",
        403,
        "bad_jwt",
        headers={"Authorization": "Bearer garbage"},
    ),
    # Routing -------------------------------------------------------------------------------
    Case("get-signup", "GET", "/signup", 405, "method_not_allowed"),
    Case("put-token", "PUT", "/token?grant_type=password", 405, "method_not_allowed", SIGNUP_OK),
    Case("delete-user", "DELETE", "/user", 405, "method_not_allowed", setup=_bearer),
    Case("post-settings", "POST", "/settings", 405, "method_not_allowed", {}),
    Case("unknown-path", "POST", "/admin/users", 404, "not_found", SIGNUP_OK),
    Case("path-traversal", "GET", "/%2e%2e/%2e%2e/etc/passwd", 404, "not_found"),
]


def _ids_are_unique() -> None:
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids)), "duplicate case ids"


_ids_are_unique()


# Helpers -----------------------------------------------------------------------------------


def _content(body: Body) -> bytes | AsyncIterator[bytes]:
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, Chunked):
        return body.stream()
    return json.dumps(body).encode()  # ensure_ascii: lone surrogates travel as \\ud800


def assert_refusal(r: httpx.Response, status: int, code: str, *, versioned: bool) -> dict[str, Any]:
    """``r`` is the documented refusal, in the error format the request asked for."""
    assert r.status_code == status, r.text[:500]
    assert CATALOGUE[code].status == status
    assert r.headers["x-sb-error-code"] == code
    assert r.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = r.json()
    if versioned:
        assert body["code"] == code
        assert isinstance(body["message"], str)
        assert body["message"]
        assert "error_code" not in body
        assert r.headers["x-supabase-api-version"] == API_VERSION["X-Supabase-Api-Version"]
    else:
        assert body["code"] == status
        assert body["error_code"] == code
        assert isinstance(body["msg"], str)
        assert body["msg"]
        assert "message" not in body
        assert "x-supabase-api-version" not in r.headers
    return body


def assert_catalogued(r: httpx.Response) -> None:
    """Any refusal, in either format: a catalogued code that agrees with status and header."""
    assert r.status_code < 500, r.text[:500]
    if r.status_code < 400:
        return
    code = r.headers["x-sb-error-code"]
    assert code in CATALOGUE
    assert CATALOGUE[code].status == r.status_code
    body = r.json()
    assert code in (body.get("code"), body.get("error_code"))


# The table test ----------------------------------------------------------------------------


@pytest.mark.parametrize("versioned", [True, False], ids=["api-2024", "legacy"])
@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
async def test_malformed_request_gets_documented_refusal(
    app_client: AppHarness, case: Case, versioned: bool
) -> None:
    headers = {"Content-Type": "application/json", **case.headers}
    if case.setup is not None:
        headers.update(await case.setup(app_client))
    if versioned:
        headers.update(API_VERSION)
    r = await app_client.client.request(
        case.method, AUTH + case.path, content=_content(case.body), headers=headers
    )
    body = assert_refusal(r, case.status, case.code, versioned=versioned)
    for key, value in case.expect.items():
        assert body[key] == value


def test_table_is_big_enough() -> None:
    assert len(CASES) >= 30


# Regressions and round trips next to the table ---------------------------------------------


@pytest.mark.parametrize("depth", range(900, 1001, 10))
async def test_metadata_near_the_parser_limit_is_refused(
    app_client: AppHarness, depth: int
) -> None:
    """Nesting the parser still accepts used to reach json.dumps and die with RecursionError
    (a 500, after the user row was written); now it is refused before anything is stored."""
    r = await app_client.client.post(f"{AUTH}/signup", content=_nested_data(depth))
    assert r.status_code == 400
    assert r.headers["x-sb-error-code"] in {"bad_json", "validation_failed"}


async def test_metadata_at_the_depth_limit_is_accepted(app_client: AppHarness) -> None:
    r = await app_client.client.post(
        f"{AUTH}/signup", content=_nested_data(MAX_METADATA_DEPTH), headers=API_VERSION
    )
    assert r.status_code == 200, r.text


async def test_sql_looking_strings_are_just_data(app_client: AppHarness) -> None:
    """An address that is valid *and* looks like SQL signs up, signs in and harms nothing."""
    email = "robert');drop/**/table/**/users;--@example.com"
    data = {"name": "'; DELETE FROM sessions; --", "note": SQL}
    r = await app_client.client.post(
        f"{AUTH}/signup", json={"email": email, "password": SQL, "data": data}, headers=API_VERSION
    )
    assert r.status_code == 200, r.text
    assert r.json()["user"]["user_metadata"] == data
    r = await app_client.client.post(
        f"{AUTH}/token?grant_type=password",
        json={"email": email, "password": SQL},
        headers=API_VERSION,
    )
    assert r.status_code == 200, r.text
    assert r.json()["user"]["email"] == email
    await app_client.signup()  # the users table is still there


@pytest.mark.parametrize("version", ["2024-02-30", "2023-12-31", "next-week", "2024-1-1"])
async def test_unusable_api_version_falls_back_to_legacy_errors(
    app_client: AppHarness, version: str
) -> None:
    r = await app_client.client.post(
        f"{AUTH}/token?grant_type=nope", json={}, headers={"X-Supabase-Api-Version": version}
    )
    assert_refusal(r, 400, "unsupported_grant_type", versioned=False)


@pytest.mark.parametrize("path", ["/", "/auth", "/auth/v2/signup", "/signup"])
async def test_paths_outside_the_mount_are_404(app_client: AppHarness, path: str) -> None:
    r = await app_client.client.post(path, json=SIGNUP_OK, headers=API_VERSION)
    assert_refusal(r, 404, "not_found", versioned=True)


# Fuzzing -----------------------------------------------------------------------------------

FUZZ_EMAIL = "fuzz@example.com"
LIVE_REFRESH = "@@live-refresh-token@@"  # replaced by a real refresh token before sending

_SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
_TRICKY = st.sampled_from("\x00\u202e\u200b\u200d\ufeff'\"\\@.;-%_")
_TEXT = st.text(st.one_of(st.characters(), _SURROGATES, _TRICKY), max_size=40)
_STRINGS = st.one_of(
    _TEXT,
    st.emails(),
    st.from_regex(r"[A-Za-z0-9_-]{43}", fullmatch=True),
    st.sampled_from([FUZZ_EMAIL, PASSWORD, LIVE_REFRESH, SQL, "admin'--@example.com", ""]),
)
_JSON: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | _STRINGS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_TEXT, children, max_size=4),
    max_leaves=16,
)
_FIELDS = st.sampled_from(
    ["email", "password", "refresh_token", "data", "gotrue_meta_security", "code_challenge"]
)
_OBJECTS = st.dictionaries(st.one_of(_FIELDS, _TEXT), _JSON, max_size=6)
# Bodies shaped like a client's, so that the fuzz also reaches the checks behind the type checks
# (strength, duplicates, credentials, token lookup and rotation), not only bad_json.
_SHAPED = st.fixed_dictionaries(
    {
        "email": st.one_of(
            st.sampled_from([FUZZ_EMAIL, " FUZZ@Example.COM", "admin'--@example.com", SQL]),
            st.emails(),
            _STRINGS,
            _JSON,
        ),
        "password": st.one_of(
            st.sampled_from([PASSWORD, SQL, "12345", ""]), st.text(max_size=12), _STRINGS, _JSON
        ),
        "refresh_token": st.one_of(
            st.just(LIVE_REFRESH), st.from_regex(r"[A-Za-z0-9_-]{43}", fullmatch=True), _JSON
        ),
    },
    optional={
        "data": st.one_of(st.dictionaries(_TEXT, _JSON, max_size=4), _JSON),
        "gotrue_meta_security": _JSON,
        "code_challenge": st.none(),
        "code_challenge_method": st.none(),
    },
)


def _encode(value: Any) -> bytes:
    # allow_nan: NaN/Infinity go out as the non-JSON literals; ensure_ascii keeps surrogates.
    return json.dumps(value, allow_nan=True).encode()


BODIES: st.SearchStrategy[bytes] = st.one_of(
    _SHAPED.map(_encode),
    _SHAPED.map(_encode),
    _OBJECTS.map(_encode),
    _JSON.map(_encode),
    st.tuples(_SHAPED.map(_encode), st.integers(0, 120)).map(lambda t: t[0][: t[1]]),
    st.binary(max_size=200),
)


@dataclass
class SyncApp:
    """The in-process app driven from synchronous code (hypothesis and async fixtures mix badly):
    one event loop for the whole test, one ``run`` per request."""

    runner: asyncio.Runner
    harness: AppHarness
    refresh_token: str

    def post(self, path: str, content: bytes, headers: dict[str, str]) -> httpx.Response:
        content = content.replace(LIVE_REFRESH.encode(), self.refresh_token.encode())
        return self.runner.run(self.harness.client.post(path, content=content, headers=headers))


@pytest.fixture
def sync_app(make_app: Callable[..., AppHarness]) -> Iterator[SyncApp]:
    harness = make_app()
    with asyncio.Runner() as runner:
        session = runner.run(harness.signup(FUZZ_EMAIL))
        try:
            yield SyncApp(runner, harness, session["refresh_token"])
        finally:
            runner.run(harness.client.aclose())


@pytest.mark.parametrize(
    "path", ["/signup", "/token?grant_type=password", "/token?grant_type=refresh_token"]
)
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=BODIES, versioned=st.booleans())
def test_fuzzed_bodies_never_get_a_5xx(
    sync_app: SyncApp, path: str, body: bytes, versioned: bool
) -> None:
    headers = {"Content-Type": "application/json", **(API_VERSION if versioned else {})}
    r = sync_app.post(AUTH + path, body, headers)
    event(f"{r.status_code} {r.headers.get('x-sb-error-code', '')}")  # --hypothesis-show-statistics
    assert_catalogued(r)
    if r.status_code >= 400:
        code = r.headers["x-sb-error-code"]
        assert_refusal(r, CATALOGUE[code].status, code, versioned=versioned)
    else:
        assert r.status_code == 200
        assert r.json()["access_token"]
