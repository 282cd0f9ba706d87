"""Application assembly: the mountable auth app and the server app that mounts it at /auth/v1."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from sessionkeeper.clock import Clock, SystemClock
from sessionkeeper.core.passwords import Passwords
from sessionkeeper.core.ratelimit import Limiter, RateLimiter
from sessionkeeper.errors import AuthError, StoreConflictError, StoreUnavailableError
from sessionkeeper.origins import AllowedOrigins
from sessionkeeper.server.access_log import AccessLogMiddleware
from sessionkeeper.server.endpoints.authorize import get_authorize, get_style, post_authorize
from sessionkeeper.server.endpoints.meta import get_health, get_jwks, get_settings
from sessionkeeper.server.endpoints.signup import post_signup
from sessionkeeper.server.endpoints.token import post_token
from sessionkeeper.server.endpoints.user import get_user_endpoint, post_logout, put_user_endpoint
from sessionkeeper.server.failures import UnexpectedFailureMiddleware
from sessionkeeper.server.http import error_response
from sessionkeeper.server.limits import BodyLimitMiddleware
from sessionkeeper.server.password_slots import PasswordSlots
from sessionkeeper.server.state import ServerState
from sessionkeeper.service.cleanup import cleanup
from sessionkeeper.service.context import AuthContext
from sessionkeeper.service.keyring import KeyRing
from sessionkeeper.settings import Config
from sessionkeeper.store import Store
from sessionkeeper.web import client_script_route

if TYPE_CHECKING:
    from sessionkeeper.bridge import SessionBridge

log = logging.getLogger("sessionkeeper.server")

CORS_ALLOW_HEADERS = [
    "Authorization",
    "Content-Type",
    "X-Client-Info",
    "X-JWT-AUD",
    "X-Supabase-Api-Version",
    "apikey",
]


async def _auth_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AuthError)
    return error_response(request, exc)


async def _store_down(request: Request, exc: Exception) -> Response:
    log.error(
        "store unavailable",
        extra={"event": "store_unavailable", "path": request.url.path, "error": str(exc)[:300]},
    )
    return error_response(request, AuthError("service_unavailable", headers={"Retry-After": "1"}))


async def _store_conflict(request: Request, exc: Exception) -> Response:
    log.info(
        "session busy",
        extra={"event": "store_conflict", "path": request.url.path, "error": str(exc)[:300]},
    )
    return error_response(request, AuthError("conflict", headers={"Retry-After": "1"}))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "validation_failed")
    return error_response(request, AuthError(code, headers=dict(exc.headers or {})))


def _limiter(ctx: AuthContext, name: str, limit: int, window: float) -> Limiter:
    """Counters shared through the session store when it offers them (Redis), else local."""
    shared = getattr(ctx.store, "rate_limiter", None)
    if shared is not None:
        limiter: Limiter = shared(name=name, limit=limit, window=window, clock=ctx.clock)
        return limiter
    return RateLimiter(limit, window, ctx.clock)


def create_auth_app(
    ctx: AuthContext,
    *,
    cors_origins: Sequence[str] = (),
    rate_window: float = 300.0,
    password_per_ip: int = 30,
    password_per_email: int = 10,
    signup_per_ip: int = 30,
    allowed_origins: AllowedOrigins | None = None,
) -> Starlette:
    """The auth API with routes at its root, ready to mount at ``/auth/v1``."""
    routes = [
        Route("/signup", post_signup, methods=["POST"]),
        Route("/token", post_token, methods=["POST"]),
        Route("/logout", post_logout, methods=["POST"]),
        Route("/user", get_user_endpoint, methods=["GET"]),
        Route("/user", put_user_endpoint, methods=["PUT"]),
        Route("/settings", get_settings, methods=["GET"]),
        Route("/health", get_health, methods=["GET"]),
        Route("/.well-known/jwks.json", get_jwks, methods=["GET"]),
        Route("/authorize", get_authorize, methods=["GET"]),
        Route("/authorize", post_authorize, methods=["POST"]),
        Route("/authorize/style.css", get_style, methods=["GET"]),
    ]
    middleware = [Middleware(BodyLimitMiddleware), Middleware(UnexpectedFailureMiddleware)]
    if cors_origins:
        middleware.insert(
            0,
            Middleware(
                CORSMiddleware,
                allow_origins=list(cors_origins),
                allow_methods=["GET", "POST", "PUT", "DELETE", "OPTIONS"],
                allow_headers=CORS_ALLOW_HEADERS,
                expose_headers=["X-Supabase-Api-Version", "x-sb-error-code"],
                max_age=600,
            ),
        )
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={
            AuthError: _auth_error,
            StoreUnavailableError: _store_down,
            StoreConflictError: _store_conflict,
            HTTPException: _http_error,
        },
    )
    app.state.sessionkeeper = ServerState(
        ctx=ctx,
        password_limit_ip=_limiter(ctx, "password_ip", password_per_ip, rate_window),
        password_limit_email=_limiter(ctx, "password_email", password_per_email, rate_window),
        signup_limit_ip=_limiter(ctx, "signup_ip", signup_per_ip, rate_window),
        password_slots=PasswordSlots(),
        log=log,
        allowed_origins=allowed_origins or AllowedOrigins(()),
    )
    return app


def build_context(
    config: Config, store: Store, *, clock: Clock | None = None, passwords: Passwords | None = None
) -> AuthContext:
    """Wire settings, store and keys into the service context. Migrates and ensures a key."""
    clock = clock or SystemClock()
    store.migrate()
    secret = config.tokens.jwt_secret
    keyring = KeyRing(
        store,
        alg=config.tokens.signing_alg,
        hmac_secret=secret.get_secret_value().encode() if secret else None,
        reload_interval=config.tokens.key_reload_interval,
        clock=clock,
        cipher=config.tokens.key_cipher(),
    )
    keyring.prepare()
    return AuthContext(
        store=store,
        keyring=keyring,
        issuer=config.issuer(),
        jwt_exp=config.tokens.jwt_exp,
        policy=config.sessions.policy(),
        passwords=passwords or Passwords(),
        clock=clock,
        disable_signup=config.signup.disable_signup,
        password_min_length=config.signup.password_min_length,
    )


async def _clean_up_every(ctx: AuthContext, interval: float, retention: float) -> None:
    """Run retention clean-up in a worker thread every ``interval`` seconds; failures are
    logged and retried next time (a store outage must not end the server)."""
    while True:
        await asyncio.sleep(interval)
        try:
            await run_in_threadpool(cleanup, ctx, retention=retention)
        except Exception:
            log.exception("clean-up failed", extra={"event": "cleanup_failed"})


def create_app(
    config: Config,
    ctx: AuthContext,
    *,
    routes: Sequence[BaseRoute] = (),
    bridge: SessionBridge | None = None,
) -> Starlette:
    """The server: the auth API under ``/auth/v1`` (where the official clients look for it),
    the session bridge at ``/auth/callback``, ``/auth/login``, ``/auth/refresh`` and
    ``/auth/session`` (``bridge``, or one over this server: docs/bridge.md), and the browser
    client at ``/sessionkeeper.js``; ``routes`` adds an application beside them (the demo)."""
    from sessionkeeper.bridge import Bridge
    from sessionkeeper.server.session_bridge import local_bridge, local_check

    if bridge is None:
        bridge = local_bridge(config, ctx, authenticate=local_check(config, ctx))
    auth = create_auth_app(
        ctx,
        cors_origins=config.server.cors_origins,
        rate_window=config.rate_limits.rate_limit_window,
        password_per_ip=config.rate_limits.rate_limit_password_per_ip,
        password_per_email=config.rate_limits.rate_limit_password_per_email,
        signup_per_ip=config.rate_limits.rate_limit_signup_per_ip,
        allowed_origins=config.bridge.allowed(),
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        interval = config.sessions.cleanup_interval
        retention = config.sessions.cleanup_retention
        task = asyncio.create_task(_clean_up_every(ctx, interval, retention)) if interval else None
        yield
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
        ctx.store.close()

    app = Starlette(
        routes=[
            Mount("/auth/v1", app=auth),
            *Bridge(bridge).routes(),
            client_script_route(),
            *routes,
        ],
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error},
        middleware=[Middleware(AccessLogMiddleware)] if config.server.access_log else [],
    )
    return app
