"""The verified caller: what a handler may rely on once the guard let the request through."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Principal:
    """A verified access token's subject and claims.

    Principals are shared between requests through the verified-token cache, so they are frozen
    and their mappings are read-only views: a handler cannot change what the next request sees.
    """

    user_id: str
    issuer: str
    audience: tuple[str, ...]
    issued_at: float
    expires_at: float
    email: str | None
    phone: str | None
    role: str | None
    session_id: str | None
    is_anonymous: bool
    aal: str | None
    claims: Mapping[str, Any]
    kid: str | None
    alg: str

    @property
    def app_metadata(self) -> Mapping[str, Any]:
        value = self.claims.get("app_metadata")
        return value if isinstance(value, Mapping) else {}

    @property
    def user_metadata(self) -> Mapping[str, Any]:
        value = self.claims.get("user_metadata")
        return value if isinstance(value, Mapping) else {}
