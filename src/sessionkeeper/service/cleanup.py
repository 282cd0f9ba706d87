"""Retention: deleting sessions and refresh tokens that can no longer do anything.

Every refresh adds a row; without clean-up the token table grows for ever. What may go:
- sessions that ended (``not_after``, timebox, inactivity timeout, or revoked for replay) more
  than ``retention`` ago — until then a refresh still answers the precise reason
  (``session_expired``, ``refresh_token_already_used``);
- refresh tokens revoked more than ``retention`` ago, except the parent of a live token (rule 3
  still needs it to repair a lost answer, however old).
Until then a replayed old token still revokes its family (rule 5); after it, a replay of a
deleted token is answered ``refresh_token_not_found`` — still refused, but no longer a signal.
Work is done in small batches, each its own transaction, so the write lock is held briefly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sessionkeeper.service.context import AuthContext

log = logging.getLogger("sessionkeeper.cleanup")

BATCH = 500
MAX_BATCHES = 200  # per run: a backlog is worked off over several runs, never in one long stall


@dataclass(frozen=True)
class CleanupReport:
    sessions: int
    tokens: int


def cleanup(ctx: AuthContext, *, retention: float, batch: int = BATCH) -> CleanupReport:
    cutoff = ctx.clock.now() - retention
    policy = ctx.policy
    sessions = tokens = 0
    for _ in range(MAX_BATCHES):
        with ctx.store.transaction() as tx:
            n = tx.delete_ended_sessions(
                ended_before=cutoff,
                created_before=cutoff - policy.timebox if policy.timebox else None,
                idle_before=(
                    cutoff - policy.inactivity_timeout if policy.inactivity_timeout else None
                ),
                limit=batch,
            )
        sessions += n
        if n < batch:
            break
    for _ in range(MAX_BATCHES):
        with ctx.store.transaction() as tx:
            n = tx.delete_spent_tokens(revoked_before=cutoff, limit=batch)
        tokens += n
        if n < batch:
            break
    if sessions or tokens:
        log.info(
            "clean-up",
            extra={"event": "cleanup", "sessions_deleted": sessions, "tokens_deleted": tokens},
        )
    return CleanupReport(sessions=sessions, tokens=tokens)
