"""GET/POST /authorize: hosted sign-in for the PKCE flow (``provider=email``).

``GET /authorize?provider=email&redirect_to=…&code_challenge=…&code_challenge_method=s256`` (what
supabase-js's ``signInWithOAuth`` opens with ``flowType: 'pkce'``) serves a sign-in form; the form
posts back here and, when the password is right, the browser is sent (303) to ``redirect_to``
with ``code=<auth code>`` added to its query. The client redeems the code at
``/token?grant_type=pkce`` with its verifier (``service.pkce``).

Rules:
- Only PKCE: without ``code_challenge`` there is no flow to hand a code to (GoTrue's implicit
  flow puts tokens in the URL; we do not).
- ``redirect_to`` (default ``/``): a path is on the auth server's own origin (the issuer's);
  an absolute URL must be on that origin or an allow-listed one (``--allowed-origin``); anything
  else is refused with 400, never replaced by another target.
- The form's CSRF defence (login CSRF): when ``Origin`` is present it must be the server's own
  origin or an allow-listed one; ``null`` is refused. A missing ``Origin`` is accepted: browsers
  send it on every form POST, so only non-browser clients omit it, and those can post the form
  anyway. The page sets ``Referrer-Policy: same-origin`` rather than ``no-referrer``, because
  under ``no-referrer`` browsers send ``Origin: null`` on the form's POST.
- The page has no inline script or style (CSP ``default-src 'none'``), cannot be framed, and is
  never cached. Errors are an HTML page for browsers (``Accept: text/html``), GoTrue's JSON
  otherwise; both carry ``x-sb-error-code``.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from string import Template
from urllib.parse import parse_qsl, unquote_plus, urlsplit, urlunsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from sessionkeeper.bridge.redirects import safe_redirect
from sessionkeeper.errors import AuthError
from sessionkeeper.logs import fingerprint
from sessionkeeper.origins import AllowedOrigins, origin
from sessionkeeper.server.endpoints.token import password_attempt
from sessionkeeper.server.http import client_ip, error_response
from sessionkeeper.server.state import ServerState, server_state
from sessionkeeper.service.pkce import Challenge, parse_challenge, password_flow

log = logging.getLogger("sessionkeeper.auth")

PAGES = resources.files("sessionkeeper.server") / "pages"
FLOW_FIELDS = ("provider", "redirect_to", "code_challenge", "code_challenge_method")
MAX_FORM_FIELDS = 16
_NO_PKCE = (
    "hosted sign-in needs PKCE: code_challenge and code_challenge_method are required"
    " (create the client with flowType: 'pkce')"
)


@dataclass(frozen=True)
class FlowRequest:
    """The validated parameters of a hosted sign-in."""

    provider: str
    challenge: Challenge
    redirect_to: str  # as given (or "/")
    target: str  # the absolute URL the browser is sent to with the code


def own_origin(state: ServerState, request: Request) -> str:
    """The auth server's public origin: the issuer's (what clients were configured with)."""
    return origin(state.ctx.issuer) or origin(str(request.base_url)) or ""


def resolve_redirect(redirect_to: str, own: str, allowed: AllowedOrigins) -> str | None:
    """The absolute URL for ``redirect_to``, or ``None`` when it is not an allowed target."""
    if redirect_to.startswith("/"):
        # A path: on the auth server's origin, refused if any decoder could read another host.
        return own + redirect_to if safe_redirect(redirect_to, allowed) == redirect_to else None
    targets = AllowedOrigins([own, *allowed.origins]) if own else allowed
    return redirect_to if safe_redirect(redirect_to, targets) == redirect_to else None


def parse_flow(params: Mapping[str, str], *, own: str, allowed: AllowedOrigins) -> FlowRequest:
    provider = params.get("provider") or ""
    if not provider:
        raise AuthError("validation_failed", "provider is required (provider=email)")
    if provider != "email":
        raise AuthError("validation_failed", "Unsupported provider: provider not supported")
    challenge, method = params.get("code_challenge"), params.get("code_challenge_method")
    if not challenge and not method:
        raise AuthError("validation_failed", _NO_PKCE)
    parsed = parse_challenge(challenge, method)
    redirect_to = params.get("redirect_to") or "/"
    target = resolve_redirect(redirect_to, own, allowed)
    if target is None:
        raise AuthError(
            "validation_failed",
            "redirect_to is not allowed: use a path on this server or an allow-listed origin",
        )
    return FlowRequest(provider, parsed, redirect_to, target)


def with_code(target: str, code: str) -> str:
    """``target`` with ``code=<code>`` in its query: other parameters kept as written, an
    existing ``code`` replaced, the fragment kept."""
    parts = urlsplit(target)
    kept = [
        pair
        for pair in parts.query.split("&")
        if pair and unquote_plus(pair.partition("=")[0]) != "code"
    ]
    return urlunsplit(parts._replace(query="&".join([*kept, f"code={code}"])))


# Rendering ----------------------------------------------------------------------------------


def _template(name: str) -> Template:
    return Template((PAGES / name).read_text(encoding="utf-8"))


def _security_headers(form_target: str | None = None) -> dict[str, str]:
    # form-action also governs the redirect that follows the form's POST (the 303 to
    # redirect_to), so the target's origin is listed beside 'self'.
    form_action = "'self'" + (f" {form_target}" if form_target else "")
    return {
        "Content-Security-Policy": (
            "default-src 'none'; style-src 'self'; base-uri 'none'; "
            f"form-action {form_action}; frame-ancestors 'none'"
        ),
        "X-Frame-Options": "DENY",
        "Cache-Control": "no-store",
        "Referrer-Policy": "same-origin",
        "X-Content-Type-Options": "nosniff",
    }


def _signin_page(
    flow: FlowRequest, *, email: str = "", error: str | None = None, status: int = 200
) -> HTMLResponse:
    target_origin = origin(flow.target)
    body = _template("signin.html").substitute(
        destination=html.escape(target_origin or flow.target),
        error=(
            f'<p class="error" role="alert" id="error">{html.escape(error)}</p>' if error else ""
        ),
        invalid=' aria-invalid="true" aria-describedby="error"' if error else "",
        provider=html.escape(flow.provider),
        redirect_to=html.escape(flow.redirect_to),
        code_challenge=html.escape(flow.challenge.value),
        code_challenge_method=html.escape(flow.challenge.method),
        email=html.escape(email),
    )
    return HTMLResponse(body, status_code=status, headers=_security_headers(target_origin))


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def _refuse(request: Request, err: AuthError, *, reason: str) -> Response:
    log.info(
        "hosted sign-in refused",
        extra={
            "event": "authorize_refused",
            "reason": reason,
            "code": err.code,
            "detail": err.message,
            "ip": client_ip(request),
        },
    )
    if not _wants_html(request):
        return error_response(request, err)
    body = _template("error.html").substitute(
        message=html.escape(err.message), code=html.escape(err.code)
    )
    headers = {**_security_headers(), "x-sb-error-code": err.code, **err.headers}
    return HTMLResponse(body, status_code=err.status, headers=headers)


# Endpoints ----------------------------------------------------------------------------------


def _single(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """The parameters as a dict; a flow parameter given twice is refused (which one counts
    would depend on the reader)."""
    values: dict[str, str] = {}
    for key, value in pairs:
        if key in values and key in (*FLOW_FIELDS, "email", "password"):
            raise AuthError("validation_failed", f"{key} is given more than once")
        values[key] = value
    return values


async def get_style(request: Request) -> Response:
    css = (PAGES / "style.css").read_bytes()
    return Response(
        css,
        media_type="text/css; charset=utf-8",
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


async def get_authorize(request: Request) -> Response:
    state = server_state(request)
    try:
        params = _single(list(request.query_params.multi_items()))
        flow = parse_flow(params, own=own_origin(state, request), allowed=state.allowed_origins)
    except AuthError as exc:
        return _refuse(request, exc, reason="bad_parameters")
    return _signin_page(flow)


async def _read_form(request: Request) -> dict[str, str]:
    kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise AuthError("validation_failed", "expected a form (application/x-www-form-urlencoded)")
    raw = await request.body()
    try:
        pairs = parse_qsl(
            raw.decode("ascii"),
            keep_blank_values=True,
            max_num_fields=MAX_FORM_FIELDS,
            errors="strict",
        )
    except ValueError:  # not ASCII, bad UTF-8 inside a %-escape, or too many fields
        raise AuthError("validation_failed", "the form could not be read") from None
    return _single(pairs)


async def post_authorize(request: Request) -> Response:
    state = server_state(request)
    own = own_origin(state, request)
    sent = request.headers.get("origin")
    if sent is not None and sent != own and sent not in state.allowed_origins:
        err = AuthError("validation_failed", "the form was not posted from an allowed origin")
        return _refuse(request, err, reason="origin_not_allowed")
    try:
        fields = await _read_form(request)
        flow = parse_flow(fields, own=own, allowed=state.allowed_origins)
    except AuthError as exc:
        return _refuse(request, exc, reason="bad_parameters")
    email = fields.get("email", "")
    try:
        code = await password_attempt(
            state,
            request,
            password_flow,
            email=email,
            password=fields.get("password"),
            code_challenge=flow.challenge.value,
            method=flow.challenge.method,
            redirect_to=flow.redirect_to,
        )
    except AuthError as exc:
        log.info(
            "hosted sign-in refused",
            extra={
                "event": "authorize_refused",
                "reason": exc.code,
                "email_fp": fingerprint(email) if email else None,
                "ip": client_ip(request),
            },
        )
        if not _wants_html(request):
            return error_response(request, exc)
        page = _signin_page(flow, email=email, error=exc.message, status=exc.status)
        page.headers.update({"x-sb-error-code": exc.code, **exc.headers})
        return page
    headers = _security_headers()
    return RedirectResponse(with_code(flow.target, code), status_code=303, headers=headers)
