"""Protects GoTrue's rotation rules 1-5 and the session validity rules, at exact instants."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sessionkeeper.core.sessions import (
    Action,
    Decision,
    Invalidity,
    SessionPolicy,
    decide_refresh,
    session_invalidity,
)
from sessionkeeper.store.records import RefreshTokenRecord, SessionRecord

T0 = 1_800_000_000.0
DEFAULT = SessionPolicy()


def session(**changes: Any) -> SessionRecord:
    base = SessionRecord(id="s1", user_id="u1", created_at=T0, updated_at=T0)
    return replace(base, **changes)


def token(
    id: str = "t1",
    *,
    seq: int = 1,
    parent_id: str | None = None,
    revoked_at: float | None = None,
    created_at: float = T0,
) -> RefreshTokenRecord:
    return RefreshTokenRecord(
        id=id,
        session_id="s1",
        user_id="u1",
        token_hash=f"hash-{id}",
        seq=seq,
        created_at=created_at,
        parent_id=parent_id,
        revoked_at=revoked_at,
    )


def decide(
    tok: RefreshTokenRecord | None,
    sess: SessionRecord | None,
    newest: RefreshTokenRecord | None = None,
    *,
    now: float = T0 + 1,
    policy: SessionPolicy = DEFAULT,
) -> Decision:
    return decide_refresh(tok, sess, newest, now=now, policy=policy)


# Policy defaults --------------------------------------------------------------------------------


def test_default_policy_is_the_contracts() -> None:
    policy = SessionPolicy()
    assert (policy.rotation, policy.reuse_interval) == (True, 10.0)
    assert (policy.timebox, policy.inactivity_timeout) == (None, None)


# Validity rules ---------------------------------------------------------------------------------


def test_session_without_limits_is_valid_forever() -> None:
    assert session_invalidity(session(), T0 + 10 * 365 * 86400, DEFAULT) is None


def test_timebox_boundary() -> None:
    policy = SessionPolicy(timebox=3600)
    sess = session(refreshed_at=T0 + 3599)
    assert session_invalidity(sess, T0 + 3599.999, policy) is None
    assert session_invalidity(sess, T0 + 3600, policy) is Invalidity.TIMEBOX  # end is exclusive
    assert session_invalidity(sess, T0 + 3601, policy) is Invalidity.TIMEBOX


def test_timebox_counts_from_creation_not_from_last_refresh() -> None:
    policy = SessionPolicy(timebox=100)
    sess = session(refreshed_at=T0 + 99)
    assert session_invalidity(sess, T0 + 100, policy) is Invalidity.TIMEBOX


def test_inactivity_boundary_counts_from_last_refresh() -> None:
    policy = SessionPolicy(inactivity_timeout=600)
    sess = session(refreshed_at=T0 + 1000)
    assert session_invalidity(sess, T0 + 1599.999, policy) is None
    assert session_invalidity(sess, T0 + 1600, policy) is Invalidity.INACTIVITY
    # without a refresh yet, the session's creation is the last activity
    fresh = session()
    assert session_invalidity(fresh, T0 + 599.999, policy) is None
    assert session_invalidity(fresh, T0 + 600, policy) is Invalidity.INACTIVITY


def test_not_after_boundary() -> None:
    sess = session(not_after=T0 + 50)
    assert session_invalidity(sess, T0 + 49.999, DEFAULT) is None
    assert session_invalidity(sess, T0 + 50, DEFAULT) is Invalidity.NOT_AFTER
    assert session_invalidity(sess, T0 + 51, DEFAULT) is Invalidity.NOT_AFTER


def test_not_after_is_reported_first_then_timebox_then_inactivity() -> None:
    policy = SessionPolicy(timebox=10, inactivity_timeout=10)
    sess = session(not_after=T0 + 10)
    assert session_invalidity(sess, T0 + 20, policy) is Invalidity.NOT_AFTER
    assert session_invalidity(session(), T0 + 20, policy) is Invalidity.TIMEBOX
    policy = SessionPolicy(timebox=100, inactivity_timeout=10)
    assert session_invalidity(session(), T0 + 20, policy) is Invalidity.INACTIVITY


@pytest.mark.parametrize(
    ("sess", "policy", "now", "reason"),
    [
        (session(), SessionPolicy(timebox=60), T0 + 60, "timebox"),
        (session(), SessionPolicy(inactivity_timeout=60), T0 + 60, "inactivity_timeout"),
        (session(not_after=T0 + 60), DEFAULT, T0 + 60, "not_after"),
    ],
)
def test_invalid_session_refuses_even_a_live_token(
    sess: SessionRecord, policy: SessionPolicy, now: float, reason: str
) -> None:
    assert decide(token(), sess, token(), now=now, policy=policy) == Decision(
        Action.SESSION_EXPIRED, reason
    )


def test_invalid_session_wins_over_rule_3() -> None:
    """Even a lost answer cannot be recovered once the session expired."""
    revoked = token(revoked_at=T0)
    child = token("t2", seq=2, parent_id="t1")
    decision = decide(revoked, session(not_after=T0 + 5), child, now=T0 + 5)
    assert decision.action is Action.SESSION_EXPIRED


# Rule 1 -----------------------------------------------------------------------------------------


def test_unknown_token_is_not_found() -> None:
    assert decide(None, session()) == Decision(Action.NOT_FOUND, "token unknown")
    assert decide(None, None).action is Action.NOT_FOUND


def test_token_of_a_deleted_session_is_not_found() -> None:
    assert decide(token(), None) == Decision(Action.NOT_FOUND, "session gone")


# Rule 2 -----------------------------------------------------------------------------------------


def test_live_token_rotates() -> None:
    assert decide(token(), session(), token()).action is Action.ROTATE
    assert decide(token(), session(), None).action is Action.ROTATE


def test_live_token_rotates_at_any_age() -> None:
    aged = token(created_at=T0 - 10 * 86400)
    assert decide(aged, session(), aged, now=T0 + 86400).action is Action.ROTATE


def test_rotation_off_keeps_the_live_token() -> None:
    off = SessionPolicy(rotation=False)
    assert decide(token(), session(), token(), policy=off).action is Action.KEEP


# Rule 3 -----------------------------------------------------------------------------------------


def test_parent_of_the_newest_live_token_gets_it_back_with_no_time_limit() -> None:
    parent = token("t1", revoked_at=T0)
    child = token("t2", seq=2, parent_id="t1", created_at=T0)
    for later in (0.0, 9.999, 10.0, 3600.0, 365 * 86400.0):
        decision = decide(parent, session(), child, now=T0 + later)
        assert decision.action is Action.RETURN_CURRENT


def test_rule_3_needs_the_newest_live_token_to_be_the_direct_child() -> None:
    grandparent = token("t0", revoked_at=T0)
    newest = token("t2", seq=3, parent_id="t1")
    assert decide(grandparent, session(), newest, now=T0 + 60).action is Action.REVOKE_FAMILY


def test_rule_3_with_rotation_off_still_returns_the_current_token() -> None:
    parent = token("t1", revoked_at=T0)
    child = token("t2", seq=2, parent_id="t1")
    off = SessionPolicy(rotation=False)
    assert decide(parent, session(), child, now=T0 + 60, policy=off).action is (
        Action.RETURN_CURRENT
    )


# Rules 4 and 5 ----------------------------------------------------------------------------------


def test_reuse_inside_the_interval_issues_another_child() -> None:
    revoked = token("t1", revoked_at=T0)
    other_child = token("t3", seq=3, parent_id="t2")  # not a child of t1
    for elapsed in (0.0, 0.001, 5.0, 9.999):
        decision = decide(revoked, session(), other_child, now=T0 + elapsed)
        assert decision.action is Action.REUSE, elapsed


def test_reuse_interval_end_is_exclusive() -> None:
    revoked = token("t1", revoked_at=T0)
    assert decide(revoked, session(), None, now=T0 + 9.999).action is Action.REUSE
    assert decide(revoked, session(), None, now=T0 + 10).action is Action.REVOKE_FAMILY


def test_replay_outside_the_interval_revokes_the_family() -> None:
    revoked = token("t1", revoked_at=T0)
    for newest in (None, token("t9", seq=9, parent_id="t8")):
        decision = decide(revoked, session(), newest, now=T0 + 11)
        assert decision.action is Action.REVOKE_FAMILY


def test_reuse_interval_is_configurable() -> None:
    revoked = token("t1", revoked_at=T0)
    wide = SessionPolicy(reuse_interval=60)
    assert decide(revoked, session(), None, now=T0 + 59, policy=wide).action is Action.REUSE
    assert decide(revoked, session(), None, now=T0 + 60, policy=wide).action is (
        Action.REVOKE_FAMILY
    )
    zero = SessionPolicy(reuse_interval=0)
    assert decide(revoked, session(), None, now=T0, policy=zero).action is Action.REVOKE_FAMILY


def test_decision_detail_reports_time_since_revocation() -> None:
    revoked = token("t1", revoked_at=T0)
    assert decide(revoked, session(), None, now=T0 + 2.5).detail == "revoked 2.500s ago"
    assert decide(revoked, session(), None, now=T0 + 12).detail == "revoked 12.000s ago"


def test_family_revoked_wins_over_every_other_rule() -> None:
    dead = session(family_revoked_at=T0)
    live = token()
    parent, child = token("t1", revoked_at=T0), token("t2", seq=2, parent_id="t1")
    assert decide(live, dead, live).action is Action.FAMILY_REVOKED
    assert decide(parent, dead, child).action is Action.FAMILY_REVOKED
    assert decide(parent, dead, None, now=T0 + 1).action is Action.FAMILY_REVOKED
    expired_too = session(family_revoked_at=T0, not_after=T0)
    assert decide(live, expired_too, now=T0 + 100).action is Action.FAMILY_REVOKED
    assert decide(live, dead, policy=SessionPolicy(rotation=False)).action is (
        Action.FAMILY_REVOKED
    )


def test_family_revoked_still_means_not_found_without_a_token() -> None:
    assert decide(None, session(family_revoked_at=T0)).action is Action.NOT_FOUND


def test_chain_replay_scenario() -> None:
    """t1 -> t2 -> t3: replaying t1 long after is rule 5, replaying t2 is rule 3."""
    t1 = token("t1", seq=1, revoked_at=T0 + 100)
    t2 = token("t2", seq=2, parent_id="t1", revoked_at=T0 + 200)
    t3 = token("t3", seq=3, parent_id="t2")
    now = T0 + 300
    assert decide(t3, session(), t3, now=now).action is Action.ROTATE
    assert decide(t2, session(), t3, now=now).action is Action.RETURN_CURRENT
    assert decide(t1, session(), t3, now=now).action is Action.REVOKE_FAMILY
    assert decide(t1, session(), t3, now=T0 + 105).action is Action.REUSE


# Properties -------------------------------------------------------------------------------------

times = st.floats(min_value=0, max_value=4e9, allow_nan=False, allow_infinity=False)
durations = st.floats(min_value=0.001, max_value=1e7, allow_nan=False, allow_infinity=False)
policies = st.builds(
    SessionPolicy,
    rotation=st.booleans(),
    reuse_interval=st.floats(min_value=0, max_value=3600, allow_nan=False),
    timebox=st.none() | durations,
    inactivity_timeout=st.none() | durations,
)
sessions_ = st.builds(
    SessionRecord,
    id=st.just("s1"),
    user_id=st.just("u1"),
    created_at=times,
    updated_at=times,
    refreshed_at=st.none() | times,
    not_after=st.none() | times,
    family_revoked_at=st.none() | times,
)
token_ids = st.sampled_from(["t1", "t2", "t3"])
tokens_ = st.builds(
    RefreshTokenRecord,
    id=token_ids,
    session_id=st.just("s1"),
    user_id=st.just("u1"),
    token_hash=st.just("h"),
    seq=st.integers(1, 5),
    created_at=times,
    parent_id=st.none() | token_ids,
    revoked_at=st.none() | times,
)


@settings(max_examples=500)
@given(st.none() | tokens_, st.none() | sessions_, st.none() | tokens_, times, policies)
def test_decisions_never_raise_and_follow_the_rules(
    tok: RefreshTokenRecord | None,
    sess: SessionRecord | None,
    newest: RefreshTokenRecord | None,
    now: float,
    policy: SessionPolicy,
) -> None:
    decision = decide_refresh(tok, sess, newest, now=now, policy=policy)
    assert isinstance(decision, Decision)
    assert decision.action in set(Action)

    if tok is None or sess is None:
        assert decision.action is Action.NOT_FOUND
        return
    if sess.family_revoked_at is not None:
        assert decision.action is Action.FAMILY_REVOKED
        return
    invalid = session_invalidity(sess, now, policy)
    if invalid is not None:
        assert decision == Decision(Action.SESSION_EXPIRED, invalid.value)
        return
    # From here on the session is valid and the family alive.
    if tok.revoked_at is None:
        assert decision.action is (Action.ROTATE if policy.rotation else Action.KEEP)
    elif newest is not None and newest.parent_id == tok.id:
        assert decision.action is Action.RETURN_CURRENT
    elif now - tok.revoked_at >= policy.reuse_interval + 1e-3:
        assert decision.action is Action.REVOKE_FAMILY
    elif now - tok.revoked_at < policy.reuse_interval - 1e-3:
        assert decision.action is Action.REUSE
    else:  # within float noise of the interval's end
        assert decision.action in (Action.REUSE, Action.REVOKE_FAMILY)


@given(sessions_, times, durations, policies)
def test_an_invalid_session_stays_invalid(
    sess: SessionRecord, now: float, later: float, policy: SessionPolicy
) -> None:
    if session_invalidity(sess, now, policy) is not None:
        assert session_invalidity(sess, now + later, policy) is not None


@given(sessions_, times, durations, policies)
def test_a_valid_session_was_valid_before(
    sess: SessionRecord, now: float, earlier: float, policy: SessionPolicy
) -> None:
    if session_invalidity(sess, now, policy) is None:
        assert session_invalidity(sess, now - earlier, policy) is None


@given(times, st.floats(min_value=0, max_value=1e6, allow_nan=False), policies)
def test_live_token_with_valid_session_always_rotates(
    created: float, age: float, policy: SessionPolicy
) -> None:
    sess = session(created_at=created, updated_at=created)
    now = created + age
    if session_invalidity(sess, now, policy) is not None:
        return
    live = token(created_at=created)
    on = replace(policy, rotation=True)
    assert decide_refresh(live, sess, live, now=now, policy=on).action is Action.ROTATE
    off = replace(policy, rotation=False)
    assert decide_refresh(live, sess, live, now=now, policy=off).action is Action.KEEP


@given(
    times,
    st.floats(min_value=0, max_value=1e6, allow_nan=False),
    st.floats(min_value=0, max_value=1e6, allow_nan=False),
    st.none() | token_ids,
    st.booleans(),
)
def test_revoked_non_parent_outside_the_interval_always_revokes_the_family(
    revoked_at: float,
    beyond: float,
    interval: float,
    newest_parent: str | None,
    rotation: bool,
) -> None:
    tok = token("t1", revoked_at=revoked_at)
    newest = token("t9", seq=9, parent_id=newest_parent if newest_parent != "t1" else "t2")
    policy = SessionPolicy(rotation=rotation, reuse_interval=interval)
    now = revoked_at + interval + beyond
    if now < revoked_at + interval:  # float rounding put `now` back inside the interval
        return
    sess = session(created_at=revoked_at - 1, updated_at=revoked_at - 1)
    for candidate in (newest, None):
        decision = decide_refresh(tok, sess, candidate, now=now, policy=policy)
        assert decision.action is Action.REVOKE_FAMILY


@given(times, st.floats(min_value=0, max_value=1e8, allow_nan=False), st.booleans())
def test_parent_of_newest_live_is_always_served_while_the_session_is_valid(
    revoked_at: float, later: float, rotation: bool
) -> None:
    parent = token("t1", revoked_at=revoked_at)
    child = token("t2", seq=2, parent_id="t1")
    sess = session(created_at=revoked_at, updated_at=revoked_at)
    policy = SessionPolicy(rotation=rotation)
    decision = decide_refresh(parent, sess, child, now=revoked_at + later, policy=policy)
    assert decision.action is Action.RETURN_CURRENT
