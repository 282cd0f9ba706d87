"""A request-body size limit as pure ASGI middleware (no BaseHTTPMiddleware overhead).

``Content-Length`` over the limit is refused before the body is read; a chunked body is
counted as it streams and refused as soon as it passes the limit.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sessionkeeper.errors import AuthError

MAX_BODY_BYTES = 1024 * 1024


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = 0
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                if value.isdigit():
                    # 19+ digits exceed any limit (and thousands would overflow int()).
                    declared = int(value) if len(value) <= 18 else self.max_bytes + 1
                break
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            if declared > self.max_bytes:
                raise AuthError("request_entity_too_large")
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise AuthError("request_entity_too_large")
            return message

        await self.app(scope, limited_receive, send)
