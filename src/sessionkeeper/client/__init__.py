"""A Python client that keeps a GoTrue-compatible session alive for every call.

``SessionKeeper`` holds the session (sign in, refresh, sign out, events); ``SessionAuth`` plugs
it into ``httpx.Client`` / ``httpx.AsyncClient``. The ``requests`` adapter lives in
:mod:`sessionkeeper.client.requests_auth` so that ``requests`` stays an optional extra. See
``docs/client.md``.
"""

from __future__ import annotations

from sessionkeeper.client.auth import SessionAuth
from sessionkeeper.client.errors import (
    AuthExpiredError,
    IssuerError,
    IssuerUnavailableError,
    SessionClientError,
    StorageUnreadableError,
)
from sessionkeeper.client.events import AuthEvent
from sessionkeeper.client.keeper import SessionKeeper
from sessionkeeper.client.policy import RefreshPolicy
from sessionkeeper.client.session import Session
from sessionkeeper.client.storage import FileStorage, MemoryStorage, SessionStorage

__all__ = [
    "AuthEvent",
    "AuthExpiredError",
    "FileStorage",
    "IssuerError",
    "IssuerUnavailableError",
    "MemoryStorage",
    "RefreshPolicy",
    "Session",
    "SessionAuth",
    "SessionClientError",
    "SessionKeeper",
    "SessionStorage",
    "StorageUnreadableError",
]
