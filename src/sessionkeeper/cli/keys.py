"""``sessionkeeper keys list | rotate | retire KID``: manage the signing keys in the store."""

from __future__ import annotations

from datetime import UTC, datetime

import typer
from rich.console import Console
from rich.table import Table

from sessionkeeper.cli.options import Database, SigningAlg
from sessionkeeper.service.keyring import KeyRing

app = typer.Typer(help="Manage signing keys.", no_args_is_help=True)
out = Console()


def _keyring(database: str | None, signing_alg: str | None) -> KeyRing:
    from sessionkeeper import settings
    from sessionkeeper.store import open_store

    config = settings.load(database=database, signing_alg=signing_alg)
    store = open_store(config.store.database)
    store.migrate()
    return KeyRing(store, alg=config.tokens.signing_alg)


@app.command("list")
def list_keys(database: Database = None) -> None:
    """Show every key with its status (active signs; published verifies; retired is gone)."""
    ring = _keyring(database, None)
    table = Table("kid", "alg", "status", "created", "retired")
    for key in ring.stored():
        created = datetime.fromtimestamp(key.created_at, UTC).strftime("%Y-%m-%d %H:%M:%S")
        retired = (
            datetime.fromtimestamp(key.retired_at, UTC).strftime("%Y-%m-%d %H:%M:%S")
            if key.retired_at
            else ""
        )
        table.add_row(key.kid, key.alg, key.status, created, retired)
    out.print(table)


@app.command("rotate")
def rotate(database: Database = None, signing_alg: SigningAlg = None) -> None:
    """Make a new active signing key; the old one stays published until retired."""
    ring = _keyring(database, signing_alg)
    try:
        key = ring.rotate()
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"new active key {key.kid} ({key.alg}); running servers pick it up within 30 s")


@app.command("retire")
def retire(kid: str, database: Database = None) -> None:
    """Stop publishing a key: tokens it signed no longer verify."""
    ring = _keyring(database, None)
    try:
        ring.retire(kid)
    except (LookupError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"retired {kid}")
