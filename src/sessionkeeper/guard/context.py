"""What the guard leaves on the ASGI scope for the application, and how handlers read it.

Starlette handlers read ``request.scope[PRINCIPAL_KEY]`` (or :func:`principal_of`); FastAPI
handlers use the dependencies in :mod:`sessionkeeper.guard.dependencies`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sessionkeeper.guard.principal import Principal
from sessionkeeper.guard.reasons import Rejection

PRINCIPAL_KEY = "sessionkeeper.principal"
AUTH_KEY = "sessionkeeper.auth"


@dataclass(frozen=True, slots=True)
class RequestAuth:
    """The guard's findings for one request (set on every HTTP/websocket request it sees)."""

    transport: str
    token_sent: bool
    rejection: Rejection | None  # why a token sent to an unprotected path did not verify
    guard: Any  # the SessionGuard, for whoami's clock and cookie name


class GuardRefusal(Exception):
    """Raised by :func:`~sessionkeeper.guard.dependencies.current_user` when there is no
    verified caller; the guard middleware turns it into the same 401/503 as its own refusals."""

    def __init__(self, rejection: Rejection) -> None:
        self.rejection = rejection
        super().__init__(str(rejection))


def principal_of(scope_or_request: Mapping[str, Any] | Any) -> Principal | None:
    """The verified principal of a request (a ``Request`` or its scope), or ``None``."""
    scope = getattr(scope_or_request, "scope", scope_or_request)
    principal = scope.get(PRINCIPAL_KEY)
    return principal if isinstance(principal, Principal) else None
