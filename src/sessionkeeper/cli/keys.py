"""``sessionkeeper keys list | rotate | retire KID``: manage the signing keys in the store."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from sessionkeeper.cli.options import Database
from sessionkeeper.core.key_encryption import KeyEncryptionError, is_encrypted
from sessionkeeper.service.keyring import KeyRing

app = typer.Typer(help="Manage signing keys.", no_args_is_help=True)
out = Console()


def _keyring(database: str | None) -> KeyRing:
    from sessionkeeper import settings
    from sessionkeeper.store import open_store

    config = settings.load(database=database)
    store = open_store(config.store.database)
    store.migrate()
    return KeyRing(
        store,
        reload_interval=config.tokens.key_reload_interval,
        cipher=config.tokens.key_cipher(),
    )


@app.command("list")
def list_keys(database: Database = None) -> None:
    """Show every key with its status (active signs; published verifies; retired is gone)."""
    ring = _keyring(database)
    table = Table("kid", "alg", "status", "at rest", "created", "retired")
    for key in ring.stored():
        created = datetime.fromtimestamp(key.created_at, UTC).strftime("%Y-%m-%d %H:%M:%S")
        retired = (
            datetime.fromtimestamp(key.retired_at, UTC).strftime("%Y-%m-%d %H:%M:%S")
            if key.retired_at
            else ""
        )
        at_rest = "encrypted" if is_encrypted(key.material) else "plain"
        table.add_row(key.kid, key.alg, key.status, at_rest, created, retired)
    out.print(table)


@app.command("rotate")
def rotate(
    database: Database = None,
    alg: Annotated[
        str | None,
        typer.Option("--alg", help="ES256 or RS256 (default: the algorithm of the active key)"),
    ] = None,
) -> None:
    """Make a new active signing key; the old one stays published until retired."""
    if alg not in (None, "ES256", "RS256"):
        typer.echo(
            "error: --alg must be ES256 or RS256 (HS256 comes from SESSIONKEEPER_JWT_SECRET)",
            err=True,
        )
        raise typer.Exit(2)
    ring = _keyring(database)
    try:
        key = ring.rotate("RS256" if alg == "RS256" else "ES256" if alg else None)
    except (ValueError, KeyEncryptionError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"new active key {key.kid} ({key.alg}); running servers sign with it within "
        f"{ring.reload_interval:g} s"
    )


@app.command("retire")
def retire(kid: str, database: Database = None) -> None:
    """Stop publishing a key: tokens it signed no longer verify."""
    ring = _keyring(database)
    try:
        ring.retire(kid)
    except (LookupError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"retired {kid}")
