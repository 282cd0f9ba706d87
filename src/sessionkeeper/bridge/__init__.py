"""The session bridge: HttpOnly session cookies for apps that keep the session server-side.

See docs/bridge.md. ``SessionBridge`` holds the cookie policy, the ``Origin`` allow-list and the
issuer client; ``Bridge(...).routes()`` are its ``/auth/*`` endpoints; a ``SessionGuard`` built
with ``transport="cookie", bridge=...`` reads and renews the same cookies on API calls.
"""

from sessionkeeper.bridge.cookies import CookiePolicy
from sessionkeeper.bridge.endpoints import Bridge
from sessionkeeper.bridge.issuer import (
    HttpIssuer,
    IssuerRefused,
    IssuerUnavailable,
    LocalIssuer,
    SessionTokens,
)
from sessionkeeper.bridge.redirects import safe_redirect
from sessionkeeper.bridge.session import CSRF_HEADER, EXPIRES_HEADER, SessionBridge
from sessionkeeper.origins import AllowedOrigins

__all__ = [
    "CSRF_HEADER",
    "EXPIRES_HEADER",
    "AllowedOrigins",
    "Bridge",
    "CookiePolicy",
    "HttpIssuer",
    "IssuerRefused",
    "IssuerUnavailable",
    "LocalIssuer",
    "SessionBridge",
    "SessionTokens",
    "safe_redirect",
]
