"""``doctor probe``: walk the path a user's request takes, against the live deployment.

Health, then the JWKS, then a sign-in (or a given token), then the token itself (its key must be
in that JWKS), then ``/api/debug/whoami`` and every ``--endpoint``. Each step is a row of the
table; each failure is a finding. A refusal from the guard shows the guard's reason when the API
runs with ``diagnostics=True`` (the ``X-Auth-Reason`` header); without it the doctor says where
to look. A server that cannot be reached is a finding (exit 1), never a traceback.

The probe signs out at the end (``POST /logout``, scope ``local``) so it leaves no session.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from sessionkeeper.doctor.findings import Finding, Report, Severity, Status
from sessionkeeper.doctor.hints import guard_hint
from sessionkeeper.doctor.keysets import KeySet, fetch_jwks
from sessionkeeper.doctor.masking import masked, printable
from sessionkeeper.doctor.supabase import AUTH_PATH, JWKS_PATH
from sessionkeeper.doctor.token_checks import Expectations, diagnose_token
from sessionkeeper.doctor.tokens import NotATokenError, decode_untrusted
from sessionkeeper.guard.reasons import Reason

DEFAULT_WHOAMI_PATH = "/api/debug/whoami"
REASONS = frozenset(reason.value for reason in Reason)
_SIGN_IN_HINTS = {
    "invalid_credentials": (
        "Check the email and password; with sessionkeeper, create the user with "
        "`sessionkeeper users create EMAIL`."
    ),
    "over_request_rate_limit": "Too many sign-ins from here: wait for Retry-After and try again.",
    "email_not_confirmed": "Confirm the user's email address first.",
}


@dataclass(frozen=True)
class Target:
    """What to probe. ``password`` and ``token`` never appear in a repr or in the report."""

    base_url: str
    auth_url: str | None = None
    whoami_path: str | None = DEFAULT_WHOAMI_PATH
    endpoints: tuple[str, ...] = ()
    email: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    apikey: str | None = field(default=None, repr=False)
    timeout: float = 5.0

    @property
    def auth(self) -> str:
        return (self.auth_url or self.base_url.rstrip("/") + AUTH_PATH).rstrip("/")

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return self.base_url.rstrip("/") + "/" + path.lstrip("/")


class _Unreachable(Exception):
    """The server did not answer; the probe stops and says so."""


@dataclass
class _Probe:
    target: Target
    client: httpx.Client
    report: Report
    refusals: dict[str, list[str]] = field(default_factory=dict)
    token_issuer: str | None = None

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            return self.client.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise _Unreachable(f"{method} {url}: {type(exc).__name__} {exc}".strip()) from None

    def auth_headers(self) -> dict[str, str]:
        return {"apikey": self.target.apikey} if self.target.apikey else {}


def probe(target: Target) -> Report:
    """Run every step in order; the first server that does not answer ends the walk."""
    report = Report("probe", target.base_url)
    with httpx.Client(timeout=target.timeout, follow_redirects=False) as client:
        run = _Probe(target, client, report)
        token: str | None = None
        try:
            _health(run)
            keys = _jwks(run)
            token = _sign_in(run)
            if token is not None:
                _token(run, token, keys)
                for label, path in _calls(target):
                    _call(run, label, path, token)
                _refusal_findings(run)
        except _Unreachable as exc:
            report.fact("connection", "no answer", Status.ERROR)
            report.add(
                Finding(
                    "unreachable",
                    Severity.ERROR,
                    f"No answer: {printable(str(exc), 300)}.",
                    "Is the server running, and is BASE_URL right (scheme, host, port)? Can this "
                    "machine reach it (firewall, VPN, DNS)?",
                    {"error": printable(str(exc), 300)},
                )
            )
        finally:
            if token is not None and target.token is None:
                _sign_out(run, token)
    return report


def _calls(target: Target) -> list[tuple[str, str]]:
    calls = [("whoami", target.whoami_path)] if target.whoami_path else []
    return calls + [(path, path) for path in target.endpoints]


def _health(run: _Probe) -> None:
    url = f"{run.target.auth}/health"
    response = run.request("GET", url, headers=run.auth_headers())
    if response.status_code == 200:
        run.report.fact("health", f"200 ({url})", Status.OK)
        return
    run.report.fact("health", f"{response.status_code} ({url})", Status.ERROR)
    run.report.add(
        Finding(
            "health_failed",
            Severity.ERROR,
            f"{url} answered {response.status_code}.",
            "503: the auth server cannot reach its store (see its log); 404: BASE_URL or "
            "--auth-url does not point at the auth API (it lives under /auth/v1).",
            {"url": url, "status": response.status_code},
        )
    )


def _jwks(run: _Probe) -> KeySet:
    url = f"{run.target.auth}{JWKS_PATH}"
    keys = fetch_jwks(run.client, url)  # a failed fetch is a finding, never an exception
    if keys.problem is None:
        run.report.fact("jwks", keys.label, Status.OK)
    elif keys.problem.details.get("empty"):
        run.report.fact("jwks", f"{url}: no public key (HS256 server?)", Status.INFO)
    else:
        run.report.fact("jwks", f"{url}: unusable", Status.ERROR)
        run.report.add(keys.problem)
    return keys


def _error_code(response: httpx.Response) -> str:
    code = response.headers.get("x-sb-error-code")
    if not code:
        try:
            body = response.json()
        except ValueError:
            body = {}
        if isinstance(body, dict):
            code = body.get("error_code") or body.get("code") or body.get("error")
    return printable(code, 80) if code else f"HTTP {response.status_code}"


def _sign_in(run: _Probe) -> str | None:
    target = run.target
    if target.token is not None:
        run.report.fact("sign in", f"skipped: using the given token ({masked(target.token)})")
        return target.token
    if target.email is None or target.password is None:
        run.report.fact("sign in", "skipped (no --email/--password or --token)", Status.SKIPPED)
        return None
    url = f"{target.auth}/token?grant_type=password"
    response = run.request(
        "POST",
        url,
        json={"email": target.email, "password": target.password},
        headers=run.auth_headers(),
    )
    token = None
    if response.status_code == 200:
        try:
            body = response.json()
        except ValueError:
            body = {}
        token = body.get("access_token") if isinstance(body, dict) else None
    if isinstance(token, str) and token:
        run.report.fact("sign in", f"200 as {printable(target.email)}", Status.OK)
        return token
    code = _error_code(response) if response.status_code != 200 else "no access_token"
    run.report.fact("sign in", f"{response.status_code} {code}", Status.ERROR)
    run.report.add(
        Finding(
            "sign_in_failed",
            Severity.ERROR,
            f"Signing in as {printable(target.email)} failed: {response.status_code} {code}.",
            _SIGN_IN_HINTS.get(
                code, "Read the auth server's log line for this request (its error_code)."
            ),
            {"status": response.status_code, "error_code": code},
        )
    )
    return None


def _token(run: _Probe, token: str, keys: KeySet) -> None:
    """The token the server handed out must verify with the keys it publishes."""
    try:
        decoded = decode_untrusted(token)
    except NotATokenError as exc:
        run.report.fact("token", "not a JWT", Status.ERROR)
        run.report.add(
            Finding(
                Reason.MALFORMED_TOKEN.value,
                Severity.ERROR,
                f"The access token is {exc}.",
                guard_hint(Reason.MALFORMED_TOKEN),
            )
        )
        return
    usable = keys if keys.problem is None else KeySet(keys.label)
    checked = diagnose_token(decoded, usable, Expectations(now=time.time()))
    iss = decoded.claims.get("iss")
    run.token_issuer = iss if isinstance(iss, str) else None
    alg, kid = decoded.header.get("alg"), decoded.header.get("kid")
    summary = f"{printable(alg)}, kid {printable(kid)}, iss {printable(iss)} ({masked(token)})"
    run.report.fact("token", summary, Status.ERROR if checked.problems else Status.OK)
    for finding in checked.findings:
        run.report.add(finding)


def _call(run: _Probe, label: str, path: str, token: str) -> None:
    url = run.target.url(path)
    response = run.request("GET", url, headers={"Authorization": f"Bearer {token}"})
    status = response.status_code
    if 200 <= status < 300:
        run.report.fact(label, f"{status}{_whoami_summary(response) if label == 'whoami' else ''}",
                        Status.OK)  # fmt: skip
        return
    reason = response.headers.get("x-auth-reason")
    if status in (401, 403, 503):
        known = reason in REASONS
        code = reason if reason and known else "api_unavailable" if status == 503 else "api_refused"
        shown = printable(reason, 60) if reason else "(no X-Auth-Reason)"
        run.report.fact(label, f"{status} {shown}", Status.ERROR)
        unknown = f", X-Auth-Reason {shown}" if reason and not known else ""
        run.refusals.setdefault(code, []).append(f"{path} ({status}{unknown})")
        return
    run.report.fact(label, f"{status}", Status.ERROR)
    if label == "whoami" and status == 404:
        message = f"No whoami at {url} (404)."
        hint = (
            "The guard serves it at whoami_path (default /api/debug/whoami): give "
            "--whoami-path, or skip it with --no-whoami."
        )
        code, severity = "whoami_missing", Severity.WARNING
    else:
        message = f"{url} answered {status}."
        hint = "Not an auth refusal: check the path and the API's own log for this request."
        code, severity = "endpoint_failed", Severity.ERROR
    run.report.add(Finding(code, severity, message, hint, {"url": url, "status": status}))


def _whoami_summary(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    who = body.get("email") or body.get("user_id")
    left = body.get("seconds_left")
    parts = [
        f"user {printable(who)}" if who else "",
        f"{left:.0f} s left" if isinstance(left, int | float) else "",
    ]
    return ": " + ", ".join(p for p in parts if p) if any(parts) else ""


def _refusal_findings(run: _Probe) -> None:
    for code, calls in run.refusals.items():
        where = ", ".join(calls)
        if code in ("api_refused", "api_unavailable"):
            run.report.add(
                Finding(
                    code,
                    Severity.ERROR,
                    f"The API refused the signed-in user's token: {where}, without a reason "
                    "this doctor knows.",
                    "Run the guard with diagnostics=True (never in production) to get the reason "
                    "in X-Auth-Reason, or read the API's log line 'request refused' (its reason).",
                    {"calls": calls},
                )
            )
            continue
        message = (
            f"The API refused the signed-in user's token: {where}; the guard's reason: {code}."
        )
        hint = guard_hint(code)
        if code == Reason.WRONG_ISSUER and run.token_issuer:
            message += (
                f" The auth server's tokens carry iss {printable(run.token_issuer)}, which the "
                "API's guard does not accept."
            )
            hint = (
                f"Set the API guard's issuer to {printable(run.token_issuer)} (the auth server "
                "users sign in to), or point the front end at the auth server the API trusts."
            )
        run.report.add(Finding(code, Severity.ERROR, message, hint, {"calls": calls}))


def _sign_out(run: _Probe, token: str) -> None:
    """End the probe's own session; a failure here changes nothing in the report."""
    headers = {"Authorization": f"Bearer {token}", **run.auth_headers()}
    with contextlib.suppress(httpx.HTTPError):
        run.client.post(f"{run.target.auth}/logout?scope=local", headers=headers)
