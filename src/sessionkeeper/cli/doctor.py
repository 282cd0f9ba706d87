"""``sessionkeeper doctor token | config | probe``: why is a logged-in user refused?"""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Explain why a token, a deployment's configuration or a live endpoint refuses a user.",
    no_args_is_help=True,
)
