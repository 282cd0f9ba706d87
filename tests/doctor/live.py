"""A live deployment for ``doctor probe`` tests: the auth server and a guarded API on one
loopback port, in a uvicorn thread (fast, and every knob the demo does not expose is here:
diagnostics off, another issuer, an HS256 server)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from sessionkeeper import settings
from sessionkeeper.guard import SessionGuard, principal_of
from sessionkeeper.server.app import build_context, create_app
from sessionkeeper.server.guard_keys import KeyRingKeys
from sessionkeeper.store.sqlite import SQLiteStore
from tests.conftest import PASSWORD, fast_passwords, serve_in_thread
from tests.guard.conftest import free_port

EMAIL = "ada@example.com"


@dataclass(frozen=True)
class Live:
    base_url: str
    email: str = EMAIL
    password: str = PASSWORD

    def access_token(self) -> str:
        r = httpx.post(
            f"{self.base_url}/auth/v1/token?grant_type=password",
            json={"email": self.email, "password": self.password},
            timeout=10,
        )
        r.raise_for_status()
        token: str = r.json()["access_token"]
        return token


async def _hello(request: Request) -> Response:
    principal = principal_of(request)
    return JSONResponse({"user": principal.user_id if principal else None})


@contextmanager
def live_deployment(
    database: Path,
    *,
    diagnostics: bool = True,
    guard_issuer: str | None = None,
    **overrides: Any,
) -> Iterator[Live]:
    port = free_port()
    config = settings.load(
        port=port,
        database=f"sqlite:///{database}",
        rate_limit_password_per_ip=0,
        rate_limit_password_per_email=0,
        rate_limit_signup_per_ip=0,
        **overrides,
    )
    store = SQLiteStore(database)
    ctx = build_context(config, store, passwords=fast_passwords())
    secret = config.tokens.jwt_secret
    keys = KeyRingKeys(
        ctx.keyring,
        hmac_secret=secret.get_secret_value().encode() if secret else None,
        clock=ctx.clock,
    )
    api = SessionGuard(
        Starlette(routes=[Route("/hello", _hello)]),
        issuer=guard_issuer or ctx.issuer,
        keys=keys,
        protect=("/api/",),
        diagnostics=diagnostics,
    )
    app = create_app(config, ctx, routes=[Mount("/api", app=api)])
    with serve_in_thread(app, port, "live deployment"):
        live = Live(f"http://127.0.0.1:{port}")
        r = httpx.post(
            f"{live.base_url}/auth/v1/signup",
            json={"email": EMAIL, "password": PASSWORD},
            timeout=10,
        )
        assert r.status_code == 200, r.text
        try:
            yield live
        finally:
            store.close()
