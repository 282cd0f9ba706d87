"""The session cookies: names, attributes, chunking, reading.

Attributes follow security.md (ASVS 5.0 V3.3): ``HttpOnly`` (page scripts never see a token),
``SameSite=Lax`` (no cookie on cross-site subrequests and form POSTs), ``Path=/``, ``Secure``,
and the ``__Host-`` prefix over https, which makes the browser refuse a cookie of that name set
by a sibling subdomain or without ``Secure`` ("cookie tossing"). ``Secure`` is dropped only when
the operator asked for development cookies *and* the request is plain http to a loopback host.

A browser keeps at most ~4096 bytes per cookie, and an access token with generous metadata can be
larger, so a long value is split into ``name.0``, ``name.1``, ... (the convention of Supabase's
SSR helpers). Whenever cookies are written, chunks the request carried that the new value no
longer uses are deleted, so a token never reads back as a mix of two.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sessionkeeper.guard.reasons import Reason, Rejection

ACCESS = "sk-access-token"
REFRESH = "sk-refresh-token"
CODE_VERIFIER = "sk-code-verifier"
HOST_PREFIX = "__Host-"
#: Room left for the name and attributes under the 4096-byte per-cookie limit.
CHUNK_SIZE = 3180
MAX_CHUNKS = 16
#: Browsers cap cookie lifetimes at 400 days; the session's own rules end it sooner.
SESSION_MAX_AGE = 400 * 86400
CODE_VERIFIER_MAX_AGE = 300
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
_COOKIE_SAFE = frozenset(
    "!#$%&'()*+-./0123456789:<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[]^_`abcdefghijklmnopqrstuvwxyz{|}~"
)


def request_host(scope: Mapping[str, Any]) -> str:
    """The host the request was sent to (without port), lower-cased."""
    for name, value in scope.get("headers", ()):
        if name == b"host":
            host: str = value.decode("latin-1").strip().lower()
            if host.startswith("["):
                return host.split("]", 1)[0] + "]"
            return host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    server = scope.get("server")
    return str(server[0]) if server else ""


def is_https(scope: Mapping[str, Any]) -> bool:
    return scope.get("scheme") in ("https", "wss")


def parse_cookie_header(headers: Iterable[tuple[bytes, bytes]]) -> dict[str, list[str]]:
    """Every cookie of every ``Cookie`` header, keeping repeats (a repeat is an attack sign)."""
    found: dict[str, list[str]] = {}
    for name, value in headers:
        if name != b"cookie":
            continue
        for part in value.decode("latin-1").split(";"):
            key, sep, val = part.strip().partition("=")
            if sep and key:
                found.setdefault(key, []).append(val.strip().strip('"'))
    return found


@dataclass(frozen=True)
class CookieJar:
    """The session cookies one request carried."""

    access_token: str | None
    refresh_token: str | None
    code_verifier: str | None
    #: Every cookie name present, so that stale chunks can be deleted when writing.
    present: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class CookiePolicy:
    """How this deployment names and protects its session cookies."""

    insecure_dev_cookies: bool = False
    access_name: str = ACCESS
    refresh_name: str = REFRESH
    verifier_name: str = CODE_VERIFIER

    def secure(self, scope: Mapping[str, Any]) -> bool:
        if is_https(scope):
            return True
        return not (self.insecure_dev_cookies and request_host(scope) in _LOOPBACK)

    def name(self, base: str, scope: Mapping[str, Any]) -> str:
        return HOST_PREFIX + base if is_https(scope) else base

    # -- reading ---------------------------------------------------------------------------

    def read(self, scope: Mapping[str, Any]) -> CookieJar:
        """The session cookies of a request; ``malformed_token`` when one is sent twice."""
        cookies = parse_cookie_header(scope.get("headers", ()))
        return CookieJar(
            access_token=self._value(cookies, self.name(self.access_name, scope)),
            refresh_token=self._value(cookies, self.name(self.refresh_name, scope)),
            code_verifier=self._value(cookies, self.name(self.verifier_name, scope)),
            present=frozenset(cookies),
        )

    def carried(self, scope: Mapping[str, Any]) -> bool:
        """Whether the request carries a session cookie (access or refresh, whole or chunked),
        under the names this request is read with: for logs and ``whoami``."""
        names = parse_cookie_header(scope.get("headers", ()))
        for base in (self.access_name, self.refresh_name):
            name = self.name(base, scope)
            if name in names or f"{name}.0" in names:
                return True
        return False

    def read_lenient(self, scope: Mapping[str, Any]) -> CookieJar:
        """``read``, with an ambiguous (repeated) cookie taken as absent: for endpoints that
        are about to overwrite or clear the cookies anyway."""
        try:
            return self.read(scope)
        except Rejection:
            names = frozenset(parse_cookie_header(scope.get("headers", ())))
            return CookieJar(None, None, None, names)

    @staticmethod
    def _value(cookies: Mapping[str, list[str]], name: str) -> str | None:
        whole = cookies.get(name)
        if whole is not None:
            if len(whole) > 1:
                raise Rejection(Reason.MALFORMED_TOKEN, "the cookie is present twice", cookie=name)
            return whole[0] or None
        parts: list[str] = []
        for index in range(MAX_CHUNKS):
            chunk = cookies.get(f"{name}.{index}")
            if chunk is None:
                break
            if len(chunk) > 1:
                raise Rejection(
                    Reason.MALFORMED_TOKEN, "a cookie chunk is present twice", cookie=name
                )
            parts.append(chunk[0])
        return "".join(parts) or None

    # -- writing ---------------------------------------------------------------------------

    def _attributes(self, scope: Mapping[str, Any], max_age: int) -> str:
        secure = "; Secure" if self.secure(scope) else ""
        return f"; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Lax{secure}"

    def _write(
        self,
        scope: Mapping[str, Any],
        base: str,
        value: str | None,
        present: frozenset[str],
        max_age: int,
    ) -> list[str]:
        name = self.name(base, scope)
        if value is not None and not set(value) <= _COOKIE_SAFE:
            raise ValueError("cookie value holds characters a cookie cannot carry")
        headers: list[str] = []
        used: set[str] = set()
        if value:
            chunks = [value[i : i + CHUNK_SIZE] for i in range(0, len(value), CHUNK_SIZE)]
            if len(chunks) > MAX_CHUNKS:
                raise ValueError("token too large for cookies")
            if len(chunks) == 1:
                used.add(name)
                headers.append(f"{name}={value}{self._attributes(scope, max_age)}")
            else:
                for index, chunk in enumerate(chunks):
                    used.add(f"{name}.{index}")
                    headers.append(f"{name}.{index}={chunk}{self._attributes(scope, max_age)}")
        stale = {name} | {f"{name}.{i}" for i in range(MAX_CHUNKS)}
        for old in sorted(n for n in present if n in stale and n not in used):
            headers.append(f"{old}={self._attributes(scope, 0)}")
        if not value and name not in present:
            headers.append(f"{name}={self._attributes(scope, 0)}")
        return headers

    def session_cookies(
        self, scope: Mapping[str, Any], jar: CookieJar, access_token: str, refresh_token: str
    ) -> list[str]:
        """``Set-Cookie`` values storing a session (deleting stale chunks)."""
        return [
            *self._write(scope, self.access_name, access_token, jar.present, SESSION_MAX_AGE),
            *self._write(scope, self.refresh_name, refresh_token, jar.present, SESSION_MAX_AGE),
        ]

    def clear_cookies(self, scope: Mapping[str, Any], jar: CookieJar) -> list[str]:
        """``Set-Cookie`` values deleting the session (every chunk the request carried)."""
        return [
            *self._write(scope, self.access_name, None, jar.present, 0),
            *self._write(scope, self.refresh_name, None, jar.present, 0),
        ]

    def verifier_cookie(self, scope: Mapping[str, Any], verifier: str | None) -> str:
        """The PKCE code verifier's cookie (or its deletion), alive for a code's 300 s."""
        name = self.name(self.verifier_name, scope)
        max_age = CODE_VERIFIER_MAX_AGE if verifier else 0
        return f"{name}={verifier or ''}{self._attributes(scope, max_age)}"


def header_pairs(cookies: Iterable[str]) -> list[tuple[bytes, bytes]]:
    return [(b"set-cookie", value.encode("latin-1")) for value in cookies]
