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
from sessionkeeper.core.key_encryption import (
    KeyCipher,
    KeyEncryptionError,
    is_encrypted,
    open_stored,
)
from sessionkeeper.core.keys import Algorithm, KeyMaterialError, KeySet, SigningKey
from sessionkeeper.errors import ConfigError, StoreUnavailableError
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
        self._last_attempt = float("-inf")
        self._last_outage: StoreUnavailableError | None = None
        self.skipped: list[str] = []  # kids of active/published keys that did not load

    def prepare(self) -> None:
        """At server start: make sure there is a key to sign with and that every active or
        published key loads; otherwise stop with a ``ConfigError`` naming what to fix."""
        try:
            self.ensure_active()
            self.current()
        except (NoSigningKeyError, KeyEncryptionError) as exc:
            raise ConfigError(f"{exc} (is SESSIONKEEPER_KEY_ENCRYPTION_KEY right?)") from None
        if self.skipped:
            raise ConfigError(
                f"signing keys {', '.join(self.skipped)} cannot be loaded (wrong or missing "
                "SESSIONKEEPER_KEY_ENCRYPTION_KEY, or a damaged row); fix it or retire them"
            )
        active = [k for k in self.stored() if k.status == "active"]
        if self._cipher is not None and active and not is_encrypted(active[-1].material):
            log.warning(
                "the active signing key is stored in plain text; run `sessionkeeper keys "
                "rotate` to get an encrypted one",
                extra={"event": "plaintext_signing_key", "kid": active[-1].kid},
            )

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
        if self._cipher is None and any(is_encrypted(k.material) for k in stored):
            # Never downgrade: a plaintext active key would undo the encryption of the others.
            raise KeyEncryptionError(
                "the store holds encrypted signing keys; set SESSIONKEEPER_KEY_ENCRYPTION_KEY "
                "before creating another"
            )
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
        skipped: list[str] = []
        for row in stored:
            if row.status not in ("active", "published"):
                continue
            try:
                material = open_stored(row.material, row.kid, self._cipher)
                loaded.append((row, SigningKey.load(row.kid, row.alg, material)))
            except (KeyMaterialError, KeyEncryptionError) as exc:
                skipped.append(row.kid)
                log.error("unusable signing key skipped", extra={"kid": row.kid, "error": str(exc)})
        self.skipped = skipped
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
        return self._reload()

    def refresh_if_unknown(self, kid: str) -> KeySet:
        """Reload at once when a token names a kid we do not know (another instance rotated).

        Forced reloads are coalesced and throttled to one a second, so random kids cannot turn
        into a store-read storm. If the store cannot be read we cannot tell a new key from a
        forged one: that is an outage (503), never a ``bad_jwt`` that would sign the user out.
        """
        keys = self.current()
        if keys.get(kid) is not None:
            return keys
        return self._reload(want_kid=kid)

    def _reload(self, *, want_kid: str | None = None) -> KeySet:
        with self._lock:
            now = self._clock.now()
            keys = self._keys
            if keys is not None:
                if want_kid is None and now < self._next_load:
                    return keys  # another thread reloaded while we waited for the lock
                if want_kid is not None and (
                    keys.get(want_kid) is not None or now - self._last_attempt < 1.0
                ):
                    if keys.get(want_kid) is None and self._last_outage is not None:
                        raise self._last_outage
                    return keys
            self._last_attempt = now
            try:
                self._keys = self._load()
                self._last_outage = None
                self._next_load = now + self.reload_interval
            except (StoreUnavailableError, NoSigningKeyError) as exc:
                self._last_outage = exc if isinstance(exc, StoreUnavailableError) else None
                self._next_load = now + min(RETRY_AFTER_FAILURE, self.reload_interval)
                if self._keys is None or (want_kid is not None and self._last_outage is not None):
                    raise
                log.warning(
                    "key reload failed; keeping the last good key set",
                    extra={"event": "key_reload_failed", "error": str(exc)},
                )
            return self._keys
