"""Browser origins: one spelling, one comparison, one allow-list.

A browser sends ``Origin`` as ``scheme://host[:port]`` with the host in lower case and no default
port, and servers compare it exactly. Every allow-list here is normalised to that spelling when it
is built, so ``https://App.example.com:443`` in a setting still matches what browsers send.

The allow-list itself follows security.md: built from explicit configuration only, and ``null``
(sandboxed frames, ``file:`` pages, some redirects) and a missing ``Origin`` are refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

#: Conventional names holding the app's public URL, added to the allow-list when set.
#: ``VERCEL_URL`` is a host name (a preview deployment), served over https.
CONVENTIONAL_NAMES = ("BASE_URL", "APP_BASE_URL", "NEXT_PUBLIC_APP_URL", "VERCEL_URL")

_HOST_ONLY = re.compile(r"[A-Za-z0-9.-]+(:\d+)?")


def origin(url: str) -> str | None:
    """``scheme://host[:port]`` of an absolute http(s) URL (default ports dropped), else None."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    default = {"http": 80, "https": 443}[parts.scheme]
    suffix = f":{port}" if port is not None and port != default else ""
    return f"{parts.scheme}://{parts.hostname.lower()}{suffix}"


@dataclass(frozen=True)
class OriginVerdict:
    allowed: bool
    #: ``allowed`` | ``origin_missing`` | ``origin_null`` | ``origin_not_allowed``
    reason: str


class AllowedOrigins:
    """The origins whose pages may post to the session bridge and use unsafe methods under
    cookie auth."""

    def __init__(self, origins: Iterable[str]) -> None:
        normalised = set()
        for item in origins:
            value = origin(item)
            if value is None:
                raise ValueError(f"{item!r} is not an origin like https://app.example.com")
            normalised.add(value)
        self.origins = frozenset(normalised)

    @classmethod
    def from_settings(
        cls, explicit: Iterable[str], environ: Mapping[str, str]
    ) -> AllowedOrigins:
        """The explicit list plus the conventional app-URL names that are set. A conventional
        name holding a path (Vite's ``BASE_URL=/``) or junk is skipped, not an error: those
        names belong to other tools."""
        found = list(explicit)
        for name in CONVENTIONAL_NAMES:
            value = (environ.get(name) or "").strip()
            if not value:
                continue
            if name == "VERCEL_URL" and "://" not in value and _HOST_ONLY.fullmatch(value):
                value = f"https://{value}"
            if origin(value) is not None:
                found.append(value)
        return cls(found)

    def __contains__(self, value: object) -> bool:
        return isinstance(value, str) and value in self.origins

    def check(self, header: str | None) -> OriginVerdict:
        """The verdict on a request's ``Origin`` header, compared exactly (as browsers send it)."""
        if header is None or not header.strip():
            return OriginVerdict(False, "origin_missing")
        if header.strip().lower() == "null":
            return OriginVerdict(False, "origin_null")
        if header in self.origins:
            return OriginVerdict(True, "allowed")
        return OriginVerdict(False, "origin_not_allowed")

    def __repr__(self) -> str:
        return f"AllowedOrigins({sorted(self.origins)!r})"
