"""POST /token?grant_type=password|refresh_token|pkce."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from sessionkeeper.core import validation
from sessionkeeper.errors import AuthError
from sessionkeeper.server.http import client_ip, json_response, read_json
from sessionkeeper.server.limiting import hit, refund, refuse_if_limited
from sessionkeeper.server.serialize import session_json
from sessionkeeper.server.state import ServerState, server_state
from sessionkeeper.service.grants import password_grant, refresh_grant
from sessionkeeper.service.pkce import pkce_grant

R = TypeVar("R")


def _email_key(email: object) -> str | None:
    """The normalised email for the per-email counter; ``None`` when malformed (the grant
    itself answers that with a 400)."""
    if not isinstance(email, str):
        return None
    try:
        return validation.normalize_email(email)
    except AuthError:
        return None


async def password_attempt(
    state: ServerState,
    request: Request,
    operation: Callable[..., R],
    *,
    email: object,
    password: object,
    **kwargs: Any,
) -> R:
    """Run ``operation`` (the password grant, or hosted sign-in's ``password_flow``) under the
    password rate limits (per IP: every attempt; per email: failures only), with its argon2 work
    in a password slot. The per-email hit is taken *before* hashing, so concurrent guesses
    cannot all slip past the limit, and given back when the attempt was not a failed password
    check."""
    ip = client_ip(request)
    by_ip = await hit(state.password_limit_ip, ip)
    refuse_if_limited(state, request, [by_ip], what="password grant")
    address = _email_key(email)
    if address:
        by_email = await hit(state.password_limit_email, address)
        refuse_if_limited(state, request, [by_email], what="password grant", email=address)
    counted = False
    try:
        result = await state.password_slots.run(
            operation, state.ctx, email=email, password=password, **kwargs
        )
    except AuthError as exc:
        counted = exc.code == "invalid_credentials"
        raise
    finally:
        if address and not counted:
            await refund(state.password_limit_email, address)
    return result


async def post_token(request: Request) -> Response:
    state = server_state(request)
    grant_type = request.query_params.get("grant_type")
    body = await read_json(request)
    if grant_type == "password":
        issued = await password_attempt(
            state,
            request,
            password_grant,
            email=body.get("email"),
            password=body.get("password"),
            ip=client_ip(request),
            user_agent=request.headers.get("user-agent"),
        )
    elif grant_type == "refresh_token":
        issued = await run_in_threadpool(
            refresh_grant, state.ctx, refresh_token=body.get("refresh_token")
        )
    elif grant_type == "pkce":
        issued = await run_in_threadpool(
            pkce_grant,
            state.ctx,
            auth_code=body.get("auth_code"),
            code_verifier=body.get("code_verifier"),
            ip=client_ip(request),
            user_agent=request.headers.get("user-agent"),
        )
    elif grant_type is None or grant_type == "":
        raise AuthError("validation_failed", "grant_type is required")
    else:
        raise AuthError("unsupported_grant_type")
    return json_response(request, session_json(issued))
