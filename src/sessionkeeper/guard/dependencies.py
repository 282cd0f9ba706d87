"""FastAPI dependencies over the guard's scope (no FastAPI import: FastAPI recognises
Starlette's ``Request``, so this module works without the ``fastapi`` extra installed).

``current_user`` on a route under ``protect`` just returns what the middleware verified. On an
unprotected route it refuses exactly as the middleware would (same 401/503, same log line): the
middleware catches :class:`GuardRefusal` and answers. That needs the guard inside FastAPI's
error handling, i.e. ``app.add_middleware(SessionGuard, ...)``.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection

from sessionkeeper.guard.context import AUTH_KEY, PRINCIPAL_KEY, GuardRefusal, RequestAuth
from sessionkeeper.guard.principal import Principal
from sessionkeeper.guard.reasons import Reason, Rejection


def _auth(connection: HTTPConnection) -> RequestAuth:
    auth = connection.scope.get(AUTH_KEY)
    if not isinstance(auth, RequestAuth):
        raise RuntimeError("current_user needs SessionGuard: app.add_middleware(SessionGuard, ...)")
    return auth


def current_user(connection: HTTPConnection) -> Principal:
    """The verified caller; refuses the request (401, or 503 when keys are down) otherwise."""
    principal = connection.scope.get(PRINCIPAL_KEY)
    if isinstance(principal, Principal):
        return principal
    auth = _auth(connection)
    raise GuardRefusal(auth.rejection or Rejection(Reason.MISSING_TOKEN, "no token"))


def optional_user(connection: HTTPConnection) -> Principal | None:
    """The verified caller, or ``None`` for an anonymous request (no token sent at all).

    A token that *was* sent and fails is still refused: silently treating an expired token as
    anonymous would show a logged-in user a logged-out page instead of prompting the client to
    refresh its token.
    """
    principal = connection.scope.get(PRINCIPAL_KEY)
    if isinstance(principal, Principal):
        return principal
    auth = _auth(connection)
    if not auth.token_sent:
        return None
    raise GuardRefusal(auth.rejection or Rejection(Reason.MALFORMED_TOKEN, "not verified"))
