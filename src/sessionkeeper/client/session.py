"""The session a client holds: tokens, when they expire by the local clock, and the user.

Expiry is computed from ``expires_in`` against the local clock *at receipt*, never from the
token's ``exp`` claim or the server's ``expires_at``: a local clock that is ten minutes wrong would
otherwise make every token look expired (a refresh loop) or valid long after it is not (401s).
Both parsers here take untrusted input (a server's JSON, a file another process wrote) and either
return a valid :class:`Session` or raise :class:`ValueError`; nothing else.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

STORAGE_VERSION = 1


@dataclass(frozen=True)
class Session:
    """An access token, maybe a refresh token, and its expiry on the local clock.

    ``expires_at`` is ``None`` when the issuer did not say how long the token lives; such a
    session is only replaced after a 401.
    """

    access_token: str = field(repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    expires_in: float | None = None
    expires_at: float | None = None
    token_type: str = "bearer"  # noqa: S105  (the scheme, not a secret)
    user: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _require_token(self.access_token, "access_token")
        if self.refresh_token is not None:
            _require_token(self.refresh_token, "refresh_token")
        if self.expires_in is not None:
            _require_seconds(self.expires_in, "expires_in")
        if self.expires_at is not None:
            _require_number(self.expires_at, "expires_at")
        if self.token_type.lower() != "bearer":
            raise ValueError("token_type must be bearer")

    @property
    def authorization(self) -> str:
        """The ``Authorization`` header value."""
        return f"Bearer {self.access_token}"

    @property
    def user_id(self) -> str | None:
        value = self.user.get("id")
        return value if isinstance(value, str) else None

    def seconds_left(self, now: float) -> float:
        return math.inf if self.expires_at is None else self.expires_at - now

    @classmethod
    def from_response(cls, data: Any, received_at: float) -> Session:
        """Parse a GoTrue session answer received at ``received_at`` (local clock)."""
        if not isinstance(data, Mapping):
            raise ValueError("session must be a JSON object")
        expires_in = data.get("expires_in")
        if expires_in is not None:
            _require_seconds(expires_in, "expires_in")
        user = data.get("user") or {}
        if not isinstance(user, Mapping):
            raise ValueError("user must be an object")
        return cls(
            access_token=data.get("access_token"),  # type: ignore[arg-type]  # checked in init
            refresh_token=data.get("refresh_token") or None,
            expires_in=float(expires_in) if expires_in is not None else None,
            expires_at=received_at + float(expires_in) if expires_in is not None else None,
            token_type=_text(data.get("token_type", "bearer"), "token_type"),
            user=dict(user),
        )

    def to_stored(self) -> dict[str, Any]:
        """The JSON object written to storage (local-clock expiry: same machine, same clock)."""
        return {
            "version": STORAGE_VERSION,
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "expires_in": self.expires_in,
            "expires_at": self.expires_at,
            "token_type": self.token_type,
            "user": dict(self.user),
        }

    @classmethod
    def from_stored(cls, data: Any) -> Session:
        """Parse what :meth:`to_stored` wrote; anything else raises :class:`ValueError`."""
        if not isinstance(data, Mapping) or data.get("version") != STORAGE_VERSION:
            raise ValueError("not a stored session of a known version")
        user = data.get("user", {})
        if not isinstance(user, Mapping):
            raise ValueError("user must be an object")
        return cls(
            access_token=data.get("access_token"),  # type: ignore[arg-type]  # checked in init
            refresh_token=data.get("refresh_token"),
            expires_in=_optional_float(data.get("expires_in")),
            expires_at=_optional_float(data.get("expires_at")),
            token_type=_text(data.get("token_type", "bearer"), "token_type"),
            user=dict(user),
        )


def _require_token(value: object, name: str) -> None:
    # Header-safe: a token with a newline or a space would corrupt or split the header.
    if not isinstance(value, str) or not value or not value.isascii() or not value.isprintable():
        raise ValueError(f"{name} must be a non-empty printable ASCII string")
    if " " in value:
        raise ValueError(f"{name} must not contain spaces")


def _require_number(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number")


def _require_seconds(value: object, name: str) -> None:
    _require_number(value, name)
    if value <= 0:  # type: ignore[operator]  # a number, checked above
        raise ValueError(f"{name} must be positive")


def _optional_float(value: object) -> float | None:
    if value is None:
        return None
    _require_number(value, "number")
    return float(value)  # type: ignore[arg-type]  # a number, checked above


def _text(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string")
    return value
