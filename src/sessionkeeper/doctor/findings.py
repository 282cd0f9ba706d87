"""What a doctor command reports: facts (what it saw) and findings (what is wrong, and the fix).

Every command returns one :class:`Report`; the text and JSON renderings are both made from it,
so a script reading ``--json`` and a person reading the terminal see the same verdict. A finding
has a stable ``code`` (for tokens, the guard's own :class:`~sessionkeeper.guard.Reason` value,
so the doctor and the guard's log line speak one language), a severity, a message and a hint.

Exit codes: 0 when no finding is an error or a warning, 1 when one is (a problem found), 2 for
bad usage (raised as :class:`~sessionkeeper.errors.ConfigError` before any report exists).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

SCHEMA = "sessionkeeper.doctor/1"

EXIT_HEALTHY = 0
EXIT_PROBLEMS = 1
EXIT_USAGE = 2


class Severity(StrEnum):
    """How bad a finding is. ``error`` refuses users (or exposes a secret) today; ``warning`` is
    one step from it; ``info`` is worth knowing and never changes the exit code."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


class Status(StrEnum):
    """The verdict on one fact (a row of the table)."""

    OK = "ok"
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"
    SKIPPED = "skipped"


PROBLEMS = frozenset({Severity.ERROR, Severity.WARNING})


@dataclass(frozen=True)
class Finding:
    """One problem. ``details`` holds JSON-safe, log-safe facts: never a secret or a token."""

    code: str
    severity: Severity
    message: str
    hint: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity.value,
            "message": self.message,
            "hint": self.hint,
            "details": self.details,
        }


@dataclass(frozen=True)
class Fact:
    """One row of the table: what was looked at, what was seen, and whether it is fine."""

    name: str
    value: str
    status: Status = Status.INFO

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "value": self.value, "status": self.status.value}


@dataclass
class Report:
    """The outcome of one doctor command."""

    command: str
    subject: str
    facts: list[Fact] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    def fact(self, name: str, value: str, status: Status = Status.INFO) -> None:
        self.facts.append(Fact(name, value, status))

    def add(self, finding: Finding) -> None:
        self.findings.append(finding)

    def codes(self) -> list[str]:
        return [f.code for f in self.findings]

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.severity in PROBLEMS]

    @property
    def exit_code(self) -> int:
        return EXIT_PROBLEMS if self.problems else EXIT_HEALTHY

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "command": self.command,
            "subject": self.subject,
            "healthy": not self.problems,
            "exit_code": self.exit_code,
            "facts": [f.to_dict() for f in self.facts],
            "findings": [f.to_dict() for f in self.findings],
        }
