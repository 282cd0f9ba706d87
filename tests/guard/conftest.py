"""Guard fixtures: keys, a token factory, and a guarded Starlette app driven in-process.

``guarded`` builds the app behind a :class:`SessionGuard` with a :class:`ManualClock`, so expiry
tests move time instead of sleeping. ``jwks_server`` is a real uvicorn server on a loopback
port (in a thread) whose JWKS answer a test can switch between good, 500 and a time-out.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sessionkeeper.clock import ManualClock
from sessionkeeper.core.keys import SigningKey
from sessionkeeper.guard import SessionGuard, principal_of
from tests.conftest import serve_in_thread

ISSUER = "https://project.example/auth/v1"
NOW = 1_800_000_000
SECRET = "a-very-long-shared-secret-of-at-least-32-bytes"


def claims(**overrides: Any) -> dict[str, Any]:
    """The wire contract's access-token claims, valid at ``NOW``."""
    base: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "8d3f7a4e-user",
        "aud": "authenticated",
        "exp": NOW + 3600,
        "iat": NOW,
        "email": "ada@example.com",
        "phone": "",
        "role": "authenticated",
        "aal": "aal1",
        "amr": [{"method": "password", "timestamp": NOW}],
        "session_id": "5e55-session",
        "is_anonymous": False,
        "app_metadata": {"provider": "email"},
        "user_metadata": {},
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


@pytest.fixture(scope="session")
def es_key() -> SigningKey:
    return SigningKey.generate("ES256", kid="es-1")


@pytest.fixture(scope="session")
def rs_key() -> SigningKey:
    return SigningKey.generate("RS256", kid="rs-1")


@pytest.fixture(scope="session")
def other_key() -> SigningKey:
    """Another project's key, with the same kid as ours (the classic misconfiguration)."""
    return SigningKey.generate("ES256", kid="es-1")


def jwks_of(*keys: SigningKey) -> dict[str, Any]:
    return {"keys": [k.public_jwk() for k in keys]}


def public_routes() -> list[Route]:
    async def hello(request: Request) -> Response:
        principal = principal_of(request)
        return JSONResponse({"user": principal.user_id if principal else None})

    return [
        Route("/api/hello", hello),
        Route("/api/public/info", hello),
        Route("/health", hello),
    ]


@dataclass
class Guarded:
    client: httpx.AsyncClient
    guard: SessionGuard
    clock: ManualClock
    caplog: pytest.LogCaptureFixture

    def refusals(self) -> list[logging.LogRecord]:
        return [r for r in self.caplog.records if r.getMessage() == "request refused"]

    def last_refusal(self) -> dict[str, Any]:
        records = self.refusals()
        assert records, "no refusal was logged"
        return dict(vars(records[-1]))


@pytest.fixture
def guarded(es_key: SigningKey, caplog: pytest.LogCaptureFixture) -> Callable[..., Guarded]:
    caplog.set_level(logging.INFO, logger="sessionkeeper.guard")

    def factory(app: Any = None, **config: Any) -> Guarded:
        clock = config.pop("clock", None) or ManualClock(NOW)
        config.setdefault("issuer", ISSUER)
        if not {"jwks", "jwks_url", "secret", "pem", "keys", "verifier"} & config.keys():
            config["jwks"] = jwks_of(es_key)
        guard = SessionGuard(app or Starlette(routes=public_routes()), clock=clock, **config)
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=guard), base_url="http://api.test"
        )
        return Guarded(client, guard, clock, caplog)

    return factory


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# A real JWKS endpoint ----------------------------------------------------------------------


@dataclass
class JwksServer:
    url: str
    mode: str = "ok"  # "ok" | "500" | "slow" | "garbage"
    document: dict[str, Any] = field(default_factory=dict)
    hits: int = 0
    delay: float = 3.0
    paths: list[str] = field(default_factory=list)
    cache_control: str | None = None  # sent with the JWKS when set


def free_port() -> int:
    """A loopback port nothing listens on (once this returns)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def jwks_server(es_key: SigningKey) -> Iterator[JwksServer]:
    port = free_port()
    state = JwksServer(url=f"http://127.0.0.1:{port}/.well-known/jwks.json")
    state.document = jwks_of(es_key)

    async def jwks(request: Request) -> Response:
        state.hits += 1
        state.paths.append(
            request.url.path + (f"?{request.url.query}" if request.url.query else "")
        )
        if state.mode == "500":
            return Response("boom", status_code=500)
        if state.mode == "slow":
            await asyncio.sleep(state.delay)
        if state.mode == "garbage":
            return Response("<html>", media_type="text/html")
        headers = {"Cache-Control": state.cache_control} if state.cache_control else None
        return Response(json.dumps(state.document), media_type="application/json", headers=headers)

    app = Starlette(routes=[Route("/{path:path}", jwks)])
    with serve_in_thread(app, port, "jwks server"):
        yield state
