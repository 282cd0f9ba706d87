"""Connection handling of the SQLite store: bounded, safe across thread churn, file swaps,
lock waits and permissions (the review found each of these broken once)."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from pathlib import Path

import pytest

from sessionkeeper.errors import StoreUnavailableError
from sessionkeeper.store.records import IdentityRecord, SessionRecord, UserRecord
from sessionkeeper.store.sqlite import SQLiteStore


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def user(uid: str, email: str) -> tuple[UserRecord, IdentityRecord]:
    return (
        UserRecord(id=uid, email=email, password_hash="h", created_at=1.0, updated_at=1.0),
        IdentityRecord(
            id="i" + uid,
            user_id=uid,
            provider="email",
            provider_id=uid,
            identity_data={},
            created_at=1.0,
            updated_at=1.0,
        ),
    )


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    s = SQLiteStore(tmp_path / "pool.db", pool_size=4, busy_timeout=0.5)
    s.migrate()
    return s


def test_threads_that_come_and_go_do_not_leak_connections(store: SQLiteStore) -> None:
    def work() -> None:
        with store.transaction(write=False) as tx:
            tx.user_by_id("nobody")

    for _ in range(3):  # warm up: the pool opens what it needs
        t = threading.Thread(target=work)
        t.start()
        t.join()
    before = open_fds()
    for _ in range(60):  # sixty short-lived threads, as anyio's idle workers are retired
        t = threading.Thread(target=work)
        t.start()
        t.join()
    assert open_fds() <= before + 2
    assert store.open_connections <= 4


def test_concurrent_transactions_wait_for_a_connection_and_all_finish(store: SQLiteStore) -> None:
    barrier = threading.Barrier(12)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        barrier.wait()
        try:
            with store.transaction() as tx:
                u, ident = user(f"u{i}", f"u{i}@example.com")
                tx.insert_user(u, ident)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with store.transaction(write=False) as tx:
        assert all(tx.user_by_id(f"u{i}") for i in range(12))
    assert store.open_connections <= 4


def test_a_held_write_lock_elsewhere_is_a_503_after_the_busy_timeout(store: SQLiteStore) -> None:
    other = sqlite3.connect(store.path, isolation_level=None)  # another process's connection
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreUnavailableError), store.transaction() as tx:
            tx.insert_user(*user("x", "x@example.com"))
        # Readers are not blocked by a writer (WAL).
        with store.transaction(write=False) as tx:
            assert tx.user_by_id("x") is None
    finally:
        other.execute("ROLLBACK")
        other.close()
    with store.transaction() as tx:  # and the store recovers by itself
        tx.insert_user(*user("x", "x@example.com"))


def test_a_restored_file_is_reopened_not_written_through_stale_connections(
    store: SQLiteStore, tmp_path: Path
) -> None:
    with store.transaction() as tx:
        tx.insert_user(*user("before", "before@example.com"))
    backup = tmp_path / "backup.db"
    src, dst = sqlite3.connect(store.path), sqlite3.connect(backup)
    src.backup(dst)  # a consistent copy, WAL included
    src.close()
    dst.close()
    with store.transaction() as tx:
        tx.insert_user(*user("after", "after@example.com"))
    os.replace(backup, store.path)  # an operator restores the backup under the running server
    for suffix in ("-wal", "-shm"):
        Path(store.path + suffix).unlink(missing_ok=True)
    with store.transaction() as tx:
        assert tx.user_by_id("before") is not None
        assert tx.user_by_id("after") is None  # we see the restored file ...
        tx.insert_user(*user("later", "later@example.com"))
    raw = sqlite3.connect(store.path)  # ... and our writes land in it
    assert raw.execute("SELECT count(*) FROM users WHERE id = 'later'").fetchone() == (1,)
    raw.close()


def test_database_files_are_private(store: SQLiteStore) -> None:
    with store.transaction() as tx:
        tx.insert_user(*user("p", "p@example.com"))
    for suffix in ("", "-wal"):
        mode = stat.S_IMODE(os.stat(store.path + suffix).st_mode)
        assert mode == 0o600, (suffix, oct(mode))


def test_only_unique_violations_are_duplicates(store: SQLiteStore) -> None:
    orphan = SessionRecord(id="s", user_id="no-such-user", created_at=1.0, updated_at=1.0)
    with pytest.raises(sqlite3.IntegrityError) as raised, store.transaction() as tx:
        tx.insert_session(orphan)
    assert "FOREIGN KEY" in str(raised.value)
    with store.transaction(write=False) as tx:  # the connection was rolled back and reused
        assert tx.session_by_id("s") is None


def test_a_connection_to_a_replaced_file_is_never_handed_out_again(
    store: SQLiteStore, tmp_path: Path
) -> None:
    with store.transaction() as tx:  # leaves one pooled connection on the original file
        tx.insert_user(*user("old", "old@example.com"))
    old_identity = os.stat(store.path)[stat.ST_DEV], os.stat(store.path)[stat.ST_INO]
    replacement = tmp_path / "replacement.db"
    src, dst = sqlite3.connect(store.path), sqlite3.connect(replacement)
    src.backup(dst)
    src.close()
    dst.close()
    os.replace(replacement, store.path)
    new_identity = os.stat(store.path)[stat.ST_DEV], os.stat(store.path)[stat.ST_INO]
    assert new_identity != old_identity
    # Whoever asks for a connection to the file now at the path gets one to that file, even if
    # the store has not looked at the path since (the race the second review found).
    pooled = store._pool.get(1.0, new_identity)
    try:
        assert pooled.identity == new_identity
    finally:
        store._pool.discard(pooled)
