"""What the client raises, and why each is a separate class.

An application must react differently to "the session is gone, ask the user" and "the issuer is
unreachable, try again later": the first needs a sign-in, the second must never cause one.
"""

from __future__ import annotations


class SessionClientError(Exception):
    """Base class of everything :mod:`sessionkeeper.client` raises on purpose."""


class AuthExpiredError(SessionClientError):
    """The session cannot authenticate this call any more; the user must sign in again.

    Raised once per affected call. The client has already entered the *needs re-auth* state and
    fired ``NEEDS_REAUTH`` once; it has not signed anyone out. ``reason`` is a short machine code
    (``not_signed_in``, ``signed_out``, ``rejected``, ``refresh_token_already_used``, ...).
    """

    def __init__(self, reason: str, message: str | None = None) -> None:
        self.reason = reason
        super().__init__(message or f"session expired ({reason}): sign in again")


class IssuerUnavailableError(SessionClientError):
    """The auth server could not be reached (network error, 5xx, 429) and no valid token is left.

    Transient by definition: the session is kept, and a later call may well succeed.
    """


class IssuerError(SessionClientError):
    """The auth server refused a request definitively (a 4xx with an error code).

    ``code`` is the server's stable error code (``invalid_credentials``,
    ``refresh_token_already_used``, ...) taken from the body or the ``x-sb-error-code`` header.
    """

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status = status
        self.code = code
        self.message = message
        super().__init__(f"{status} {code}: {message}")


class StorageUnreadableError(SessionClientError):
    """Shared storage holds something that cannot be read as a session (an I/O error, a
    truncated or corrupt file). Not a sign-out: the keeper keeps the session it has in memory
    and overwrites the file at its next refresh."""
