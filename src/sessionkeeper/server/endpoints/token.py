"""POST /token?grant_type=password|refresh_token."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from sessionkeeper.core import validation
from sessionkeeper.core.ratelimit import Verdict
from sessionkeeper.errors import AuthError
from sessionkeeper.server.http import client_ip, json_response, read_json
from sessionkeeper.server.limiting import refuse_if_limited
from sessionkeeper.server.serialize import session_json
from sessionkeeper.server.state import server_state
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


async def post_token(request: Request) -> Response:
    state = server_state(request)
    grant_type = request.query_params.get("grant_type")
    body = await read_json(request)
    if grant_type == "password":
        email = _email_key(body.get("email"))
        by_email = state.password_limit_email.peek(email) if email else Verdict(True)
        refuse_if_limited(
            state,
            request,
            [state.password_limit_ip.hit(client_ip(request)), by_email],
            what="password grant",
            email=email,
        )
        try:
            issued = await run_in_threadpool(
                password_grant,
                state.ctx,
                email=body.get("email"),
                password=body.get("password"),
                ip=client_ip(request),
                user_agent=request.headers.get("user-agent"),
            )
        except AuthError as exc:
            if exc.code == "invalid_credentials" and email:
                state.password_limit_email.hit(email)  # only failures count per email
            raise
    elif grant_type == "refresh_token":
        issued = await run_in_threadpool(
            refresh_grant, state.ctx, refresh_token=body.get("refresh_token")
        )
    elif grant_type is None or grant_type == "":
        raise AuthError("validation_failed", "grant_type is required")
    else:
        raise AuthError("unsupported_grant_type")
    return json_response(request, session_json(issued))
