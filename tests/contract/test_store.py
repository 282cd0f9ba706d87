"""The store protocol's contract, run on every backend (SQLite, PostgreSQL, PostgreSQL + Redis).

Record round trips, token-family queries, uniqueness, atomic rollback and lost-update freedom:
what the services rely on, whatever holds the data.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from sessionkeeper.store import Store
from sessionkeeper.store.base import DuplicateError
from sessionkeeper.store.records import (
    IdentityRecord,
    RefreshTokenRecord,
    SessionRecord,
    StoredKey,
    UserRecord,
)

T0 = 1_800_000_000.0


def user(uid: str = "u1", email: str = "ada@example.com") -> tuple[UserRecord, IdentityRecord]:
    record = UserRecord(
        id=uid,
        email=email,
        password_hash="$argon2id$v=19$m=1024,t=1,p=1$c2FsdA$aGFzaA",
        created_at=T0,
        updated_at=T0,
        email_confirmed_at=T0,
        app_metadata={"provider": "email", "providers": ["email"]},
        user_metadata={"name": "Ada", "nested": {"list": [1, 2.5, None, True]}},
    )
    identity = IdentityRecord(
        id=f"id-{uid}",
        user_id=uid,
        provider="email",
        provider_id=uid,
        identity_data={"sub": uid, "email": email},
        created_at=T0,
        updated_at=T0,
    )
    return record, identity


def session(sid: str = "s1", uid: str = "u1") -> SessionRecord:
    return SessionRecord(
        id=sid,
        user_id=uid,
        created_at=T0,
        updated_at=T0,
        amr=[{"method": "password", "timestamp": int(T0)}],
        user_agent="pytest",
        ip="203.0.113.7",
    )


def rtoken(
    tid: str,
    seq: int,
    sid: str = "s1",
    uid: str = "u1",
    parent: str | None = None,
    revoked_at: float | None = None,
) -> RefreshTokenRecord:
    return RefreshTokenRecord(
        id=tid,
        session_id=sid,
        user_id=uid,
        token_hash=f"hash-{tid}",
        seq=seq,
        created_at=T0 + seq,
        parent_id=parent,
        sealed=f"sealed-{tid}" if parent else None,
        revoked_at=revoked_at,
    )


def key(kid: str, status: str = "active", at: float = T0) -> StoredKey:
    return StoredKey(kid=kid, alg="ES256", material=f"pem-{kid}", status=status, created_at=at)


@pytest.fixture
def store(make_store: Callable[..., Store]) -> Store:
    return make_store()


@pytest.fixture
def with_user(store: Store) -> Store:
    with store.transaction() as tx:
        tx.insert_user(*user())
        tx.insert_session(session())
    return store


def test_booleans_and_json_round_trip(store: Store) -> None:
    u, identity = user()
    u.is_anonymous = True
    u.phone = "+15550100"
    with store.transaction() as tx:
        tx.insert_user(u, identity)
    with store.transaction(write=False) as tx:
        loaded = tx.user_by_id("u1")
    assert loaded is not None
    assert loaded.is_anonymous is True
    assert loaded.user_metadata == {"name": "Ada", "nested": {"list": [1, 2.5, None, True]}}
    assert loaded.phone == "+15550100"


def test_missing_rows_are_none(store: Store) -> None:
    with store.transaction(write=False) as tx:
        assert tx.user_by_id("nope") is None
        assert tx.user_by_email("nobody@example.com") is None
        assert tx.session_by_id("nope") is None
        assert tx.refresh_token_by_hash("nope") is None
        assert tx.live_child_of("nope") is None
        assert tx.identities_of("nope") == []
        assert tx.list_keys() == []


def test_duplicate_email_raises_duplicate_error(with_user: Store) -> None:
    twin, twin_identity = user("u2", "ada@example.com")
    with pytest.raises(DuplicateError), with_user.transaction() as tx:
        tx.insert_user(twin, twin_identity)
    with with_user.transaction(write=False) as tx:
        assert tx.user_by_id("u2") is None
        assert tx.identities_of("u2") == []
    # the store stays usable after the refusal
    other, other_identity = user("u3", "grace@example.com")
    with with_user.transaction() as tx:
        tx.insert_user(other, other_identity)
    with with_user.transaction(write=False) as tx:
        assert tx.user_by_email("grace@example.com") is not None


def test_duplicate_user_id_raises_duplicate_error(with_user: Store) -> None:
    again, again_identity = user("u1", "other@example.com")
    with pytest.raises(DuplicateError), with_user.transaction() as tx:
        tx.insert_user(again, again_identity)


def test_update_user_to_a_taken_email_raises_duplicate_error(with_user: Store) -> None:
    with with_user.transaction() as tx:
        tx.insert_user(*user("u2", "grace@example.com"))

    def take_adas_email() -> None:
        with with_user.transaction() as tx:
            grace = tx.user_by_id("u2")
            assert grace is not None
            grace.email = "ada@example.com"
            tx.update_user(grace)

    with pytest.raises(DuplicateError):
        take_adas_email()
    with with_user.transaction(write=False) as tx:
        still = tx.user_by_id("u2")
        assert still is not None and still.email == "grace@example.com"


def test_update_user_and_identity_email(with_user: Store) -> None:
    with with_user.transaction() as tx:
        ada = tx.user_by_id("u1")
        assert ada is not None
        ada.email = "ada@new.example"
        ada.user_metadata = {"name": "Ada L."}
        ada.updated_at = T0 + 10
        tx.update_user(ada)
        tx.update_identity_email("u1", "ada@new.example", T0 + 10)
    with with_user.transaction(write=False) as tx:
        assert tx.user_by_email("ada@example.com") is None
        loaded = tx.user_by_email("ada@new.example")
        assert loaded is not None
        assert loaded.user_metadata == {"name": "Ada L."}
        assert loaded.updated_at == T0 + 10
        (identity,) = tx.identities_of("u1")
        assert identity.identity_data == {"sub": "u1", "email": "ada@new.example"}
        assert identity.updated_at == T0 + 10


def test_update_session(with_user: Store) -> None:
    with with_user.transaction() as tx:
        s = tx.session_by_id("s1")
        assert s is not None
        s.refreshed_at, s.not_after, s.family_revoked_at, s.updated_at = (
            T0 + 1,
            T0 + 2,
            T0 + 3,
            T0 + 4,
        )
        tx.update_session(s)
    with with_user.transaction(write=False) as tx:
        loaded = tx.session_by_id("s1")
    assert loaded is not None
    assert (loaded.refreshed_at, loaded.not_after, loaded.family_revoked_at, loaded.updated_at) == (
        T0 + 1,
        T0 + 2,
        T0 + 3,
        T0 + 4,
    )


def test_live_child_of_and_next_seq(with_user: Store) -> None:
    with with_user.transaction() as tx:
        tx.insert_session(session("s2"))
        assert tx.next_token_seq("s1") == 1
        assert tx.live_child_of("t1") is None
        tx.insert_refresh_token(rtoken("t1", 1, revoked_at=T0 + 1))
        tx.insert_refresh_token(rtoken("t2", 2, parent="t1", revoked_at=T0 + 2))
        tx.insert_refresh_token(rtoken("t3", 3, parent="t2"))
        tx.insert_refresh_token(rtoken("x9", 9, sid="s2"))  # another session's family
        assert tx.live_child_of("t1") is None  # its only child was rotated away
        child = tx.live_child_of("t2")
        assert child is not None and child.id == "t3"
        assert child.parent_id == "t2"
        assert child.sealed == "sealed-t3"
        assert tx.next_token_seq("s1") == 4
        assert tx.next_token_seq("s2") == 10

        tx.insert_refresh_token(rtoken("t4", 4, parent="t2"))  # a second branch (rule 4)
        child = tx.live_child_of("t2")
        assert child is not None and child.id == "t4"  # the newest live child
        tx.revoke_token("t4", T0 + 4)
        child = tx.live_child_of("t2")
        assert child is not None and child.id == "t3"
        assert tx.next_token_seq("s1") == 5  # seq never reused, even after revocation


def test_revoke_token_keeps_the_first_revocation_time(with_user: Store) -> None:
    with with_user.transaction() as tx:
        tx.insert_refresh_token(rtoken("t1", 1))
        tx.revoke_token("t1", T0 + 1)
        tx.revoke_token("t1", T0 + 99)
        t = tx.refresh_token_by_hash("hash-t1")
    assert t is not None and t.revoked_at == T0 + 1


def test_revoke_session_tokens(with_user: Store) -> None:
    with with_user.transaction() as tx:
        tx.insert_session(session("s2"))
        tx.insert_refresh_token(rtoken("t1", 1, revoked_at=T0 + 1))
        tx.insert_refresh_token(rtoken("t2", 2, parent="t1"))
        tx.insert_refresh_token(rtoken("t3", 3, parent="t2"))
        tx.insert_refresh_token(rtoken("x1", 1, sid="s2"))
        assert tx.revoke_session_tokens("s1", T0 + 50) == 2  # only the live ones
        assert tx.live_child_of("t1") is None
        assert tx.live_child_of("t2") is None
        t1 = tx.refresh_token_by_hash("hash-t1")
        t3 = tx.refresh_token_by_hash("hash-t3")
        assert t1 is not None and t1.revoked_at == T0 + 1  # earlier revocation kept
        assert t3 is not None and t3.revoked_at == T0 + 50
        other = tx.refresh_token_by_hash("hash-x1")
        assert other is not None and other.revoked_at is None  # other family untouched
        assert tx.revoke_session_tokens("s1", T0 + 60) == 0


def test_delete_sessions_scopes(with_user: Store) -> None:
    with with_user.transaction() as tx:
        tx.insert_user(*user("u2", "grace@example.com"))
        for sid in ("s2", "s3"):
            tx.insert_session(session(sid))
        tx.insert_session(session("g1", uid="u2"))
        tx.insert_refresh_token(rtoken("t2", 1, sid="s2"))

    with with_user.transaction() as tx:
        assert tx.delete_sessions("u1", only="g1") == 0  # another user's session: untouched
        assert tx.delete_sessions("u1", only="s2") == 1  # local
        assert tx.session_by_id("s2") is None
        assert tx.refresh_token_by_hash("hash-t2") is None  # its tokens go with it
        assert tx.delete_sessions("u1", keep="s1") == 1  # others
        assert tx.session_by_id("s3") is None
        assert tx.session_by_id("s1") is not None
        assert tx.delete_sessions("u1") == 1  # global
        assert tx.session_by_id("s1") is None
        assert tx.session_by_id("g1") is not None
        assert tx.delete_sessions("u1") == 0


def test_keys_listed_in_creation_order_and_status_changes(store: Store) -> None:
    with store.transaction() as tx:
        tx.insert_key(key("k2", "active", T0 + 2))
        tx.insert_key(key("k1", "published", T0 + 1))
        assert [k.kid for k in tx.list_keys()] == ["k1", "k2"]
        tx.set_key_status("k1", "retired", T0 + 3)
        tx.set_key_status("k2", "published", T0 + 3)
        k1, k2 = tx.list_keys()
    assert (k1.status, k1.retired_at) == ("retired", T0 + 3)
    assert (k2.status, k2.retired_at) == ("published", None)


def test_duplicate_kid_raises_duplicate_error(store: Store) -> None:
    with store.transaction() as tx:
        tx.insert_key(key("k1"))
    with pytest.raises(DuplicateError), store.transaction() as tx:
        tx.insert_key(key("k1"))


def test_write_transaction_that_raises_rolls_back(with_user: Store) -> None:
    def crash_mid_rotation() -> None:
        with with_user.transaction() as tx:
            tx.insert_user(*user("u2", "grace@example.com"))
            tx.insert_refresh_token(rtoken("t1", 1))
            s = tx.session_by_id("s1")
            assert s is not None
            s.family_revoked_at = T0
            tx.update_session(s)
            tx.delete_sessions("u1", keep="s1")
            raise RuntimeError("crash mid-rotation")

    with pytest.raises(RuntimeError, match="crash"):
        crash_mid_rotation()
    with with_user.transaction(write=False) as tx:
        assert tx.user_by_id("u2") is None
        assert tx.refresh_token_by_hash("hash-t1") is None
        s = tx.session_by_id("s1")
        assert s is not None and s.family_revoked_at is None


def test_a_failed_transaction_leaves_the_store_usable(with_user: Store) -> None:
    def fail() -> None:
        with with_user.transaction() as tx:
            tx.insert_refresh_token(rtoken("t1", 1))
            raise ValueError("boom")

    for _ in range(3):
        with pytest.raises(ValueError, match="boom"):
            fail()
    with with_user.transaction() as tx:
        tx.insert_refresh_token(rtoken("t1", 1))
    with with_user.transaction(write=False) as tx:
        assert tx.refresh_token_by_hash("hash-t1") is not None


def test_committed_writes_are_seen_by_other_threads(with_user: Store) -> None:
    seen: list[bool] = []

    def reader() -> None:
        with with_user.transaction(write=False) as tx:
            seen.append(tx.user_by_email("ada@example.com") is not None)

    thread = threading.Thread(target=reader)
    thread.start()
    thread.join()
    assert seen == [True]


def increment_updated_at(
    store: Store, times: int, start: threading.Barrier, errors: list[str]
) -> None:
    try:
        start.wait()
        for _ in range(times):
            with store.transaction() as tx:
                record = tx.lock_user("u1")
                assert record is not None
                record.updated_at += 1  # read-modify-write: lost if transactions interleave
                tx.update_user(record)
    except Exception as exc:  # surfaced by the assertion in the test
        errors.append(repr(exc))


def test_lock_user_reads_the_user(with_user: Store) -> None:
    with with_user.transaction() as tx:
        locked = tx.lock_user("u1")
        assert locked is not None and locked.email == "ada@example.com"
        assert tx.lock_user("nope") is None


def test_concurrent_write_transactions_lose_no_update(with_user: Store) -> None:
    errors: list[str] = []
    start = threading.Barrier(2)
    threads = [
        threading.Thread(target=increment_updated_at, args=(with_user, 200, start, errors))
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with with_user.transaction(write=False) as tx:
        record = tx.user_by_id("u1")
    assert record is not None
    assert record.updated_at == T0 + 400


def test_ping_on_a_healthy_store(store: Store) -> None:
    store.ping()
