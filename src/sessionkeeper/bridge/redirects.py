"""Where a callback may send the browser next: no open redirects.

``next`` (and ``redirect_to``) come from the query string, so anyone can write a link that
passes through our callback. Only two kinds of target are followed: a same-origin relative path
(``/reports?id=3``) and an absolute URL on an allow-listed origin. Everything else lands on
``/``. Browsers are lenient in ways that turn innocent-looking paths into other hosts:
``//evil.example`` and ``/\\evil.example`` are host-relative, tabs and newlines are stripped
inside URLs, and a percent-encoded slash may be decoded by a proxy on the way. So a relative
target is refused when any of those appear, before or after decoding.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

from sessionkeeper.origins import AllowedOrigins, origin

DEFAULT_TARGET = "/"
_MAX_LENGTH = 2048
# Control characters (browsers drop tab/newline inside URLs), backslashes (read as "/") and
# whitespace have no business in a redirect target.
_UNSAFE = re.compile(r"[\x00-\x20\x7f\\]")
# Once decoded, a space is only a space; control characters and backslashes still redirect.
_UNSAFE_DECODED = re.compile(r"[\x00-\x1f\x7f\\]")


def _safe_path(target: str) -> bool:
    """A path on this origin: one leading slash, never read as ``//host`` by any decoder."""
    if _UNSAFE.search(target):
        return False
    value = target
    for _ in range(3):  # each layer of percent-encoding a proxy or browser might undo
        if _UNSAFE_DECODED.search(value) or not value.startswith("/") or value.startswith("//"):
            return False
        decoded = unquote(value)
        if decoded == value:
            return True
        value = decoded
    return False  # still encoded after three layers: nobody needs that


def _safe_absolute(target: str, allowed: AllowedOrigins) -> bool:
    if _UNSAFE.search(target):
        return False
    try:
        parts = urlsplit(target)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or parts.username or parts.password:
        return False
    if not target.startswith(f"{parts.scheme}://"):
        return False  # "HTTPS://..." or "https:/x": spelled differently from what we compare
    found = origin(target)
    return found is not None and found in allowed


def safe_redirect(target: str | None, allowed: AllowedOrigins) -> str:
    """``target`` when it is a same-origin path or on an allow-listed origin, else ``/``."""
    if not target or len(target) > _MAX_LENGTH:
        return DEFAULT_TARGET
    if target.startswith("/"):
        return target if _safe_path(target) else DEFAULT_TARGET
    return target if _safe_absolute(target, allowed) else DEFAULT_TARGET
