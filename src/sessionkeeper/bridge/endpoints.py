"""The session bridge's endpoints, beside the app (not under ``/auth/v1``):

- ``POST /auth/callback``  a browser's auth event (``SIGNED_IN``, ``TOKEN_REFRESHED``,
  ``SIGNED_OUT``) → HttpOnly cookies set or cleared. ``Origin`` must be allow-listed; the
  session is verified before any cookie is set.
- ``GET  /auth/callback``  the end of a hosted sign-in: exchange ``code`` (PKCE, verifier from
  the cookie ``/auth/login`` set), set cookies, redirect to a safe ``next``.
- ``GET  /auth/login``     start a hosted sign-in: a verifier cookie, then the auth server's
  ``/authorize`` page.
- ``POST /auth/refresh``   renew the cookies now (the browser client's refresh in cookie mode).
- ``GET  /auth/session``   who the cookies belong to, and until when — never a token.

Every refusal is logged with its reason (fingerprints only) and answered with a stable code:
400 for a malformed request, 401 for a session that is not valid, 403 for a refused origin, 503
when the issuer cannot be reached (the browser keeps its session and retries).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from sessionkeeper.bridge.cookies import header_pairs
from sessionkeeper.bridge.issuer import IssuerRefused, IssuerUnavailable, SessionTokens
from sessionkeeper.bridge.redirects import safe_redirect
from sessionkeeper.bridge.session import SessionBridge, check_csrf, request_origin, user_json
from sessionkeeper.guard.principal import Principal
from sessionkeeper.guard.reasons import Reason, Rejection
from sessionkeeper.logs import fingerprint

log = logging.getLogger("sessionkeeper.bridge")

EVENTS = ("SIGNED_IN", "TOKEN_REFRESHED", "SIGNED_OUT")
SCOPES = ("local", "global", "others")
MAX_BODY = 64 * 1024
MAX_TOKEN = 16 * 1024
_NO_STORE = {"Cache-Control": "no-store"}


class BridgeError(Exception):
    """A refusal with its status, public code and log reason."""

    def __init__(self, status: int, code: str, reason: str, **detail: Any) -> None:
        self.status = status
        self.code = code
        self.reason = reason
        self.detail = detail
        super().__init__(code)


_BODIES = {400: "invalid_request", 401: "Unauthorized", 403: "Forbidden", 503: "issuer_unavailable"}


def _refuse(request: Request, exc: BridgeError, clear: list[str] | None = None) -> Response:
    log.log(
        logging.WARNING if exc.status >= 500 else logging.INFO,
        "bridge refused",
        extra={
            "event": "bridge_refused",
            "path": request.url.path,
            "method": request.method,
            "status": exc.status,
            "error_code": exc.code,
            "reason": exc.reason,
            **exc.detail,
        },
    )
    headers = dict(_NO_STORE)
    if exc.status == 503:
        headers["Retry-After"] = "1"
    response = JSONResponse(
        {"error": _BODIES.get(exc.status, "invalid_request"), "error_code": exc.code},
        status_code=exc.status,
        headers=headers,
    )
    for cookie in clear or ():
        response.raw_headers.append((b"set-cookie", cookie.encode("latin-1")))
    return response


def _with_cookies(response: Response, cookies: list[str]) -> Response:
    response.raw_headers.extend(header_pairs(cookies))
    return response


def _require_origin(bridge: SessionBridge, request: Request) -> None:
    verdict = bridge.allowed_origins.check(request_origin(request.scope))
    if not verdict.allowed:
        origin = request.headers.get("origin")
        raise BridgeError(
            403, "origin_not_allowed", verdict.reason, origin=(origin or "")[:200] or None
        )


async def _json_body(request: Request) -> dict[str, Any]:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise BridgeError(400, "bad_json", "body_too_large")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise BridgeError(400, "bad_json", "bad_json") from None
    if not isinstance(data, dict):
        raise BridgeError(400, "bad_json", "not_an_object")
    return data


def _session_tokens(body: dict[str, Any]) -> tuple[str, str]:
    session = body.get("session")
    if not isinstance(session, dict):
        raise BridgeError(400, "missing_tokens", "no_session")
    access, refresh = session.get("access_token"), session.get("refresh_token")
    for value in (access, refresh):
        if not isinstance(value, str) or not value or len(value) > MAX_TOKEN:
            raise BridgeError(400, "missing_tokens", "missing_tokens")
        if any(ch in value for ch in ' ;,"\\') or not value.isprintable() or not value.isascii():
            raise BridgeError(400, "missing_tokens", "token_not_cookie_safe")
    assert isinstance(access, str) and isinstance(refresh, str)
    return access, refresh


def _rejection_error(rejection: Rejection, *, what: str) -> BridgeError:
    if rejection.unavailable:
        return BridgeError(503, "issuer_unavailable", rejection.reason.value)
    return BridgeError(401, what, rejection.reason.value, **rejection.detail)


class Bridge:
    """The endpoints over one :class:`SessionBridge`."""

    def __init__(self, bridge: SessionBridge) -> None:
        self.bridge = bridge

    def routes(self, prefix: str = "/auth") -> list[Route]:
        return [
            Route(f"{prefix}/callback", self.post_callback, methods=["POST"]),
            Route(f"{prefix}/callback", self.get_callback, methods=["GET"]),
            Route(f"{prefix}/login", self.get_login, methods=["GET"]),
            Route(f"{prefix}/refresh", self.post_refresh, methods=["POST"]),
            Route(f"{prefix}/session", self.get_session, methods=["GET"]),
        ]

    def _session_answer(
        self, principal: Principal, cookies: list[str], event: str | None = None
    ) -> Response:
        body = user_json(principal, self.bridge.clock.now())
        if event is not None:
            body = {"event": event, **body}
        return _with_cookies(JSONResponse(body, headers=_NO_STORE), cookies)

    # -- POST /auth/callback --------------------------------------------------------------

    async def post_callback(self, request: Request) -> Response:
        try:
            _require_origin(self.bridge, request)
            body = await _json_body(request)
            event = body.get("event")
            if event not in EVENTS:
                raise BridgeError(400, "bad_event", "bad_event", auth_event=str(event)[:40])
            if event == "SIGNED_OUT":
                return await self._signed_out(request, body)
            access, refresh = _session_tokens(body)
            principal, cookies = await self._adopt(request, access, refresh)
        except BridgeError as exc:
            return _refuse(request, exc)
        log.info(
            "bridge session stored",
            extra={
                "event": "bridge_session",
                "auth_event": event,
                "user_id": principal.user_id,
                "session_id": principal.session_id,
                "token_fingerprint": fingerprint(access),
            },
        )
        return self._session_answer(principal, cookies, event)

    async def _adopt(
        self, request: Request, access: str, refresh: str
    ) -> tuple[Principal, list[str]]:
        """Verify a posted session before storing it; an expired access token is renewed
        with its refresh token first (a tab that slept posts what it last had)."""
        bridge = self.bridge
        jar = bridge.cookies.read_lenient(request.scope)
        try:
            principal = await bridge.authenticate(access)
            tokens = SessionTokens(access, refresh, 0)
        except Rejection as exc:
            if exc.reason is not Reason.EXPIRED:
                raise _rejection_error(exc, what="invalid_session") from None
            try:
                tokens = await bridge.refresh(refresh)
            except IssuerRefused as refused:
                raise BridgeError(
                    401, "invalid_session", "refresh_refused", issuer_code=refused.code
                ) from None
            except IssuerUnavailable:
                raise BridgeError(503, "issuer_unavailable", "issuer_unavailable") from None
            try:
                principal = await bridge.authenticate(tokens.access_token)
            except Rejection as again:
                raise _rejection_error(again, what="invalid_session") from None
        return principal, bridge.store_cookies(request.scope, jar, tokens)

    async def _signed_out(self, request: Request, body: dict[str, Any]) -> Response:
        scope = body.get("scope", "local")
        if scope not in SCOPES:
            raise BridgeError(400, "bad_scope", "bad_scope")
        revoked = await self._revoke(request, str(scope))
        response = JSONResponse({"event": "SIGNED_OUT", "revoked": revoked}, headers=_NO_STORE)
        log.info("bridge signed out", extra={"event": "bridge_signed_out", "revoked": revoked})
        return _with_cookies(response, self.bridge.clear_cookies(request.scope))

    async def _revoke(self, request: Request, scope: str) -> bool:
        """End the session at the issuer too (best effort: the cookies go either way)."""
        bridge = self.bridge
        try:
            session = await bridge.resolve(request.scope)
            await bridge.issuer.logout(session.access_token, session.principal, scope)
        except (Rejection, IssuerRefused, IssuerUnavailable) as exc:
            log.info(
                "bridge sign-out not sent to the issuer",
                extra={"event": "bridge_revoke_skipped", "error": str(exc)[:200]},
            )
            return False
        return True

    # -- POST /auth/refresh, GET /auth/session --------------------------------------------

    async def post_refresh(self, request: Request) -> Response:
        bridge = self.bridge
        try:
            try:
                check_csrf(request.scope, bridge.allowed_origins)
            except Rejection as exc:
                raise BridgeError(403, exc.reason.value, exc.reason.value) from None
            jar = bridge.cookies.read_lenient(request.scope)
            if jar.refresh_token is None:
                raise BridgeError(401, "no_session", "no_refresh_cookie")
            try:
                tokens = await bridge.refresh(jar.refresh_token)
            except IssuerRefused as exc:
                return _refuse(
                    request,
                    BridgeError(
                        401,
                        exc.code,
                        "refresh_refused",
                        refresh_fingerprint=fingerprint(jar.refresh_token),
                    ),
                    clear=bridge.clear_cookies(request.scope),
                )
            except IssuerUnavailable:
                raise BridgeError(503, "issuer_unavailable", "issuer_unavailable") from None
            try:
                principal = await bridge.authenticate(tokens.access_token)
            except Rejection as exc:
                raise _rejection_error(exc, what="invalid_session") from None
        except BridgeError as exc:
            return _refuse(request, exc)
        cookies = bridge.store_cookies(request.scope, jar, tokens)
        return self._session_answer(principal, cookies)

    async def get_session(self, request: Request) -> Response:
        bridge = self.bridge
        try:
            session = await bridge.resolve(request.scope)
        except Rejection as exc:
            code = "no_session" if exc.reason is Reason.MISSING_TOKEN else exc.reason.value
            error = _rejection_error(exc, what=code)
            clear = None
            if exc.reason in (Reason.REFRESH_REFUSED, Reason.SESSION_REVOKED):
                clear = bridge.clear_cookies(request.scope)
            return _refuse(request, error, clear=clear)
        return self._session_answer(session.principal, session.set_cookies)

    # -- hosted sign-in: GET /auth/login, GET /auth/callback -------------------------------

    def _own_origin(self, request: Request) -> str:
        """Where the browser comes back to: the configured public origin, else the request's
        own (scheme from the proxy headers uvicorn trusts, host from ``Host``)."""
        if self.bridge.public_origin:
            return self.bridge.public_origin
        host = request.headers.get("host") or "localhost"
        return f"{request.url.scheme}://{host}"

    async def get_login(self, request: Request) -> Response:
        bridge = self.bridge
        if not bridge.authorize_url:
            return _refuse(
                request, BridgeError(400, "hosted_sign_in_unavailable", "no_authorize_url")
            )
        target = safe_redirect(request.query_params.get("next"), bridge.allowed_origins)
        verifier = secrets.token_urlsafe(48)
        digest = hashlib.sha256(verifier.encode("ascii")).digest()
        challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
        back = f"{self._own_origin(request)}/auth/callback?{urlencode({'next': target})}"
        query = urlencode(
            {
                "provider": "email",
                "redirect_to": back,
                "code_challenge": challenge,
                "code_challenge_method": "s256",
            }
        )
        response = RedirectResponse(f"{bridge.authorize_url}?{query}", status_code=302)
        response.headers["Cache-Control"] = "no-store"
        response.raw_headers.append(
            (b"set-cookie", bridge.cookies.verifier_cookie(request.scope, verifier).encode())
        )
        return response

    async def get_callback(self, request: Request) -> Response:
        bridge = self.bridge
        params = request.query_params
        target = safe_redirect(params.get("next"), bridge.allowed_origins)
        clear_verifier = bridge.cookies.verifier_cookie(request.scope, None)
        error = params.get("error")
        if error:
            description = params.get("error_description") or ""
            return self._back_with_error(request, target, error[:100], description[:300])
        code = params.get("code")
        jar = bridge.cookies.read_lenient(request.scope)
        if not code or len(code) > 512:
            return self._back_with_error(request, target, "invalid_request", "No code was given.")
        if not jar.code_verifier:
            return self._back_with_error(
                request,
                target,
                "invalid_request",
                "The sign-in was started in another browser or has expired; start again.",
            )
        try:
            tokens = await bridge.issuer.exchange_code(code, jar.code_verifier)
            principal = await bridge.authenticate(tokens.access_token)
        except IssuerRefused as exc:
            return self._back_with_error(request, target, exc.code, "The sign-in was refused.")
        except IssuerUnavailable:
            return self._back_with_error(
                request, target, "temporarily_unavailable", "The auth server could not be reached."
            )
        except Rejection as exc:
            if exc.unavailable:  # keys or store down: the sign-in may work on a retry
                return self._back_with_error(
                    request, target, "temporarily_unavailable", "Please try again in a moment."
                )
            return self._back_with_error(request, target, exc.reason.value, "Invalid session.")
        log.info(
            "bridge code exchanged",
            extra={
                "event": "bridge_code_exchanged",
                "user_id": principal.user_id,
                "session_id": principal.session_id,
            },
        )
        response = RedirectResponse(target, status_code=303, headers=_NO_STORE)
        cookies = [*bridge.store_cookies(request.scope, jar, tokens), clear_verifier]
        return _with_cookies(response, cookies)

    def _back_with_error(
        self, request: Request, target: str, error: str, description: str
    ) -> Response:
        log.info(
            "bridge refused",
            extra={
                "event": "bridge_refused",
                "path": request.url.path,
                "method": "GET",
                "error_code": error,
                "reason": error,
            },
        )
        parts = urlsplit(target)
        query = parse_qsl(parts.query, keep_blank_values=True)
        query += [("error", error), ("error_description", description)]
        location = urlunsplit(parts._replace(query=urlencode(query)))
        response = RedirectResponse(location, status_code=303, headers=_NO_STORE)
        cookie = self.bridge.cookies.verifier_cookie(request.scope, None)
        return _with_cookies(response, [cookie])
