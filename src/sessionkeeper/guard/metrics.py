"""Counters per outcome, and their Prometheus text exposition.

The text format (version 0.0.4) is written here rather than through ``prometheus-client``:
a handful of counters do not justify a dependency, several guards in one process (or one test
session) must not collide in a global registry, and a counter increment stays a dict update on
the hot path. Scrapers cannot tell the difference.
"""

from __future__ import annotations

from sessionkeeper.guard.reasons import Reason

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class GuardMetrics:
    def __init__(self, name: str = "sessionkeeper_guard") -> None:
        self.name = name
        self.accepted = 0
        self.refused: dict[Reason, int] = dict.fromkeys(Reason, 0)

    def refusal(self, reason: Reason) -> None:
        self.refused[reason] += 1

    def exposition(self) -> bytes:
        n = self.name
        lines = [
            f"# HELP {n}_accepted_total Requests to protected paths let through.",
            f"# TYPE {n}_accepted_total counter",
            f"{n}_accepted_total {self.accepted}",
            f"# HELP {n}_refused_total Requests refused (401) or not judged (503), by reason.",
            f"# TYPE {n}_refused_total counter",
        ]
        lines += [f'{n}_refused_total{{reason="{r.value}"}} {c}' for r, c in self.refused.items()]
        return ("\n".join(lines) + "\n").encode()
