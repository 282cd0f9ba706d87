"""POST /token?grant_type=password|refresh_token."""

from __future__ import annotations

from contextlib import suppress

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from sessionkeeper.core import validation
from sessionkeeper.errors import AuthError
from sessionkeeper.logs import fingerprint
from sessionkeeper.server.http import client_ip, json_response, read_json
from sessionkeeper.server.serialize import session_json
from sessionkeeper.server.state import ServerState, server_state
from sessionkeeper.service.grants import password_grant, refresh_grant


def _rate_limit(state: ServerState, request: Request, email: object) -> None:
    """Per-IP and per-email limits on password grants, checked before any argon2 work."""
    checks = [state.password_limit_ip.hit(client_ip(request))]
    if isinstance(email, str):
        with suppress(AuthError):  # a malformed email: the grant itself answers with a 400
            checks.append(state.password_limit_email.hit(validation.normalize_email(email)))
    refused = [v for v in checks if not v.allowed]
    if refused:
        wait = max(v.retry_after for v in refused)
        state.log.warning(
            "password grant rate limited",
            extra={
                "event": "rate_limited",
                "ip": client_ip(request),
                "email_fp": fingerprint(email) if isinstance(email, str) else None,
            },
        )
        raise AuthError("over_request_rate_limit", headers={"Retry-After": str(int(wait) + 1)})


async def post_token(request: Request) -> Response:
    state = server_state(request)
    grant_type = request.query_params.get("grant_type")
    body = await read_json(request)
    if grant_type == "password":
        _rate_limit(state, request, body.get("email"))
        issued = await run_in_threadpool(
            password_grant,
            state.ctx,
            email=body.get("email"),
            password=body.get("password"),
            ip=client_ip(request),
            user_agent=request.headers.get("user-agent"),
        )
    elif grant_type == "refresh_token":
        issued = await run_in_threadpool(
            refresh_grant, state.ctx, refresh_token=body.get("refresh_token")
        )
    elif grant_type is None or grant_type == "":
        raise AuthError("validation_failed", "grant_type is required")
    else:
        raise AuthError("unsupported_grant_type")
    return json_response(request, session_json(issued))
