"""The session bridge beside the auth server: ``/auth/callback`` & co. in ``sessionkeeper serve``.

When the app and the auth server share an origin (one domain, ``/auth/v1`` and ``/auth/*`` routed
to sessionkeeper), the bridge belongs here: it verifies with the server's own key ring, reads
session liveness from the store (a session logged out elsewhere is not turned into cookies), and
refreshes and redeems codes in-process (:class:`~sessionkeeper.bridge.LocalIssuer`). An API on the
same origin then reads the cookies with ``SessionGuard(transport="cookie", bridge=...)`` and an
``HttpIssuer`` (docs/bridge.md).
"""

from __future__ import annotations

from sessionkeeper.bridge import CookiePolicy, LocalIssuer, SessionBridge
from sessionkeeper.bridge.session import Authenticate
from sessionkeeper.guard.liveness import StoreLiveness, authenticate_alive
from sessionkeeper.guard.principal import Principal
from sessionkeeper.guard.verifier import Verifier
from sessionkeeper.origins import AllowedOrigins, origin
from sessionkeeper.server.guard_keys import KeyRingKeys
from sessionkeeper.service.context import AuthContext
from sessionkeeper.settings import Config


def server_keys(config: Config, ctx: AuthContext) -> KeyRingKeys:
    """The key source of a guard or bridge in the auth server's process."""
    secret = config.tokens.jwt_secret
    hmac = (
        secret.get_secret_value().encode()
        if config.tokens.signing_alg == "HS256" and secret
        else None
    )
    return KeyRingKeys(ctx.keyring, hmac_secret=hmac, clock=ctx.clock)


def local_check(config: Config, ctx: AuthContext) -> Authenticate:
    """Verify with the key ring (same clock as the signer: no leeway) and require the session to
    be alive in the store right now."""
    verifier = Verifier(
        server_keys(config, ctx),
        issuers=(ctx.issuer,),
        audiences=("authenticated",),
        leeway=0.0,
        clock=ctx.clock,
    )
    liveness = StoreLiveness(ctx.store, window=0.0, policy=ctx.policy, clock=ctx.clock)

    async def check(token: str) -> Principal:
        return await authenticate_alive(verifier, liveness, token)

    return check


def local_bridge(
    config: Config,
    ctx: AuthContext,
    *,
    allowed_origins: AllowedOrigins | None = None,
    insecure_dev_cookies: bool | None = None,
    authenticate: Authenticate | None = None,
) -> SessionBridge:
    """A bridge over this process's auth server. ``authenticate`` defaults to
    :func:`local_check`; a guard built with this bridge lends its own when none is given."""
    dev = (
        config.bridge.insecure_dev_cookies if insecure_dev_cookies is None else insecure_dev_cookies
    )
    return SessionBridge(
        issuer=LocalIssuer(ctx),
        allowed_origins=allowed_origins or config.bridge.allowed(),
        authenticate=authenticate,
        cookies=CookiePolicy(insecure_dev_cookies=dev),
        authorize_url=f"{ctx.issuer}/authorize",
        # The issuer, when configured, is the public URL the browser reaches us at (behind a
        # TLS-terminating proxy the request itself may say http://).
        public_origin=origin(config.tokens.issuer) if config.tokens.issuer else None,
        clock=ctx.clock,
    )
