"""The API guard: verify Supabase-Auth-compatible access tokens in front of an application.

``SessionGuard`` is pure ASGI middleware; ``current_user`` / ``optional_user`` are FastAPI
dependencies; ``Verifier`` is the framework-free core. See docs/guard.md.
"""

from __future__ import annotations

from sessionkeeper.guard.context import AUTH_KEY, PRINCIPAL_KEY, GuardRefusal, principal_of
from sessionkeeper.guard.dependencies import current_user, optional_user
from sessionkeeper.guard.keys import (
    VerifyKey,
    key_from_jwk,
    key_from_pem,
    key_from_secret,
    keys_from_jwks,
    load_jwks_file,
)
from sessionkeeper.guard.liveness import SessionLiveness, StoreLiveness
from sessionkeeper.guard.middleware import SessionGuard, build_key_source
from sessionkeeper.guard.principal import Principal
from sessionkeeper.guard.reasons import Reason, Rejection
from sessionkeeper.guard.sources import CombinedKeys, JwksUrlKeys, KeySource, StaticKeys
from sessionkeeper.guard.transport import DEFAULT_COOKIE_NAME
from sessionkeeper.guard.verifier import Verifier
from sessionkeeper.guard.whoami import whoami

__all__ = [
    "AUTH_KEY",
    "DEFAULT_COOKIE_NAME",
    "PRINCIPAL_KEY",
    "CombinedKeys",
    "GuardRefusal",
    "JwksUrlKeys",
    "KeySource",
    "Principal",
    "Reason",
    "Rejection",
    "SessionGuard",
    "SessionLiveness",
    "StaticKeys",
    "StoreLiveness",
    "Verifier",
    "VerifyKey",
    "build_key_source",
    "current_user",
    "key_from_jwk",
    "key_from_pem",
    "key_from_secret",
    "keys_from_jwks",
    "load_jwks_file",
    "optional_user",
    "principal_of",
    "whoami",
]
