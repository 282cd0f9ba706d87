"""Stores: one protocol (``base.Store``), one contract test suite, several backends.

``open_store(url)`` picks the backend from the URL scheme: ``sqlite:///path`` today.
"""

from __future__ import annotations

from sessionkeeper.store.base import DuplicateError, Store, Transaction


def open_store(url: str) -> Store:
    """Open (not migrate) the store named by ``url``."""
    from sessionkeeper.errors import ConfigError

    if url.startswith("sqlite://"):
        from sessionkeeper.store.sqlite import SQLiteStore

        return SQLiteStore.from_url(url)
    scheme = url.split(":", 1)[0] if ":" in url else url
    raise ConfigError(
        f"--database / SESSIONKEEPER_DATABASE: unsupported scheme {scheme!r} "
        "(expected sqlite:///path/to/file.db)"
    )


__all__ = ["DuplicateError", "Store", "Transaction", "open_store"]
