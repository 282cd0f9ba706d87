"""Supabase API keys and JWT secrets found in env files: whose are they, and who can see them?

Every value is looked at, whatever its name: a service_role key pasted into
``VITE_SUPABASE_ANON_KEY`` is found by what it is, not by what it is called. The checks:

- a server-only key (legacy ``service_role`` JWT or ``sb_secret_``) or a JWT secret under a name
  a bundler puts in the browser (:data:`~sessionkeeper.doctor.envfiles.BROWSER_PREFIXES`) is
  exposed to everyone who loads the page;
- a legacy key's ``ref`` must be the project the URLs name (an anon key of another project makes
  every request fail with "Invalid API key");
- JWT secrets must be at least 32 bytes and all the same, and the legacy keys must verify with
  them (else the secret is another project's).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sessionkeeper.doctor.envfiles import EnvSource, EnvVar
from sessionkeeper.doctor.findings import Finding, Report, Severity, Status
from sessionkeeper.doctor.keysets import MIN_SECRET_BYTES, short_secret
from sessionkeeper.doctor.masking import masked
from sessionkeeper.doctor.supabase import ApiKey, api_key
from sessionkeeper.errors import ConfigError
from sessionkeeper.guard.keys import key_from_secret

_ROTATE = "Supabase: Project Settings → API Keys"


@dataclass(frozen=True)
class FoundKey:
    var: EnvVar
    key: ApiKey


def find_api_keys(sources: Iterable[EnvSource]) -> list[FoundKey]:
    found = []
    for source in sources:
        for var in source.variables:
            key = api_key(var.value)
            if key is not None:
                found.append(FoundKey(var, key))
    return found


def find_jwt_secrets(sources: Iterable[EnvSource]) -> list[EnvVar]:
    """Variables named ``...JWT_SECRET`` (SUPABASE_JWT_SECRET, SESSIONKEEPER_JWT_SECRET,
    GOTRUE_JWT_SECRET, JWT_SECRET, ...) with a value."""
    return [
        var
        for source in sources
        for var in source.variables
        if var.name.upper().endswith("JWT_SECRET") and var.value
    ]


def check_api_keys(
    report: Report, sources: Sequence[EnvSource], refs: dict[str, set[str]]
) -> list[FoundKey]:
    """``refs``: the project refs named by URLs, per source label (the key's own file first)."""
    keys = find_api_keys(sources)
    frontend = {source.label for source in sources if source.frontend}
    every_ref = set().union(*refs.values()) if refs else set()
    for found in keys:
        var, key = found.var, found.key
        report.fact(var.name, f"{key.describe()} ({masked(var.value)}; {var.where})")
        if key.privileged and var.browser_exposed:
            report.add(_exposed(var, key.describe()))
        elif key.privileged and var.source in frontend:
            report.add(
                Finding(
                    "service_key_in_frontend_file",
                    Severity.INFO,
                    f"{var.name} ({var.where}) holds a {key.describe()} in a front end's env file. "
                    "Its name has no public prefix, so bundlers leave it out of the browser code.",
                    "Fine for server code that reads it (Next.js route handlers); in a Vite, CRA "
                    "or Expo app nothing server-side reads it: remove it from the file.",
                    {"variable": var.name, "where": var.where},
                )
            )
        _check_role(report, var, key)
        expected = refs.get(var.source) or every_ref
        if key.ref is not None and expected and key.ref not in expected:
            report.add(
                Finding(
                    "key_other_project",
                    Severity.ERROR,
                    f"{var.name} ({var.where}) is the {key.describe()}, but the URLs name "
                    f"project {', '.join(sorted(expected))}: every request with it fails "
                    "('Invalid API key').",
                    f"Copy the {key.role} key of project {', '.join(sorted(expected))} "
                    f"({_ROTATE}) into {var.name}.",
                    {
                        "variable": var.name,
                        "where": var.where,
                        "key_project": key.ref,
                        "expected_projects": sorted(expected),
                    },
                )
            )
    return keys


def _exposed(var: EnvVar, what: str) -> Finding:
    return Finding(
        "service_key_exposed",
        Severity.ERROR,
        f"{var.name} ({var.where}) holds a {what}, and its name puts it in the browser bundle: "
        "anyone who loads the page can read it and bypass Row Level Security.",
        f"Remove it from the front end and rotate it now ({_ROTATE}); the browser uses the anon "
        "or publishable key, server code reads the secret from an unprefixed variable.",
        {"variable": var.name, "where": var.where},
    )


def _check_role(report: Report, var: EnvVar, key: ApiKey) -> None:
    """A key whose name says the opposite of what it is."""
    name = var.name.upper()
    says_public = "ANON" in name or "PUBLISHABLE" in name
    says_private = "SERVICE" in name or "SECRET" in name
    if says_public and key.privileged and not var.browser_exposed:
        severity, consequence = Severity.ERROR, "code that trusts it to be public leaks it"
    elif says_private and not key.privileged:
        severity, consequence = Severity.WARNING, "server calls that must bypass RLS will fail"
    else:
        return
    report.add(
        Finding(
            "key_role_mismatch",
            severity,
            f"{var.name} ({var.where}) holds a {key.describe()}: {consequence}.",
            f"Put the key its name promises into {var.name} ({_ROTATE}).",
            {"variable": var.name, "where": var.where, "role": key.role},
        )
    )


def check_jwt_secrets(report: Report, sources: Sequence[EnvSource], keys: list[FoundKey]) -> None:
    secrets = find_jwt_secrets(sources)
    for var in secrets:
        size = len(var.value.encode())
        short = size < MIN_SECRET_BYTES
        report.fact(
            var.name,
            f"JWT secret, {size} bytes ({masked(var.value)}; {var.where})",
            Status.ERROR if short else Status.OK,
        )
        if short:
            report.add(short_secret(f"{var.name} ({var.where})", size))
        if var.browser_exposed:
            report.add(_exposed(var, "JWT secret (anyone holding it can mint tokens for any user)"))
    distinct = {var.value for var in secrets}
    if len(distinct) > 1:
        listed = "; ".join(f"{v.name} ({v.where}): {masked(v.value)}" for v in secrets)
        report.add(
            Finding(
                "jwt_secret_mismatch",
                Severity.ERROR,
                f"The JWT secrets differ: {listed}. Tokens signed with one fail verification "
                "with the other (bad_signature).",
                "Use one secret everywhere: the auth server's (Supabase: Project Settings → API → "
                "JWT secret). The fingerprints show which variables already agree.",
                {
                    "secrets": [
                        {"variable": v.name, "where": v.where, "fingerprint": masked(v.value)}
                        for v in secrets
                    ]
                },
            )
        )
    _check_keys_signed_by(report, secrets, keys)


def _check_keys_signed_by(report: Report, secrets: list[EnvVar], keys: list[FoundKey]) -> None:
    """Legacy API keys are HS256 JWTs signed with the project's JWT secret: one that verifies
    with none of the secrets found says the secret belongs to another project."""
    verifiers = []
    for var in secrets:
        try:
            verifiers.append(key_from_secret(var.value))
        except ConfigError:
            continue  # short or unusable: reported above
    if not verifiers:
        return
    names = ", ".join(sorted({v.name for v in secrets}))
    unsigned = []
    for found in keys:
        jws = found.key.jws
        if jws is None or jws.header.get("alg") != "HS256":
            continue
        if not any(v.check(jws.signing_input, jws.signature) for v in verifiers):
            unsigned.append(found)
    if not unsigned:
        return
    listed = "; ".join(f"{f.var.name} ({f.var.where}), {f.key.describe()}" for f in unsigned)
    report.add(
        Finding(
            "jwt_secret_mismatch",
            Severity.ERROR,
            f"Not signed with {names}: {listed}. The secret is another project's (or was "
            "rotated), so the tokens of the keys' project will not verify with it.",
            "Copy the JWT secret of the project the keys belong to (Supabase: Project "
            "Settings → API → JWT secret).",
            {
                "keys": [{"variable": f.var.name, "where": f.var.where} for f in unsigned],
                "secrets": sorted({v.name for v in secrets}),
            },
        )
    )
