"""``SessionBridge``: the cookie side of a deployment, shared by the bridge endpoints and the guard.

It holds what cookie mode needs in one place — the cookie policy, the ``Origin`` allow-list, the
issuer client with its single-flight refresher, and the token check — so the guard (reading
cookies on API calls) and ``/auth/*`` (setting them) can never disagree on a name, an attribute
or an origin.

:meth:`SessionBridge.resolve` is the one rule for "who is this browser": verify the access cookie;
if it is expired (or within the refresh margin) and a refresh cookie is present, refresh
server-side once (single flight) and hand back new ``Set-Cookie`` values; a refusal of the
refresh ends the session (401, cookies cleared), an issuer that cannot be asked is a 503
(cookies kept), and a still-valid access token is served even when its early refresh fails.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sessionkeeper.bridge.cookies import CookieJar, CookiePolicy
from sessionkeeper.bridge.issuer import (
    IssuerClient,
    IssuerRefused,
    IssuerUnavailable,
    SessionTokens,
)
from sessionkeeper.bridge.refresher import SingleFlightRefresher
from sessionkeeper.clock import Clock, SystemClock
from sessionkeeper.guard.principal import Principal
from sessionkeeper.guard.reasons import Reason, Rejection
from sessionkeeper.logs import fingerprint
from sessionkeeper.origins import AllowedOrigins

Authenticate = Callable[[str], Awaitable[Principal]]

#: The header the JS client sends with every cookie-mode request. A cross-site form cannot set
#: a custom header, and a cross-site ``fetch`` that sets one needs a CORS preflight we never
#: grant: with the ``Origin`` check, that is the CSRF defence for unsafe methods.
CSRF_HEADER = "x-sessionkeeper-csrf"
#: Sent on a response whose request was renewed server-side: the session's new expiry (epoch
#: seconds), so the browser client can keep its own idea of the expiry without seeing a token.
EXPIRES_HEADER = "x-session-expires-at"
#: The methods that need no CSRF check; any other method (in any spelling) is unsafe.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
#: Rejections after which the browser's cookies are useless: clear them with the 401.
SESSION_OVER = frozenset({Reason.REFRESH_REFUSED, Reason.SESSION_REVOKED})


@dataclass
class CookieSession:
    """The outcome of :meth:`SessionBridge.resolve`."""

    principal: Principal
    access_token: str
    #: ``Set-Cookie`` values to send (empty when the cookies stay as they are).
    set_cookies: list[str] = field(default_factory=list)

    @property
    def refreshed(self) -> bool:
        return bool(self.set_cookies)


def user_json(principal: Principal, now: float) -> dict[str, Any]:
    """What the browser may know about its session: never a token."""
    return {
        "user": {"id": principal.user_id, "email": principal.email},
        "expires_at": int(principal.expires_at),
        "expires_in": max(0, int(principal.expires_at - now)),
    }


class SessionBridge:
    def __init__(
        self,
        *,
        issuer: IssuerClient,
        allowed_origins: AllowedOrigins,
        authenticate: Authenticate | None = None,
        cookies: CookiePolicy | None = None,
        authorize_url: str | None = None,
        public_origin: str | None = None,
        refresh_margin: float = 60.0,
        remember: float = 10.0,
        clock: Clock | None = None,
    ) -> None:
        self._authenticate = authenticate
        self.issuer = issuer
        self.allowed_origins = allowed_origins
        self.cookies = cookies or CookiePolicy()
        self.authorize_url = authorize_url
        #: The app's public origin (``https://app.example.com``), where ``/auth/login`` sends
        #: the browser back to; without it, the request's own scheme and ``Host``.
        self.public_origin = public_origin.rstrip("/") if public_origin else None
        self.refresh_margin = refresh_margin
        self.clock = clock or SystemClock()
        self.refresher = SingleFlightRefresher(issuer, remember=remember, clock=self.clock)

    async def authenticate(self, token: str) -> Principal:
        """The token check: the one given, else the guard's (a ``SessionGuard`` built with
        ``bridge=`` lends its own, so liveness and leeway are the same on both sides)."""
        if self._authenticate is None:
            raise RuntimeError("SessionBridge has no token check: give authenticate= or a guard")
        return await self._authenticate(token)

    def adopt_check(self, authenticate: Authenticate) -> None:
        if self._authenticate is None:
            self._authenticate = authenticate

    # -- the rule -------------------------------------------------------------------------

    def _due(self, principal: Principal) -> bool:
        """Within the refresh margin: a quarter of the token's life, at most ``refresh_margin``."""
        life = max(0.0, principal.expires_at - principal.issued_at)
        margin = min(self.refresh_margin, life / 4)
        return principal.expires_at - self.clock.now() <= margin

    async def resolve(
        self, scope: Mapping[str, Any], authenticate: Authenticate | None = None
    ) -> CookieSession:
        """The browser's session from its cookies, renewed when due. Raises ``Rejection``."""
        authenticate = authenticate or self.authenticate
        jar = self.cookies.read(scope)
        access, refresh = jar.access_token, jar.refresh_token
        if access is None and refresh is None:
            raise Rejection(Reason.MISSING_TOKEN, "no session cookie")
        principal: Principal | None = None
        if access is not None:
            try:
                principal = await authenticate(access)
            except Rejection as exc:
                if exc.reason is not Reason.EXPIRED or refresh is None:
                    raise
        if (
            principal is not None
            and access is not None
            and (refresh is None or not self._due(principal))
        ):
            return CookieSession(principal, access)
        assert refresh is not None
        try:
            tokens = await self.refresh(refresh)
        except IssuerRefused as exc:
            if principal is not None and access is not None:
                return CookieSession(principal, access)  # still valid: the next call will know
            raise Rejection(
                Reason.REFRESH_REFUSED,
                "the issuer refused the refresh cookie",
                error_code=exc.code,
                refresh_fingerprint=fingerprint(refresh),
            ) from exc
        except IssuerUnavailable as exc:
            if principal is not None and access is not None:
                return CookieSession(principal, access)
            raise Rejection(
                Reason.ISSUER_UNAVAILABLE, "could not refresh", error=str(exc)[:200]
            ) from exc
        fresh = await authenticate(tokens.access_token)
        return CookieSession(fresh, tokens.access_token, self.store_cookies(scope, jar, tokens))

    async def refresh(self, refresh_token: str) -> SessionTokens:
        """One refresh per refresh token in this process (see :mod:`.refresher`)."""
        return await self.refresher.refresh(refresh_token)

    def store_cookies(
        self, scope: Mapping[str, Any], jar: CookieJar, tokens: SessionTokens
    ) -> list[str]:
        return self.cookies.session_cookies(scope, jar, tokens.access_token, tokens.refresh_token)

    def clear_cookies(self, scope: Mapping[str, Any]) -> list[str]:
        try:
            jar = self.cookies.read(scope)
        except Rejection:
            jar = CookieJar(None, None, None)
        return self.cookies.clear_cookies(scope, jar)


def request_origin(scope: Mapping[str, Any]) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"origin":
            return str(value.decode("latin-1"))
    return None


def check_csrf(scope: Mapping[str, Any], allowed: AllowedOrigins) -> None:
    """Unsafe methods under cookie auth need an allow-listed ``Origin`` and the custom header;
    a WebSocket handshake (which can carry no custom header) needs the allow-listed ``Origin``.
    Raises a 403 ``Rejection`` naming which one failed."""
    websocket = scope.get("type") == "websocket"
    if not websocket and str(scope.get("method", "")).upper() in SAFE_METHODS:
        return
    origin: str | None = None
    header = False
    for name, value in scope.get("headers", ()):
        if name == b"origin":
            origin = value.decode("latin-1")
        elif name == CSRF_HEADER.encode() and value.strip() == b"1":
            header = True
    verdict = allowed.check(origin)
    if not verdict.allowed:
        raise Rejection(
            Reason.ORIGIN_NOT_ALLOWED,
            "unsafe method from an origin not on the allow-list",
            origin_check=verdict.reason,
            origin=(origin or "")[:200],
        )
    if not header and not websocket:
        raise Rejection(Reason.CSRF_HEADER_MISSING, f"unsafe method without {CSRF_HEADER}: 1")


class CsrfCheck:
    """The CSRF rule alone, for a cookie guard without a bridge."""

    def __init__(self, allowed: AllowedOrigins) -> None:
        self.allowed_origins = allowed

    def check_csrf(self, scope: Mapping[str, Any]) -> None:
        check_csrf(scope, self.allowed_origins)
