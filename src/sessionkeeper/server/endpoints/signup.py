"""POST /signup."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from sessionkeeper.server.http import client_ip, json_response, read_json
from sessionkeeper.server.limiting import hit, refuse_if_limited
from sessionkeeper.server.serialize import session_json
from sessionkeeper.server.state import server_state
from sessionkeeper.service.signup import signup


async def post_signup(request: Request) -> Response:
    state = server_state(request)
    body = await read_json(request)
    verdict = await hit(state.signup_limit_ip, client_ip(request))
    refuse_if_limited(state, request, [verdict], what="signup")
    result = await state.password_slots.run(
        signup,
        state.ctx,
        email=body.get("email"),
        password=body.get("password"),
        data=body.get("data"),
        ip=client_ip(request),
        user_agent=request.headers.get("user-agent"),
    )
    return json_response(request, session_json(result))
