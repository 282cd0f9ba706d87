"""Browser assets the package serves: ``sessionkeeper.js``, the api client for single-page apps.

Served by the package itself so that apps need no build step and always get the client that
matches the server's version (``<script type="module">`` or ``import`` from ``/sessionkeeper.js``).
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

ASSETS = Path(__file__).parent
CLIENT_SCRIPT = ASSETS / "sessionkeeper.js"


async def _client_script(request: Request) -> Response:
    # A public, static file: any origin may import it (it holds no data). `no-cache` makes the
    # browser revalidate (ETag) so an upgraded server never runs with an old client.
    return FileResponse(
        CLIENT_SCRIPT,
        media_type="text/javascript; charset=utf-8",
        headers={
            "Cache-Control": "no-cache",
            "Access-Control-Allow-Origin": "*",
            "X-Content-Type-Options": "nosniff",
        },
    )


def client_script_route(path: str = "/sessionkeeper.js") -> Route:
    """A route serving the browser client at ``path``."""
    return Route(path, _client_script, methods=["GET", "HEAD"])
