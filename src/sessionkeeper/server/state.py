"""Per-app state the endpoints share: the service context, rate limiters, a logger."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from starlette.requests import Request

from sessionkeeper.core.ratelimit import Limiter
from sessionkeeper.origins import AllowedOrigins
from sessionkeeper.server.password_slots import PasswordSlots
from sessionkeeper.service.context import AuthContext


@dataclass
class ServerState:
    ctx: AuthContext
    password_limit_ip: Limiter
    password_limit_email: Limiter
    signup_limit_ip: Limiter
    password_slots: PasswordSlots
    log: logging.Logger
    #: Origins besides the server's own that hosted sign-in may redirect to and accept posts from.
    allowed_origins: AllowedOrigins = field(default_factory=lambda: AllowedOrigins(()))


def server_state(request: Request) -> ServerState:
    state: ServerState = request.app.state.sessionkeeper
    return state
