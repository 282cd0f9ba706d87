"""The official Python client (supabase-auth from PyPI) through hosted sign-in: its PKCE
``sign_in_with_oauth`` URL opens our page, a scripted browser signs in, and the client's own
``exchange_code_for_session`` redeems the code with the verifier it kept in its storage."""

from __future__ import annotations

import html
import re
import uuid
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from supabase_auth import SyncGoTrueClient
from supabase_auth.errors import AuthApiError

from tests.conftest import ServerProcess

PASSWORD = "s3cret-passw0rd"


def hosted_sign_in(url: str, email: str, password: str, origin: str) -> str:
    """What a browser does on the hosted page: load it, post its form; the 303's Location."""
    with httpx.Client(timeout=10) as browser:
        page = browser.get(url, headers={"Accept": "text/html"})
        assert page.status_code == 200, page.text
        hidden = {
            name: html.unescape(value)
            for name, value in re.findall(r'type="hidden" name="(\w+)" value="([^"]*)"', page.text)
        }
        assert set(hidden) == {"provider", "redirect_to", "code_challenge", "code_challenge_method"}
        action = urlsplit(url)._replace(query="").geturl()
        answer = browser.post(
            action,
            data={**hidden, "email": email, "password": password},
            headers={"Origin": origin, "Accept": "text/html"},
        )
        assert answer.status_code == 303, answer.text
        return answer.headers["location"]


def authorize_url(client: SyncGoTrueClient, redirect_to: str | None = None) -> str:
    """``sign_in_with_oauth``'s URL for provider ``email``. The Python client's response model
    accepts only its list of OAuth providers, so this calls the builder that method uses (it
    stores the verifier under ``<storage key>-code-verifier`` exactly as sign_in_with_oauth)."""
    params = {"redirect_to": redirect_to} if redirect_to else {}
    url, _ = client._get_url_for_provider(f"{client._url}/authorize", "email", params)  # type: ignore[arg-type]
    return url


def test_exchange_code_for_session_after_hosted_sign_in(server: ServerProcess) -> None:
    email = f"pkce-{uuid.uuid4().hex[:10]}@example.com"
    SyncGoTrueClient(url=server.auth_url, auto_refresh_token=False).sign_up(
        {"email": email, "password": PASSWORD}
    )
    client = SyncGoTrueClient(url=server.auth_url, flow_type="pkce", auto_refresh_token=False)
    callback = f"{server.base_url}/app/callback?tab=jobs"
    url = authorize_url(client, callback)
    assert "code_challenge_method=s256" in url

    location = hosted_sign_in(url, email, PASSWORD, server.base_url)
    assert location.startswith(f"{callback}&code=")
    code = parse_qs(urlsplit(location).query)["code"][0]
    verifier = client._storage.get_item(f"{client._storage_key}-code-verifier")
    assert verifier

    signed_in = client.exchange_code_for_session({"auth_code": code})
    assert signed_in.session is not None and signed_in.user is not None
    assert signed_in.user.email == email
    user = client.get_user()
    assert user is not None and user.user.email == email
    claims = client.get_claims()
    assert claims is not None and claims["claims"]["amr"][0]["method"] == "password"
    assert client.refresh_session().session is not None

    with pytest.raises(AuthApiError) as reused:
        client.exchange_code_for_session({"auth_code": code, "code_verifier": verifier})
    assert (reused.value.status, reused.value.code) == (404, "flow_state_not_found")


def test_wrong_verifier_is_refused_by_the_client_with_gotrues_code(server: ServerProcess) -> None:
    email = f"pkce-{uuid.uuid4().hex[:10]}@example.com"
    SyncGoTrueClient(url=server.auth_url, auto_refresh_token=False).sign_up(
        {"email": email, "password": PASSWORD}
    )
    client = SyncGoTrueClient(url=server.auth_url, flow_type="pkce", auto_refresh_token=False)
    location = hosted_sign_in(authorize_url(client), email, PASSWORD, server.base_url)
    assert location.startswith(f"{server.base_url}/?code=")  # no redirect_to: the server's root
    code = parse_qs(urlsplit(location).query)["code"][0]
    with pytest.raises(AuthApiError) as wrong:
        client.exchange_code_for_session({"auth_code": code, "code_verifier": "x" * 64})
    assert (wrong.value.status, wrong.value.code) == (400, "bad_code_verifier")
