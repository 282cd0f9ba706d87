"""``doctor probe``: walk the path a user's request takes, against the live deployment.

Health, then the JWKS, then a sign-in (or a given token), then the token itself (its key must be
in that JWKS), then ``/api/debug/whoami`` and every ``--endpoint``. Each step is a row of the
table; each failure is a finding. A refusal from the guard shows the guard's reason when the API
runs with ``diagnostics=True`` (the ``X-Auth-Reason`` header); without it the doctor says where
to look. A server that cannot be reached is a finding (exit 1), never a traceback.

With ``cookie_origin``, the calls go the cookie way, as a browser on that origin makes them: the
session is posted to the session bridge (``POST /auth/callback`` with that ``Origin``), the
``Set-Cookie`` attributes are checked (a browser drops a ``Secure`` cookie over plain http, and
wants ``__Host-`` names over https), and whoami and every endpoint get the cookies instead of a
bearer header.

The probe signs out at the end (``POST /logout``, scope ``local``, or the bridge's
``SIGNED_OUT``) so it leaves no session.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

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
    #: Probe the cookie transport as a page on this origin would (``https://app.example.com``).
    cookie_origin: str | None = None

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
    #: The sign-in's whole session (the bridge needs its refresh token too).
    session: dict[str, Any] | None = field(default=None, repr=False)
    #: The bridge's cookies, name → value, once it has set them.
    cookies: dict[str, str] | None = field(default=None, repr=False)

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
                if target.cookie_origin is not None:
                    _bridge(run)
                if target.cookie_origin is None or run.cookies is not None:
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
            if run.cookies is not None:
                _bridge_sign_out(run)
            elif token is not None and target.token is None:
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
        run.session = body
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
    if run.cookies is not None:
        headers = _cookie_headers(run)
    else:
        headers = {"Authorization": f"Bearer {token}"}
    response = run.request("GET", url, headers=headers)
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


# -- cookie mode ------------------------------------------------------------------------------

_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_BRIDGE_HINTS = {
    404: (
        "bridge_missing",
        "No session bridge there: mount Bridge(...).routes() in the API (or route /auth/callback "
        "to sessionkeeper serve); see docs/bridge.md.",
    ),
    401: (
        "bridge_refused_session",
        "The bridge could not verify a session the auth server just issued: its issuer or keys "
        "are not this auth server's (see its log line 'bridge refused', reason).",
    ),
    503: (
        "bridge_unavailable",
        "The bridge could not reach the issuer, its keys or its store: check the API's "
        "HttpIssuer URL and JWKS URL from the API's machine.",
    ),
}


def _bridge(run: _Probe) -> None:
    """Post the sign-in to the bridge as the page would, and check the cookies it sets."""
    target = run.target
    url = target.url("/auth/callback")
    response = run.request(
        "POST",
        url,
        json={"event": "SIGNED_IN", "session": run.session},
        headers={"Origin": target.cookie_origin or ""},
    )
    status = response.status_code
    if status == 403:
        run.report.fact("bridge", f"403 {_error_code(response)}", Status.ERROR)
        run.report.add(
            Finding(
                "origin_not_allowed",
                Severity.ERROR,
                f"The session bridge at {url} refused Origin {printable(target.cookie_origin)} "
                "(403): sign-ins posted from that page never become cookies.",
                "Add the origin (scheme://host[:port], no path) to SESSIONKEEPER_ALLOWED_ORIGINS "
                "(or set BASE_URL / APP_BASE_URL / NEXT_PUBLIC_APP_URL) on the server holding the "
                "bridge.",
                {"url": url, "origin": printable(target.cookie_origin)},
            )
        )
        return
    if status != 200:
        code, hint = _BRIDGE_HINTS.get(
            404 if status == 405 else status,
            ("bridge_failed", "Read the bridge's log line 'bridge refused' for this request."),
        )
        run.report.fact("bridge", f"{status} {_error_code(response)}", Status.ERROR)
        run.report.add(
            Finding(
                code,
                Severity.ERROR,
                f"{url} answered {status} to a fresh session.",
                hint,
                {"url": url, "status": status},
            )
        )
        return
    run.cookies = {}
    notes: list[str] = []
    for header in response.headers.get_list("set-cookie"):
        pair, *attributes = [part.strip() for part in header.split(";")]
        name, _, value = pair.partition("=")
        run.cookies[name] = value
        notes += _cookie_problems(
            target.base_url, name, {a.split("=")[0].lower() for a in attributes}
        )
    names = ", ".join(sorted(run.cookies)) or "none"
    run.report.fact("bridge", f"200, cookies {names}", Status.ERROR if notes else Status.OK)
    for note in dict.fromkeys(notes):
        run.report.add(
            Finding(
                "cookie_attributes",
                Severity.ERROR if "never" in note else Severity.WARNING,
                note,
                "Serve the app over https (cookies then get Secure and the __Host- prefix); "
                "--insecure-dev-cookies is for plain-http loopback development only.",
                {"url": url},
            )
        )


def _cookie_headers(run: _Probe) -> dict[str, str]:
    """What a page on ``cookie_origin`` sends: the bridge's cookies and its ``Origin``."""
    cookies = run.cookies or {}
    return {
        "Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items()),
        "Origin": run.target.cookie_origin or "",
    }


def _cookie_problems(base_url: str, name: str, attributes: set[str]) -> list[str]:
    parts = urlsplit(base_url)
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    problems = []
    if "httponly" not in attributes:
        problems.append(f"{printable(name)} is not HttpOnly: page scripts can read the token.")
    if scheme == "https" and not name.startswith("__Host-"):
        problems.append(f"{printable(name)} lacks the __Host- prefix over https.")
    if scheme == "http" and "secure" in attributes and host not in _LOOPBACK:
        problems.append(
            f"{printable(name)} is Secure but the app is plain http: browsers never send it back."
        )
    if "samesite" not in attributes:
        problems.append(f"{printable(name)} has no SameSite attribute.")
    return problems


def _bridge_sign_out(run: _Probe) -> None:
    """End the probe's session through the bridge (it clears the cookies and logs out)."""
    with contextlib.suppress(httpx.HTTPError):
        run.client.post(
            run.target.url("/auth/callback"),
            json={"event": "SIGNED_OUT"},
            headers=_cookie_headers(run),
        )
