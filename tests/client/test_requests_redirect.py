"""The ``requests`` adapter across a redirect: after a 401 → refresh → retry that answers 302,
requests follows the redirect with a copy of the *original* request; it must carry the
refreshed token, not the refused one (which would cost the redirect target a 401 of its own)."""

from __future__ import annotations

from collections import Counter

import requests
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from sessionkeeper.client.requests_auth import RequestsSessionAuth
from tests.client.conftest import PASSWORD, Keepers, new_user
from tests.conftest import ServerProcess, serve_in_thread
from tests.guard.conftest import free_port


def test_a_redirect_after_the_retry_carries_the_refreshed_token(
    auth: ServerProcess, keepers: Keepers
) -> None:
    keeper = keepers(auth)
    keeper.sign_in(new_user(auth), PASSWORD)
    refused = keeper.get_authorization()  # the API has revoked this token (say)
    seen: Counter[tuple[str, str]] = Counter()

    async def first(request: Request) -> Response:
        used = request.headers.get("authorization", "")
        seen["/first", "refused" if used == refused else "other"] += 1
        if used == refused:
            return JSONResponse({"error": "Unauthorized"}, 401)
        return RedirectResponse("/second", 302)

    async def second(request: Request) -> Response:
        used = request.headers.get("authorization", "")
        seen["/second", "refused" if used == refused else "other"] += 1
        if used == refused:
            return JSONResponse({"error": "Unauthorized"}, 401)
        return JSONResponse({"ok": True})

    port = free_port()
    app = Starlette(routes=[Route("/first", first), Route("/second", second)])
    with serve_in_thread(app, port, "redirecting API"), requests.Session() as http:
        http.auth = RequestsSessionAuth(keeper)
        response = http.get(f"http://127.0.0.1:{port}/first", timeout=10)
    assert response.status_code == 200
    assert seen == {("/first", "refused"): 1, ("/first", "other"): 1, ("/second", "other"): 1}
