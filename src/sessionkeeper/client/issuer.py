"""The four calls a client makes to a GoTrue-compatible auth server, and how failures are sorted.

These calls use their own plain ``httpx.Client`` with no auth flow: the refresh call can never
go through the 401-retry logic it serves (a refresh queued behind itself is a classic deadlock).

Failures fall in two kinds, and the difference is the whole failure policy:

- *transient* (:class:`IssuerUnavailableError`): network errors, 5xx, and the 4xx that mean
  "not now" (408, 409, 425, 429), and a 200 that is not a session. Keep the session, back off.
- *definitive* (:class:`IssuerError`): any other 4xx, with the server's error code
  (``refresh_token_already_used``, ``session_expired``, ``invalid_credentials``, ...).
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from sessionkeeper.client.errors import IssuerError, IssuerUnavailableError
from sessionkeeper.client.session import Session
from sessionkeeper.clock import Clock

API_VERSION = "2024-01-01"
_TRANSIENT_4XX = frozenset({408, 409, 425, 429})
#: An auth server's answers are a few KB; anything past this is not one.
MAX_ANSWER_BYTES = 1024 * 1024


class Issuer:
    """HTTP calls to ``auth_url`` (e.g. ``http://127.0.0.1:9999/auth/v1``)."""

    def __init__(
        self,
        auth_url: str,
        *,
        clock: Clock,
        timeout: float,
        api_key: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"X-Supabase-Api-Version": API_VERSION, "X-Client-Info": "sessionkeeper-py"}
        if api_key:
            headers["apikey"] = api_key
        self.auth_url = auth_url.rstrip("/")
        self._clock = clock
        self._timeout = timeout
        self._http = httpx.Client(headers=headers, timeout=timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    def _bounded(self, request: httpx.Request) -> httpx.Response:
        """Send ``request``; the whole answer must arrive within ``timeout`` (plus at most one
        read time-out for the last chunk), not merely each read."""
        deadline = time.monotonic() + self._timeout
        what = f"{request.method} {request.url.path}"
        response = self._http.send(request, stream=True)
        try:
            content = _read_within(response, deadline, what)
        finally:
            response.close()
        # The body is decoded already: the headers must no longer say it is compressed.
        headers = [
            (k, v)
            for k, v in response.headers.multi_items()
            if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")
        ]
        return httpx.Response(
            response.status_code, headers=headers, content=content, request=request
        )

    def password_grant(self, email: str, password: str) -> Session:
        body = {"email": email, "password": password}
        return self._session("password", body)

    def refresh_grant(self, refresh_token: str) -> Session:
        return self._session("refresh_token", {"refresh_token": refresh_token})

    def logout(self, access_token: str, scope: str) -> None:
        self._call("POST", "/logout", params={"scope": scope}, token=access_token)

    def user(self, access_token: str) -> dict[str, Any]:
        response = self._call("GET", "/user", token=access_token)
        data = _json(response)
        if not isinstance(data, dict):
            raise IssuerUnavailableError("GET /user answered 200 with something that is not a user")
        return data

    def _session(self, grant_type: str, body: dict[str, str]) -> Session:
        response = self._call("POST", "/token", params={"grant_type": grant_type}, json_body=body)
        received_at = self._clock.now()
        try:
            return Session.from_response(_json(response), received_at)
        except ValueError as exc:
            raise IssuerUnavailableError(
                "the token endpoint answered 200 without a session"
            ) from exc

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json_body: dict[str, str] | None = None,
        token: str | None = None,
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else None
        try:
            response = self._bounded(
                self._http.build_request(
                    method, self.auth_url + path, params=params, json=json_body, headers=headers
                )
            )
        except httpx.HTTPError as exc:
            raise IssuerUnavailableError(f"{method} {path}: {type(exc).__name__}") from exc
        status = response.status_code
        if status < 400:
            return response
        code, message = _error_of(response)
        if status >= 500 or status in _TRANSIENT_4XX or code.startswith("http_"):
            # A 4xx without an auth-server error code (an HTML 404 from a load balancer, a
            # maintenance page) says nothing about the session: transient, never a sign-out.
            raise IssuerUnavailableError(f"{method} {path}: {status} {code}")
        raise IssuerError(status, code, message)


def _read_within(
    response: httpx.Response, deadline: float, what: str, limit: int = MAX_ANSWER_BYTES
) -> bytes:
    """The body, read chunk by chunk against an overall deadline and a size cap. httpx's
    timeouts are per read: an issuer (or a proxy) that drips a byte every few seconds would keep
    a refresh open forever, and every caller waiting on it."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > limit:
            raise IssuerUnavailableError(f"{what}: the answer is larger than {limit} bytes")
        if time.monotonic() > deadline:
            raise IssuerUnavailableError(f"{what}: no complete answer within the time-out")
        chunks.append(chunk)
    return b"".join(chunks)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (ValueError, UnicodeDecodeError) as exc:
        raise IssuerUnavailableError("the auth server answered with invalid JSON") from exc


def _error_of(response: httpx.Response) -> tuple[str, str]:
    """The error code and message, from either error format GoTrue speaks, or the header."""
    code = response.headers.get("x-sb-error-code") or ""
    message = ""
    try:
        body = json.loads(response.content)
    except (ValueError, UnicodeDecodeError, RecursionError):
        body = None
    if isinstance(body, dict):
        for key in ("error_code", "code", "error"):
            if isinstance(body.get(key), str) and not code:
                code = body[key]
        for key in ("message", "msg", "error_description"):
            if isinstance(body.get(key), str):
                message = body[key]
                break
    return code or f"http_{response.status_code}", message[:200]
