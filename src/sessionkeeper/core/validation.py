"""Input rules for accounts: email shape, password strength, metadata shape."""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

from sessionkeeper.errors import AuthError

MAX_EMAIL_LENGTH = 255
MAX_PASSWORD_LENGTH = 1024
# user_metadata travels in every access token. Measured as the compact ASCII-escaped JSON that
# goes into the token, 4 KiB keeps the worst-case token well under the 16 KiB the server accepts
# back (and under common 8 KiB proxy header limits).
MAX_METADATA_BYTES = 4 * 1024
# Deeper nesting is refused before it reaches json.dumps (RecursionError) or the token.
MAX_METADATA_DEPTH = 32
# Deliberately plain: one @, a dot in the domain, no spaces or control characters.
_EMAIL_RE = re.compile(r"[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f.]+")


def _encodable(value: str, field: str) -> str:
    """Refuse lone surrogates (valid in JSON escapes, invalid in UTF-8 storage and output)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise AuthError("validation_failed", f"{field} is not valid Unicode") from None
    return value


def normalize_email(value: object) -> str:
    """The canonical form of an email (NFC, trimmed, lower case), or an ``AuthError``."""
    if value is None or value == "":
        raise AuthError("validation_failed", "An email address is required")
    if not isinstance(value, str):
        raise AuthError("validation_failed", "email must be a string")
    _encodable(value, "email")
    email = unicodedata.normalize("NFC", value).strip().lower()
    if (
        len(email) > MAX_EMAIL_LENGTH
        or _EMAIL_RE.fullmatch(email) is None
        or any(_invisible(ch) for ch in email)
    ):
        raise AuthError("email_address_invalid")
    return email


def _invisible(ch: str) -> bool:
    """Control, format (bidi overrides, zero-width), unassigned or separator characters: they
    would let two addresses that look the same on screen belong to different accounts."""
    return unicodedata.category(ch)[0] in "CZ"


def require_password(value: object) -> str:
    if value is None or value == "":
        raise AuthError("validation_failed", "A password is required")
    if not isinstance(value, str):
        raise AuthError("validation_failed", "password must be a string")
    _encodable(value, "password")
    if len(value) > MAX_PASSWORD_LENGTH:
        raise AuthError(
            "validation_failed", f"Password cannot be longer than {MAX_PASSWORD_LENGTH} characters"
        )
    return value


def check_strength(password: str, min_length: int) -> None:
    if len(password) < min_length:
        raise AuthError(
            "weak_password",
            f"Password should be at least {min_length} characters.",
            extra={"weak_password": {"reasons": ["length"]}},
        )


def metadata(value: object, field: str = "data") -> dict[str, Any] | None:
    """User metadata: an object or absent. Size-capped so a profile cannot bloat every token."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise AuthError("validation_failed", f"{field} must be a JSON object")
    if _nesting_exceeds(value, MAX_METADATA_DEPTH):
        raise AuthError("validation_failed", f"{field} nests deeper than {MAX_METADATA_DEPTH}")

    try:
        json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (UnicodeEncodeError, ValueError):
        raise AuthError("validation_failed", f"{field} holds invalid text or numbers") from None
    check_metadata_size(value, field)
    return value


def check_metadata_size(value: dict[str, Any], field: str = "data") -> None:
    """Refuse metadata whose token form is larger than ``MAX_METADATA_BYTES``."""
    size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=True))
    if size > MAX_METADATA_BYTES:
        raise AuthError("validation_failed", f"{field} is larger than {MAX_METADATA_BYTES} bytes")


def _nesting_exceeds(value: object, limit: int) -> bool:
    """True when objects/arrays nest deeper than ``limit`` (iterative: no recursion to exhaust)."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False
