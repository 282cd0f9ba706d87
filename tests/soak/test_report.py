"""The soak's counting rules, on hand-made records: what is spurious, lost, duplicated, late."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from sessionkeeper.soak.effects import Execution, RecordedEffects
from sessionkeeper.soak.records import (
    AUTH_EXPIRED,
    FAILED,
    NO_OUTCOME,
    OK,
    UNEXPECTED,
    AuthEventRecord,
    RequestRecord,
    Revocation,
    SignInRecord,
)
from sessionkeeper.soak.report import (
    GATES,
    count,
    covering,
    judge_revocations,
    percentile,
    render_markdown,
    verdict,
)

USERS = {0: "u0", 1: "u1"}


def req(
    user: int,
    started: float,
    ended: float,
    outcome: str = OK,
    kind: str = "get",
    rid: str | None = None,
    attempts: int = 1,
) -> RequestRecord:
    return RequestRecord(
        user,
        kind,
        rid or f"r{user}-{started}",
        started,
        ended=ended,
        outcome=outcome,
        attempts=attempts,
    )


def nothing_recorded() -> RecordedEffects:
    return RecordedEffects((), {})


def test_auth_expired_of_a_user_never_revoked_is_spurious() -> None:
    counts = count(
        [req(0, 1.0, 1.2, AUTH_EXPIRED)],
        [],
        [AuthEventRecord(0, 1.1, "NEEDS_REAUTH")],
        nothing_recorded(),
        USERS,
    )
    assert counts["spurious_auth_expired"] == 1
    assert counts["spurious_needs_reauth"] == 1
    assert verdict(counts)["passed"] is False


def test_auth_expired_after_the_logout_was_sent_is_expected() -> None:
    revocation = Revocation(0, planned_at=5.0, started=5.0, done=5.1)
    counts = count(
        [req(0, 5.2, 5.3, AUTH_EXPIRED), req(0, 8.0, 8.1)],
        [revocation],
        [AuthEventRecord(0, 5.25, "NEEDS_REAUTH")],
        nothing_recorded(),
        USERS,
        sign_ins=[SignInRecord(0, 6.0, 7.0)],
    )
    assert counts["spurious_auth_expired"] == 0
    assert counts["spurious_needs_reauth"] == 0
    assert counts["revocations_told_within_one_request"] == 1
    assert counts["served_after_revocation"] == 0  # 8.0 is the new session's
    assert verdict(counts, revocations_planned=1)["passed"] is True


def test_needs_reauth_before_the_logout_was_sent_is_spurious() -> None:
    revocation = Revocation(0, planned_at=5.0, started=5.0, done=5.1)
    counts = count(
        [], [revocation], [AuthEventRecord(0, 4.9, "NEEDS_REAUTH")], nothing_recorded(), USERS
    )
    assert counts["spurious_needs_reauth"] == 1


def test_a_new_session_after_signing_in_again_is_no_longer_covered() -> None:
    revocation = Revocation(0, planned_at=5.0, started=5.0, done=5.1)
    counts = count(
        [req(0, 5.2, 5.3, AUTH_EXPIRED), req(0, 9.0, 9.1, AUTH_EXPIRED)],
        [revocation],
        [AuthEventRecord(0, 9.05, "NEEDS_REAUTH")],
        nothing_recorded(),
        USERS,
        sign_ins=[SignInRecord(0, 6.0, 7.0)],
    )
    assert counts["spurious_auth_expired"] == 1
    assert counts["spurious_needs_reauth"] == 1


def test_a_session_made_before_the_logout_was_answered_stays_covered() -> None:
    # Told at 5.3 (the logout committed, its answer still on the way), signed in again at
    # 5.5-6.0, the logout answered at 8.0 (the second device may have retried it, ending the
    # new session too): that session's end is the revocation's, until a sign-in after 8.0.
    revocation = Revocation(0, planned_at=5.0, started=5.0, done=8.0)
    sign_ins = [SignInRecord(0, 5.5, 6.0), SignInRecord(0, 9.0, 9.5)]
    requests = [req(0, 5.2, 5.3, AUTH_EXPIRED), req(0, 8.5, 8.6, AUTH_EXPIRED), req(0, 10, 10.1)]
    events = [AuthEventRecord(0, 5.3, "NEEDS_REAUTH"), AuthEventRecord(0, 8.6, "NEEDS_REAUTH")]
    counts = count(requests, [revocation], events, nothing_recorded(), USERS, sign_ins=sign_ins)
    assert counts["spurious_needs_reauth"] == 0
    assert counts["spurious_auth_expired"] == 0
    assert counts["revocations_told_within_one_request"] == 1
    later = [*events, AuthEventRecord(0, 12.0, "NEEDS_REAUTH")]
    counts = count(requests, [revocation], later, nothing_recorded(), USERS, sign_ins=sign_ins)
    assert counts["spurious_needs_reauth"] == 1


def test_a_user_told_by_needs_reauth_before_any_request_was_told_at_once() -> None:
    revocation = Revocation(0, planned_at=5.0, started=5.0, done=6.0)
    verdicts = judge_revocations(
        [revocation],
        [req(0, 1.0, 1.1), req(0, 9.0, 9.1)],
        [AuthEventRecord(0, 5.5, "NEEDS_REAUTH")],
        [SignInRecord(0, 7.0, 7.5)],
    )
    assert verdicts.told_within_one == 1 and verdicts.served_after == 0
    assert verdicts.delays == [0.0]
    assert verdicts.details[0]["verdict"] == "told"


def test_a_request_started_before_the_logout_may_end_either_way() -> None:
    revocation = Revocation(0, planned_at=5.0, started=5.0, done=5.1)
    # In flight when the logout was sent: it succeeded (started before) -- not late.
    counts = count(
        [req(0, 4.9, 5.2), req(0, 6.0, 6.1, AUTH_EXPIRED)],
        [revocation],
        [],
        nothing_recorded(),
        USERS,
    )
    assert counts["served_after_revocation"] == 0
    assert counts["revocations_told_within_one_request"] == 1


def test_a_request_served_after_the_logout_makes_the_revocation_late() -> None:
    revocation = Revocation(0, planned_at=5.0, started=5.0, done=5.1)
    counts = count(
        [req(0, 6.0, 6.1), req(0, 7.0, 7.1, AUTH_EXPIRED)],
        [revocation],
        [],
        nothing_recorded(),
        USERS,
    )
    assert counts["revocations_late"] == 1
    assert counts["served_after_revocation"] == 1
    assert not verdict(counts)["passed"]


def test_a_revoked_user_never_told_is_missed() -> None:
    revocation = Revocation(0, planned_at=5.0, started=5.0, done=5.1)
    verdicts = judge_revocations([revocation], [req(0, 6.0, 6.1), req(0, 7.0, 7.1)])
    assert verdicts.missed == 1
    assert verdicts.served_after == 2


def test_a_revocation_without_later_requests_is_unexercised_unless_already_told() -> None:
    quiet = Revocation(0, planned_at=5.0, started=5.0, done=5.1)
    assert judge_revocations([quiet], [req(0, 1.0, 1.1)]).unexercised == 1
    # Told by a request that ended after the logout was sent but before its answer arrived,
    # then signed in again before the answer: told, not unexercised.
    early = Revocation(0, planned_at=5.0, started=5.0, done=5.5)
    verdicts = judge_revocations(
        [early], [req(0, 4.9, 5.2, AUTH_EXPIRED)], sign_ins=[SignInRecord(0, 5.3, 5.4)]
    )
    assert verdicts.told_within_one == 1


def test_a_revocation_whose_logout_never_succeeded_is_not_performed() -> None:
    verdicts = judge_revocations([Revocation(0, planned_at=5.0, started=5.0)], [])
    assert verdicts.not_performed == 1
    counts = count([req(0, 1.0, 1.1)], [Revocation(0, 5.0, 5.0)], [], nothing_recorded(), USERS)
    assert "only 0 of 1 revocations" in verdict(counts, revocations_planned=1)["failures"][0]


def test_a_post_the_user_saw_succeed_without_its_effect_is_lost() -> None:
    requests = [
        req(0, 1.0, 1.1, kind="post", rid="a"),
        req(0, 1.0, 1.1, kind="post", rid="b"),
        req(1, 1.0, 130.0, NO_OUTCOME, kind="get"),
    ]
    recorded = RecordedEffects((Execution("a", 1, "u0", "a", 1.05),), {"a": "u0"})
    counts = count(requests, [], [], recorded, USERS)
    assert counts["lost_ok_without_effect"] == 1
    assert counts["lost_no_outcome"] == 1
    assert counts["lost_requests"] == 2


def test_one_send_executed_twice_is_a_duplicate_but_a_retry_is_a_replay() -> None:
    requests = [req(0, 1.0, 1.1, kind="post", rid="a"), req(0, 2.0, 2.1, kind="post", rid="b")]
    recorded = RecordedEffects(
        (
            Execution("a", 1, "u0", "a", 1.05),
            Execution("a", 1, "u0", "b", 1.06),  # the same send ran twice
            Execution("b", 1, "u0", "a", 2.01),
            Execution("b", 2, "u0", "b", 2.05),  # the user retried after a lost answer
        ),
        {"a": "u0", "b": "u0"},
    )
    counts = count(requests, [], [], recorded, USERS)
    assert counts["duplicated_side_effects"] == 1
    assert counts["idempotent_replays"] == 1
    assert counts["lost_requests"] == 0


def test_an_effect_under_another_user_is_counted() -> None:
    recorded = RecordedEffects((Execution("a", 1, "u1", "a", 1.0),), {"a": "u1"})
    counts = count([req(0, 1.0, 1.1, kind="post", rid="a")], [], [], recorded, USERS)
    assert counts["wrong_user_effects"] == 1


def test_failures_and_errors_are_reported_but_do_not_fail_the_run() -> None:
    failed = req(0, 1.0, 61.0, FAILED, attempts=9)
    failed.five_xx = 8
    failed.transport_errors = 1
    counts = count([failed, req(1, 1.0, 1.1)], [], [], nothing_recorded(), USERS)
    assert counts["failed_requests"] == 1
    assert counts["five_xx_seen_by_users"] == 8
    assert counts["network_errors_seen_by_users"] == 1
    assert counts["requests_retried_by_user_code"] == 1
    assert verdict(counts)["passed"] is True


def test_an_unexpected_answer_fails_the_run() -> None:
    counts = count([req(0, 1.0, 1.1, UNEXPECTED)], [], [], nothing_recorded(), USERS)
    assert verdict(counts)["failures"] == ["unexpected_answers = 1"]


def test_a_run_without_requests_or_with_a_failed_fault_fails() -> None:
    counts = count([], [], [], nothing_recorded(), USERS)
    assert "no requests were made" in verdict(counts)["failures"]
    counts = count([req(0, 1.0, 1.1)], [], [], nothing_recorded(), USERS)
    assert verdict(counts, faults_failed=1)["failures"] == ["1 faults could not be applied"]
    assert verdict(counts, harness_errors=["boom"])["failures"] == ["harness: boom"]


def test_latency_without_faults_leaves_out_requests_that_met_one_or_its_recovery() -> None:
    requests = [req(0, 1.0, 1.1), req(0, 20.0, 20.5), req(0, 25.0, 25.3), req(0, 40.0, 40.2)]
    counts = count(requests, [], [], nothing_recorded(), USERS, fault_windows=[(20.0, 22.0)])
    latency = counts["latency_ms"]
    assert latency["p99"] == 500.0
    assert latency["no_fault_p99"] == 200.0  # 20.0 met the fault, 25.0 its recovery
    assert latency["no_fault_p50"] == 100.0


def test_every_gate_is_a_count() -> None:
    counts = count([req(0, 1.0, 1.1)], [], [], nothing_recorded(), USERS)
    assert set(GATES) <= set(counts)


@given(
    st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=1), st.floats(0, 100)
)
def test_percentile_is_one_of_the_values_and_monotonic(values: list[float], q: float) -> None:
    p = percentile(values, q)
    assert p in values
    assert percentile(values, 0) == min(values)
    assert percentile(values, 100) == max(values)
    assert p is not None and p <= (percentile(values, min(100.0, q + 10)) or 0)


@given(
    st.floats(0, 100),
    st.floats(0, 100),
    st.one_of(st.none(), st.floats(0, 100)),
    st.floats(0, 100),
)
def test_covering_follows_its_definition(
    sent: float, at: float, sign_in: float | None, dt: float
) -> None:
    done = sent + 0.1
    revocation = Revocation(0, planned_at=sent, started=sent, done=done)
    sign_ins = [] if sign_in is None else [SignInRecord(0, sign_in, sign_in + 1.0)]
    expected = sent <= at + dt and (sign_in is None or sign_in < done or at < sign_in + 1.0)
    assert covering([revocation], 0, at, at + dt, sign_ins) is expected
    assert covering([revocation], 1, at, at + dt, sign_ins) is False


def test_the_markdown_report_names_the_verdict_and_the_failures() -> None:
    counts = count([req(0, 1.0, 1.2, AUTH_EXPIRED)], [], [], nothing_recorded(), USERS)
    report: dict[str, Any] = {
        "command": "sessionkeeper soak --duration 2m",
        "config": {
            "users": 1,
            "duration_s": 120.0,
            "jwt_exp_s": 10,
            "store": "postgres",
            "faults": True,
            "seed": 1,
        },
        "machine": {"cpus": 2, "load_at_start": "0.1", "load_at_end": "0.2"},
        "counts": counts,
        "verdict": verdict(counts),
        "faults": [
            {
                "kind": "kill9",
                "target": "b",
                "started": 10.0,
                "ended": 13.5,
                "detail": "SIGKILL",
                "error": None,
            }
        ],
        "proxy": {"refresh": 3},
        "harness_loop_lag_ms": {"p99": 12, "max": 40},
        "server_log": {"errors_by_event": {"store_unavailable": 2}, "tracebacks": []},
    }
    text = render_markdown(report)
    assert text.startswith("# Soak report\n\n**FAIL**: spurious_auth_expired = 1")
    assert "| **spurious AuthExpiredError** (user not revoked) | 1 |" in text
    assert "| 10.0 | kill9 | b | 3.5 | SIGKILL |" in text
    assert "`sessionkeeper soak --duration 2m`" in text
    assert "user 0 at 1.2 s: AuthExpired None" in text
    assert "lagged at most 40 ms" in text
