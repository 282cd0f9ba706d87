"""Per-app state the endpoints share: the service context, rate limiters, a logger."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from starlette.requests import Request

from sessionkeeper.core.ratelimit import RateLimiter
from sessionkeeper.server.password_slots import PasswordSlots
from sessionkeeper.service.context import AuthContext


@dataclass
class ServerState:
    ctx: AuthContext
    password_limit_ip: RateLimiter
    password_limit_email: RateLimiter
    signup_limit_ip: RateLimiter
    password_slots: PasswordSlots
    log: logging.Logger


def server_state(request: Request) -> ServerState:
    state: ServerState = request.app.state.sessionkeeper
    return state
