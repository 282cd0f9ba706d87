"""GET/PUT /user and POST /logout: the endpoints that need the caller's access token."""

from __future__ import annotations

from typing import cast

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from sessionkeeper.errors import AuthError
from sessionkeeper.server.http import bearer_token, json_response, read_json
from sessionkeeper.server.serialize import user_json
from sessionkeeper.server.state import server_state
from sessionkeeper.service.logout import Scope, logout
from sessionkeeper.service.users import authenticate, update_user

SCOPES = ("global", "local", "others")


async def get_user_endpoint(request: Request) -> Response:
    ctx = server_state(request).ctx
    principal = await run_in_threadpool(authenticate, ctx, bearer_token(request))
    assert principal is not None
    return json_response(request, user_json(principal.user, principal.identities))


async def put_user_endpoint(request: Request) -> Response:
    state = server_state(request)
    ctx = state.ctx
    principal = await run_in_threadpool(authenticate, ctx, bearer_token(request))
    assert principal is not None
    body = await read_json(request)
    # A password change hashes (twice): it takes a password slot like a sign-in.
    run = state.password_slots.run if body.get("password") is not None else run_in_threadpool
    user, identities = await run(
        update_user,
        ctx,
        principal,
        email=body.get("email"),
        password=body.get("password"),
        data=body.get("data"),
    )
    return json_response(request, user_json(user, identities))


async def post_logout(request: Request) -> Response:
    ctx = server_state(request).ctx
    scope = request.query_params.get("scope", "global")
    if scope not in SCOPES:
        raise AuthError("validation_failed", "scope must be one of global, local, others")
    principal = await run_in_threadpool(
        lambda: authenticate(ctx, bearer_token(request), require_session=False)
    )
    if principal is not None:  # a session already gone is already logged out
        await run_in_threadpool(logout, ctx, principal, cast(Scope, scope))
    return Response(status_code=204)
