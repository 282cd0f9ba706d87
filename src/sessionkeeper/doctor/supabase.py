"""Supabase conventions the doctor reads: project refs, issuers and API keys.

- A project lives at ``https://<ref>.supabase.co``; its access tokens carry
  ``iss = https://<ref>.supabase.co/auth/v1``. Naming the *ref* on both sides of a mismatch is
  what turns "wrong issuer" into "the API checks project B, the front end signs in to project A".
- Legacy API keys are HS256 JWTs signed with the project's JWT secret, with claims
  ``iss: "supabase"``, ``ref: "<ref>"`` and ``role: "anon" | "service_role"``. Newer keys are
  opaque: ``sb_publishable_...`` (safe in a browser) and ``sb_secret_...`` (server only).

Everything here is decoding for diagnosis: nothing is trusted, and nothing is verified except
where a function says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from sessionkeeper.guard.jws import CompactJWS, DecodeError, json_object, parse_compact
from sessionkeeper.guard.reasons import Rejection
from sessionkeeper.origins import origin

AUTH_PATH = "/auth/v1"
JWKS_PATH = "/.well-known/jwks.json"
_HOST_SUFFIXES = (".supabase.co", ".supabase.in")
PUBLISHABLE_PREFIX = "sb_publishable_"
SECRET_PREFIX = "sb_secret_"  # noqa: S105 - a key prefix, not a secret
#: Roles of keys that bypass Row Level Security: never in a browser.
PRIVILEGED_ROLES = frozenset({"service_role", "secret"})
_MAX_KEY_LENGTH = 8192


def project_ref(url: str) -> str | None:
    """The ``<ref>`` of ``https://<ref>.supabase.co/...``, or ``None`` for any other host."""
    try:
        host = (urlsplit(url.strip()).hostname or "").lower()
    except ValueError:
        return None
    for suffix in _HOST_SUFFIXES:
        if host.endswith(suffix) and host.count(".") == 2:
            return host.removesuffix(suffix)
    return None


def with_project(url: str) -> str:
    """``url (project abc)`` when the URL is a Supabase project's, else ``url``."""
    ref = project_ref(url)
    return f"{url} (project {ref})" if ref else url


def supabase_issuer(url: str) -> str | None:
    """``https://<ref>.supabase.co/auth/v1``, the ``iss`` of every token of the project whose
    host ``url`` names (whatever its scheme, case or path), or ``None`` for any other host."""
    if project_ref(url) is None:
        return None
    return f"https://{urlsplit(url.strip()).hostname}{AUTH_PATH}"


def _location(url: str) -> str:
    """A URL that only says where a server is, as the server sees it: scheme and host are
    case-insensitive and a default port is no port, so they are normalised; the path is kept."""
    base = url.strip().rstrip("/")
    where = origin(base)
    return where + urlsplit(base).path.rstrip("/") if where else base


def issuer_from_project_url(url: str) -> str:
    """The issuer of the auth server at a project URL: ``<url>/auth/v1``.

    A URL that already ends with ``/auth/v1`` is taken as it is (the caller warns about it:
    supabase-js appends ``/auth/v1`` itself). A Supabase project's issuer is always
    ``https://<ref>.supabase.co/auth/v1``: the URL only says which project.
    """
    base = supabase_issuer(url) or _location(url)
    return base if base.endswith(AUTH_PATH) else base + AUTH_PATH


def issuer_from_jwks_url(url: str) -> str | None:
    """``https://x/auth/v1`` from ``https://x/auth/v1/.well-known/jwks.json``."""
    base = url.strip()
    return _location(base.removesuffix(JWKS_PATH)) if base.endswith(JWKS_PATH) else None


def issuer_difference(expected: str, received: str) -> str:
    """One sentence saying how two issuers differ, naming project refs when there are any."""
    want, got = project_ref(expected), project_ref(received)
    if want and got and want != got:
        return f"the token is from project {got}, but {expected} (project {want}) is expected"
    if expected.rstrip("/") == received.rstrip("/"):
        return (
            f"{received!r} and {expected!r} differ only by a trailing slash; "
            "the guard compares iss exactly"
        )
    if origin(expected) == origin(received) and origin(expected) is not None:
        if urlsplit(expected).path == urlsplit(received).path:
            return (
                f"{received} and {expected} differ only in how the host (or port) is written; "
                "the guard compares iss exactly"
            )
        if expected.rstrip("/").endswith(AUTH_PATH) != received.rstrip("/").endswith(AUTH_PATH):
            return (
                f"same server, different path: {received} vs {expected} "
                f"(the issuer ends with {AUTH_PATH})"
            )
        return f"same server, different path: {received} vs {expected}"
    if urlsplit(expected).netloc == urlsplit(received).netloc:
        return f"different scheme: {received} vs {expected}"
    return (
        f"the token was issued by {with_project(received)}, "
        f"but {with_project(expected)} is expected"
    )


@dataclass(frozen=True)
class ApiKey:
    """A Supabase API key, decoded (not verified). ``role``: ``anon`` or ``service_role`` for
    legacy JWT keys, ``publishable`` or ``secret`` for the ``sb_`` keys."""

    role: str
    ref: str | None
    legacy: bool
    jws: CompactJWS | None = field(default=None, repr=False)

    @property
    def privileged(self) -> bool:
        """Bypasses Row Level Security: a server-only key."""
        return self.role in PRIVILEGED_ROLES

    def describe(self) -> str:
        kind = {
            "anon": "legacy anon key",
            "service_role": "legacy service_role key",
            "publishable": "publishable key",
            "secret": "secret key",
        }.get(self.role, f"legacy {self.role} key")
        return f"{kind} of project {self.ref}" if self.ref else kind


def api_key(value: str) -> ApiKey | None:
    """The API key ``value`` is, or ``None`` when it is not one (any other text or JWT)."""
    text = value.strip()
    if text.startswith(PUBLISHABLE_PREFIX):
        return ApiKey("publishable", None, legacy=False)
    if text.startswith(SECRET_PREFIX):
        return ApiKey("secret", None, legacy=False)
    if not text.startswith("eyJ"):
        return None
    try:
        jws = parse_compact(text, _MAX_KEY_LENGTH)
        claims = json_object(jws.payload)
    except (Rejection, DecodeError):
        return None
    iss, role, ref = claims.get("iss"), claims.get("role"), claims.get("ref")
    if not isinstance(iss, str) or not iss.startswith("supabase") or not isinstance(role, str):
        return None
    if role not in ("anon", "service_role"):
        return None
    return ApiKey(role, ref if isinstance(ref, str) and ref else None, legacy=True, jws=jws)
