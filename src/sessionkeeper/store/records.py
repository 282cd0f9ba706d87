"""Plain records the store reads and writes. Times are seconds since the Unix epoch (floats),
which both SQLite and PostgreSQL hold as ``DOUBLE PRECISION`` without dialect tricks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class UserRecord:
    id: str
    email: str
    password_hash: str
    created_at: float
    updated_at: float
    phone: str = ""
    email_confirmed_at: float | None = None
    last_sign_in_at: float | None = None
    app_metadata: dict[str, Any] = field(default_factory=dict)
    user_metadata: dict[str, Any] = field(default_factory=dict)
    is_anonymous: bool = False


@dataclass
class IdentityRecord:
    id: str
    user_id: str
    provider: str
    provider_id: str
    identity_data: dict[str, Any]
    created_at: float
    updated_at: float
    last_sign_in_at: float | None = None


@dataclass
class SessionRecord:
    id: str
    user_id: str
    created_at: float
    updated_at: float
    aal: str = "aal1"
    amr: list[dict[str, Any]] = field(default_factory=list)
    refreshed_at: float | None = None
    not_after: float | None = None
    family_revoked_at: float | None = None
    user_agent: str | None = None
    ip: str | None = None


@dataclass
class RefreshTokenRecord:
    """One refresh token of a session's family. ``token_hash`` is SHA-256; the token itself is
    never stored. ``sealed`` is this token encrypted under its parent (see core.refresh_tokens)."""

    id: str
    session_id: str
    user_id: str
    token_hash: str
    seq: int
    created_at: float
    parent_id: str | None = None
    sealed: str | None = None
    revoked_at: float | None = None


@dataclass
class FlowStateRecord:
    """A PKCE flow state: a user who signed in on the hosted page, waiting for their client to
    redeem the auth code with the verifier of ``code_challenge``. ``auth_code_hash`` is SHA-256;
    the code itself is never stored. Single-use; expires ``created_at`` + 300 s."""

    id: str
    auth_code_hash: str
    user_id: str
    code_challenge: str
    code_challenge_method: str  # "s256" | "plain"
    provider: str
    authentication_method: str  # the session's amr method once redeemed ("password")
    created_at: float
    redirect_to: str | None = None


@dataclass
class StoredKey:
    kid: str
    alg: str
    material: str
    status: str  # "active" | "published" | "retired"
    created_at: float
    retired_at: float | None = None
