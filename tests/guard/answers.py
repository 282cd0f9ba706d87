"""Assertions shared by the guard tests: the exact refusal answers."""

from __future__ import annotations

import httpx

from tests.guard.conftest import Guarded


def assert_refused(
    response: httpx.Response, guarded: Guarded, reason: str, *, token_sent: bool = True
) -> dict[str, object]:
    """A 401 with the fixed body and challenge, and one log line naming ``reason``."""
    assert response.status_code == 401, response.text
    assert response.content == b'{"error":"Unauthorized"}'
    expected = 'Bearer error="invalid_token"' if token_sent else "Bearer"
    assert response.headers["www-authenticate"] == expected
    assert response.headers["content-type"] == "application/json"
    assert "x-auth-reason" not in response.headers  # diagnostics are off by default
    logged = guarded.last_refusal()
    assert logged["reason"] == reason
    return logged


def assert_unavailable(response: httpx.Response, guarded: Guarded, reason: str) -> None:
    assert response.status_code == 503, response.text
    assert response.content == b'{"error":"Service Unavailable"}'
    assert int(response.headers["retry-after"]) > 0
    assert "www-authenticate" not in response.headers
    assert guarded.last_refusal()["reason"] == reason
