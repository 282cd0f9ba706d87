"""The server's signing keys, kept in the store so restarts and other instances share them.

On first start the store gets an active key of the configured algorithm. ``sessionkeeper keys
rotate`` makes a new active key and keeps the old one published (so tokens it signed still
verify); ``keys retire`` stops publishing a key. Running servers reload the set every
``reload_interval`` seconds, so a rotation reaches every instance without a restart.
HS256 secrets come from configuration only and never touch the store.
"""

from __future__ import annotations

import threading

from sessionkeeper.clock import Clock, SystemClock
from sessionkeeper.core.keys import Algorithm, KeySet, SigningKey
from sessionkeeper.store.base import Store
from sessionkeeper.store.records import StoredKey


class KeyRing:
    def __init__(
        self,
        store: Store,
        *,
        alg: Algorithm = "ES256",
        hmac_secret: bytes | None = None,
        reload_interval: float = 30.0,
        clock: Clock | None = None,
    ) -> None:
        self._store = store
        self._alg = alg
        self._hmac = SigningKey.from_secret(hmac_secret) if hmac_secret else None
        self._reload_interval = reload_interval
        self._clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._keys: KeySet | None = None
        self._loaded_at = 0.0

    def ensure_active(self) -> None:
        """Create an active key of the configured algorithm if the store has none."""
        if self._alg == "HS256":
            return
        with self._store.transaction() as tx:
            stored = tx.list_keys()
            if any(k.status == "active" and k.alg == self._alg for k in stored):
                return
            now = self._clock.now()
            for k in stored:
                if k.status == "active":
                    tx.set_key_status(k.kid, "published", now)
            key = SigningKey.generate(self._alg)
            tx.insert_key(StoredKey(key.kid, key.alg, key.export(), "active", now))
        self._keys = None

    def rotate(self) -> SigningKey:
        """Make a new active key; the previous active key stays published."""
        if self._alg == "HS256":
            raise ValueError("HS256 keys come from SESSIONKEEPER_JWT_SECRET; change it there")
        now = self._clock.now()
        key = SigningKey.generate(self._alg)
        with self._store.transaction() as tx:
            for k in tx.list_keys():
                if k.status == "active":
                    tx.set_key_status(k.kid, "published", now)
            tx.insert_key(StoredKey(key.kid, key.alg, key.export(), "active", now))
        self._keys = None
        return key

    def retire(self, kid: str) -> None:
        with self._store.transaction() as tx:
            stored = {k.kid: k for k in tx.list_keys()}
            if kid not in stored:
                raise LookupError(f"no key with kid {kid!r}")
            if stored[kid].status == "active":
                raise ValueError(f"key {kid} is the active signing key; rotate first")
            tx.set_key_status(kid, "retired", self._clock.now())
        self._keys = None

    def stored(self) -> list[StoredKey]:
        with self._store.transaction(write=False) as tx:
            return tx.list_keys()

    def _load(self) -> KeySet:
        stored = self.stored()  # one read: a rotation elsewhere cannot split the view
        published = [
            SigningKey.load(k.kid, k.alg, k.material)
            for k in stored
            if k.status in ("active", "published")
        ]
        if self._hmac is not None:
            return KeySet(self._hmac, published)
        active = {k.kid for k in stored if k.status == "active" and k.alg == self._alg}
        signers = [k for k in published if k.kid in active]
        if not signers:
            raise LookupError(
                f"no active signing key for {self._alg}; run `sessionkeeper keys rotate`"
            )
        return KeySet(signers[-1], published)

    def current(self) -> KeySet:
        """The key set, reloaded from the store when older than ``reload_interval``."""
        now = self._clock.now()
        keys = self._keys
        if keys is not None and now - self._loaded_at < self._reload_interval:
            return keys
        with self._lock:
            if self._keys is None or now - self._loaded_at >= self._reload_interval:
                self._keys = self._load()
                self._loaded_at = now
            return self._keys

    def refresh_if_unknown(self, kid: str) -> KeySet:
        """Reload at once when a token names a kid we do not know (another instance rotated)."""
        keys = self.current()
        if keys.get(kid) is None and self._clock.now() - self._loaded_at > 1.0:
            with self._lock:
                self._keys = self._load()
                self._loaded_at = self._clock.now()
                return self._keys
        return keys
