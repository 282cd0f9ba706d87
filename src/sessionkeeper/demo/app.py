"""The demo, assembled: auth server at ``/auth/v1``, guarded API at ``/api``, the app at ``/``.

One process on the embedded SQLite store, the way a team would lay out the real thing: the
browser talks to one origin; every ``/api`` call goes through ``sessionkeeper.js``; the guard
verifies locally with the server's own keys and reads session liveness from the store on every
request (``liveness_window`` 0; a busy deployment would cache it a few seconds), so a global
sign-out elsewhere is refused at the next click.
"""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from sessionkeeper.demo.api import api_routes
from sessionkeeper.guard import SessionGuard, StoreLiveness
from sessionkeeper.server.app import create_app
from sessionkeeper.server.guard_keys import KeyRingKeys
from sessionkeeper.service.context import AuthContext
from sessionkeeper.settings import Config

STATIC = Path(__file__).parent / "static"

#: Only same-origin scripts, styles, connections; no framing. The banner's styles are a
#: constructed stylesheet, which needs no 'unsafe-inline'.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; "
    "object-src 'none'"
)


async def _index(request: Request) -> Response:
    return FileResponse(
        STATIC / "index.html",
        headers={
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "Cache-Control": "no-cache",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )


def create_demo_app(
    config: Config,
    ctx: AuthContext,
    *,
    guard_issuer: str | None = None,
    liveness_window: float = 0.0,
) -> Starlette:
    """The demo server. ``guard_issuer`` is the issuer the API expects (default: this server's
    own); setting another one reproduces the classic "API verifies against the wrong project"
    outage, which ``sessionkeeper doctor probe`` then names."""
    secret = config.tokens.jwt_secret
    keys = KeyRingKeys(
        ctx.keyring,
        hmac_secret=secret.get_secret_value().encode()
        if config.tokens.signing_alg == "HS256" and secret
        else None,
        clock=ctx.clock,
    )
    api = Starlette(routes=api_routes())
    guarded = SessionGuard(
        api,
        issuer=guard_issuer or ctx.issuer,
        keys=keys,
        protect=("/api/",),
        liveness=StoreLiveness(ctx.store, window=liveness_window, policy=ctx.policy),
        # Issuer and API share this process's clock: no skew to forgive, so a token is refused
        # the moment it expires (and --jwt-exp 5 shows the refresh at once).
        leeway=0.0,
        diagnostics=True,  # a demo: show the refusal reason in X-Auth-Reason
        clock=ctx.clock,
    )
    routes: list[BaseRoute] = [
        Mount("/api", app=guarded),
        Route("/", _index, methods=["GET", "HEAD"]),
        Mount("/assets", app=StaticFiles(directory=STATIC), name="assets"),
    ]
    return create_app(config, ctx, routes=routes)
