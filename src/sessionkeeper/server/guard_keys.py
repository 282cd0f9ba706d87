"""A guard key source over the server's own key ring, for a guard in the auth server's process.

A guard beside the auth server (the demo, the session bridge) needs no JWKS round trip to itself:
it reads the published keys from the same ring that signs. The verification hot path stays free
of I/O: keys are held in memory and reloaded in a worker thread when stale or when a token names
a ``kid`` we have not seen (another instance rotated).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from starlette.concurrency import run_in_threadpool

from sessionkeeper.clock import Clock, SystemClock
from sessionkeeper.core.keys import KeySet
from sessionkeeper.errors import StoreUnavailableError
from sessionkeeper.guard.keys import VerifyKey, by_kid, key_from_secret, keys_from_jwks
from sessionkeeper.guard.sources import pick_key
from sessionkeeper.service.keyring import KeyRing

log = logging.getLogger("sessionkeeper.guard")


class KeyRingKeys:
    """``KeySource`` reading :class:`KeyRing` (and the HS256 secret, when the server signs so)."""

    def __init__(
        self,
        keyring: KeyRing,
        *,
        hmac_secret: bytes | None = None,
        reload_interval: float = 30.0,
        clock: Clock | None = None,
    ) -> None:
        self._ring = keyring
        self._secret = key_from_secret(hmac_secret) if hmac_secret else None
        self._interval = reload_interval
        self._clock = clock or SystemClock()
        self._keys: dict[str | None, VerifyKey] = {}
        self._loaded_at = float("-inf")
        self._healthy = False
        self._listeners: list[Callable[[], None]] = []
        self._inflight: asyncio.Task[bool] | None = None
        self._load(self._ring.current())

    def _load(self, keyset: KeySet) -> None:
        keys = keys_from_jwks(keyset.jwks(), source="keyring")
        if self._secret is not None:
            keys.append(self._secret)
        fresh = by_kid(keys)
        changed = {k: v.thumbprint for k, v in fresh.items()} != {
            k: v.thumbprint for k, v in self._keys.items()
        }
        self._keys = fresh
        self._loaded_at = self._clock.now()
        self._healthy = True
        if changed:
            for listener in self._listeners:
                listener()

    @property
    def healthy(self) -> bool:
        return self._healthy

    def lookup(self, kid: str | None, alg: str) -> VerifyKey | None:
        if self._secret is not None and alg == self._secret.alg:
            return self._secret  # one shared secret answers every kid (as the signer does)
        return pick_key(self._keys, kid)

    def poll(self) -> None:
        """Start one background reload when the keys are older than ``reload_interval`` (a key
        retired elsewhere stops verifying without a restart)."""
        if self._inflight is not None or self._clock.now() - self._loaded_at < self._interval:
            return
        task = asyncio.get_running_loop().create_task(self.refresh(None))
        self._inflight = task
        task.add_done_callback(self._reloaded)

    def _reloaded(self, task: asyncio.Task[bool]) -> None:
        self._inflight = None
        if not task.cancelled() and task.exception() is not None:
            log.error("key reload failed", extra={"event": "guard_keys_reload_failed"})

    async def refresh(self, kid: str | None) -> bool:
        stale = self._clock.now() - self._loaded_at >= self._interval
        if kid is None and not stale:
            return False
        try:
            if kid is not None:
                keyset = await run_in_threadpool(self._ring.refresh_if_unknown, kid)
            else:
                keyset = await run_in_threadpool(self._ring.current)
        except StoreUnavailableError:
            self._healthy = False
            self._loaded_at = self._clock.now()  # retry after the interval, not on every request
            return False
        self._load(keyset)
        return True

    def subscribe(self, on_change: Callable[[], None]) -> None:
        self._listeners.append(on_change)
