"""Flags shared by several commands, each with its ``SESSIONKEEPER_*`` equivalent.

Flags default to ``None`` so that an unset flag lets the environment (then the built-in default)
decide; ``settings.load`` does the merging and validation.
"""

from __future__ import annotations

from typing import Annotated

import typer

Database = Annotated[
    str | None,
    typer.Option(
        "--database",
        help="Store URL: sqlite:///file.db or postgresql://user@host/db (env SESSIONKEEPER_DATABASE) (default sqlite:///./sessionkeeper.db)",
    ),
]
SigningAlg = Annotated[
    str | None,
    typer.Option(
        "--signing-alg",
        help="ES256 (default), RS256 or HS256 (env SESSIONKEEPER_SIGNING_ALG); HS256 reads SESSIONKEEPER_JWT_SECRET",
    ),
]
