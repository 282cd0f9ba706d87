"""GET /settings, /health and /.well-known/jwks.json."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sessionkeeper import __version__
from sessionkeeper.errors import StoreUnavailableError
from sessionkeeper.server.http import json_response
from sessionkeeper.server.state import server_state


async def get_settings(request: Request) -> Response:
    ctx = server_state(request).ctx
    return json_response(
        request,
        {
            "external": {"email": True, "phone": False, "anonymous_users": False},
            "disable_signup": ctx.disable_signup,
            "mailer_autoconfirm": True,  # no mail is sent: addresses are confirmed on sign-up
            "phone_autoconfirm": False,
            "sms_provider": "",
            "saml_enabled": False,
        },
    )


async def get_health(request: Request) -> Response:
    """200 when the store answers; 503 naming the dependency otherwise (never a 4xx)."""
    ctx = server_state(request).ctx
    body = {
        "version": __version__,
        "name": "sessionkeeper",
        "description": "sessionkeeper is a Supabase Auth compatible session server",
    }
    try:
        await run_in_threadpool(ctx.store.ping)
    except StoreUnavailableError:
        return JSONResponse(
            {**body, "status": "unavailable", "dependencies": {"store": "down"}},
            status_code=503,
            headers={"Retry-After": "1", "x-sb-error-code": "service_unavailable"},
        )
    return JSONResponse({**body, "status": "ok", "dependencies": {"store": "ok"}})


async def get_jwks(request: Request) -> Response:
    keys = await run_in_threadpool(server_state(request).ctx.keyring.current)
    return Response(
        keys.jwks_json(),
        media_type="application/json",
        headers={"Cache-Control": "public, max-age=600"},
    )
