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
    """200 when every dependency answers; 503 naming the ones that do not (never a 4xx).

    The dependencies are ``database`` and, with ``--session-store``, ``session_store``; each is
    pinged on its own so an operator sees which one is down.
    """
    store = server_state(request).ctx.store
    parts = store.dependencies() if hasattr(store, "dependencies") else {"database": store}
    body = {
        "version": __version__,
        "name": "sessionkeeper",
        "description": "sessionkeeper is a Supabase Auth compatible session server",
    }
    status = {}
    for name, part in parts.items():
        try:
            await run_in_threadpool(part.ping)
            status[name] = "ok"
        except StoreUnavailableError:
            status[name] = "down"
    if "down" in status.values():
        return JSONResponse(
            {**body, "status": "unavailable", "dependencies": status},
            status_code=503,
            headers={"Retry-After": "1", "x-sb-error-code": "service_unavailable"},
        )
    return JSONResponse({**body, "status": "ok", "dependencies": status})


async def get_jwks(request: Request) -> Response:
    keys = await run_in_threadpool(server_state(request).ctx.keyring.current)
    return Response(
        keys.jwks_json(),
        media_type="application/json",
        headers={"Cache-Control": "public, max-age=600"},
    )
