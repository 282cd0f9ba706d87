"""Session validity and refresh-token rotation as pure functions of ``now``.

These are GoTrue's rules (see docs/rotation.md). Nothing here reads a clock or a store: the
caller loads the records inside its transaction, asks for a decision, and applies it. That keeps
every rule testable at any instant without sleeping, and identical across store backends.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sessionkeeper.store.records import RefreshTokenRecord, SessionRecord


@dataclass(frozen=True)
class SessionPolicy:
    """The session rules an operator configures. ``None`` turns a limit off."""

    rotation: bool = True
    reuse_interval: float = 10.0
    timebox: float | None = None
    inactivity_timeout: float | None = None


class Invalidity(StrEnum):
    TIMEBOX = "timebox"
    INACTIVITY = "inactivity_timeout"
    NOT_AFTER = "not_after"


def session_invalidity(
    session: SessionRecord, now: float, policy: SessionPolicy
) -> Invalidity | None:
    """Why ``session`` can no longer be refreshed at ``now``, or ``None`` while it is valid."""
    if session.not_after is not None and now >= session.not_after:
        return Invalidity.NOT_AFTER
    if policy.timebox is not None and now >= session.created_at + policy.timebox:
        return Invalidity.TIMEBOX
    if policy.inactivity_timeout is not None:
        last_active = session.refreshed_at or session.created_at
        if now >= last_active + policy.inactivity_timeout:
            return Invalidity.INACTIVITY
    return None


class Action(StrEnum):
    NOT_FOUND = "refresh_token_not_found"  # rule 1: unknown token, or its session is gone
    SESSION_EXPIRED = "session_expired"  # rule 1: timebox, inactivity or not_after
    FAMILY_REVOKED = "family_revoked"  # the family was already revoked after a replay
    KEEP = "keep"  # rotation off: the same refresh token stays valid
    ROTATE = "rotate"  # rule 2: revoke the token, issue a child
    RETURN_CURRENT = "return_current"  # rule 3: the client lost our answer; give it back
    REUSE = "reuse"  # rule 4: inside the reuse interval; issue another child
    REVOKE_FAMILY = "revoke_family"  # rule 5: replay outside the interval


@dataclass(frozen=True)
class Decision:
    action: Action
    detail: str = ""


def decide_refresh(
    token: RefreshTokenRecord | None,
    session: SessionRecord | None,
    live_child: RefreshTokenRecord | None,
    *,
    now: float,
    policy: SessionPolicy,
) -> Decision:
    """Apply rotation rules 1-5 to a presented refresh token.

    ``live_child`` is the newest unrevoked token whose parent is ``token`` (``None`` if there is
    none). GoTrue checks only the session's newest token; asking for the token's own child also
    repairs a lost answer when concurrent reuse (rule 4) has opened a second branch.
    """
    if token is None or session is None:
        return Decision(Action.NOT_FOUND, "token unknown" if token is None else "session gone")
    if session.family_revoked_at is not None:
        return Decision(Action.FAMILY_REVOKED, "family revoked after a replay")
    invalid = session_invalidity(session, now, policy)
    if invalid is not None:
        return Decision(Action.SESSION_EXPIRED, invalid.value)
    if token.revoked_at is None:
        return Decision(Action.KEEP if not policy.rotation else Action.ROTATE)
    if live_child is not None and live_child.parent_id == token.id:
        return Decision(Action.RETURN_CURRENT, "parent of the current token")
    if now < token.revoked_at + policy.reuse_interval:
        return Decision(Action.REUSE, f"revoked {now - token.revoked_at:.3f}s ago")
    return Decision(Action.REVOKE_FAMILY, f"revoked {now - token.revoked_at:.3f}s ago")
