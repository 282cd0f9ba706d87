"""Every reason code, through the ASGI app: status, body, headers and the logged reason."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sessionkeeper.core.keys import SigningKey
from sessionkeeper.guard import Reason, StoreLiveness
from sessionkeeper.store.sqlite import SQLiteStore
from tests.conftest import AppHarness
from tests.guard.answers import assert_refused, assert_unavailable
from tests.guard.conftest import ISSUER, NOW, Guarded, bearer, claims, free_port


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"x" * 64) -> str:
    h = b64(json.dumps(header).encode())
    p = b64(json.dumps(payload).encode())
    return f"{h}.{p}.{b64(signature)}"


async def test_a_valid_token_is_let_through(
    guarded: Callable[..., Guarded], es_key: SigningKey
) -> None:
    g = guarded()
    response = await g.client.get("/api/hello", headers=bearer(es_key.sign(claims())))
    assert response.status_code == 200
    assert response.json() == {"user": "8d3f7a4e-user"}
    assert g.refusals() == []


async def test_missing_token(guarded: Callable[..., Guarded]) -> None:
    g = guarded()
    response = await g.client.get("/api/hello")
    logged = assert_refused(response, g, "missing_token", token_sent=False)
    assert logged["authorization_header_present"] is False
    assert logged["session_cookie_present"] is False
    assert logged["token_fingerprint"] is None
    assert logged["path"] == "/api/hello"
    assert logged["method"] == "GET"


async def test_another_scheme_is_a_missing_bearer_token(guarded: Callable[..., Guarded]) -> None:
    g = guarded()
    response = await g.client.get("/api/hello", headers={"Authorization": "Basic dXNlcjpwdw=="})
    logged = assert_refused(response, g, "missing_token", token_sent=False)
    assert logged["authorization_header_present"] is True


async def test_malformed_token(guarded: Callable[..., Guarded]) -> None:
    g = guarded()
    response = await g.client.get("/api/hello", headers=bearer("not-a-jwt"))
    logged = assert_refused(response, g, "malformed_token")
    assert logged["authorization_header_present"] is True
    assert logged["token_fingerprint"] == __import__("hashlib").sha256(b"not-a-jwt").hexdigest()[:8]


async def test_unsupported_alg(guarded: Callable[..., Guarded]) -> None:
    g = guarded()
    token = forge({"alg": "HS512", "kid": "es-1"}, claims())
    assert_refused(await g.client.get("/api/hello", headers=bearer(token)), g, "unsupported_alg")


async def test_unknown_kid(guarded: Callable[..., Guarded]) -> None:
    g = guarded()
    stranger = SigningKey.generate("ES256", kid="someone-else")
    token = stranger.sign(claims(iss="https://other.example/auth/v1"))
    logged = assert_refused(
        await g.client.get("/api/hello", headers=bearer(token)), g, "unknown_kid"
    )
    assert logged["kid"] == "someone-else"
    # The unverified issuer names the other project: the commonest misconfiguration.
    assert logged["token_issuer"] == "https://other.example/auth/v1"


async def test_bad_signature(
    guarded: Callable[..., Guarded], es_key: SigningKey, other_key: SigningKey
) -> None:
    g = guarded()
    token = other_key.sign(claims())  # same kid as ours, another project's key
    assert_refused(await g.client.get("/api/hello", headers=bearer(token)), g, "bad_signature")
    tampered = es_key.sign(claims())
    head, payload, sig = tampered.split(".")
    payload = b64(json.dumps(claims(sub="admin")).encode())
    response = await g.client.get("/api/hello", headers=bearer(f"{head}.{payload}.{sig}"))
    assert_refused(response, g, "bad_signature")


async def test_expired_logs_how_long_ago(
    guarded: Callable[..., Guarded], es_key: SigningKey
) -> None:
    g = guarded()
    token = es_key.sign(claims(exp=NOW + 60))
    assert (await g.client.get("/api/hello", headers=bearer(token))).status_code == 200
    g.clock.advance(60 + 29)  # inside the 30 s leeway
    assert (await g.client.get("/api/hello", headers=bearer(token))).status_code == 200
    g.clock.advance(1)
    logged = assert_refused(await g.client.get("/api/hello", headers=bearer(token)), g, "expired")
    assert logged["expired_seconds_ago"] == 30


async def test_not_yet_valid(guarded: Callable[..., Guarded], es_key: SigningKey) -> None:
    g = guarded()
    early = es_key.sign(claims(nbf=NOW + 31))
    assert_refused(await g.client.get("/api/hello", headers=bearer(early)), g, "not_yet_valid")
    future = es_key.sign(claims(iat=NOW + 31))
    assert_refused(await g.client.get("/api/hello", headers=bearer(future)), g, "not_yet_valid")
    g.clock.advance(2)
    assert (await g.client.get("/api/hello", headers=bearer(early))).status_code == 200


async def test_wrong_issuer_logs_expected_and_received(
    guarded: Callable[..., Guarded], es_key: SigningKey
) -> None:
    g = guarded()
    token = es_key.sign(claims(iss="https://staging.example/auth/v1"))
    logged = assert_refused(
        await g.client.get("/api/hello", headers=bearer(token)), g, "wrong_issuer"
    )
    assert logged["expected_issuer"] == [ISSUER]
    assert logged["received_issuer"] == "https://staging.example/auth/v1"


async def test_wrong_audience(guarded: Callable[..., Guarded], es_key: SigningKey) -> None:
    g = guarded()
    for aud in ("anon", ["service_role", "other"]):
        token = es_key.sign(claims(aud=aud))
        response = await g.client.get("/api/hello", headers=bearer(token))
        assert_refused(response, g, "wrong_audience")
    listed = es_key.sign(claims(aud=["other", "authenticated"]))
    assert (await g.client.get("/api/hello", headers=bearer(listed))).status_code == 200


@pytest.mark.parametrize("claim", ["exp", "iat", "sub", "iss", "aud"])
async def test_missing_claim(
    guarded: Callable[..., Guarded], es_key: SigningKey, claim: str
) -> None:
    g = guarded()
    token = es_key.sign({k: v for k, v in claims().items() if k != claim})
    logged = assert_refused(
        await g.client.get("/api/hello", headers=bearer(token)), g, "missing_claim"
    )
    assert logged["claim"] == claim


async def test_session_revoked_within_the_window(
    guarded: Callable[..., Guarded], app_client: AppHarness
) -> None:
    """A real auth server (in-process, real SQLite store): log out, and the guard reading the
    same store refuses the session's still-unexpired access token once the window passes."""
    harness = app_client
    session = await harness.signup()
    token = session["access_token"]
    liveness = StoreLiveness(harness.store, window=5.0, clock=harness.clock)
    g = guarded(
        issuer="http://auth.test/auth/v1",
        jwks=harness.ctx.keyring.current().jwks(),
        liveness=liveness,
        clock=harness.clock,
    )
    assert (await g.client.get("/api/hello", headers=bearer(token))).status_code == 200
    logout = await harness.client.post("/auth/v1/logout?scope=local", headers=bearer(token))
    assert logout.status_code == 204
    # Within the window the cached answer may still say "alive"; after it, never.
    harness.clock.advance(5.0)
    response = await g.client.get("/api/hello", headers=bearer(token))
    logged = assert_refused(response, g, "session_revoked")
    assert logged["session_id"]
    assert liveness.reads == 2


async def test_keys_unavailable_is_503_never_401(
    guarded: Callable[..., Guarded], es_key: SigningKey
) -> None:
    # Nothing listens on this port: a cold cache and an unreachable JWKS.
    port = free_port()
    g = guarded(jwks_url=f"http://127.0.0.1:{port}/.well-known/jwks.json", jwks_timeout=1.0)
    response = await g.client.get("/api/hello", headers=bearer(es_key.sign(claims())))
    assert_unavailable(response, g, "keys_unavailable")


async def test_store_unavailable_is_503_never_401(
    guarded: Callable[..., Guarded], es_key: SigningKey, tmp_path: Path
) -> None:
    path = tmp_path / "gone.db"
    store = SQLiteStore(path)
    store.migrate()
    path.unlink()  # the database file vanished: an outage the store reports as such
    g = guarded(liveness=StoreLiveness(store))
    response = await g.client.get("/api/hello", headers=bearer(es_key.sign(claims())))
    assert_unavailable(response, g, "store_unavailable")


def test_every_reason_has_a_test_here() -> None:
    # The cookie transport's reasons are tested beside the bridge they need.
    source = (
        Path(__file__).read_text() + Path(__file__).with_name("test_cookie_bridge.py").read_text()
    )
    for reason in Reason:
        assert f'"{reason.value}"' in source, reason
