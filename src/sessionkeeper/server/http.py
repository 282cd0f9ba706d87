"""HTTP plumbing shared by the endpoints: both error formats, JSON bodies, bearer tokens.

GoTrue answers in one of two error shapes depending on the ``X-Supabase-Api-Version`` request
header (both official clients send ``2024-01-01``); the error code always travels in
``x-sb-error-code`` as well, so a proxy or log can read it without parsing the body.
"""

from __future__ import annotations

import json
import re
from datetime import date
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from sessionkeeper.errors import AuthError

API_VERSION_HEADER = "X-Supabase-Api-Version"
API_VERSION_2024 = date(2024, 1, 1)
_API_VERSION_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")


def api_version(request: Request) -> str | None:
    """The request's API version when it is a real date on/after 2024-01-01, else ``None``."""
    raw = request.headers.get(API_VERSION_HEADER)
    match = _API_VERSION_RE.fullmatch(raw or "")
    if match is None:
        return None
    try:
        parsed = date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return None
    return raw if parsed >= API_VERSION_2024 else None


def error_response(request: Request, err: AuthError) -> JSONResponse:
    version = api_version(request)
    headers = {"x-sb-error-code": err.code, **err.headers}
    body: dict[str, Any]
    if version is not None:
        body = {"code": err.code, "message": err.message}
        headers[API_VERSION_HEADER] = version
    else:
        body = {"code": err.status, "error_code": err.code, "msg": err.message}
    body.update(err.extra)
    return JSONResponse(body, status_code=err.status, headers=headers)


def json_response(request: Request, body: Any, status_code: int = 200) -> JSONResponse:
    version = api_version(request)
    headers = {API_VERSION_HEADER: version} if version else None
    return JSONResponse(body, status_code=status_code, headers=headers)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


async def read_json(request: Request) -> dict[str, Any]:
    """The body as a JSON object. Empty body → ``{}``; anything unparsable → 400 ``bad_json``."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise AuthError("bad_json") from None
    if not isinstance(data, dict):
        raise AuthError("bad_json", "Request body must be a JSON object")
    return data


def bearer_token(request: Request) -> str | None:
    """The token of ``Authorization: Bearer <token>``, or ``None``."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"
