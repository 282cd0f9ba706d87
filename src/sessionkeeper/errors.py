"""The one error catalogue.

Every refusal the auth server makes is an :class:`AuthError` carrying a stable code (GoTrue's
string where GoTrue has one), an HTTP status and a message that is safe to show. Internal detail
travels in ``__cause__`` and the log, never in the body. Keeping codes and statuses in one table
means a client can rely on them and a test can check all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ErrorSpec:
    """A catalogue entry: what a client sees for this code."""

    code: str
    status: int
    message: str


_SPECS = (
    # Request shape
    ErrorSpec("bad_json", 400, "Could not parse request body as JSON"),
    ErrorSpec("validation_failed", 400, "The request is invalid"),
    ErrorSpec("unsupported_grant_type", 400, "Unsupported grant type"),
    ErrorSpec("email_address_invalid", 400, "Unable to validate email address: invalid format"),
    ErrorSpec("request_entity_too_large", 413, "Request body is too large"),
    ErrorSpec("not_found", 404, "Not found"),
    ErrorSpec("method_not_allowed", 405, "Method not allowed"),
    # Accounts
    ErrorSpec("signup_disabled", 422, "Signups not allowed for this instance"),
    ErrorSpec("user_already_exists", 422, "User already registered"),
    ErrorSpec("email_exists", 422, "A user with this email address has already been registered"),
    ErrorSpec("weak_password", 422, "Password should be at least 6 characters."),
    ErrorSpec("same_password", 422, "New password should be different from the old password."),
    ErrorSpec("invalid_credentials", 400, "Invalid login credentials"),
    ErrorSpec("user_not_found", 403, "User from sub claim in JWT does not exist"),
    # Tokens and sessions
    ErrorSpec("refresh_token_not_found", 400, "Invalid Refresh Token: Refresh Token Not Found"),
    ErrorSpec("refresh_token_already_used", 400, "Invalid Refresh Token: Already Used"),
    ErrorSpec("session_expired", 400, "Session Expired"),
    ErrorSpec("session_not_found", 403, "Session from session_id claim in JWT does not exist"),
    ErrorSpec("no_authorization", 401, "This endpoint requires a valid Bearer token"),
    ErrorSpec("bad_jwt", 403, "Invalid JWT"),
    # PKCE flow states
    ErrorSpec("flow_state_not_found", 404, "Invalid flow state, no valid flow state found"),
    ErrorSpec("flow_state_expired", 422, "Flow state has expired"),
    ErrorSpec("bad_code_verifier", 400, "Code verifier does not match the code challenge"),
    # Load and infrastructure
    ErrorSpec("over_request_rate_limit", 429, "Request rate limit reached"),
    ErrorSpec("conflict", 409, "Another request is changing this session; retry shortly"),
    ErrorSpec("service_unavailable", 503, "The service is temporarily unavailable; retry shortly"),
    ErrorSpec("unexpected_failure", 500, "Unexpected failure"),
)

CATALOGUE: dict[str, ErrorSpec] = {spec.code: spec for spec in _SPECS}


class AuthError(Exception):
    """A refusal with a stable code. ``message`` is public; put detail in ``__cause__``/logs."""

    def __init__(
        self,
        code: str,
        message: str | None = None,
        *,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        spec = CATALOGUE[code]  # KeyError here is a programming error: add the code to the table
        self.code = code
        self.status = spec.status
        self.message = message or spec.message
        self.extra = extra or {}
        self.headers = headers or {}
        super().__init__(f"{code}: {self.message}")


class StoreUnavailableError(Exception):
    """The store could not be reached or failed mid-operation.

    Answered as 503 ``service_unavailable`` so clients keep their session and retry: a 4xx here
    would log users out.
    """


class StoreConflictError(Exception):
    """A session's lock was held by another request for longer than the store waits.

    Answered as 409 ``conflict`` (GoTrue's answer to the same race): the client retries; nothing
    was changed.
    """


class ConfigError(Exception):
    """An invalid setting. The message names the setting (flag and environment variable)."""
