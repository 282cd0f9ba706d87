"""Protects signing-key life cycle: one active key, rotation without breaking tokens, reloads."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import jwt
import pytest

from sessionkeeper.clock import ManualClock
from sessionkeeper.core import access_tokens
from sessionkeeper.core.keys import KeySet
from sessionkeeper.service.keyring import KeyRing
from sessionkeeper.store.base import Transaction
from sessionkeeper.store.sqlite import SQLiteStore

ISSUER = "http://auth.test/auth/v1"
SECRET = b"h" * 32


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "keys.db")
    s.migrate()
    yield s
    s.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def ring(store: SQLiteStore, clock: ManualClock) -> KeyRing:
    keyring = KeyRing(store, alg="ES256", clock=clock, reload_interval=30)
    keyring.ensure_active()
    return keyring


def claims(now: float) -> dict[str, Any]:
    return {
        "iss": ISSUER,
        "sub": "u1",
        "aud": "authenticated",
        "iat": int(now),
        "exp": int(now) + 3600,
    }


def signed_kid(keys: KeySet, now: float) -> str:
    kid = jwt.get_unverified_header(keys.sign(claims(now)))["kid"]
    assert isinstance(kid, str)
    return kid


def verifies(token: str, keys: KeySet, now: float) -> bool:
    try:
        access_tokens.verify(token, keys, issuer=ISSUER, now=now)
    except access_tokens.InvalidAccessTokenError:
        return False
    return True


# ensure_active ----------------------------------------------------------------------------------


def test_ensure_active_creates_one_key(ring: KeyRing, clock: ManualClock) -> None:
    ring.ensure_active()
    ring.ensure_active()
    (stored,) = ring.stored()
    assert stored.status == "active"
    assert stored.alg == "ES256"
    assert stored.created_at == clock.now()
    keys = ring.current()
    assert keys.active.kid == stored.kid
    assert signed_kid(keys, clock.now()) == stored.kid
    assert [jwk["kid"] for jwk in keys.jwks()["keys"]] == [stored.kid]


def test_ensure_active_from_another_instance_keeps_the_existing_key(
    ring: KeyRing, store: SQLiteStore, clock: ManualClock
) -> None:
    (before,) = ring.stored()
    KeyRing(store, alg="ES256", clock=clock).ensure_active()
    (after,) = ring.stored()
    assert after == before


def test_ensure_active_with_a_new_algorithm_demotes_the_old_key(
    ring: KeyRing, store: SQLiteStore, clock: ManualClock
) -> None:
    (old,) = ring.stored()
    old_token = ring.current().sign(claims(clock.now()))
    clock.advance(1)
    rsa_ring = KeyRing(store, alg="RS256", clock=clock)
    rsa_ring.ensure_active()
    statuses = {k.kid: (k.alg, k.status) for k in rsa_ring.stored()}
    assert statuses[old.kid] == ("ES256", "published")
    assert sorted(statuses.values()) == [("ES256", "published"), ("RS256", "active")]
    keys = rsa_ring.current()
    assert keys.active.alg == "RS256"
    assert verifies(old_token, keys, clock.now())


def test_current_without_an_active_key_is_a_lookup_error(
    store: SQLiteStore, clock: ManualClock
) -> None:
    with pytest.raises(LookupError, match="no active signing key"):
        KeyRing(store, alg="ES256", clock=clock).current()


# rotate -----------------------------------------------------------------------------------------


def test_rotate_keeps_the_old_key_published_and_signs_with_the_new(
    ring: KeyRing, clock: ManualClock
) -> None:
    old_kid = ring.current().active.kid
    old_token = ring.current().sign(claims(clock.now()))
    clock.advance(1)
    new = ring.rotate()
    assert new.kid != old_kid
    statuses = {k.kid: k.status for k in ring.stored()}
    assert statuses == {old_kid: "published", new.kid: "active"}

    keys = ring.current()  # the rotating instance sees its rotation at once
    assert keys.active.kid == new.kid
    assert signed_kid(keys, clock.now()) == new.kid
    assert {jwk["kid"] for jwk in keys.jwks()["keys"]} == {old_kid, new.kid}
    assert verifies(old_token, keys, clock.now())
    assert verifies(keys.sign(claims(clock.now())), keys, clock.now())


def test_rotating_twice_keeps_exactly_one_active_key(ring: KeyRing, clock: ManualClock) -> None:
    ring.rotate()
    clock.advance(1)
    last = ring.rotate()
    statuses = [k.status for k in ring.stored()]
    assert statuses.count("active") == 1
    assert statuses.count("published") == 2
    assert ring.current().active.kid == last.kid


# retire -----------------------------------------------------------------------------------------


def test_retire_stops_publishing_and_verifying_a_key(ring: KeyRing, clock: ManualClock) -> None:
    old_kid = ring.current().active.kid
    old_token = ring.current().sign(claims(clock.now()))
    clock.advance(1)
    ring.rotate()
    clock.advance(1)
    ring.retire(old_kid)
    retired = {k.kid: k for k in ring.stored()}[old_kid]
    assert retired.status == "retired"
    assert retired.retired_at == clock.now()
    keys = ring.current()
    assert keys.get(old_kid) is None
    assert old_kid not in {jwk["kid"] for jwk in keys.jwks()["keys"]}
    assert not verifies(old_token, keys, clock.now())


def test_retire_of_the_active_key_is_refused(ring: KeyRing) -> None:
    active = ring.current().active.kid
    with pytest.raises(ValueError, match="active"):
        ring.retire(active)
    assert {k.kid: k.status for k in ring.stored()} == {active: "active"}
    assert ring.current().active.kid == active


def test_retire_of_an_unknown_kid_is_a_lookup_error(ring: KeyRing) -> None:
    with pytest.raises(LookupError):
        ring.retire("no-such-kid")
    with pytest.raises(LookupError):
        ring.retire("' OR '1'='1")  # a kid is only ever a lookup key


# Other instances --------------------------------------------------------------------------------


def test_second_keyring_sees_a_rotation_after_the_reload_interval(
    ring: KeyRing, store: SQLiteStore, clock: ManualClock
) -> None:
    other = KeyRing(store, alg="ES256", clock=clock, reload_interval=30)
    old_kid = other.current().active.kid
    new_kid = ring.rotate().kid

    clock.advance(29.9)
    assert other.current().active.kid == old_kid  # cached until the interval passes
    assert other.current().get(new_kid) is None
    clock.advance(0.1)
    keys = other.current()
    assert keys.active.kid == new_kid
    assert keys.get(old_kid) is not None  # still published: its tokens still verify


def test_second_keyring_reloads_at_once_for_an_unknown_kid(
    ring: KeyRing, store: SQLiteStore, clock: ManualClock
) -> None:
    other = KeyRing(store, alg="ES256", clock=clock, reload_interval=30)
    other.current()
    new = ring.rotate()
    token = ring.current().sign(claims(clock.now()))
    clock.advance(2)
    keys = other.refresh_if_unknown(new.kid)
    assert keys.get(new.kid) is not None
    assert verifies(token, keys, clock.now())


def test_unknown_kid_reloads_at_most_once_a_second(
    ring: KeyRing, store: SQLiteStore, clock: ManualClock
) -> None:
    """A flood of tokens with made-up kids must not turn into a flood of store reads."""
    reads: list[bool] = []
    counting = _CountingStore(store, reads)
    other = KeyRing(counting, alg="ES256", clock=clock, reload_interval=30)
    other.current()
    before = len(reads)
    for _ in range(50):
        other.refresh_if_unknown("made-up")
    assert len(reads) == before
    clock.advance(1.5)
    other.refresh_if_unknown("made-up")
    other.refresh_if_unknown("made-up")
    assert before < len(reads) <= before + 2


# HS256 ------------------------------------------------------------------------------------------


def test_hs256_keyring_signs_with_the_configured_secret(
    store: SQLiteStore, clock: ManualClock
) -> None:
    ring = KeyRing(store, alg="HS256", hmac_secret=SECRET, clock=clock)
    ring.ensure_active()
    assert ring.stored() == []  # the secret never touches the store
    keys = ring.current()
    assert keys.active.is_hmac
    assert keys.jwks() == {"keys": []}
    assert verifies(keys.sign(claims(clock.now())), keys, clock.now())
    with pytest.raises(ValueError, match="JWT_SECRET"):
        ring.rotate()


# Races ------------------------------------------------------------------------------------------


class _CountingStore:
    """Delegates to a real store, recording read transactions and optionally running a hook."""

    def __init__(self, inner: SQLiteStore, reads: list[bool], hook: Any = None) -> None:
        self._inner = inner
        self._reads = reads
        self._hook = hook
        self.url_for_display = inner.url_for_display

    def migrate(self) -> list[str]:
        return self._inner.migrate()

    def ping(self) -> None:
        self._inner.ping()

    def close(self) -> None:
        self._inner.close()

    def transaction(self, *, write: bool = True) -> AbstractContextManager[Transaction]:
        return self._transaction(write)

    @contextmanager
    def _transaction(self, write: bool) -> Iterator[Transaction]:
        with self._inner.transaction(write=write) as tx:
            yield tx
        if not write:
            self._reads.append(True)
            if self._hook is not None:
                self._hook(len(self._reads))


def test_reload_during_a_rotation_elsewhere_gives_a_consistent_keyset(
    ring: KeyRing, store: SQLiteStore, clock: ManualClock
) -> None:
    def rotate_after_first_read(reads: int) -> None:
        if reads == 1:
            ring.rotate()  # another instance, between this instance's reads

    racing = KeyRing(_CountingStore(store, [], rotate_after_first_read), alg="ES256", clock=clock)
    keys = racing.current()
    assert keys.get(keys.active.kid) is keys.active
    assert keys.active.kid in {k.kid for k in ring.stored() if k.status != "retired"}


def test_servers_sign_with_the_active_key_whatever_their_configured_algorithm(
    ring: KeyRing, store: SQLiteStore, clock: ManualClock
) -> None:
    other = KeyRing(store, alg="RS256", clock=clock, reload_interval=30)  # not ensure_active'd
    ring.rotate("RS256")  # an operator switches the store to RS256
    clock.advance(31)
    for keyring in (ring, other):
        keys = keyring.current()
        assert keys.active.alg == "RS256"
        assert signed_kid(keys, clock.now()) == keys.active.kid


def test_a_failed_reload_keeps_serving_the_last_good_keys(
    ring: KeyRing, store: SQLiteStore, clock: ManualClock, tmp_path: Path
) -> None:
    before = ring.current()
    store.close()
    moved = tmp_path.parent / (tmp_path.name + "-away")
    tmp_path.rename(moved)  # the store goes away under the running server
    try:
        clock.advance(31)
        assert ring.current() is before  # still signing, not a 500
        clock.advance(5)
        assert ring.current() is before
    finally:
        moved.rename(tmp_path)
    clock.advance(5)
    assert ring.current().active.kid == before.active.kid  # reloaded again once it is back


def test_a_bad_key_row_is_skipped_not_fatal(
    ring: KeyRing, store: SQLiteStore, clock: ManualClock
) -> None:
    from sessionkeeper.store.records import StoredKey

    with store.transaction() as tx:
        tx.insert_key(StoredKey("broken", "ES256", "not a pem", "published", clock.now()))
    clock.advance(31)
    keys = ring.current()
    assert keys.get("broken") is None
    assert keys.active.alg == "ES256"


def _away(store: SQLiteStore, tmp_path: Path) -> Path:
    """Take the store's directory away, as an outage would."""
    store.close()
    moved = tmp_path.parent / (tmp_path.name + "-gone")
    tmp_path.rename(moved)
    return moved


def test_unknown_kid_during_a_store_outage_is_an_outage_not_a_bad_token(
    ring: KeyRing, store: SQLiteStore, clock: ManualClock, tmp_path: Path
) -> None:
    from sessionkeeper.errors import StoreUnavailableError

    ring.current()
    other = KeyRing(store, alg="ES256", clock=clock)  # another instance rotates
    new_kid = other.rotate().kid
    moved = _away(store, tmp_path)
    try:
        clock.advance(2)
        with pytest.raises(StoreUnavailableError):
            ring.refresh_if_unknown(new_kid)
        clock.advance(0.5)  # inside the throttle window: still an outage, not a stale answer
        with pytest.raises(StoreUnavailableError):
            ring.refresh_if_unknown(new_kid)
        assert ring.current().get(new_kid) is None  # signing goes on with the last good set
    finally:
        moved.rename(tmp_path)
    clock.advance(2)
    assert ring.refresh_if_unknown(new_kid).get(new_kid) is not None


def test_forced_reloads_for_unknown_kids_are_throttled_even_after_a_failure(
    store: SQLiteStore, clock: ManualClock, tmp_path: Path
) -> None:
    from sessionkeeper.errors import StoreUnavailableError

    attempts: list[int] = []

    class Counting(_CountingStore):
        def transaction(self, *, write: bool = True) -> AbstractContextManager[Transaction]:
            attempts.append(1)
            return super().transaction(write=write)

    counted = KeyRing(Counting(store, []), alg="ES256", clock=clock, reload_interval=30)
    counted.ensure_active()
    counted.current()
    moved = _away(store, tmp_path)
    try:
        clock.advance(31)
        counted.current()  # the periodic reload fails; the last good set is kept
        attempts.clear()
        for _ in range(1000):  # a flood of tokens naming random kids during the outage
            with pytest.raises(StoreUnavailableError):
                counted.refresh_if_unknown("no-such-kid")
        assert len(attempts) == 0  # all inside the throttle window: no store work at all
    finally:
        moved.rename(tmp_path)
    clock.advance(1)
    attempts.clear()
    for _ in range(1000):  # the store is back: one reload, then the throttle holds again
        counted.refresh_if_unknown("no-such-kid")
    assert len(attempts) == 1


def test_no_plaintext_key_is_written_beside_encrypted_ones(
    store: SQLiteStore, clock: ManualClock
) -> None:
    from sessionkeeper.core.key_encryption import KeyCipher, KeyEncryptionError

    encrypted = KeyRing(store, alg="ES256", clock=clock, cipher=KeyCipher("k" * 32))
    encrypted.ensure_active()
    plain = KeyRing(store, alg="RS256", clock=clock)
    with pytest.raises(KeyEncryptionError, match="SESSIONKEEPER_KEY_ENCRYPTION_KEY"):
        plain.rotate()
    with pytest.raises(KeyEncryptionError):
        plain.ensure_active()
    assert [k.status for k in encrypted.stored()] == ["active"]
