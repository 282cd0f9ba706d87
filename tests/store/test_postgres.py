"""PostgreSQL-specific behaviour: migrations that wait for each other, and failing fast."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest

from sessionkeeper.errors import StoreUnavailableError
from sessionkeeper.store.postgres import MIGRATION_LOCK, PostgresStore
from tests import backends


@pytest.fixture
def empty_database() -> Iterator[str]:
    with backends.temp_database() as url:
        yield url


def test_migrate_waits_for_another_instance_migrating_longer_than_the_lock_timeout(
    empty_database: str,
) -> None:
    """Instances starting together: one migrates while the other waits, however long."""
    holding = threading.Event()
    release = threading.Event()

    def other_instance() -> None:
        with psycopg.connect(empty_database, autocommit=True) as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            holding.set()
            release.wait(10)

    thread = threading.Thread(target=other_instance)
    thread.start()
    assert holding.wait(10)
    store = PostgresStore(empty_database, lock_timeout=0.2)  # requests would give up at 0.2 s
    try:
        threading.Timer(1.0, release.set).start()
        started = time.monotonic()
        assert store.migrate() == [
            "0001_initial.sql",
            "0002_refresh_token_lookups.sql",
            "0003_flow_states.sql",
        ]
        assert time.monotonic() - started >= 0.9  # it waited for the other instance
        assert store.migrate() == []
    finally:
        release.set()
        thread.join()
        store.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port  # nothing listens once the socket is closed


def test_an_unreachable_database_is_503_and_later_requests_fail_fast() -> None:
    store = PostgresStore(
        f"postgresql://postgres@127.0.0.1:{_closed_port()}/none", pool_timeout=2.0
    )
    try:
        with pytest.raises(StoreUnavailableError):
            store.ping()  # waits for the pool, whose connection attempts are refused
        started = time.monotonic()
        for _ in range(5):
            with pytest.raises(StoreUnavailableError, match="unreachable"):
                store.ping()
        assert time.monotonic() - started < 0.5  # no worker held for the pool timeout
    finally:
        store.close()


def test_transactions_run_read_committed_whatever_the_server_default(empty_database: str) -> None:
    with psycopg.connect(empty_database, autocommit=True) as conn:
        name = empty_database.rsplit("/", 1)[1]
        conn.execute(
            f"ALTER DATABASE {name} SET default_transaction_isolation = 'repeatable read'".encode()
        )
    store = PostgresStore(empty_database)
    try:
        store.migrate()
        with store.transaction() as tx:
            row = tx._run("SHOW transaction_isolation").fetchone()
        assert row["transaction_isolation"] == "read committed"
    finally:
        store.close()
