"""The fault schedule: which fault, when, for how long. Pure; ``harness`` applies it.

A *cycle* of eight faults, one after the other, is repeated over the run (a 10-minute run gets
four cycles; a 2-minute run one compressed cycle), leaving the last 15 s quiet so that every
request and revocation in flight settles before the counts are taken:

- ``refresh_latency``: the proxy delays every refresh request by 0.5-3 s.
- ``refresh_errors``: the proxy answers 30 % of refresh requests 503 without forwarding them,
  and replaces the answer of 20 % by a 502 after the server rotated the token (a lost answer).
- ``restart``: graceful restart of one instance: the proxy drains it, SIGTERM, a new process.
- ``kill9``: ``kill -9`` of the other instance, restarted ``duration`` seconds later.
- ``store_pause``: the session store stops answering for ``duration`` seconds (PostgreSQL: a
  transaction holds ACCESS EXCLUSIVE locks on the session tables; Redis: SIGSTOP).
- ``store_disconnect``: every connection to the soak's database is terminated
  (``pg_terminate_backend``).
- ``clock_jump``: a third of the users' clocks jump 45 s back, another third 45 s ahead, for
  ``duration`` seconds, then return.
- ``outage``: both instances killed (``kill -9``) for ``duration`` seconds: no auth server, no
  API.

On top of the schedule, a fifth of the users run with a clock that is wrong all along (1 to
15 minutes, either way): see ``harness``.
"""

from __future__ import annotations

from dataclasses import dataclass

CYCLE = 150.0  # seconds, the template's length
QUIET_END = 15.0
KINDS = (
    "refresh_latency",
    "refresh_errors",
    "restart",
    "kill9",
    "store_pause",
    "store_disconnect",
    "clock_jump",
    "outage",
)
CLOCK_JUMP = 45.0
LATENCY = (0.5, 3.0)
FAIL_BEFORE = 0.3
LOSE_ANSWER = 0.2


@dataclass(frozen=True)
class Fault:
    at: float  # seconds into the run
    kind: str
    duration: float = 0.0  # a window's length, or how long a killed instance stays down
    target: str = ""  # the instance, for restart and kill9


#: (offset in a 150 s cycle, kind, duration, whether the duration shrinks with the cycle)
_TEMPLATE: tuple[tuple[float, str, float, bool], ...] = (
    (10.0, "refresh_latency", 20.0, True),
    (35.0, "refresh_errors", 20.0, True),
    (60.0, "restart", 0.0, False),
    (72.0, "kill9", 3.0, False),
    (88.0, "store_pause", 8.0, False),
    (104.0, "store_disconnect", 0.0, False),
    (110.0, "clock_jump", 20.0, True),
    (135.0, "outage", 4.0, False),
)


def schedule(duration: float, instances: tuple[str, str] = ("a", "b")) -> list[Fault]:
    """The faults of a run of ``duration`` seconds, in order."""
    active = duration - QUIET_END
    if active < 30:
        return []
    cycles = max(1, round(active / CYCLE))
    length = active / cycles
    scale = min(1.0, length / CYCLE)
    faults: list[Fault] = []
    for cycle in range(cycles):
        base = cycle * length
        restart, crash = instances[cycle % 2], instances[(cycle + 1) % 2]
        for offset, kind, span, shrinks in _TEMPLATE:
            target = restart if kind == "restart" else crash if kind == "kill9" else ""
            faults.append(
                Fault(
                    at=round(base + offset * scale, 3),
                    kind=kind,
                    duration=round(span * scale if shrinks else span, 3),
                    target=target,
                )
            )
    return faults
