"""POST /logout: end the caller's session (local), all of the user's (global) or all but it."""

from __future__ import annotations

import logging
from typing import Literal

from sessionkeeper.service.context import AuthContext, Principal

log = logging.getLogger("sessionkeeper.auth")

Scope = Literal["global", "local", "others"]


def logout(ctx: AuthContext, principal: Principal, scope: Scope) -> int:
    """Delete sessions (their refresh tokens go with them). Returns how many ended."""
    with ctx.store.transaction() as tx:
        if scope == "local":
            ended = tx.delete_sessions(principal.user.id, only=principal.session.id)
        elif scope == "others":
            ended = tx.delete_sessions(principal.user.id, keep=principal.session.id)
        else:
            ended = tx.delete_sessions(principal.user.id)
    log.info(
        "logout",
        extra={
            "event": "logout",
            "scope": scope,
            "user_id": principal.user.id,
            "sessions_ended": ended,
        },
    )
    return ended
