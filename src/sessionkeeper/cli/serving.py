"""``sessionkeeper serve`` and ``sessionkeeper demo``: validate settings, open and migrate the
store, run uvicorn."""

from __future__ import annotations

import logging
import os
import socket
import sys
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.applications import Starlette

from sessionkeeper import logs, settings
from sessionkeeper.server.app import build_context, create_app
from sessionkeeper.service.context import AuthContext
from sessionkeeper.settings import Config
from sessionkeeper.store import Store, open_configured_store

log = logging.getLogger("sessionkeeper.server")

DEMO_DATABASE = "sqlite:///./sessionkeeper-demo.db"
DEMO_PORT = 8000
DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "demo-password"  # noqa: S105 - the demo's published credentials


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


@dataclass
class Prepared:
    config: Config
    sock: socket.socket
    port: int
    store: Store
    ctx: AuthContext


def _prepare(flags: dict[str, Any]) -> Prepared:
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
    return Prepared(config, sock, port, store, ctx)


def _serve(prepared: Prepared, app: Starlette) -> None:
    config, ctx = prepared.config, prepared.ctx
    log.info(
        "listening",
        extra={
            "event": "listening",
            "url": f"http://{_url_host(config.server.host)}:{prepared.port}/auth/v1",
            "issuer": ctx.issuer,
            "store": prepared.store.url_for_display,
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
    server.run(sockets=[prepared.sock])


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def run(**flags: Any) -> None:
    prepared = _prepare(flags)
    _serve(prepared, create_app(prepared.config, prepared.ctx))


def run_demo(
    *,
    guard_issuer: str | None = None,
    mode: str = "bearer",
    demo_email: str | None = None,
    demo_password: str | None = None,
    **flags: Any,
) -> None:
    """The demo: serve's flags, a demo SQLite file and port by default, a seeded demo user."""
    from sessionkeeper.demo.app import create_demo_app
    from sessionkeeper.demo.users import ensure_demo_user

    if flags.get("database") is None and "SESSIONKEEPER_DATABASE" not in os.environ:
        flags["database"] = DEMO_DATABASE
    if flags.get("port") is None and "SESSIONKEEPER_PORT" not in os.environ:
        flags["port"] = DEMO_PORT
    email = demo_email or os.environ.get("SESSIONKEEPER_DEMO_EMAIL") or DEMO_EMAIL
    password = demo_password or os.environ.get("SESSIONKEEPER_DEMO_PASSWORD") or DEMO_PASSWORD
    prepared = _prepare(flags)
    ensure_demo_user(prepared.ctx, email=email, password=password)
    app = create_demo_app(
        prepared.config,
        prepared.ctx,
        guard_issuer=guard_issuer,
        mode="cookie" if mode == "cookie" else "bearer",
    )
    host = prepared.config.server.host
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else _url_host(host)  # noqa: S104
    # The first lines a user (and a test) reads; logs follow on stderr.
    sys.stdout.write(
        "sessionkeeper demo\n"
        f"  open      http://{shown}:{prepared.port}/\n"
        f"  sign in   {email} / {password}\n"
        f"  mode      {mode}"
        + (
            " (HttpOnly cookies; development cookies without Secure on loopback)"
            if mode == "cookie"
            else ""
        )
        + "\n"
    )
    sys.stdout.flush()
    _serve(prepared, app)
