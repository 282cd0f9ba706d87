"""``sessionkeeper users create EMAIL``: add a user from the command line."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from sessionkeeper.cli.options import Database
from sessionkeeper.errors import AuthError

app = typer.Typer(help="Manage users.", no_args_is_help=True)


@app.command("create")
def create(
    email: str,
    database: Database = None,
    password_stdin: Annotated[
        bool,
        typer.Option(
            "--password-stdin", help="Read the password from standard input instead of a prompt."
        ),
    ] = False,
) -> None:
    """Create a confirmed user. The password comes from a prompt, or stdin with --password-stdin."""
    from sessionkeeper import settings
    from sessionkeeper.service.context import AuthContext
    from sessionkeeper.service.keyring import KeyRing
    from sessionkeeper.service.signup import create_user
    from sessionkeeper.store import open_store

    if password_stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    config = settings.load(database=database)
    store = open_store(config.store.database)
    store.migrate()
    # No keys and no session: creating a user signs nobody in.
    ctx = AuthContext(
        store=store,
        keyring=KeyRing(store),
        issuer=config.issuer(),
        password_min_length=config.signup.password_min_length,
    )
    try:
        user = create_user(ctx, email=email, password=password)
    except AuthError as exc:
        typer.echo(f"error: {exc.message} ({exc.code})", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"created user {user.email} ({user.id})")
