"""Where verification keys come from: static keys (JWKS file, PEM, secret) or a JWKS URL.

The JWKS URL source is built for an issuer that is sometimes slow or down:

- **Cached with a TTL** (default 600 s, what our server's ``Cache-Control`` says). When the TTL
  passes, requests keep using the cached keys while one background fetch refreshes them
  (stale-while-revalidate): no request waits for the network on a warm cache.
- **One refetch on an unknown ``kid``**, at most once per ``refetch_interval`` (default 30 s), so
  a stream of tokens with made-up ``kid`` values cannot turn into a stream of fetches.
- **Stale keys kept when a fetch fails.** PyJWT empties its cache on a failed fetch; we keep
  serving the last good keys and retry after ``retry_interval``.
- **One fetch at a time**: concurrent requests wait on the same fetch.
- **Cold and unreachable** means the token cannot be judged: ``keys_unavailable`` (503), never a
  401 that would log the user out.

``kid`` is only ever a dict key here; it never reaches a URL, a path or a query.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

import httpx

from sessionkeeper.clock import Clock, SystemClock
from sessionkeeper.guard.keys import UnusableKeyError, VerifyKey, by_kid, keys_from_jwks

log = logging.getLogger("sessionkeeper.guard")

MAX_JWKS_BYTES = 1024 * 1024


class KeySource(Protocol):
    """A set of verification keys. ``lookup`` is synchronous and does no I/O (the hot path);
    ``refresh`` is where a source may go to the network."""

    @property
    def healthy(self) -> bool:
        """False when the keys may be incomplete: never loaded, or the last fetch failed."""
        ...

    def lookup(self, kid: str | None, alg: str) -> VerifyKey | None: ...

    def poll(self) -> None:
        """Cheap, called per request: start a background refresh if the keys are stale."""
        ...

    async def refresh(self, kid: str | None) -> bool:
        """Try to learn ``kid`` (or load keys at all). True if a fetch ran and succeeded."""
        ...

    def subscribe(self, on_change: Callable[[], None]) -> None:
        """Call ``on_change`` whenever the key set changes (the verifier drops its cache)."""
        ...


def _max_age(cache_control: str | None) -> float | None:
    """``max-age`` of a Cache-Control header (0 for ``no-store`` / ``no-cache``), else None."""
    if not cache_control:
        return None
    for part in cache_control.lower().split(","):
        name, _, value = part.strip().partition("=")
        if name in ("no-store", "no-cache"):
            return 0.0
        if name == "max-age":
            try:
                return max(0.0, float(int(value.strip().strip('"'))))
            except ValueError:
                return None
    return None


def pick_key(keys: dict[str | None, VerifyKey], kid: str | None) -> VerifyKey | None:
    key = keys.get(kid)
    if key is None and kid is None and len(keys) == 1:
        # A token without kid and a set of exactly one key: unambiguous (RFC 7515 §4.1.4).
        return next(iter(keys.values()))
    return key


class StaticKeys:
    """Keys fixed at start-up: a JWKS file or dict, PEM keys, an HMAC secret.

    ``any_kid`` is for a shared secret: Supabase's legacy HS256 tokens carry a ``kid`` that names
    the project's secret rather than a published key, so the one secret answers every ``kid``,
    but only for its own algorithm.
    """

    healthy = True

    def __init__(self, keys: Iterable[VerifyKey], *, any_kid: bool = False) -> None:
        self._keys = by_kid(keys)
        if not self._keys:
            raise ValueError("a static key source needs at least one key")
        self._any_kid = any_kid and len(self._keys) == 1
        self._only = next(iter(self._keys.values()))

    @property
    def keys(self) -> list[VerifyKey]:
        return list(self._keys.values())

    def lookup(self, kid: str | None, alg: str) -> VerifyKey | None:
        if self._any_kid:
            return self._only if alg == self._only.alg else None
        return pick_key(self._keys, kid)

    def poll(self) -> None:
        return None

    async def refresh(self, kid: str | None) -> bool:
        return False

    def subscribe(self, on_change: Callable[[], None]) -> None:
        return None


class JwksUrlKeys:
    """Keys from a JWKS URL, cached; see the module docstring for the rules."""

    def __init__(
        self,
        url: str,
        *,
        ttl: float = 600.0,
        refetch_interval: float = 30.0,
        retry_interval: float = 5.0,
        timeout: float = 5.0,
        default_rsa_alg: str = "RS256",
        clock: Clock | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not url.startswith(("https://", "http://")):
            raise ValueError(f"guard jwks_url must be an http(s) URL, got {url!r}")
        self.url = url
        self.ttl = ttl
        self.refetch_interval = refetch_interval
        self.retry_interval = retry_interval
        self.timeout = timeout
        self._default_rsa_alg = default_rsa_alg
        self._clock = clock or SystemClock()
        self._transport = transport
        self._keys: dict[str | None, VerifyKey] | None = None  # None: never loaded
        self._healthy = False
        self._refresh_at = 0.0  # when the warm cache should be refreshed (TTL or retry)
        self._next_attempt_at = 0.0  # earliest next fetch triggered by a request
        self._inflight: asyncio.Task[bool] | None = None
        self._listeners: list[Callable[[], None]] = []
        self.fetches = 0
        self.last_error: str | None = None

    @property
    def healthy(self) -> bool:
        return self._healthy

    @property
    def loaded(self) -> bool:
        return self._keys is not None

    def lookup(self, kid: str | None, alg: str) -> VerifyKey | None:
        keys = self._keys
        return None if keys is None else pick_key(keys, kid)

    def subscribe(self, on_change: Callable[[], None]) -> None:
        self._listeners.append(on_change)

    def poll(self) -> None:
        stale = self._clock.now() >= self._refresh_at
        if stale and self._inflight is None and self._keys is not None:
            self._start_fetch()

    def _start_fetch(self) -> asyncio.Task[bool]:
        """The fetch runs as its own task: a request that gives up (client gone) does not cancel
        it for the others waiting on it."""
        task = self._inflight
        if task is None:
            task = asyncio.get_running_loop().create_task(self._fetch())
            self._inflight = task
            task.add_done_callback(self._fetch_done)
        return task

    def _fetch_done(self, task: asyncio.Task[bool]) -> None:
        self._inflight = None
        if not task.cancelled() and task.exception() is not None:  # a bug, not a network error
            log.error("jwks fetch crashed", exc_info=task.exception())

    async def refresh(self, kid: str | None) -> bool:
        """Fetch now if allowed: when nothing is loaded (then at most once per
        ``retry_interval``), else at most once per ``refetch_interval``. Joins a fetch in
        flight instead of starting another."""
        task = self._inflight
        if task is None:
            if self._clock.now() < self._next_attempt_at:
                return False
            task = self._start_fetch()
        try:
            return await asyncio.shield(task)
        except Exception:
            return False

    def _ttl_for(self, cache_control: str | None) -> float:
        """How long to keep these keys: the issuer's ``max-age`` when it is shorter than
        ``ttl`` (an issuer about to rotate may say so), never longer (a retired key must stop
        verifying within ``ttl``), and never under ``refetch_interval`` (``no-store`` or
        ``max-age=0`` must not turn every request into a fetch)."""
        max_age = _max_age(cache_control)
        if max_age is None:
            return self.ttl
        return max(self.refetch_interval, min(self.ttl, max_age))

    async def _fetch(self) -> bool:
        self.fetches += 1
        started = self._clock.now()
        try:
            async with httpx.AsyncClient(
                timeout=self.timeout, transport=self._transport, follow_redirects=False
            ) as client:
                response = await client.get(self.url, headers={"Accept": "application/json"})
            if response.status_code != 200:
                raise UnusableKeyError(f"HTTP {response.status_code}")
            if len(response.content) > MAX_JWKS_BYTES:
                raise UnusableKeyError("JWKS document too large")
            keys = keys_from_jwks(
                response.content, default_rsa_alg=self._default_rsa_alg, source=self.url
            )
            if not keys:
                raise UnusableKeyError("no usable key in the JWKS")
        except (httpx.HTTPError, UnusableKeyError) as exc:
            now = self._clock.now()
            self._healthy = False
            self.last_error = f"{type(exc).__name__}: {exc}"
            self._refresh_at = now + self.retry_interval
            self._next_attempt_at = now + self.retry_interval
            log.warning(
                "jwks fetch failed",
                extra={
                    "jwks_url": self.url,
                    "error": self.last_error,
                    "keeping_cached_keys": self._keys is not None,
                    "cached_keys": len(self._keys or {}),
                },
            )
            return False
        now = self._clock.now()
        new = by_kid(keys)
        changed = self._keys is None or _fingerprint(self._keys) != _fingerprint(new)
        self._keys = new
        self._healthy = True
        self.last_error = None
        self._refresh_at = now + self._ttl_for(response.headers.get("cache-control"))
        self._next_attempt_at = now + self.refetch_interval
        log.info(
            "jwks fetched",
            extra={
                "jwks_url": self.url,
                "kids": sorted(str(k) for k in new),
                "seconds": round(now - started, 3),
            },
        )
        if changed:
            for listener in self._listeners:
                listener()
        return True


def _fingerprint(keys: dict[str | None, VerifyKey]) -> set[tuple[str | None, str, str]]:
    return {(kid, key.alg, key.thumbprint) for kid, key in keys.items()}


class CombinedKeys:
    """Several sources at once, e.g. a Supabase project's JWKS URL *and* its legacy HS256 secret
    while it migrates. The first source that knows the ``kid`` answers."""

    def __init__(self, sources: Sequence[KeySource]) -> None:
        self.sources = list(sources)

    @property
    def healthy(self) -> bool:
        return all(source.healthy for source in self.sources)

    def lookup(self, kid: str | None, alg: str) -> VerifyKey | None:
        for source in self.sources:
            key = source.lookup(kid, alg)
            if key is not None:
                return key
        return None

    def poll(self) -> None:
        for source in self.sources:
            source.poll()

    async def refresh(self, kid: str | None) -> bool:
        results = [await source.refresh(kid) for source in self.sources]
        return any(results)

    def subscribe(self, on_change: Callable[[], None]) -> None:
        for source in self.sources:
            source.subscribe(on_change)
