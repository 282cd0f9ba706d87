"""The unmodified official Python client (supabase-auth from PyPI) against a real server process.

Nobody here wrote this client: if it parses our answers and its flows succeed, teams can point
their existing code at sessionkeeper unchanged.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from supabase_auth import AsyncGoTrueClient, SyncGoTrueClient
from supabase_auth.errors import AuthApiError

from tests.conftest import ServerProcess

PASSWORD = "s3cret-passw0rd"


def email() -> str:
    return f"py-{uuid.uuid4().hex[:10]}@example.com"


def sync_client(server: ServerProcess) -> SyncGoTrueClient:
    return SyncGoTrueClient(url=server.auth_url, auto_refresh_token=False, persist_session=False)


def test_sync_client_full_flow(server: ServerProcess) -> None:
    client = sync_client(server)
    address = email()

    signed_up = client.sign_up(
        {"email": address, "password": PASSWORD, "options": {"data": {"plan": "free"}}}
    )
    assert signed_up.user is not None and signed_up.user.email == address
    assert signed_up.session is not None
    assert signed_up.user.user_metadata == {"plan": "free"}

    signed_in = client.sign_in_with_password({"email": address, "password": PASSWORD})
    assert signed_in.session is not None
    assert signed_in.session.expires_in == 3600

    user = client.get_user()
    assert user is not None and user.user.id == signed_up.user.id
    assert user.user.identities and user.user.identities[0].provider == "email"

    claims = client.get_claims()  # ES256 + kid: the JWKS path, verified by the client itself
    assert claims is not None
    assert claims["claims"]["sub"] == signed_up.user.id
    assert claims["claims"]["iss"] == server.auth_url
    assert claims["headers"]["alg"] == "ES256"

    refreshed = client.refresh_session()
    assert refreshed.session is not None
    assert refreshed.session.refresh_token != signed_in.session.refresh_token

    updated = client.update_user({"data": {"plan": "pro"}})
    assert updated.user.user_metadata == {"plan": "pro"}
    updated = client.update_user({"password": "an0ther-passw0rd"})
    assert updated.user.id == signed_up.user.id

    # The new password works; the old one is refused with the client's own error type.
    other = sync_client(server)
    assert other.sign_in_with_password({"email": address, "password": "an0ther-passw0rd"}).session
    with pytest.raises(AuthApiError) as refused:
        sync_client(server).sign_in_with_password({"email": address, "password": PASSWORD})
    assert refused.value.code == "invalid_credentials"
    assert refused.value.status == 400

    client.sign_out({"scope": "others"})  # ends `other`'s session, keeps ours
    assert client.get_user() is not None
    with pytest.raises(AuthApiError) as gone:
        other.refresh_session()
    assert gone.value.code == "refresh_token_not_found"

    client.sign_out({"scope": "local"})
    assert client.get_session() is None


def test_sync_sign_out_global_ends_every_session(server: ServerProcess) -> None:
    address = email()
    a = sync_client(server)
    a.sign_up({"email": address, "password": PASSWORD})
    b = sync_client(server)
    b.sign_in_with_password({"email": address, "password": PASSWORD})
    a.sign_out()  # default scope: global
    with pytest.raises(AuthApiError) as gone:
        b.refresh_session()
    assert gone.value.code == "refresh_token_not_found"


def test_weak_password_and_duplicate_signup_errors_parse(server: ServerProcess) -> None:
    from supabase_auth.errors import AuthWeakPasswordError

    client = sync_client(server)
    with pytest.raises(AuthWeakPasswordError) as weak:
        client.sign_up({"email": email(), "password": "123"})
    assert weak.value.reasons == ["length"]
    address = email()
    client.sign_up({"email": address, "password": PASSWORD})
    with pytest.raises(AuthApiError) as dup:
        sync_client(server).sign_up({"email": address, "password": PASSWORD})
    assert dup.value.code == "user_already_exists"


async def test_async_client_full_flow(server: ServerProcess) -> None:
    client = AsyncGoTrueClient(url=server.auth_url, auto_refresh_token=False, persist_session=False)
    address = email()
    signed_up = await client.sign_up({"email": address, "password": PASSWORD})
    assert signed_up.session is not None
    signed_in = await client.sign_in_with_password({"email": address, "password": PASSWORD})
    assert signed_in.session is not None
    user = await client.get_user()
    assert user is not None and user.user.email == address
    claims = await client.get_claims()
    assert claims is not None and claims["claims"]["session_id"]
    refreshed = await client.refresh_session()
    assert refreshed.session is not None
    updated = await client.update_user({"data": {"k": "v"}, "password": "n3w-passw0rd!"})
    assert updated.user.user_metadata == {"k": "v"}
    await client.sign_out({"scope": "others"})
    await client.sign_out({"scope": "local"})
    assert await client.get_session() is None
    fresh = AsyncGoTrueClient(url=server.auth_url, auto_refresh_token=False, persist_session=False)
    session = await fresh.sign_in_with_password({"email": address, "password": "n3w-passw0rd!"})
    assert session.session is not None
    await fresh.sign_out()  # global


def test_hs256_server_get_claims_falls_back_to_get_user(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server("--signing-alg", "HS256", env={"SESSIONKEEPER_JWT_SECRET": "k" * 48})
    client = sync_client(server)
    client.sign_up({"email": email(), "password": PASSWORD})
    claims = client.get_claims()
    assert claims is not None and claims["headers"]["alg"] == "HS256"
