"""A scripted issuer for unit tests of the guard's cookie transport (the integration tests in
this package use the real auth server instead)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from sessionkeeper.bridge import IssuerRefused, IssuerUnavailable, SessionTokens
from sessionkeeper.clock import ManualClock
from sessionkeeper.core.keys import SigningKey
from sessionkeeper.guard.principal import Principal
from tests.guard.conftest import claims


@dataclass
class ScriptedIssuer:
    key: SigningKey
    clock: ManualClock
    mode: str = "ok"  # "ok" | "refuse" | "down"
    life: int = 3600
    delay: float = 0.02
    refreshed: list[str] = field(default_factory=list)
    logged_out: list[str] = field(default_factory=list)

    def tokens(self, refresh_token: str) -> SessionTokens:
        now = int(self.clock.now())
        access = self.key.sign(claims(iat=now, exp=now + self.life))
        return SessionTokens(access, f"{refresh_token}-next", self.life)

    async def refresh(self, refresh_token: str) -> SessionTokens:
        self.refreshed.append(refresh_token)
        await asyncio.sleep(self.delay)  # long enough for concurrent requests to pile up
        if self.mode == "refuse":
            raise IssuerRefused("refresh_token_already_used")
        if self.mode == "down":
            raise IssuerUnavailable("connection refused")
        return self.tokens(refresh_token)

    async def exchange_code(self, auth_code: str, code_verifier: str) -> SessionTokens:
        if self.mode == "refuse":
            raise IssuerRefused("flow_state_not_found", 404)
        if self.mode == "down":
            raise IssuerUnavailable("connection refused")
        return self.tokens("from-code")

    async def logout(self, access_token: str, principal: Principal, scope: str) -> None:
        self.logged_out.append(scope)
