"""Rotation, restarts and concurrency against real server processes on loopback.

These are the acceptance checks that need real processes: concurrent refreshes racing in a
real server (and in two servers sharing one SQLite file), the reuse rules over real HTTP, a
restart on the same file, and access tokens checked by an independent JOSE library.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from joserfc import jwt as jose_jwt
from joserfc.jwk import KeySet

from tests.conftest import API_VERSION, CONTRACT_CLAIMS, ServerProcess

PASSWORD = "s3cret-passw0rd"
NO_LIMITS = (
    "--rate-limit-password-per-ip", "0",
    "--rate-limit-password-per-email", "0",
    "--rate-limit-signup-per-ip", "0",
)  # fmt: skip


def signup(server: ServerProcess, address: str | None = None) -> dict[str, Any]:
    r = httpx.post(
        f"{server.auth_url}/signup",
        json={"email": address or f"c-{uuid.uuid4().hex[:10]}@example.com", "password": PASSWORD},
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def refresh(server: ServerProcess, token: str) -> httpx.Response:
    return httpx.post(
        f"{server.auth_url}/token?grant_type=refresh_token",
        json={"refresh_token": token},
        headers=API_VERSION,
    )


async def refresh_many(urls: list[str], token: str, n: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=n)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        return await asyncio.gather(
            *(
                client.post(
                    f"{urls[i % len(urls)]}/token?grant_type=refresh_token",
                    json={"refresh_token": token},
                    headers=API_VERSION,
                )
                for i in range(n)
            )
        )


def test_twenty_concurrent_refreshes_in_a_real_process(server: ServerProcess) -> None:
    s0 = signup(server)
    results = asyncio.run(refresh_many([server.auth_url], s0["refresh_token"], 20))
    assert [r.status_code for r in results] == [200] * 20
    tokens = {r.json()["refresh_token"] for r in results}
    assert len(tokens) == 1  # one consistent family: everyone holds the current token
    nxt = refresh(server, tokens.pop())
    assert nxt.status_code == 200


def test_two_processes_sharing_one_sqlite_file(
    start_server: Callable[..., ServerProcess], tmp_path: Any
) -> None:
    db = f"sqlite:///{tmp_path}/shared.db"
    issuer = ("--issuer", "http://auth.shared.test/auth/v1")  # must match across instances
    a = start_server(*NO_LIMITS, *issuer, database=db)
    b = start_server(*NO_LIMITS, *issuer, database=db)
    s0 = signup(a)
    results = asyncio.run(refresh_many([a.auth_url, b.auth_url], s0["refresh_token"], 40))
    assert [r.status_code for r in results] == [200] * 40
    assert len({r.json()["refresh_token"] for r in results}) == 1
    # Both instances share the signing key: a token from one is accepted by the other.
    r = httpx.get(f"{b.auth_url}/user", headers={"Authorization": f"Bearer {s0['access_token']}"})
    assert r.status_code == 200
    # A logout on one is seen by the other at once.
    httpx.post(
        f"{a.auth_url}/logout?scope=global",
        headers={"Authorization": f"Bearer {s0['access_token']}"},
    )
    assert (
        refresh(b, results[0].json()["refresh_token"]).json()["code"] == "refresh_token_not_found"
    )


def test_replay_after_the_interval_revokes_the_family_in_a_real_process(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(*NO_LIMITS, "--reuse-interval", "0")
    chain = [signup(server)["refresh_token"]]
    for _ in range(4):
        r = refresh(server, chain[-1])
        assert r.status_code == 200
        chain.append(r.json()["refresh_token"])
    replay = refresh(server, chain[0])
    assert (replay.status_code, replay.json()["code"]) == (400, "refresh_token_already_used")
    for token in chain:
        assert refresh(server, token).json()["code"] == "refresh_token_already_used"
    # The replay is in the log, with a fingerprint but never the token itself.
    deadline = time.monotonic() + 5
    while not any("family revoked" in line for line in server.log_lines):
        assert time.monotonic() < deadline, "no revocation log line"
        time.sleep(0.05)
    text = "".join(server.log_lines)
    assert all(token not in text for token in chain)


def test_lost_response_retry_gets_the_current_child(server: ServerProcess) -> None:
    s0 = signup(server)
    lost = refresh(server, s0["refresh_token"]).json()  # the client never stored this answer
    retry = refresh(server, s0["refresh_token"])
    assert retry.status_code == 200
    assert retry.json()["refresh_token"] == lost["refresh_token"]


def test_concurrent_signups_of_one_email_create_one_user(server: ServerProcess) -> None:
    address = f"race-{uuid.uuid4().hex[:8]}@example.com"

    async def race() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as client:
            return await asyncio.gather(
                *(
                    client.post(
                        f"{server.auth_url}/signup",
                        headers=API_VERSION,
                        json={"email": address, "password": PASSWORD},
                    )
                    for _ in range(8)
                )
            )

    codes = sorted(r.status_code for r in asyncio.run(race()))
    assert codes == [200] + [422] * 7


def test_access_tokens_verify_with_an_independent_library(server: ServerProcess) -> None:
    session = signup(server)
    jwks = httpx.get(f"{server.auth_url}/.well-known/jwks.json").json()
    token = jose_jwt.decode(
        session["access_token"], KeySet.import_key_set(jwks), algorithms=["ES256"]
    )
    assert set(token.claims) >= CONTRACT_CLAIMS
    assert token.header["kid"] in {k["kid"] for k in jwks["keys"]}
    jose_jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": server.auth_url},
        aud={"essential": True, "value": "authenticated"},
        sub={"essential": True, "value": session["user"]["id"]},
        exp={"essential": True},
    ).validate(token.claims)


def test_rs256_tokens_verify_with_an_independent_library(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(*NO_LIMITS, "--signing-alg", "RS256")
    session = signup(server)
    jwks = httpx.get(f"{server.auth_url}/.well-known/jwks.json").json()
    assert jwks["keys"][0]["kty"] == "RSA"
    token = jose_jwt.decode(
        session["access_token"], KeySet.import_key_set(jwks), algorithms=["RS256"]
    )
    assert token.claims["role"] == "authenticated"


def test_restart_on_the_same_file_keeps_keys_users_and_sessions(
    start_server: Callable[..., ServerProcess],
    tmp_path: Any,
) -> None:
    db = f"sqlite:///{tmp_path}/restart.db"
    first = start_server(*NO_LIMITS, database=db)
    address = f"restart-{uuid.uuid4().hex[:8]}@example.com"
    session = signup(first, address)
    jwks_before = httpx.get(f"{first.auth_url}/.well-known/jwks.json").json()
    first.stop()

    second = start_server(*NO_LIMITS, database=db)
    assert httpx.get(f"{second.auth_url}/.well-known/jwks.json").json() == jwks_before
    # The access token minted before the restart is still valid (the issuer is per port, so
    # check it through the shared key set rather than /user) ...
    token = jose_jwt.decode(
        session["access_token"], KeySet.import_key_set(jwks_before), algorithms=["ES256"]
    )
    assert token.claims["email"] == address
    # ... the refresh token still works, and the user can sign in.
    assert refresh(second, session["refresh_token"]).status_code == 200
    r = httpx.post(
        f"{second.auth_url}/token?grant_type=password",
        json={"email": address, "password": PASSWORD},
    )
    assert r.status_code == 200
