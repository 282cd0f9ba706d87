"""How the bridge talks to the issuer: refresh, code exchange, logout.

Two implementations of one small protocol. :class:`LocalIssuer` calls the service layer in this
process (``sessionkeeper serve`` and the demo, where the bridge sits beside the auth server).
:class:`HttpIssuer` calls a GoTrue-compatible ``/auth/v1`` over HTTP (Supabase Auth, or a
sessionkeeper server elsewhere).

Every failure is sorted into exactly one of two kinds, because the answer to the browser depends
on it: :class:`IssuerRefused` (a verdict on the session: clear the cookies, 401) and
:class:`IssuerUnavailable` (could not judge: keep the cookies, 503). A 5xx, a time-out, a 409
or a 429 from the issuer is never taken as a verdict — auth-js makes the same split.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

import httpx
from starlette.concurrency import run_in_threadpool

from sessionkeeper.errors import AuthError, StoreConflictError, StoreUnavailableError
from sessionkeeper.guard.principal import Principal

#: Issuer answers that say "try again", not "this session is over".
TRANSIENT_STATUSES = frozenset({408, 409, 425, 429})
API_VERSION = "2024-01-01"


class IssuerRefused(Exception):
    """The issuer refused: ``code`` is its error code (GoTrue's strings)."""

    def __init__(self, code: str, status: int = 400) -> None:
        self.code = code
        self.status = status
        super().__init__(code)


class IssuerUnavailable(Exception):
    """The issuer could not be reached or could not decide."""


@dataclass(frozen=True)
class SessionTokens:
    access_token: str
    refresh_token: str
    expires_in: int

    @classmethod
    def from_json(cls, body: Any) -> SessionTokens:
        if not isinstance(body, dict):
            raise IssuerUnavailable("the issuer's answer held no session")
        access, refresh, expires_in = (
            body.get("access_token"),
            body.get("refresh_token"),
            body.get("expires_in"),
        )
        if not (isinstance(access, str) and access and isinstance(refresh, str) and refresh):
            raise IssuerUnavailable("the issuer's answer held no session")
        if not isinstance(expires_in, int) or isinstance(expires_in, bool):
            expires_in = 3600
        return cls(access, refresh, expires_in)


class IssuerClient(Protocol):
    async def refresh(self, refresh_token: str) -> SessionTokens: ...
    async def exchange_code(self, auth_code: str, code_verifier: str) -> SessionTokens: ...
    async def logout(self, access_token: str, principal: Principal, scope: str) -> None: ...


def _sorted_failure(exc: Exception) -> Exception:
    if isinstance(exc, AuthError):
        if exc.status >= 500 or exc.status in TRANSIENT_STATUSES:
            return IssuerUnavailable(exc.code)
        return IssuerRefused(exc.code, exc.status)
    if isinstance(exc, StoreUnavailableError | StoreConflictError):
        return IssuerUnavailable(type(exc).__name__)
    return exc


class LocalIssuer:
    """The auth server of this process, called without a network hop."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx

    async def _call(self, fn: Any, **kwargs: Any) -> Any:
        try:
            return await run_in_threadpool(fn, self.ctx, **kwargs)
        except (AuthError, StoreUnavailableError, StoreConflictError) as exc:
            raise _sorted_failure(exc) from exc

    async def refresh(self, refresh_token: str) -> SessionTokens:
        from sessionkeeper.server.serialize import session_json
        from sessionkeeper.service.grants import refresh_grant

        issued = await self._call(refresh_grant, refresh_token=refresh_token)
        return SessionTokens.from_json(session_json(issued))

    async def exchange_code(self, auth_code: str, code_verifier: str) -> SessionTokens:
        from sessionkeeper.server.serialize import session_json
        from sessionkeeper.service.pkce import pkce_grant

        issued = await self._call(pkce_grant, auth_code=auth_code, code_verifier=code_verifier)
        return SessionTokens.from_json(session_json(issued))

    async def logout(self, access_token: str, principal: Principal, scope: str) -> None:
        from sessionkeeper.service.logout import logout
        from sessionkeeper.service.users import authenticate

        def run(ctx: Any) -> None:
            caller = authenticate(ctx, access_token, require_session=False)
            if caller is not None:  # a session already gone is already logged out
                logout(ctx, caller, scope)  # type: ignore[arg-type]

        await self._call(run)


class HttpIssuer:
    """A GoTrue-compatible auth API at ``auth_url`` (``https://<ref>.supabase.co/auth/v1``)."""

    def __init__(
        self,
        auth_url: str,
        *,
        api_key: str | None = None,
        timeout: float = 10.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.auth_url = auth_url.rstrip("/")
        self.headers = {
            "X-Supabase-Api-Version": API_VERSION,
            "X-Client-Info": "sessionkeeper-bridge",
        }
        if api_key:
            self.headers["apikey"] = api_key
        self._client = client or httpx.AsyncClient(timeout=timeout)

    async def _post(self, path: str, body: Any, token: str | None = None) -> httpx.Response:
        headers = dict(self.headers)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            response = await self._client.post(f"{self.auth_url}{path}", json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise IssuerUnavailable(type(exc).__name__) from exc
        if response.status_code >= 500 or response.status_code in TRANSIENT_STATUSES:
            raise IssuerUnavailable(f"issuer answered {response.status_code}")
        if response.status_code >= 400:
            try:
                payload = response.json()
            except (json.JSONDecodeError, ValueError):
                payload = None
            code = None
            if isinstance(payload, dict):
                code = payload.get("error_code") or payload.get("code") or payload.get("error")
            if not isinstance(code, str):
                # A 4xx without an auth error code (a proxy's HTML page) is not a verdict.
                raise IssuerUnavailable(f"issuer answered {response.status_code}")
            raise IssuerRefused(code, response.status_code)
        return response

    async def _session(self, path: str, body: Any) -> SessionTokens:
        response = await self._post(path, body)
        try:
            return SessionTokens.from_json(response.json())
        except (json.JSONDecodeError, ValueError) as exc:
            raise IssuerUnavailable("the issuer's answer was not JSON") from exc

    async def refresh(self, refresh_token: str) -> SessionTokens:
        return await self._session(
            "/token?grant_type=refresh_token", {"refresh_token": refresh_token}
        )

    async def exchange_code(self, auth_code: str, code_verifier: str) -> SessionTokens:
        return await self._session(
            "/token?grant_type=pkce", {"auth_code": auth_code, "code_verifier": code_verifier}
        )

    async def logout(self, access_token: str, principal: Principal, scope: str) -> None:
        await self._post(f"/logout?scope={quote(scope)}", None, token=access_token)

    async def aclose(self) -> None:
        await self._client.aclose()
