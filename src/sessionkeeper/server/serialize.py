"""Records → the JSON shapes of the wire contract (GoTrue's User and Session)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sessionkeeper.core.access_tokens import AUDIENCE, ROLE
from sessionkeeper.service.context import IssuedSession
from sessionkeeper.store.records import IdentityRecord, UserRecord


def timestamp(value: float | None) -> str | None:
    if value is None:
        return None
    return datetime.fromtimestamp(value, tz=UTC).isoformat().replace("+00:00", "Z")


def identity_json(identity: IdentityRecord) -> dict[str, Any]:
    return {
        "identity_id": identity.id,
        "id": identity.provider_id,
        "user_id": identity.user_id,
        "identity_data": identity.identity_data,
        "provider": identity.provider,
        "last_sign_in_at": timestamp(identity.last_sign_in_at),
        "created_at": timestamp(identity.created_at),
        "updated_at": timestamp(identity.updated_at),
        "email": identity.identity_data.get("email"),
    }


def user_json(user: UserRecord, identities: list[IdentityRecord]) -> dict[str, Any]:
    return {
        "id": user.id,
        "aud": AUDIENCE,
        "role": ROLE,
        "email": user.email,
        "email_confirmed_at": timestamp(user.email_confirmed_at),
        "phone": user.phone,
        "confirmed_at": timestamp(user.email_confirmed_at),
        "last_sign_in_at": timestamp(user.last_sign_in_at),
        "app_metadata": user.app_metadata or {},
        "user_metadata": user.user_metadata or {},
        "identities": [identity_json(i) for i in identities],
        "created_at": timestamp(user.created_at),
        "updated_at": timestamp(user.updated_at),
        "is_anonymous": user.is_anonymous,
    }


def session_json(issued: IssuedSession) -> dict[str, Any]:
    return {
        "access_token": issued.access_token,
        "token_type": "bearer",
        "expires_in": issued.expires_in,
        "expires_at": issued.expires_at,
        "refresh_token": issued.refresh_token,
        "user": user_json(issued.user, issued.identities),
    }
