"""``doctor config``: read every part's env files and compare what they say.

Each part of a deployment (the front end's ``.env.local``, a worker's ``.dev.vars``, the API's
``.env``, the auth server's settings) is usually right on its own; what breaks sign-in is that
they disagree. So the checks compare across sources:

- the auth servers they name (Supabase project URLs, issuers, JWKS URLs) must be one
  (:func:`check_issuers`);
- API keys and JWT secrets must belong to that project and stay out of the browser
  (:mod:`~sessionkeeper.doctor.apikeys`);
- the auth server's own settings must start and keep users signed in
  (:mod:`~sessionkeeper.doctor.server_settings`);
- every app origin must be on the allow-lists (:mod:`~sessionkeeper.doctor.origins`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sessionkeeper.doctor.apikeys import check_api_keys, check_jwt_secrets, find_jwt_secrets
from sessionkeeper.doctor.envfiles import EnvSource, EnvVar
from sessionkeeper.doctor.findings import Finding, Report, Severity, Status
from sessionkeeper.doctor.keysets import MIN_SECRET_BYTES
from sessionkeeper.doctor.origins import check_origins
from sessionkeeper.doctor.server_settings import check_server_settings
from sessionkeeper.doctor.supabase import (
    AUTH_PATH,
    JWKS_PATH,
    issuer_from_jwks_url,
    issuer_from_project_url,
    project_ref,
    supabase_issuer,
    with_project,
)
from sessionkeeper.origins import origin


@dataclass(frozen=True)
class AuthServer:
    """A variable that names an auth server, and the issuer that server's tokens carry."""

    var: EnvVar
    kind: str  # "project URL" | "issuer" | "JWKS URL"
    issuer: str

    def suggested(self, issuer: str) -> str:
        """This variable's value, pointed at ``issuer`` instead."""
        if self.kind == "project URL":
            return issuer.removesuffix(AUTH_PATH)
        if self.kind == "JWKS URL":
            return issuer + JWKS_PATH
        return issuer


def _kind(name: str) -> str | None:
    upper = name.upper()
    if upper == "SUPABASE_URL" or upper.endswith("_SUPABASE_URL"):
        return "project URL"
    if upper.endswith("JWKS_URL"):
        return "JWKS URL"
    if upper.endswith("ISSUER"):
        return "issuer"
    return None


def find_auth_servers(sources: Sequence[EnvSource]) -> list[AuthServer]:
    found = []
    for source in sources:
        for var in source.variables:
            kind = _kind(var.name)
            value = var.value.strip()
            if kind is None or origin(value) is None:
                continue
            if kind == "project URL":
                issuer = issuer_from_project_url(value)
            elif kind == "JWKS URL":
                derived = issuer_from_jwks_url(value)
                if derived is None:
                    continue  # not at <issuer>/.well-known/jwks.json: nothing to compare
                issuer = derived
            else:
                issuer = value.rstrip("/")
            found.append(AuthServer(var, kind, issuer))
    return found


def check_issuers(report: Report, servers: list[AuthServer]) -> None:
    for server in servers:
        var = server.var
        meaning = "issuer" if server.kind == "issuer" else f"{server.kind}, issuer"
        report.fact(var.name, f"{meaning} {with_project(server.issuer)} ({var.where})")
        _check_format(report, server)
    groups: dict[str, list[AuthServer]] = {}
    for server in servers:
        groups.setdefault(server.issuer, []).append(server)
    if len(groups) < 2:
        return
    listed = "; ".join(
        f"{with_project(issuer)} named by "
        + ", ".join(f"{s.var.name} ({s.var.where})" for s in members)
        for issuer, members in groups.items()
    )
    # The front end's choice is the truth: it is where users sign in and tokens come from.
    front = [s for s in servers if s.var.browser_exposed]
    if front:
        truth = front[0].issuer
        fixes = [
            f"{s.var.name}={s.suggested(truth)} in {s.var.source}"
            for s in servers
            if s.issuer != truth
        ]
        hint = (
            f"Tokens come from the auth server the front end signs in to ({with_project(truth)}, "
            f"{front[0].var.name}); point the others at it: {'; '.join(fixes)}."
        )
    else:
        hint = "Point every part at the one auth server that issues your users' tokens."
    report.add(
        Finding(
            "issuer_mismatch",
            Severity.ERROR,
            f"The settings name {len(groups)} different auth servers: {listed}. Tokens from "
            "one are refused by an API that verifies against another (wrong_issuer, "
            "unknown_kid or bad_signature).",
            hint,
            {
                "issuers": [
                    {
                        "issuer": issuer,
                        "project": project_ref(issuer),
                        "variables": [{"name": s.var.name, "where": s.var.where} for s in members],
                    }
                    for issuer, members in groups.items()
                ]
            },
        )
    )


def _check_format(report: Report, server: AuthServer) -> None:
    var, value = server.var, server.var.value.strip()
    canonical = supabase_issuer(value)
    problem = None
    if server.kind == "project URL":
        expected = canonical.removesuffix(AUTH_PATH) if canonical else origin(value)
        if value.rstrip("/") != expected:
            problem = (
                "project_url_format",
                Severity.WARNING,
                f"{var.name} ({var.where}) is {value}: a project URL is only scheme://host "
                f"({'https, ' if canonical else ''}lower case, no path).",
                f"Set {var.name}={expected}; supabase-js appends {AUTH_PATH} itself.",
            )
    elif server.kind == "issuer" and value.endswith("/"):
        problem = (
            "issuer_format",
            Severity.ERROR,
            f"{var.name} ({var.where}) ends with '/': tokens carry iss without it, and the "
            "guard compares iss exactly.",
            f"Set {var.name}={value.rstrip('/')}.",
        )
    elif server.kind == "issuer" and canonical and value != canonical:
        problem = (
            "issuer_format",
            Severity.ERROR,
            f"{var.name} ({var.where}) is {value}, but a Supabase project's tokens carry "
            f"iss {canonical}, and the guard compares iss exactly.",
            f"Set {var.name}={canonical}.",
        )
    if problem is not None:
        code, severity, message, hint = problem
        report.add(
            Finding(code, severity, message, hint, {"variable": var.name, "where": var.where})
        )


def diagnose_config(sources: Sequence[EnvSource]) -> Report:
    """Every check over every source; a source's own facts come with their ``file:line``."""
    report = Report("config", ", ".join(source.label for source in sources) or "(no sources)")
    servers = find_auth_servers(sources)
    check_issuers(report, servers)
    refs: dict[str, set[str]] = {}
    for server in servers:
        ref = project_ref(server.issuer)
        if ref and server.kind == "project URL":
            refs.setdefault(server.var.source, set()).add(ref)
    keys = check_api_keys(report, sources, refs)
    check_jwt_secrets(report, sources, keys)
    secrets = find_jwt_secrets(sources)
    short = {v.name for v in secrets if len(v.value.encode()) < MIN_SECRET_BYTES}
    for source in sources:
        check_server_settings(report, source, skip=short)
    check_origins(report, sources)
    if not report.facts:
        report.add(
            Finding(
                "nothing_to_check",
                Severity.WARNING,
                f"None of the settings the doctor reads were found in {report.subject}.",
                "Give each part's env file: --env-file web/.env.local --env-file api/.env "
                "(docs/doctor.md lists the names read).",
            )
        )
    for source in sources:
        if source.frontend:
            report.fact(
                source.label, "front end's env file (has browser-exposed names)", Status.INFO
            )
    return report
