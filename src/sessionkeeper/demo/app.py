"""The demo, assembled: auth server at ``/auth/v1``, guarded API at ``/api``, the app at ``/``.

One process on the embedded SQLite store, the way a team would lay out the real thing: the
browser talks to one origin; every ``/api`` call goes through ``sessionkeeper.js``; the guard
verifies locally with the server's own keys and reads session liveness from the store on every
request (``liveness_window`` 0; a busy deployment would cache it a few seconds), so a global
sign-out elsewhere is refused at the next click.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from sessionkeeper.demo.api import api_routes
from sessionkeeper.guard import SessionGuard, StoreLiveness
from sessionkeeper.origins import AllowedOrigins
from sessionkeeper.server.app import create_app
from sessionkeeper.server.session_bridge import local_bridge, server_keys
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


Mode = Literal["bearer", "cookie"]
MODES: tuple[Mode, ...] = ("bearer", "cookie")


def _index_page(mode: Mode) -> bytes:
    """index.html telling app.js which transport this server runs (a meta tag: no inline
    script under the CSP)."""
    page = (STATIC / "index.html").read_text()
    meta = f'<meta name="sessionkeeper-transport" content="{mode}">'
    return page.replace("<head>", f"<head>\n  {meta}", 1).encode()


def _index_route(mode: Mode) -> Route:
    page = _index_page(mode)

    async def index(request: Request) -> Response:
        return HTMLResponse(
            page,
            headers={
                "Content-Security-Policy": CONTENT_SECURITY_POLICY,
                "Cache-Control": "no-cache",
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
            },
        )

    return Route("/", index, methods=["GET", "HEAD"])


def demo_origins(config: Config) -> AllowedOrigins:
    """The bridge's allow-list: the configured one plus the addresses the demo prints (its
    own origin under the loopback names a browser may use)."""
    port = config.server.port
    host = config.server.host
    own = {f"http://{host}:{port}"} if host not in ("0.0.0.0", "::") else set()  # noqa: S104
    if host in ("127.0.0.1", "localhost", "0.0.0.0", "::", "::1"):  # noqa: S104
        own |= {f"http://127.0.0.1:{port}", f"http://localhost:{port}"}
    own.discard(f"http://::1:{port}")
    return AllowedOrigins([*config.bridge.allowed().origins, *sorted(own)])


def create_demo_app(
    config: Config,
    ctx: AuthContext,
    *,
    guard_issuer: str | None = None,
    liveness_window: float = 0.0,
    mode: Mode = "bearer",
) -> Starlette:
    """The demo server. ``guard_issuer`` is the issuer the API expects (default: this server's
    own); setting another one reproduces the classic "API verifies against the wrong project"
    outage, which ``sessionkeeper doctor probe`` then names.

    ``mode="cookie"`` keeps the session in HttpOnly cookies set by the session bridge at
    ``/auth/*``; the guard reads them and renews them server-side. The demo runs on plain http
    on loopback, so it asks for development cookies (no ``Secure``) by name."""
    keys = server_keys(config, ctx)
    api = Starlette(routes=api_routes())
    # The guard lends the bridge its token check (keys, liveness, no leeway), so the API and
    # /auth/* judge a cookie alike.
    bridge = local_bridge(
        config, ctx, allowed_origins=demo_origins(config), insecure_dev_cookies=True
    )
    guarded = SessionGuard(
        api,
        transport=mode,
        bridge=bridge if mode == "cookie" else None,
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
        _index_route(mode),
        Mount("/assets", app=StaticFiles(directory=STATIC), name="assets"),
    ]
    if mode == "bearer":
        bridge.adopt_check(guarded.authenticate)  # /auth/* still works for bearer pages
    return create_app(config, ctx, routes=routes, bridge=bridge)
