"""One structured log line per request: what was asked, what was answered, and why.

Pure ASGI (no BaseHTTPMiddleware cost). The refusal code comes from the ``x-sb-error-code``
response header, so every 4xx/5xx line says exactly why without parsing bodies. Query strings are
not logged whole: only the keys that explain a request (``grant_type``, ``scope``).
"""

from __future__ import annotations

import logging
import time
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("sessionkeeper.access")

_EXPLAINING_PARAMS = ("grant_type", "scope")


class AccessLogMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        error_code: str | None = None

        async def logging_send(message: Message) -> None:
            nonlocal status, error_code
            if message["type"] == "http.response.start":
                status = message["status"]
                for name, value in message.get("headers", []):
                    if name == b"x-sb-error-code":
                        error_code = value.decode("latin-1")
            await send(message)

        try:
            await self.app(scope, receive, logging_send)
        finally:
            fields = {
                "event": "request",
                "method": scope["method"],
                "path": scope["path"],
                "status": status,
                "ms": round((time.perf_counter() - started) * 1000, 2),
                "client": scope["client"][0] if scope.get("client") else None,
            }
            query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
            fields.update({k: query[k][:40] for k in _EXPLAINING_PARAMS if k in query})
            if error_code:
                fields["error_code"] = error_code
            level = logging.WARNING if status >= 500 else logging.INFO
            log.log(level, "request", extra=fields)
