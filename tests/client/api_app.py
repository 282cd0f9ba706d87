"""A protected API for the client tests, run as its own process: ``python -m tests.client.api_app``.

It verifies each bearer token locally against its issuer's JWKS (PyJWT's ``PyJWKClient``), as a
real API behind sessionkeeper would. One API process serves a whole test session while each test
starts its own auth server, so the issuer is taken from the token's ``iss`` and must be an
``http://127.0.0.1:`` URL (a test-only shortcut: a real API pins one issuer).

It counts what it saw, so that tests prove behaviour from the server side: attempts per call
(``X-Call-Id``), receipts and creations per POSTed item, statuses.
``POST /_mode {"reject_all": true}`` makes it answer 401 to everything. It prints
``listening port=N`` before it serves.
"""

from __future__ import annotations

import socket
import sys
from collections import Counter
from typing import Any

import jwt
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sessionkeeper.logs import fingerprint


class Counters:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.statuses: Counter[int] = Counter()
        self.attempts: Counter[str] = Counter()
        self.received: Counter[str] = Counter()
        self.created: Counter[str] = Counter()
        self.tokens: Counter[str] = Counter()  # bearer tokens seen, by fingerprint
        self.reject_all = False

    def snapshot(self) -> dict[str, Any]:
        return {
            "statuses": {str(k): v for k, v in self.statuses.items()},
            "attempts": dict(self.attempts),
            "received": dict(self.received),
            "created": dict(self.created),
            "tokens": dict(self.tokens),
        }


def build_app() -> Starlette:
    key_clients: dict[str, jwt.PyJWKClient] = {}
    counters = Counters()

    def keys_for(token: str) -> jwt.PyJWKClient:
        issuer = jwt.decode(token, options={"verify_signature": False}).get("iss", "")
        if not isinstance(issuer, str) or not issuer.startswith("http://127.0.0.1:"):
            raise jwt.InvalidIssuerError("not a loopback issuer")
        if issuer not in key_clients:
            key_clients[issuer] = jwt.PyJWKClient(f"{issuer}/.well-known/jwks.json", lifespan=3600)
        return key_clients[issuer]

    def verify(request: Request) -> dict[str, Any] | None:
        if call_id := request.headers.get("x-call-id"):
            counters.attempts[call_id] += 1
        if counters.reject_all:
            return None
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        counters.tokens[fingerprint(token)] += 1
        try:
            key = keys_for(token).get_signing_key_from_jwt(token)
            claims: dict[str, Any] = jwt.decode(
                token, key.key, algorithms=["ES256", "RS256"], audience="authenticated"
            )
        except jwt.PyJWTError:
            return None
        return claims

    def answer(status: int, body: dict[str, Any]) -> Response:
        counters.statuses[status] += 1
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse(body, status_code=status, headers=headers)

    async def echo(request: Request) -> Response:
        claims = verify(request)
        if claims is None:
            return answer(401, {"error": "Unauthorized"})
        return answer(200, {"sub": claims["sub"], "session_id": claims.get("session_id")})

    async def create_item(request: Request) -> Response:
        body = await request.json()
        item = str(body.get("id"))
        counters.received[item] += 1
        if verify(request) is None:
            return answer(401, {"error": "Unauthorized"})
        counters.created[item] += 1
        return answer(201, {"id": item, "created": counters.created[item]})

    async def stats(request: Request) -> Response:
        return JSONResponse(counters.snapshot())

    async def mode(request: Request) -> Response:
        counters.reject_all = bool((await request.json()).get("reject_all"))
        return JSONResponse({"reject_all": counters.reject_all})

    async def reset(request: Request) -> Response:
        counters.reset()
        return JSONResponse({})

    return Starlette(
        routes=[
            Route("/api/echo", echo),
            Route("/api/items", create_item, methods=["POST"]),
            Route("/_stats", stats),
            Route("/_mode", mode, methods=["POST"]),
            Route("/_reset", reset, methods=["POST"]),
        ]
    )


def main() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(build_app(), log_level="warning", access_log=False, backlog=2048)
    server = uvicorn.Server(config)
    print(f"listening port={sock.getsockname()[1]}", flush=True)
    server.run(sockets=[sock])
    sys.exit(0)


if __name__ == "__main__":
    main()
