"""``sessionkeeper serve``: validate settings, open and migrate the store, run uvicorn."""

from __future__ import annotations

import logging
import socket
from typing import Any

import uvicorn

from sessionkeeper import logs, settings
from sessionkeeper.server.app import build_context, create_app
from sessionkeeper.store import open_configured_store

log = logging.getLogger("sessionkeeper.server")


def listen_socket(host: str, port: int) -> socket.socket:
    """A bound TCP socket (port 0 picks a free one), so the real port is known before start.

    The protocol is given as IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted
    connections only when the listening socket says it is TCP; with protocol 0 every keep-alive
    response waited ~40 ms for the client's delayed ACK.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def run(**flags: Any) -> None:
    config = settings.load(**flags)
    logs.configure(config.server.log_level, json_lines=config.server.log_json)
    sock = listen_socket(config.server.host, config.server.port)
    port = sock.getsockname()[1]
    if config.server.port == 0:
        # The issuer defaults to the URL we listen on: fix it to the port actually bound.
        config = settings.load(**{**flags, "port": port})
    if config.tokens.issuer is None and config.server.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning(
            "no --issuer set: tokens name this listening address as their issuer; set "
            "SESSIONKEEPER_ISSUER to the public URL, the same on every instance",
            extra={"event": "issuer_defaulted", "issuer": config.issuer()},
        )
    store = open_configured_store(config)
    ctx = build_context(config, store)
    app = create_app(config, ctx)
    log.info(
        "listening",
        extra={
            "event": "listening",
            "url": f"http://{config.server.host}:{port}/auth/v1",
            "issuer": ctx.issuer,
            "store": store.url_for_display,
            "signing_alg": config.tokens.signing_alg,
            "kid": ctx.keyring.current().active.kid,
        },
    )
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_level=config.server.log_level,
            access_log=False,
            timeout_graceful_shutdown=5,
            proxy_headers=True,
        )
    )
    server.run(sockets=[sock])
