"""Versioned schema migrations: numbered SQL files applied once each, in order.

Plain SQL files (not an ORM's autogenerate) so the same files run on every SQL backend and an
operator can read exactly what will change. ``schema_migrations`` records what has been applied.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations() -> list[Migration]:
    found = []
    for entry in resources.files("sessionkeeper.store.migrations").iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append(Migration(version, entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda m: m.version)


CREATE_LEDGER = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
)


def iter_statements(script: str) -> Iterator[str]:
    """Split a migration script into statements (scripts hold plain DDL, no procedural bodies)."""
    code = "\n".join(ln for ln in script.splitlines() if not ln.strip().startswith("--"))
    for chunk in code.split(";"):
        if chunk.strip():
            yield chunk.strip()
