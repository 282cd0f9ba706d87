"""POST /token?grant_type=password|refresh_token."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from sessionkeeper.core import validation
from sessionkeeper.errors import AuthError
from sessionkeeper.server.http import client_ip, json_response, read_json
from sessionkeeper.server.limiting import hit, refund, refuse_if_limited
from sessionkeeper.server.serialize import session_json
from sessionkeeper.server.state import ServerState, server_state
from sessionkeeper.service.context import IssuedSession
from sessionkeeper.service.grants import password_grant, refresh_grant


def _email_key(email: object) -> str | None:
    """The normalised email for the per-email counter; ``None`` when malformed (the grant
    itself answers that with a 400)."""
    if not isinstance(email, str):
        return None
    try:
        return validation.normalize_email(email)
    except AuthError:
        return None


async def _password_grant(
    state: ServerState, request: Request, body: dict[str, Any]
) -> IssuedSession:
    """Rate limits first (per IP: every attempt; per email: failures only), then argon2 in a
    password slot. The per-email hit is taken *before* hashing, so concurrent guesses cannot all
    slip past the limit, and given back when the attempt was not a failed password check."""
    ip = client_ip(request)
    by_ip = await hit(state.password_limit_ip, ip)
    refuse_if_limited(state, request, [by_ip], what="password grant")
    email = _email_key(body.get("email"))
    if email:
        by_email = await hit(state.password_limit_email, email)
        refuse_if_limited(state, request, [by_email], what="password grant", email=email)
    counted = False
    try:
        issued = await state.password_slots.run(
            password_grant,
            state.ctx,
            email=body.get("email"),
            password=body.get("password"),
            ip=ip,
            user_agent=request.headers.get("user-agent"),
        )
    except AuthError as exc:
        counted = exc.code == "invalid_credentials"
        raise
    finally:
        if email and not counted:
            await refund(state.password_limit_email, email)
    return issued


async def post_token(request: Request) -> Response:
    state = server_state(request)
    grant_type = request.query_params.get("grant_type")
    body = await read_json(request)
    if grant_type == "password":
        issued = await _password_grant(state, request, body)
    elif grant_type == "refresh_token":
        issued = await run_in_threadpool(
            refresh_grant, state.ctx, refresh_token=body.get("refresh_token")
        )
    elif grant_type is None or grant_type == "":
        raise AuthError("validation_failed", "grant_type is required")
    else:
        raise AuthError("unsupported_grant_type")
    return json_response(request, session_json(issued))
