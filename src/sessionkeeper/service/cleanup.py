"""Retention: deleting sessions, refresh tokens and flow states that can no longer do anything.

Every refresh adds a row; without clean-up the token table grows for ever. What may go:
- sessions that ended (``not_after``, timebox, inactivity timeout, or revoked for replay) more
  than ``retention`` ago — until then a refresh still answers the precise reason
  (``session_expired``, ``refresh_token_already_used``);
- refresh tokens revoked more than ``retention`` ago, except the parent of a live token (rule 3
  still needs it to repair a lost answer, however old).
- PKCE flow states (hosted sign-in's auth codes, 300 s life) created more than ``retention``
  ago: a redeemed one is deleted when redeemed; until then a late redemption still answers
  ``flow_state_expired`` rather than ``flow_state_not_found``.
Until then a replayed old token still revokes its family (rule 5); after it, a replay of a
deleted token is answered ``refresh_token_not_found`` — still refused, but no longer a signal.
Work is done in small batches, each its own transaction, so the write lock is held briefly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sessionkeeper.service.context import AuthContext
from sessionkeeper.store.base import Transaction

log = logging.getLogger("sessionkeeper.cleanup")

BATCH = 500
MAX_BATCHES = 200  # per run: a backlog is worked off over several runs, never in one long stall


@dataclass(frozen=True)
class CleanupReport:
    sessions: int
    tokens: int
    flow_states: int = 0


def cleanup(ctx: AuthContext, *, retention: float, batch: int = BATCH) -> CleanupReport:
    cutoff = ctx.clock.now() - retention
    policy = ctx.policy
    sessions = _in_batches(
        ctx,
        lambda tx: tx.delete_ended_sessions(
            ended_before=cutoff,
            created_before=cutoff - policy.timebox if policy.timebox else None,
            idle_before=cutoff - policy.inactivity_timeout if policy.inactivity_timeout else None,
            limit=batch,
        ),
        batch,
    )
    tokens = _in_batches(
        ctx, lambda tx: tx.delete_spent_tokens(revoked_before=cutoff, limit=batch), batch
    )
    flows = _in_batches(
        ctx, lambda tx: tx.delete_old_flow_states(created_before=cutoff, limit=batch), batch
    )
    if sessions or tokens or flows:
        log.info(
            "clean-up",
            extra={
                "event": "cleanup",
                "sessions_deleted": sessions,
                "tokens_deleted": tokens,
                "flow_states_deleted": flows,
            },
        )
    return CleanupReport(sessions=sessions, tokens=tokens, flow_states=flows)


def _in_batches(ctx: AuthContext, delete: Callable[[Transaction], int], batch: int) -> int:
    """Run ``delete`` (up to ``batch`` rows) in its own transaction until a batch comes short."""
    total = 0
    for _ in range(MAX_BATCHES):
        with ctx.store.transaction() as tx:
            n = delete(tx)
        total += n
        if n < batch:
            break
    return total
