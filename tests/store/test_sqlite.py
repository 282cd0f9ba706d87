"""Protects the SQLite store: migrations, durability, token-family queries, atomicity, outages."""

from __future__ import annotations

import shutil
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sessionkeeper.errors import ConfigError, StoreUnavailableError
from sessionkeeper.store.migrate import iter_statements, load_migrations
from sessionkeeper.store.sqlite import SQLiteStore
from tests.contract.test_store import T0, increment_updated_at, key, rtoken, session, user


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "sk.db")
    s.migrate()
    yield s
    s.close()


@pytest.fixture
def with_user(store: SQLiteStore) -> SQLiteStore:
    with store.transaction() as tx:
        tx.insert_user(*user())
        tx.insert_session(session())
    return store


# Migrations -------------------------------------------------------------------------------------


def test_migrations_apply_once_and_are_idempotent(tmp_path: Path) -> None:
    names = [m.name for m in load_migrations()]
    assert names and names[0] == "0001_initial.sql"
    first = SQLiteStore(tmp_path / "m.db")
    try:
        assert first.migrate() == names
        assert first.migrate() == []
    finally:
        first.close()
    second = SQLiteStore(tmp_path / "m.db")
    try:
        assert second.migrate() == []
    finally:
        second.close()
    with sqlite3.connect(tmp_path / "m.db") as conn:
        rows = conn.execute("SELECT version, name FROM schema_migrations").fetchall()
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    conn.close()
    assert [r[1] for r in rows] == names
    assert {"users", "identities", "sessions", "refresh_tokens", "signing_keys"} <= tables


def test_migrations_are_numbered_in_order() -> None:
    versions = [m.version for m in load_migrations()]
    assert versions == sorted(versions)
    assert len(set(versions)) == len(versions)


def test_iter_statements_skips_comments_and_blanks() -> None:
    script = "-- header\nCREATE TABLE a (x INT);\n\n-- note\nCREATE INDEX i ON a (x);\n"
    assert list(iter_statements(script)) == ["CREATE TABLE a (x INT)", "CREATE INDEX i ON a (x)"]


def test_wal_mode_is_on(store: SQLiteStore) -> None:
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


# URLs -------------------------------------------------------------------------------------------


def test_from_url(tmp_path: Path) -> None:
    assert SQLiteStore.from_url(f"sqlite:///{tmp_path}/a.db").path == f"{tmp_path}/a.db"
    assert SQLiteStore.from_url("sqlite:///relative.db").path == "relative.db"


@pytest.mark.parametrize("url", ["sqlite:///:memory:", "sqlite://", "sqlite:///", "sqlite:x.db"])
def test_from_url_refuses_memory_and_malformed(url: str) -> None:
    with pytest.raises(ConfigError, match="SESSIONKEEPER_DATABASE"):
        SQLiteStore.from_url(url)


# Durability -------------------------------------------------------------------------------------


def test_data_survives_closing_and_reopening(tmp_path: Path) -> None:
    path = tmp_path / "durable.db"
    first = SQLiteStore(path)
    first.migrate()
    u, identity = user()
    s = session()
    tokens = [rtoken("t1", 1, revoked_at=T0 + 5), rtoken("t2", 2, parent="t1")]
    keys = [key("k1", "published", T0), key("k2", "active", T0 + 1)]
    with first.transaction() as tx:
        tx.insert_user(u, identity)
        tx.insert_session(s)
        for t in tokens:
            tx.insert_refresh_token(t)
        for k in keys:
            tx.insert_key(k)
    first.close()

    second = SQLiteStore(path)
    try:
        assert second.migrate() == []
        with second.transaction(write=False) as tx:
            assert tx.user_by_id("u1") == u
            assert tx.user_by_email("ada@example.com") == u
            assert tx.identities_of("u1") == [identity]
            assert tx.session_by_id("s1") == s
            assert tx.refresh_token_by_hash("hash-t1") == tokens[0]
            assert tx.refresh_token_by_hash("hash-t2") == tokens[1]
            assert tx.list_keys() == keys
    finally:
        second.close()


# Users ------------------------------------------------------------------------------------------


# Sessions and refresh tokens --------------------------------------------------------------------


# Keys -------------------------------------------------------------------------------------------


# Transactions -----------------------------------------------------------------------------------


def test_two_store_objects_on_one_file_lose_no_update(with_user: SQLiteStore) -> None:
    """Like two processes: no shared in-process lock, only SQLite's own write lock."""
    other = SQLiteStore(with_user.path)
    errors: list[str] = []
    start = threading.Barrier(2)
    threads = [
        threading.Thread(target=increment_updated_at, args=(s, 150, start, errors))
        for s in (with_user, other)
    ]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        other.close()
    assert errors == []
    with with_user.transaction(write=False) as tx:
        record = tx.user_by_id("u1")
    assert record is not None
    assert record.updated_at == T0 + 300


# Outages ----------------------------------------------------------------------------------------


def test_store_whose_directory_disappeared_is_unavailable(tmp_path: Path) -> None:
    directory = tmp_path / "data"
    directory.mkdir()
    setup = SQLiteStore(directory / "sk.db")
    setup.migrate()
    setup.close()
    shutil.rmtree(directory)
    gone = SQLiteStore(directory / "sk.db")
    with pytest.raises(StoreUnavailableError):
        gone.ping()
    with pytest.raises(StoreUnavailableError), gone.transaction() as tx:
        tx.user_by_id("u1")
    with pytest.raises(StoreUnavailableError):
        gone.migrate()


def test_store_in_use_whose_directory_disappeared_is_unavailable(tmp_path: Path) -> None:
    directory = tmp_path / "data"
    directory.mkdir()
    in_use = SQLiteStore(directory / "sk.db")
    try:
        in_use.migrate()
        in_use.ping()
        shutil.rmtree(directory)
        with pytest.raises(StoreUnavailableError):
            in_use.ping()
    finally:
        in_use.close()


def test_unopenable_database_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "a-directory.db").mkdir()
    with pytest.raises(StoreUnavailableError):
        SQLiteStore(tmp_path / "a-directory.db").migrate()


def test_garbage_file_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not a database" * 100)
    broken = SQLiteStore(path)
    try:
        with pytest.raises(StoreUnavailableError):
            broken.migrate()
    finally:
        broken.close()


def test_rotation_and_cleanup_lookups_use_indexes(tmp_path: Path) -> None:
    """Both run inside write transactions: a full scan there stalls every writer."""
    import sqlite3

    store = SQLiteStore(tmp_path / "plan.db")
    store.migrate()
    raw = sqlite3.connect(store.path)
    try:
        child = raw.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM refresh_tokens"
            " WHERE parent_id = ? AND revoked_at IS NULL ORDER BY seq DESC LIMIT 1",
            ("t",),
        ).fetchall()
        assert any("refresh_tokens_parent" in str(row) for row in child), child
        spent = raw.execute(
            "EXPLAIN QUERY PLAN SELECT t.id FROM refresh_tokens t"
            " WHERE t.revoked_at IS NOT NULL AND t.revoked_at <= ?"
            " AND NOT EXISTS (SELECT 1 FROM refresh_tokens c"
            "  WHERE c.parent_id = t.id AND c.revoked_at IS NULL) LIMIT ?",
            (1.0, 10),
        ).fetchall()
        assert not any("SCAN c" in str(row) for row in spent), spent
    finally:
        raw.close()
        store.close()
