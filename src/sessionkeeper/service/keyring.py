"""The server's signing keys, kept in the store so restarts and other instances share them.

The store says which key is *active* (signs) and which are *published* (verify). Servers sign
with the active key whatever its algorithm; ``--signing-alg`` only chooses the algorithm of keys
created from now on (at first start, or when ``serve`` starts with a different algorithm than the
active key's). ``sessionkeeper keys rotate`` makes a new active key and keeps the old one
published, so tokens it signed still verify; ``keys retire`` stops publishing a key.

Running servers reload the set every ``reload_interval`` seconds, so a rotation reaches every
instance without a restart. A failed reload keeps the last good set (and retries soon): a store
hiccup or one bad key row must not stop signing. HS256 secrets come from configuration only and
never touch the store. With a key-encryption key (``core.key_encryption``) new keys are stored
encrypted.
"""

from __future__ import annotations

import logging
import threading

from sessionkeeper.clock import Clock, SystemClock
from sessionkeeper.core.key_encryption import KeyCipher, KeyEncryptionError, open_stored
from sessionkeeper.core.keys import Algorithm, KeyMaterialError, KeySet, SigningKey
from sessionkeeper.errors import StoreUnavailableError
from sessionkeeper.store.base import Store, Transaction
from sessionkeeper.store.records import StoredKey

log = logging.getLogger("sessionkeeper.keys")

RETRY_AFTER_FAILURE = 5.0


class NoSigningKeyError(LookupError):
    """The store holds no usable active key (run ``sessionkeeper keys rotate``)."""


class KeyRing:
    def __init__(
        self,
        store: Store,
        *,
        alg: Algorithm = "ES256",
        hmac_secret: bytes | None = None,
        reload_interval: float = 30.0,
        clock: Clock | None = None,
        cipher: KeyCipher | None = None,
    ) -> None:
        self._store = store
        self._cipher = cipher
        self._alg = alg
        self._hmac = SigningKey.from_secret(hmac_secret) if hmac_secret else None
        self.reload_interval = reload_interval
        self._clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._keys: KeySet | None = None
        self._next_load = 0.0
        self._loaded_at = float("-inf")

    def ensure_active(self) -> None:
        """At server start: make an active key of the configured algorithm unless one exists."""
        if self._alg == "HS256":
            return
        with self._store.transaction() as tx:
            stored = tx.list_keys()
            if any(k.status == "active" and k.alg == self._alg for k in stored):
                return
            self._make_active(tx, SigningKey.generate(self._alg), stored)
        self._keys = None

    def rotate(self, alg: Algorithm | None = None) -> SigningKey:
        """Make a new active key (of ``alg``, else of the current active key's algorithm)."""
        with self._store.transaction() as tx:
            stored = tx.list_keys()
            active = [k for k in stored if k.status == "active"]
            chosen = alg or (active[-1].alg if active else self._alg)
            if chosen not in ("ES256", "RS256"):
                raise ValueError("HS256 keys come from SESSIONKEEPER_JWT_SECRET; change it there")
            key = SigningKey.generate("ES256" if chosen == "ES256" else "RS256")
            self._make_active(tx, key, stored)
        self._keys = None
        return key

    def _make_active(self, tx: Transaction, key: SigningKey, stored: list[StoredKey]) -> None:
        now = self._clock.now()
        for k in stored:
            if k.status == "active":
                tx.set_key_status(k.kid, "published", now)
        material = key.export()
        if self._cipher is not None:
            material = self._cipher.seal(material, key.kid)
        tx.insert_key(StoredKey(key.kid, key.alg, material, "active", now))

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
        loaded: list[tuple[StoredKey, SigningKey]] = []
        for row in stored:
            if row.status not in ("active", "published"):
                continue
            try:
                material = open_stored(row.material, row.kid, self._cipher)
                loaded.append((row, SigningKey.load(row.kid, row.alg, material)))
            except (KeyMaterialError, KeyEncryptionError) as exc:
                log.error("unusable signing key skipped", extra={"kid": row.kid, "error": str(exc)})
        published = [key for _, key in loaded]
        if self._hmac is not None:
            return KeySet(self._hmac, published)
        signers = [key for row, key in loaded if row.status == "active"]
        if not signers:
            raise NoSigningKeyError(
                "no active signing key that loads; run `sessionkeeper keys rotate`"
            )
        return KeySet(signers[-1], published)

    def current(self) -> KeySet:
        """The key set, reloaded from the store when older than ``reload_interval``."""
        keys = self._keys
        if keys is not None and self._clock.now() < self._next_load:
            return keys
        return self._reload(force=False)

    def _reload(self, *, force: bool) -> KeySet:
        with self._lock:
            now = self._clock.now()
            if self._keys is not None and not force and now < self._next_load:
                return self._keys
            try:
                self._keys = self._load()
                self._loaded_at = now
                self._next_load = now + self.reload_interval
            except (StoreUnavailableError, NoSigningKeyError) as exc:
                if self._keys is None:
                    raise
                log.warning(
                    "key reload failed; keeping the last good key set",
                    extra={"event": "key_reload_failed", "error": str(exc)},
                )
                self._next_load = now + min(RETRY_AFTER_FAILURE, self.reload_interval)
            return self._keys

    def refresh_if_unknown(self, kid: str) -> KeySet:
        """Reload at once when a token names a kid we do not know (another instance rotated),
        at most once a second so unknown kids cannot turn into a store-read storm."""
        keys = self.current()
        if (
            keys.get(kid) is None
            and self._clock.now() >= self._next_load - self.reload_interval + 1
        ):
            return self._reload(force=True)
        return keys
