"""``doctor token``: every check the guard makes, each reported on its own.

The guard stops at the first failed check, which is right for a request and frustrating for a
person: an expired token from the wrong project signed with another key is three problems. The
doctor runs every check separately and reports each as a finding whose code is the guard's
:class:`~sessionkeeper.guard.Reason` value; then it asks the real :class:`Verifier` (same keys,
same clock, same leeway) for its verdict, so a report can never call healthy a token the guard
would refuse.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sessionkeeper.clock import ManualClock
from sessionkeeper.doctor.findings import Finding, Report, Severity, Status
from sessionkeeper.doctor.hints import guard_hint
from sessionkeeper.doctor.keysets import KeySet
from sessionkeeper.doctor.masking import printable
from sessionkeeper.doctor.supabase import issuer_difference, project_ref, with_project
from sessionkeeper.doctor.timestamps import duration, iso, relative
from sessionkeeper.doctor.tokens import UntrustedToken
from sessionkeeper.guard.algorithms import DEFAULT_ALGORITHMS
from sessionkeeper.guard.jws import check_header
from sessionkeeper.guard.keys import VerifyKey
from sessionkeeper.guard.reasons import Reason, Rejection
from sessionkeeper.guard.verifier import (
    ACCEPTED_TYPES,
    DEFAULT_AUDIENCES,
    DEFAULT_LEEWAY,
    REQUIRED_CLAIMS,
    Verifier,
)

#: Clocks further apart than this are worth a warning even inside the guard's leeway.
CLOCK_SKEW_WARNING = 5.0


@dataclass(frozen=True)
class Expectations:
    """What the API expects of a token: the guard's settings, and the time to judge at."""

    now: float
    issuer: str | None = None
    audiences: tuple[str, ...] = DEFAULT_AUDIENCES
    leeway: float = DEFAULT_LEEWAY
    algorithms: frozenset[str] = DEFAULT_ALGORITHMS


def _epoch(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer beyond any float: not a time the guard can judge
        return None
    return number if math.isfinite(number) else None


def _audiences(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [a for a in value if isinstance(a, str)]
    return []


def diagnose_token(token: UntrustedToken, keys: KeySet, expect: Expectations) -> Report:
    """Every check the guard makes, each reported on its own, then the guard's own verdict."""
    report = Report("token", token.label)
    alg = _check_header(report, token, expect)
    key = _check_key(report, token, keys, alg)
    if key is not None:
        _check_signature(report, token, key, keys)
    _check_kind(report, token)
    _check_claims(report, token, expect)
    _check_times(report, token, expect)
    _guard_verdict(report, token, keys, expect)
    return report


def _check_header(report: Report, token: UntrustedToken, expect: Expectations) -> str | None:
    header = token.header
    alg = header.get("alg")
    try:
        check_header(header)
    except Rejection as exc:
        report.add(
            Finding(
                Reason.MALFORMED_TOKEN.value,
                Severity.ERROR,
                f"The token's header is refused: {str(exc).split(': ', 1)[-1]}.",
                guard_hint(Reason.MALFORMED_TOKEN),
                {"header_names": sorted(printable(k, 40) for k in header)},
            )
        )
    if not isinstance(alg, str):
        report.fact("alg", "(missing)", Status.ERROR)
        return None
    if alg not in expect.algorithms:
        allowed = ", ".join(sorted(expect.algorithms))
        report.fact("alg", f"{printable(alg)} (not allowed: {allowed})", Status.ERROR)
        report.add(
            Finding(
                Reason.UNSUPPORTED_ALG.value,
                Severity.ERROR,
                f"The token is signed with {printable(alg)!r}; the guard allows {allowed}.",
                guard_hint(Reason.UNSUPPORTED_ALG),
                {"alg": printable(alg), "allowed": sorted(expect.algorithms)},
            )
        )
    else:
        report.fact("alg", alg, Status.OK)
    typ = header.get("typ")
    if typ is not None and (not isinstance(typ, str) or typ.lower() not in ACCEPTED_TYPES):
        report.add(
            Finding(
                Reason.MALFORMED_TOKEN.value,
                Severity.ERROR,
                f"typ {printable(typ)!r} is not an access token's (JWT or at+jwt).",
                "An ID token or another typed token is not an access token: send the session's "
                "access_token.",
                {"typ": printable(typ)},
            )
        )
    return alg


def _check_key(
    report: Report, token: UntrustedToken, keys: KeySet, alg: str | None
) -> VerifyKey | None:
    kid = token.header.get("kid")
    shown = printable(kid) if kid is not None else "(none)"
    if keys.problem is not None:
        report.fact("keys", f"{keys.label}: unusable", Status.ERROR)
        report.fact("kid", f"{shown} (not checked)", Status.SKIPPED)
        report.add(keys.problem)
        return None
    report.fact("keys", keys.label, Status.OK)
    source = keys.source()
    if source is None or alg is None or (kid is not None and not isinstance(kid, str)):
        report.fact("kid", f"{shown} (not checked)", Status.SKIPPED)
        return None
    key = source.lookup(kid, alg)
    if key is None:
        report.fact("kid", f"{shown} (not in the key set)", Status.ERROR)
        report.add(_unknown_kid(token, keys, alg, kid))
        return None
    if key.alg != alg:
        report.fact("kid", f"{shown} (a {key.alg} key; the token says {alg})", Status.ERROR)
        report.add(
            Finding(
                Reason.UNSUPPORTED_ALG.value,
                Severity.ERROR,
                f"Key {shown} is an {key.alg} key, but the token claims {alg}.",
                guard_hint(Reason.UNSUPPORTED_ALG),
                {"kid": shown, "key_alg": key.alg, "alg": alg},
            )
        )
        return None
    found = "the secret answers any kid" if keys.shared_secret else "in the key set"
    report.fact("kid", f"{shown} ({found})", Status.OK)
    return key


def _unknown_kid(token: UntrustedToken, keys: KeySet, alg: str, kid: str | None) -> Finding:
    iss = token.claims.get("iss")
    details: dict[str, Any] = {"kid": printable(kid) if kid else None, "known_kids": keys.kids()}
    if keys.shared_secret:
        message = (
            f"The token is signed with {alg} (a public-key algorithm), but the key source is a "
            "shared secret."
        )
        hint = (
            "Check it against the issuer's JWKS (--jwks-url <issuer>/.well-known/jwks.json): "
            "projects on asymmetric signing keys no longer sign with the JWT secret."
        )
    else:
        known = ", ".join(keys.kids()) or "none"
        named = repr(printable(kid)) if kid else "(none)"
        message = f"No key with kid {named} in {keys.label}; known: {known}."
        hint = guard_hint(Reason.UNKNOWN_KID)
    if isinstance(iss, str):
        details["token_issuer"] = printable(iss)
        hint += f" The token claims issuer {printable(iss)}."
    return Finding(Reason.UNKNOWN_KID.value, Severity.ERROR, message, hint, details)


def _check_signature(report: Report, token: UntrustedToken, key: VerifyKey, keys: KeySet) -> None:
    if key.check(token.jws.signing_input, token.jws.signature):
        signer = "the secret" if keys.shared_secret else f"kid {key.kid or '(none)'}"
        report.fact("signature", f"valid ({key.alg}, {signer})", Status.OK)
        return
    report.fact("signature", "does not verify", Status.ERROR)
    if keys.shared_secret:
        message = f"The token was not signed with {keys.label}."
        hint = (
            "The secret is another project's (or an old one): use the JWT secret of the project "
            "that issued the token (Supabase: Project Settings → API → JWT secret), and the same "
            "secret in the auth server and the API."
        )
    else:
        message = f"Key {key.kid!r} of {keys.label} did not sign this token."
        hint = guard_hint(Reason.BAD_SIGNATURE)
    report.add(
        Finding(
            Reason.BAD_SIGNATURE.value,
            Severity.ERROR,
            message,
            hint,
            {"kid": key.kid, "alg": key.alg},
        )
    )


def _check_kind(report: Report, token: UntrustedToken) -> None:
    """A Supabase API key pasted where a user's access token belongs."""
    claims = token.claims
    iss, role = claims.get("iss"), claims.get("role")
    if isinstance(iss, str) and iss.startswith("supabase") and role in ("anon", "service_role"):
        ref = claims.get("ref")
        project = f" of project {printable(ref)}" if isinstance(ref, str) else ""
        report.add(
            Finding(
                "not_a_user_token",
                Severity.ERROR,
                f"This is the {role} API key{project}, not a signed-in user's access token.",
                "Send session.access_token after sign-in as the Bearer token; the API key goes "
                "in the apikey header only.",
                {"role": role},
            )
        )


def _check_claims(report: Report, token: UntrustedToken, expect: Expectations) -> None:
    claims = token.claims
    missing = [name for name in REQUIRED_CLAIMS if claims.get(name) is None]
    if missing:
        report.add(
            Finding(
                Reason.MISSING_CLAIM.value,
                Severity.ERROR,
                f"The token has no {', '.join(missing)} claim{'s' if len(missing) > 1 else ''}.",
                guard_hint(Reason.MISSING_CLAIM),
                {"claims": missing},
            )
        )
    _check_issuer(report, claims.get("iss"), expect.issuer)
    audience = _audiences(claims.get("aud"))
    if "aud" in claims and not set(audience) & set(expect.audiences):
        shown = ", ".join(printable(a, 80) for a in audience[:5]) or printable(claims["aud"], 80)
        report.fact("audience", shown, Status.ERROR)
        report.add(
            Finding(
                Reason.WRONG_AUDIENCE.value,
                Severity.ERROR,
                f"aud is {shown}; the guard expects {', '.join(expect.audiences)}.",
                guard_hint(Reason.WRONG_AUDIENCE),
                {
                    "expected_audience": list(expect.audiences),
                    "received_audience": [printable(a, 80) for a in audience[:5]],
                },
            )
        )
    elif audience:
        report.fact("audience", ", ".join(printable(a, 80) for a in audience[:5]), Status.OK)
    for name in ("sub", "email", "role", "session_id"):
        value = claims.get(name)
        if value not in (None, ""):
            report.fact(name, printable(value))


def _check_issuer(report: Report, iss: Any, expected: str | None) -> None:
    if not isinstance(iss, str):
        report.fact("issuer", "(missing)" if iss is None else printable(iss), Status.ERROR)
        return
    shown = printable(with_project(iss))
    if expected is None:
        report.fact("issuer", f"{shown} (not checked: no --issuer)", Status.INFO)
        return
    if iss == expected:
        report.fact("issuer", shown, Status.OK)
        return
    report.fact("issuer", shown, Status.ERROR)
    report.fact("expected issuer", with_project(expected))
    hint = (
        f"If the API is right, the front end must sign in to {expected}; if the front end is "
        f"right, set the API's issuer (and its JWKS URL or secret) to {printable(iss)}."
    )
    report.add(
        Finding(
            Reason.WRONG_ISSUER.value,
            Severity.ERROR,
            f"Wrong issuer: {printable(issuer_difference(expected, iss), 400)}.",
            hint,
            {
                "expected_issuer": expected,
                "received_issuer": printable(iss),
                "expected_project": project_ref(expected),
                "received_project": project_ref(iss),
            },
        )
    )


def _check_times(report: Report, token: UntrustedToken, expect: Expectations) -> None:
    claims, now, leeway = token.claims, expect.now, expect.leeway
    iat, exp, nbf = _epoch(claims, "iat"), _epoch(claims, "exp"), _epoch(claims, "nbf")
    report.fact("now", iso(now))
    if iat is not None:
        report.fact("issued at", f"{iso(iat)} ({relative(iat, now)})")
    future = max((t for t in (iat, nbf) if t is not None), default=None)
    if future is not None and future > now + leeway:
        skew = future - now
        report.add(
            Finding(
                Reason.NOT_YET_VALID.value,
                Severity.ERROR,
                f"The token is valid only from {iso(future)}, {duration(skew)} in the future: "
                f"this machine's clock is about {duration(skew)} behind the issuer's (more than "
                f"the guard's {duration(leeway)} leeway).",
                guard_hint(Reason.NOT_YET_VALID),
                {"clock_skew_seconds": round(skew), "leeway_seconds": leeway},
            )
        )
    elif future is not None and future > now + CLOCK_SKEW_WARNING:
        skew = future - now
        report.add(
            Finding(
                "clock_skew",
                Severity.WARNING,
                f"The token was issued {duration(skew)} in this machine's future: the clocks "
                f"differ by about {duration(skew)}. Accepted (the guard allows "
                f"{duration(leeway)}), but close to refused.",
                guard_hint(Reason.NOT_YET_VALID),
                {"clock_skew_seconds": round(skew), "leeway_seconds": leeway},
            )
        )
    if exp is None:
        return
    if now < exp:
        report.fact("expires at", f"{iso(exp)} ({relative(exp, now)})", Status.OK)
        return
    report.fact("expires at", f"{iso(exp)} ({relative(exp, now)})", Status.ERROR)
    details: dict[str, Any] = {"expired_seconds_ago": round(now - exp), "leeway_seconds": leeway}
    message = f"The token expired {duration(now - exp)} ago, at {iso(exp)}"
    hint = guard_hint(Reason.EXPIRED)
    if iat is not None and exp > iat:
        details.update(issued_seconds_ago=round(now - iat), lifetime_seconds=round(exp - iat))
        message += f"; it was issued {duration(now - iat)} ago and lived {duration(exp - iat)}"
        hint = (
            "Get a fresh token (refresh or sign in again); clients should refresh before exp. "
            f"If the client got this one moments ago, this machine's clock is about "
            f"{duration(now - iat)} ahead of the issuer's: check NTP."
        )
    if now < exp + leeway:
        report.add(
            Finding(
                "expired_within_leeway",
                Severity.WARNING,
                message + f". The guard still accepts it for {duration(exp + leeway - now)}.",
                hint,
                details,
            )
        )
        return
    report.add(Finding(Reason.EXPIRED.value, Severity.ERROR, message + ".", hint, details))


def _guard_verdict(
    report: Report, token: UntrustedToken, keys: KeySet, expect: Expectations
) -> None:
    source = keys.source()
    if source is None:
        report.fact("guard verdict", "not run (no usable key)", Status.SKIPPED)
        return
    iss = token.claims.get("iss")
    issuer = expect.issuer or (iss if isinstance(iss, str) and iss else "(unset)")
    verifier = Verifier(
        source,
        issuers=[issuer],
        audiences=expect.audiences,
        algorithms=expect.algorithms,
        leeway=expect.leeway,
        clock=ManualClock(expect.now),
    )
    try:
        verifier.verify(token.raw)
    except Rejection as exc:
        report.fact("guard verdict", f"refused: {exc.reason.value}", Status.ERROR)
        if exc.reason.value not in report.codes():
            report.add(
                Finding(
                    exc.reason.value,
                    Severity.ERROR,
                    f"The guard refuses the token: {printable(str(exc), 300)}.",
                    guard_hint(exc.reason),
                    {k: printable(v) for k, v in exc.detail.items()},
                )
            )
        return
    unchecked = "" if expect.issuer else " (issuer not checked)"
    report.fact("guard verdict", f"accepted{unchecked}", Status.OK)
