"""One soak instance: the auth server at ``/auth/v1`` and a small API behind the guard at ``/api``.

Laid out like the demo (``sessionkeeper.demo.app``): the guard verifies with the server's own
key ring and reads session liveness from the store on every request (``window=0``), so a session
ended anywhere is refused at its next request, on either instance.

- ``GET /api/ping``: who the guard says you are, and which instance answered.
- ``POST /api/effects``: a side effect, recorded in the database (``soak.effects``). Needs an
  ``Idempotency-Key`` (the request id) and ``X-Soak-Attempt`` (which send of it this is).

Run as ``python -m sessionkeeper.soak.app --database ... --issuer ... --jwt-exp 10 --name a``;
it logs the same ``listening`` line as ``sessionkeeper serve`` (the harness reads the port from
it). Rate limits are off: two hundred users sign in from one address.
"""

from __future__ import annotations

import argparse
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from sessionkeeper.guard import SessionGuard, StoreLiveness, principal_of
from sessionkeeper.server.app import create_app
from sessionkeeper.server.guard_keys import KeyRingKeys
from sessionkeeper.service.context import AuthContext
from sessionkeeper.settings import Config
from sessionkeeper.soak.effects import EffectLog, EffectsUnavailableError

MAX_KEY = 100


def _user_id(request: Request) -> str:
    principal = principal_of(request)
    if principal is None:  # unreachable behind the guard; refuse rather than serve anyone
        raise LookupError("no principal")
    return principal.user_id


def api_routes(effects: EffectLog) -> list[Route]:
    async def ping(request: Request) -> Response:
        return JSONResponse({"user": _user_id(request), "instance": effects.instance})

    async def post_effect(request: Request) -> Response:
        user = _user_id(request)
        key = request.headers.get("idempotency-key", "")
        try:
            attempt = int(request.headers.get("x-soak-attempt", ""))
        except ValueError:
            attempt = 0
        if not key or len(key) > MAX_KEY or attempt < 1:
            return JSONResponse({"error": "Idempotency-Key and X-Soak-Attempt needed"}, 400)
        await request.body()  # read it all, as a real handler would
        try:
            applied = await run_in_threadpool(effects.record, key, attempt, user)
        except EffectsUnavailableError:
            return JSONResponse({"error": "Service Unavailable"}, 503, {"Retry-After": "1"})
        return JSONResponse(
            {"applied": applied, "instance": effects.instance}, 201 if applied else 200
        )

    return [
        Route("/ping", ping, methods=["GET"]),
        Route("/effects", post_effect, methods=["POST"]),
    ]


def create_soak_app(config: Config, ctx: AuthContext, effects: EffectLog) -> Starlette:
    secret = config.tokens.jwt_secret
    keys = KeyRingKeys(
        ctx.keyring,
        hmac_secret=secret.get_secret_value().encode()
        if config.tokens.signing_alg == "HS256" and secret
        else None,
        clock=ctx.clock,
    )
    guarded = SessionGuard(
        Starlette(routes=api_routes(effects)),
        issuer=ctx.issuer,
        keys=keys,
        protect=("/api/",),
        liveness=StoreLiveness(ctx.store, window=0.0, policy=ctx.policy),
        # The guard's default leeway (30 s), as deployed: a token that expired while its request
        # was queued behind a slow proxy or a busy server is still honoured. (With leeway 0 and
        # 10 s tokens, a refresh answer delayed by seconds hands the client a token the API
        # then refuses as expired, and the client must conclude the session is gone.)
        diagnostics=True,
        clock=ctx.clock,
    )
    return create_app(config, ctx, routes=[Mount("/api", app=guarded)])


def main(argv: list[str] | None = None) -> None:
    from sessionkeeper.cli.serving import _prepare, _serve

    parser = argparse.ArgumentParser(prog="python -m sessionkeeper.soak.app")
    parser.add_argument("--database", required=True)
    parser.add_argument("--session-store")
    parser.add_argument("--issuer", required=True)
    parser.add_argument("--jwt-exp", type=int, default=10)
    parser.add_argument("--name", default="instance")
    args = parser.parse_args(argv)
    flags: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "database": args.database,
        "session_store": args.session_store,
        "issuer": args.issuer,
        "jwt_exp": args.jwt_exp,
        "rate_limit_password_per_ip": 0,
        "rate_limit_password_per_email": 0,
        "rate_limit_signup_per_ip": 0,
    }
    prepared = _prepare(flags)
    effects = EffectLog(prepared.config.store.database, args.name)
    try:
        _serve(prepared, create_soak_app(prepared.config, prepared.ctx, effects))
    finally:
        effects.close()


if __name__ == "__main__":
    main()
