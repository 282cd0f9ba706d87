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

from sessionkeeper.guard.reasons import Reason

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

#: Every finding code and what it says, in one place (docs/doctor.md has a row for each; a test
#: checks that). A token's codes are the guard's refusal reasons, so the doctor, the guard's log
#: line and its ``X-Auth-Reason`` header use the same words.
CODES: dict[str, str] = {
    **{reason.value: "the guard refuses the token for this reason" for reason in Reason},
    # doctor token
    "expired_within_leeway": "expired, still accepted for the rest of the leeway",
    "clock_skew": "issued in this machine's future, inside the leeway",
    "not_a_user_token": "a Supabase API key sent as a user's access token",
    "short_secret": "an HS256 secret under 32 bytes",
    # doctor config
    "issuer_mismatch": "the parts name different auth servers",
    "issuer_format": "an issuer with a trailing slash, or a Supabase issuer not as its tokens say",
    "project_url_format": "a project URL that is not just scheme://host",
    "key_other_project": "an API key of another project than the URLs name",
    "key_role_mismatch": "an API key whose variable name says the opposite role",
    "service_key_exposed": "a server-only key or JWT secret under a browser-exposed name",
    "service_key_in_frontend_file": "a server-only key in a front end's file, unexposed",
    "jwt_secret_mismatch": "JWT secrets that differ, or that did not sign the API keys",
    "invalid_setting": "a value the auth server refuses at start-up",
    "rotation_off": "refresh-token rotation switched off",
    "reuse_interval_short": "a refresh-token reuse interval under 10 s",
    "origin_not_allowed": "an app origin missing from an allow-list",
    # doctor probe --cookie-origin
    "bridge_missing": "no session bridge at /auth/callback",
    "bridge_refused_session": "the bridge cannot verify the auth server's sessions",
    "bridge_unavailable": "the bridge cannot reach the issuer, its keys or its store",
    "bridge_failed": "the bridge answered something else than 200 to a fresh session",
    "cookie_attributes": "session cookies a browser drops, or scripts can read",
    "nothing_to_check": "none of the known settings found",
    # doctor probe
    "unreachable": "the server did not answer",
    "health_failed": "the auth server's health check failed",
    "sign_in_failed": "the password sign-in was refused",
    "whoami_missing": "no whoami endpoint at the given path",
    "endpoint_failed": "an endpoint failed with something other than an auth refusal",
    "api_refused": "the API refused the token without saying why",
    "api_unavailable": "the API answered 503 without saying why",
}


@dataclass(frozen=True)
class Finding:
    """One problem. ``details`` holds JSON-safe, log-safe facts: never a secret or a token."""

    code: str
    severity: Severity
    message: str
    hint: str
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.code not in CODES:  # a programming error: give the code a row in CODES
            raise ValueError(f"unknown finding code {self.code!r}")

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
