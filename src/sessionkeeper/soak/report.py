"""The counts of a soak run, their definitions, the verdict, and the JSON and markdown reports.

Everything here is a pure function of what the run recorded (``records``) and of what the
database holds at the end (``effects.RecordedEffects``), so it is unit-tested on its own.

Definitions (the same words as in ``docs/soak.md``):

- A revocation *covers* a user from the moment its first ``/logout?scope=global`` was sent
  until the end of the user's first sign-in that started after the logout was answered (or the
  end of the run). A user is *told* by the first ``NEEDS_REAUTH`` or ``AuthExpiredError`` after
  the logout was sent.
- **Spurious NEEDS_REAUTH**: a ``NEEDS_REAUTH`` event of a user whom no revocation covers at
  that moment. **Spurious AuthExpired**: a request ending in ``AuthExpiredError`` (what makes an
  app show its sign-in prompt) that no revocation covers.
- A revocation is **told within one request** when the first request the user made with the
  revoked session after the logout was answered ended in ``AuthExpiredError``, or the user was
  told before making one; **late** when a later one did; **missed** when none did.
  **Served after revocation**: requests made with the revoked session after the logout was
  answered that succeeded.
- **Lost request**: a POST the user saw succeed whose side effect is not in the database, or a
  request that never reached a final outcome within its bound.
- **Duplicated side effect**: one send of a request (same request id and attempt number)
  executed more than once by the API. User-level retries (new attempt, same id) after a lost
  answer are counted apart, as *idempotent replays*: the ``Idempotency-Key`` absorbed them.
- **Wrong user**: a side effect recorded under another user than the one who sent it.
- **Failed request**: a request the user gave up on after retrying 5xx, network errors and
  ``IssuerUnavailableError`` for the whole retry budget (the user saw an error, not a sign-in).
- **5xx seen by users**: every 5xx answer that reached the user's code (each attempt); network
  errors and ``IssuerUnavailableError`` are counted beside it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sessionkeeper.soak.effects import RecordedEffects
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

#: Seconds after a fault during which requests still count as meeting it (for latency only).
RECOVERY = 10.0
#: The figures that must be zero for a run to pass (the issue's acceptance).
GATES = (
    "spurious_needs_reauth",
    "spurious_auth_expired",
    "lost_requests",
    "duplicated_side_effects",
    "wrong_user_effects",
    "revocations_late",
    "revocations_missed",
    "served_after_revocation",
    "unexpected_answers",
)


def covered_until(revocation: Revocation, sign_ins: Iterable[SignInRecord]) -> float:
    """When a revocation stops covering its user: at the end of the user's first sign-in that
    started after the logout was answered. A session made before that answer may still be
    ended by a ``/logout`` the second device retried, so it stays covered (until a later
    sign-in, or the end of the run). A logout never answered covers the rest of the run."""
    if revocation.started is None:
        return -math.inf
    if revocation.done is None:
        return math.inf
    after = [
        s.ended for s in sign_ins if s.user == revocation.user and s.started >= revocation.done
    ]
    return min(after, default=math.inf)


def covering(
    revocations: Iterable[Revocation],
    user: int,
    start: float,
    end: float,
    sign_ins: Sequence[SignInRecord] = (),
) -> bool:
    """Whether a revocation of ``user`` covers something that happened between ``start`` and
    ``end``: its logout was sent by ``end``, and ``start`` is before it stopped covering."""
    for r in revocations:
        if r.user != user or r.started is None or r.started > end:
            continue
        if start < covered_until(r, sign_ins):
            return True
    return False


@dataclass
class RevocationVerdicts:
    performed: int = 0
    told_within_one: int = 0
    late: int = 0
    missed: int = 0
    unexercised: int = 0
    not_performed: int = 0
    served_after: int = 0
    delays: list[float] = field(default_factory=list)  # logout answered -> user told, seconds
    details: list[dict[str, Any]] = field(default_factory=list)


def judge_revocations(
    revocations: Sequence[Revocation],
    requests: Sequence[RequestRecord],
    events: Sequence[AuthEventRecord] = (),
    sign_ins: Sequence[SignInRecord] = (),
) -> RevocationVerdicts:
    """Was each revoked user told, and at once?

    The user is *told* by the first ``NEEDS_REAUTH`` or ``AuthExpiredError`` after the logout
    was sent (an app shows its sign-in prompt on either). The requests that count are those the
    user started with the revoked session: after the logout was answered and before they signed
    in again. The first of them must end in ``AuthExpiredError`` -- unless the user was told
    before making any (then told at once)."""
    by_user: dict[int, list[RequestRecord]] = {}
    for r in requests:
        by_user.setdefault(r.user, []).append(r)
    verdicts = RevocationVerdicts()
    for rev in revocations:
        detail: dict[str, Any] = {"user": rev.user, "started": rev.started, "done": rev.done}
        verdicts.details.append(detail)
        if rev.started is None or rev.done is None:
            verdicts.not_performed += 1
            detail["verdict"] = "not_performed"
            continue
        verdicts.performed += 1
        mine = sorted(by_user.get(rev.user, []), key=lambda r: r.started)
        told_times = [
            e.at
            for e in events
            if e.user == rev.user and e.event == "NEEDS_REAUTH" and e.at >= rev.started
        ] + [
            r.ended
            for r in mine
            if r.outcome == AUTH_EXPIRED and r.ended is not None and r.ended >= rev.started
        ]
        told_at = min(told_times, default=None)
        signed_in_again = min(
            (
                s.started
                for s in sign_ins
                if s.user == rev.user and told_at is not None and s.started >= told_at
            ),
            default=math.inf,
        )
        after = [r for r in mine if rev.done <= r.started < signed_in_again]
        verdicts.served_after += sum(1 for r in after if r.outcome == OK)
        if (
            after
            and after[0].outcome != AUTH_EXPIRED
            and (told_at is None or told_at > after[0].started)
        ):
            verdict = "late" if any(r.outcome == AUTH_EXPIRED for r in after) else "missed"
        elif told_at is not None:
            verdict = "told"
        else:
            verdict = "unexercised"
        if verdict == "late":
            verdicts.late += 1
        elif verdict == "missed":
            verdicts.missed += 1
        elif verdict == "told":
            verdicts.told_within_one += 1
            verdicts.delays.append(max(0.0, told_at - rev.done))  # type: ignore[operator]
        else:
            verdicts.unexercised += 1
        detail.update(
            told_at=told_at,
            requests_with_revoked_session=len(after),
            served_after=sum(1 for r in after if r.outcome == OK),
            verdict=verdict,
        )
    return verdicts


def revocation_details(
    revocations: Sequence[Revocation],
    requests: Sequence[RequestRecord],
    events: Sequence[AuthEventRecord],
    sign_ins: Sequence[SignInRecord],
) -> list[dict[str, Any]]:
    """Each revocation with its times and verdict (seconds into the run), for the JSON report."""
    details = judge_revocations(revocations, requests, events, sign_ins).details
    for detail in details:
        for key in ("started", "done", "told_at"):
            if detail.get(key) is not None:
                detail[key] = round(detail[key], 3)
    return details


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100); ``None`` for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def count(
    requests: Sequence[RequestRecord],
    revocations: Sequence[Revocation],
    events: Sequence[AuthEventRecord],
    recorded: RecordedEffects,
    user_ids: Mapping[int, str],
    fault_windows: Sequence[tuple[float, float]] = (),
    sign_ins: Sequence[SignInRecord] = (),
) -> dict[str, Any]:
    """Every figure of the report, by the definitions above. ``fault_windows`` (start, end)
    give the latency of requests that met no fault (nor its first 10 s of recovery)."""
    outcomes = Counter(r.outcome for r in requests)
    spurious_events = [
        e
        for e in events
        if e.event == "NEEDS_REAUTH" and not covering(revocations, e.user, e.at, e.at, sign_ins)
    ]

    def uncovered(outcome: str) -> list[RequestRecord]:
        """Requests with ``outcome`` that no revocation of their user explains."""
        return [
            r
            for r in requests
            if r.outcome == outcome
            and not covering(
                revocations,
                r.user,
                r.started,
                r.ended if r.ended is not None else r.started,
                sign_ins,
            )
        ]

    spurious_expired = uncovered(AUTH_EXPIRED)
    verdicts = judge_revocations(revocations, requests, events, sign_ins)

    posts_ok = [r for r in requests if r.kind == "post" and r.outcome == OK]
    lost_effects = [r for r in posts_ok if r.request_id not in recorded.effects]
    no_outcome = [r for r in requests if r.outcome in (None, NO_OUTCOME)]

    sends = Counter((e.request_id, e.attempt) for e in recorded.executions)
    duplicated = sum(n - 1 for n in sends.values() if n > 1)
    attempts_by_id: dict[str, set[int]] = {}
    for e in recorded.executions:
        attempts_by_id.setdefault(e.request_id, set()).add(e.attempt)
    replays = sum(1 for attempts in attempts_by_id.values() if len(attempts) > 1)
    sender = {r.request_id: r.user for r in requests}
    wrong_user = sum(
        1
        for e in recorded.executions
        if e.request_id in sender and user_ids.get(sender[e.request_id]) != e.user_id
    )
    unknown = sum(1 for e in recorded.executions if e.request_id not in sender)

    failed_uncovered = uncovered(FAILED)
    latencies = [
        (r.ended - r.started) * 1000 for r in requests if r.outcome == OK and r.ended is not None
    ]
    first_try = [
        (r.ended - r.started) * 1000
        for r in requests
        if r.outcome == OK and r.ended is not None and r.attempts == 1
    ]

    calm = [
        (r.ended - r.started) * 1000
        for r in requests
        if r.outcome == OK
        and r.ended is not None
        and not any(r.started < end + RECOVERY and r.ended > start for start, end in fault_windows)
    ]

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value, 1)

    return {
        "requests": len(requests),
        "requests_get": sum(1 for r in requests if r.kind == "get"),
        "requests_post": sum(1 for r in requests if r.kind == "post"),
        "outcomes": {
            name: outcomes.get(name, 0)
            for name in (OK, AUTH_EXPIRED, FAILED, NO_OUTCOME, UNEXPECTED)
        },
        "attempts": sum(r.attempts for r in requests),
        "refreshes": sum(1 for e in events if e.event == "TOKEN_REFRESHED"),
        "needs_reauth_events": sum(1 for e in events if e.event == "NEEDS_REAUTH"),
        "spurious_needs_reauth": len(spurious_events),
        "spurious_auth_expired": len(spurious_expired),
        "revocations_performed": verdicts.performed,
        "revocations_told_within_one_request": verdicts.told_within_one,
        "revocations_late": verdicts.late,
        "revocations_missed": verdicts.missed,
        "revocations_unexercised": verdicts.unexercised,
        "revocations_not_performed": verdicts.not_performed,
        "served_after_revocation": verdicts.served_after,
        "revocation_told_after_s_max": ms(max(verdicts.delays)) if verdicts.delays else None,
        "lost_requests": len(lost_effects) + len(no_outcome),
        "lost_ok_without_effect": len(lost_effects),
        "lost_no_outcome": len(no_outcome),
        "duplicated_side_effects": duplicated,
        "idempotent_replays": replays,
        "wrong_user_effects": wrong_user,
        "effects_of_unknown_requests": unknown,
        "side_effects_recorded": len(recorded.effects),
        "handler_executions": len(recorded.executions),
        "failed_requests": len(failed_uncovered),
        "unexpected_answers": outcomes.get(UNEXPECTED, 0),
        "five_xx_seen_by_users": sum(r.five_xx for r in requests),
        "network_errors_seen_by_users": sum(r.transport_errors for r in requests),
        "issuer_unavailable_seen_by_users": sum(r.unavailable for r in requests),
        "requests_retried_by_user_code": sum(1 for r in requests if r.attempts > 1),
        "latency_ms": {
            "p50": ms(percentile(latencies, 50)),
            "p99": ms(percentile(latencies, 99)),
            "max": ms(max(latencies)) if latencies else None,
            "first_try_p50": ms(percentile(first_try, 50)),
            "first_try_p99": ms(percentile(first_try, 99)),
            "no_fault_p50": ms(percentile(calm, 50)),
            "no_fault_p99": ms(percentile(calm, 99)),
        },
        "spurious_examples": [
            {"user": e.user, "at": round(e.at, 3), "what": "NEEDS_REAUTH"}
            for e in spurious_events[:10]
        ]
        + [
            {
                "user": r.user,
                "at": round(r.ended or r.started, 3),
                "what": f"AuthExpired {r.reason}",
            }
            for r in spurious_expired[:10]
        ],
    }


def verdict(
    counts: Mapping[str, Any],
    *,
    faults_failed: int = 0,
    revocations_planned: int = 0,
    harness_errors: Sequence[str] = (),
) -> dict[str, Any]:
    """Pass when every gate is zero, the run did real work, faults and revocations ran and the
    harness itself met no error."""
    failures = [f"{name} = {counts[name]}" for name in GATES if counts.get(name)]
    failures += [f"harness: {e}" for e in harness_errors]
    if not counts.get("requests"):
        failures.append("no requests were made")
    if faults_failed:
        failures.append(f"{faults_failed} faults could not be applied")
    if revocations_planned and counts.get("revocations_performed", 0) < revocations_planned:
        performed = counts.get("revocations_performed", 0)
        failures.append(f"only {performed} of {revocations_planned} revocations were performed")
    return {"passed": not failures, "failures": failures, "gates": list(GATES)}


# -- rendering ------------------------------------------------------------------------------------


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


ROWS = (
    ("requests", "requests (logical: a user action, however many sends it took)"),
    ("attempts", "sends by the users' code"),
    ("refreshes", "token refreshes (TOKEN_REFRESHED in the clients)"),
    ("spurious_needs_reauth", "**spurious NEEDS_REAUTH** (user not revoked)"),
    ("spurious_auth_expired", "**spurious AuthExpiredError** (user not revoked)"),
    ("revocations_performed", "revocations performed (logout everywhere from a second device)"),
    ("revocations_told_within_one_request", "revoked users told within one request"),
    ("revocations_late", "**revocations told late**"),
    ("revocations_missed", "**revocations missed**"),
    ("served_after_revocation", "**requests served after the revocation was answered**"),
    ("lost_requests", "**lost requests**"),
    ("duplicated_side_effects", "**duplicated side effects**"),
    ("wrong_user_effects", "**side effects under the wrong user**"),
    ("idempotent_replays", "idempotent replays absorbed (user retries after a lost answer)"),
    ("side_effects_recorded", "side effects recorded"),
    ("failed_requests", "requests that failed after the retry budget (user saw an error)"),
    ("five_xx_seen_by_users", "5xx answers seen by users' code"),
    ("network_errors_seen_by_users", "network errors seen by users' code"),
    ("issuer_unavailable_seen_by_users", "IssuerUnavailableError seen by users' code"),
    ("unexpected_answers", "**unexpected answers** (a 4xx other than 401)"),
)


def render_markdown(report: Mapping[str, Any]) -> str:
    counts = report["counts"]
    config = report["config"]
    lat = counts["latency_ms"]
    result = report["verdict"]
    lines = [
        "# Soak report",
        "",
        f"**{'PASS' if result['passed'] else 'FAIL'}**"
        + ("" if result["passed"] else ": " + "; ".join(result["failures"])),
        "",
        f"{config['users']} users, {config['duration_s']:.0f} s, access tokens of "
        f"{config['jwt_exp_s']} s, store `{config['store']}`, 2 instances behind the soak proxy, "
        f"faults {'on' if config['faults'] else 'off'}, seed {config['seed']}. "
        f"Reproduce with: `{report['command']}`",
        "",
        f"Machine: {report['machine']['cpus']} CPUs, load average at start "
        f"{report['machine']['load_at_start']}, at end {report['machine']['load_at_end']}"
        + (f" — {report['machine']['note']}" if report["machine"].get("note") else ""),
        "",
        "| figure | value |",
        "| --- | ---: |",
    ]
    lines += [f"| {label} | {_fmt(counts.get(key))} |" for key, label in ROWS]
    lines += [
        f"| latency p50 / p99 / max, successful requests (ms) | {_fmt(lat['p50'])} / "
        f"{_fmt(lat['p99'])} / {_fmt(lat['max'])} |",
        f"| latency p50 / p99, first-try successes (ms) | {_fmt(lat['first_try_p50'])} / "
        f"{_fmt(lat['first_try_p99'])} |",
        f"| latency p50 / p99, successes that met no fault (ms) | "
        f"{_fmt(lat.get('no_fault_p50'))} / {_fmt(lat.get('no_fault_p99'))} |",
        "",
        "Outcomes: " + ", ".join(f"{k} {_fmt(v)}" for k, v in counts["outcomes"].items()) + ".",
        "",
        "## Faults",
        "",
        "| at (s) | fault | target | lasted (s) | detail |",
        "| ---: | --- | --- | ---: | --- |",
    ]
    for f in report["faults"]:
        lasted = "" if f["ended"] is None else f"{f['ended'] - f['started']:.1f}"
        detail = f["detail"] + (f" **error: {f['error']}**" if f.get("error") else "")
        lines.append(f"| {f['started']:.1f} | {f['kind']} | {f['target']} | {lasted} | {detail} |")
    lag = report.get("harness_loop_lag_ms")
    if lag:
        lines += [
            "",
            f"The harness's event loop (users, proxy) lagged at most {_fmt(lag['max'])} ms "
            f"(p99 of the per-second worst: {_fmt(lag['p99'])} ms): latency above that is the "
            "servers', the store's or the machine's.",
        ]
    proxy = report.get("proxy", {})
    if proxy:
        lines += [
            "",
            "Proxy: " + ", ".join(f"{k} {_fmt(v)}" for k, v in sorted(proxy.items())) + ".",
        ]
    server = report.get("server_log", {})
    if server:
        errors = server.get("errors_by_event", {})
        lines += [
            "",
            "Server log: ERROR lines by event: "
            + (", ".join(f"`{k}` {_fmt(v)}" for k, v in sorted(errors.items())) or "none")
            + f"; tracebacks: {len(server.get('tracebacks', []))}.",
        ]
        lines += [f"    {line}" for line in server.get("tracebacks", [])[:5]]
    if counts.get("spurious_examples"):
        lines += ["", "## Spurious events (first ones)", ""]
        lines += [
            f"- user {e['user']} at {e['at']} s: {e['what']}" for e in counts["spurious_examples"]
        ]
    lines += [
        "",
        "Definitions: see [docs/soak.md](../soak.md#definitions). "
        "The per-second timeline is in the JSON report (`timeline`).",
        "",
    ]
    return "\n".join(lines)
