"""Stores: one protocol (``base.Store``), one contract test suite, several backends.

``open_store(url)`` picks the backend from the URL scheme: ``sqlite:///path`` (the embedded
default) or ``postgresql://...`` (several server processes sharing one database).
"""

from __future__ import annotations

from typing import TYPE_CHECKING as _TYPE_CHECKING

from sessionkeeper.errors import ConfigError as _ConfigError
from sessionkeeper.store.base import DuplicateError, Store, Transaction

if _TYPE_CHECKING:
    from sessionkeeper.core.sessions import SessionPolicy
    from sessionkeeper.settings import Config


def open_configured_store(config: Config) -> Store:
    """The store ``serve`` runs on: ``--database``, plus ``--session-store`` when set."""
    store = open_store(config.store.database, lock_timeout=config.store.store_lock_timeout)
    if config.store.session_store is None:
        return store
    return with_session_store(
        store,
        config.store.session_store,
        policy=config.sessions.policy(),
        retention=config.sessions.cleanup_retention,
        prefix=config.store.session_store_prefix,
        lock_timeout=config.store.store_lock_timeout,
    )


def with_session_store(
    store: Store,
    url: str,
    *,
    policy: SessionPolicy,
    retention: float,
    prefix: str = "sk:",
    lock_timeout: float = 5.0,
) -> Store:
    """``store`` with sessions and token families moved to the Redis at ``url``."""
    try:
        from sessionkeeper.store.redis_sessions import RedisSessions
        from sessionkeeper.store.split import SplitStore
    except ImportError as exc:  # the optional extra is not installed
        raise _ConfigError(
            "--session-store / SESSIONKEEPER_SESSION_STORE: Redis needs the 'redis' extra: "
            "pip install 'sessionkeeper[redis]'"
        ) from exc
    sessions = RedisSessions(
        url, policy=policy, retention=retention, prefix=prefix, lock_timeout=lock_timeout
    )
    return SplitStore(store, sessions)


def open_store(url: str, *, lock_timeout: float = 5.0) -> Store:
    """Open (not migrate) the store named by ``url``."""
    if url.startswith("sqlite://"):
        from sessionkeeper.store.sqlite import SQLiteStore

        return SQLiteStore.from_url(url)
    if url.startswith(("postgresql://", "postgres://")):
        try:
            from sessionkeeper.store.postgres import PostgresStore
        except ImportError as exc:  # the optional extra is not installed
            raise _ConfigError(
                "--database / SESSIONKEEPER_DATABASE: PostgreSQL needs the 'postgres' extra: "
                "pip install 'sessionkeeper[postgres]'"
            ) from exc
        return PostgresStore(url, lock_timeout=lock_timeout)
    scheme = url.split(":", 1)[0] if ":" in url else url
    raise _ConfigError(
        f"--database / SESSIONKEEPER_DATABASE: unsupported scheme {scheme!r} "
        "(expected sqlite:///path/to/file.db or postgresql://user@host/dbname)"
    )


__all__ = [
    "DuplicateError",
    "Store",
    "Transaction",
    "open_configured_store",
    "open_store",
    "with_session_store",
]
