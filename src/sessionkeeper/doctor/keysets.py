"""The keys a token is checked against: a JWKS URL, a JWKS file or a secret from the environment.

The guard's own loaders build the keys (``keys_from_jwks``, ``load_jwks_file``,
``key_from_secret``), so a key the guard would skip or refuse is skipped or refused here too.
What differs is failure: the guard refuses to start, the doctor reports. A JWKS URL that cannot
be fetched and a secret that is too short become findings (exit 1); a missing file or an unset
variable is a usage error (exit 2).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

from sessionkeeper.doctor.findings import Finding, Severity
from sessionkeeper.doctor.hints import guard_hint
from sessionkeeper.doctor.masking import masked
from sessionkeeper.errors import ConfigError
from sessionkeeper.guard.algorithms import MIN_HMAC_BYTES
from sessionkeeper.guard.keys import (
    UnusableKeyError,
    VerifyKey,
    key_from_secret,
    keys_from_jwks,
    load_jwks_file,
)
from sessionkeeper.guard.reasons import Reason
from sessionkeeper.guard.sources import MAX_JWKS_BYTES, StaticKeys

MIN_SECRET_BYTES = MIN_HMAC_BYTES["HS256"]


@dataclass(frozen=True)
class KeySet:
    """Keys plus where they came from. ``problem`` says why there are none to use."""

    label: str
    keys: tuple[VerifyKey, ...] = ()
    #: A shared secret answers every ``kid`` of its algorithm (Supabase's legacy tokens carry
    #: a ``kid`` that names the secret rather than a published key).
    shared_secret: bool = False
    problem: Finding | None = None

    def source(self) -> StaticKeys | None:
        """The guard's key source over these keys (``None`` when there are none)."""
        if not self.keys:
            return None
        return StaticKeys(self.keys, any_kid=self.shared_secret)

    def kids(self) -> list[str]:
        return sorted(str(key.kid) for key in self.keys)


@contextmanager
def _quiet_skips() -> Iterator[None]:
    """``keys_from_jwks`` logs a warning per skipped key for the guard's log; on the doctor's
    terminal that would be noise around the report, so it is silenced while loading."""
    logger = logging.getLogger("sessionkeeper.guard")
    previous = logger.disabled
    logger.disabled = True
    try:
        yield
    finally:
        logger.disabled = previous


def _described(label: str, keys: list[VerifyKey]) -> str:
    kids = ", ".join(sorted(str(k.kid) for k in keys))
    return f"{label} ({len(keys)} key{'s' if len(keys) != 1 else ''}: {kids})"


def fetch_jwks(client: httpx.Client, url: str) -> KeySet:
    """Keys from a JWKS URL, as the guard would load them (no symmetric keys from a URL)."""
    try:
        response = client.get(url, headers={"Accept": "application/json"})
        if response.status_code != 200:
            raise UnusableKeyError(f"HTTP {response.status_code}")
        if len(response.content) > MAX_JWKS_BYTES:
            raise UnusableKeyError("JWKS document too large")
        with _quiet_skips():
            keys = keys_from_jwks(response.content, source=url)
    except (httpx.HTTPError, UnusableKeyError) as exc:
        why = str(exc) or type(exc).__name__
        problem = Finding(
            Reason.KEYS_UNAVAILABLE.value,
            Severity.ERROR,
            f"Could not load keys from {url}: {why}.",
            guard_hint(Reason.KEYS_UNAVAILABLE),
            {"jwks_url": url, "error": why},
        )
        return KeySet(f"JWKS {url}", problem=problem)
    if not keys:
        problem = Finding(
            Reason.KEYS_UNAVAILABLE.value,
            Severity.ERROR,
            f"{url} publishes no usable key.",
            "A server that signs with a shared secret (HS256) never publishes it: verify with "
            "the secret (--secret-env NAME) instead of the JWKS.",
            {"jwks_url": url, "empty": True},
        )
        return KeySet(f"JWKS {url}", problem=problem)
    return KeySet(_described(f"JWKS {url}", keys), tuple(keys))


def require_http_url(option: str, url: str) -> None:
    """A usage error (exit 2) unless ``url`` is an http(s) URL with a host that httpx accepts
    (a malformed one, e.g. an unclosed ``[`` or a bad port, would raise outside any finding)."""
    shown = re.sub(r"(?<=://)[^/?#]*@", "***@", url)  # never echo user:password
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ConfigError(f"{option} is not a valid URL ({exc}), got {shown!r}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigError(f"{option} must be an http(s) URL, got {shown!r}")
    if parsed.userinfo:
        # It would be printed in every line that names the URL: credentials go in --email /
        # --password (or the environment), never in a URL.
        raise ConfigError(f"{option} holds credentials; drop them from the URL, got {shown!r}")


def jwks_url_keys(url: str, *, timeout: float) -> KeySet:
    require_http_url("--jwks-url", url)
    with httpx.Client(timeout=timeout, follow_redirects=False) as client:
        return fetch_jwks(client, url)


def jwks_file_keys(path: str) -> KeySet:
    """Keys from a JWKS file; an unreadable or empty file is a usage error (exit 2)."""
    with _quiet_skips():
        keys = load_jwks_file(path, allow_symmetric=True)
    return KeySet(_described(f"JWKS file {path}", keys), tuple(keys))


def secret_env_keys(name: str, environ: Mapping[str, str]) -> KeySet:
    """The HS256 secret in environment variable ``name`` (used as UTF-8 bytes, like Supabase).

    A secret shorter than 32 bytes is reported as ``short_secret``: the guard and the server
    refuse to start with it, so no signature verdict is given.
    """
    secret = environ.get(name)
    if not secret:
        raise ConfigError(f"--secret-env {name}: the variable is not set (or empty)")
    label = f"secret ${name} ({masked(secret)})"
    size = len(secret.encode())
    if size < MIN_SECRET_BYTES:
        return KeySet(label, problem=short_secret(name, size))
    return KeySet(label, (key_from_secret(secret),), shared_secret=True)


def short_secret(name: str, size: int) -> Finding:
    """The finding for an HMAC secret below RFC 7518's minimum (shared with ``doctor config``)."""
    return Finding(
        "short_secret",
        Severity.ERROR,
        f"{name} is {size} bytes; HS256 needs at least {MIN_SECRET_BYTES} (RFC 7518 §3.2).",
        "Use the project's real JWT secret (Supabase: Project Settings → API → JWT secret), or "
        "generate one with `openssl rand -base64 48`; the guard and the server refuse shorter.",
        {"variable": name, "bytes": size, "minimum": MIN_SECRET_BYTES},
    )
