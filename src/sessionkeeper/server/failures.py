"""The last line of defence: an unexpected exception becomes one log line and a catalogue 500.

Starlette's own handler for ``Exception`` answers and then re-raises, so uvicorn printed a second,
unstructured traceback for every failure. This pure ASGI middleware sits inside Starlette's and
answers itself, so each failure is logged once, with the path, and the client still gets the
error format it asked for.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sessionkeeper.errors import AuthError
from sessionkeeper.server.http import error_response

log = logging.getLogger("sessionkeeper.server")


class UnexpectedFailureMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception(
                "unexpected failure", extra={"event": "unexpected", "path": scope["path"]}
            )
            if started:  # too late to answer: let the server close the connection
                raise
            response = error_response(Request(scope), AuthError("unexpected_failure"))
            await response(scope, receive, send)
