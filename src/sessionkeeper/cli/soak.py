"""``sessionkeeper soak``: run the soak and fault-injection harness (``sessionkeeper.soak``)."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from sessionkeeper.errors import ConfigError

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"


def soak_command(
    duration: Annotated[
        str, typer.Option(help="How long the users run, e.g. 10m or 120s (set-up not included)")
    ] = "10m",
    users: Annotated[int, typer.Option(min=1, max=2000, help="Simulated users")] = 200,
    jwt_exp: Annotated[
        int, typer.Option("--jwt-exp", min=2, help="Access-token life in seconds")
    ] = 10,
    store: Annotated[
        str,
        typer.Option(
            help="postgres, or postgres+redis (sessions in a private redis-server the soak starts)"
        ),
    ] = "postgres+redis",
    faults: Annotated[
        bool, typer.Option("--faults/--no-faults", help="Apply the fault schedule")
    ] = True,
    revoked_share: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="Share of users signed out everywhere on purpose"),
    ] = 0.1,
    think: Annotated[
        float, typer.Option(min=0.1, help="Mean seconds between a user's bursts of requests")
    ] = 4.0,
    seed: Annotated[int, typer.Option(help="Seed of every random choice")] = 1,
    out: Annotated[
        Path, typer.Option(help="Directory for report.json, report.md, plot.png and the logs")
    ] = Path("soak-report"),
    postgres_url: Annotated[
        str | None,
        typer.Option(
            help=f"Administrative PostgreSQL URL; the soak creates and drops its own database there (env SESSIONKEEPER_SOAK_POSTGRES_URL) (default {DEFAULT_POSTGRES})"
        ),
    ] = None,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Show a progress bar")
    ] = True,
    plot: Annotated[
        bool, typer.Option("--plot/--no-plot", help="Draw plot.png (needs matplotlib)")
    ] = True,
) -> None:
    """Soak and fault-injection run: users, two instances, faults; counts spurious "session expired".

    Needs PostgreSQL (and redis-server for --store postgres+redis). Exits 1 when any spurious
    NEEDS_REAUTH, lost or duplicated request, or late revocation was seen. See docs/soak.md.
    """
    from sessionkeeper.settings import parse_duration
    from sessionkeeper.soak.harness import SoakConfig, run
    from sessionkeeper.soak.users import Behaviour

    try:
        seconds = parse_duration(duration)
    except ValueError as exc:
        raise ConfigError(f"--duration: {exc}") from exc
    if not seconds or seconds < 10:
        raise ConfigError("--duration: at least 10 s")
    if store not in ("postgres", "postgres+redis"):
        raise ConfigError("--store: postgres or postgres+redis")
    if plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError as exc:
            raise ConfigError(
                "--plot needs matplotlib (pip install 'sessionkeeper[dev]'), or pass --no-plot"
            ) from exc
    config = SoakConfig(
        duration=seconds,
        users=users,
        jwt_exp=jwt_exp,
        store=store,
        faults=faults,
        revoked_share=revoked_share,
        seed=seed,
        postgres_url=postgres_url
        or os.environ.get("SESSIONKEEPER_SOAK_POSTGRES_URL")
        or DEFAULT_POSTGRES,
        out_dir=out,
        behaviour=Behaviour(think=think),
        progress=progress,
        plot=plot,
        command=shlex.join(["sessionkeeper", *sys.argv[1:]]),
    )
    result = run(config)
    console = Console()
    counts = result["counts"]
    verdict = result["verdict"]
    console.print(
        f"{'[bold green]PASS' if verdict['passed'] else '[bold red]FAIL'}[/] "
        f"requests {counts['requests']:,} · refreshes {counts['refreshes']:,} · "
        f"spurious NEEDS_REAUTH {counts['spurious_needs_reauth']} · "
        f"lost {counts['lost_requests']} · duplicated {counts['duplicated_side_effects']} · "
        f"revocations told {counts['revocations_told_within_one_request']}/"
        f"{counts['revocations_performed']} · 5xx seen {counts['five_xx_seen_by_users']:,} · "
        f"p50/p99 {counts['latency_ms']['p50']}/{counts['latency_ms']['p99']} ms",
        highlight=False,
    )
    for failure in verdict["failures"]:
        console.print(f"  [red]{failure}[/]", highlight=False)
    console.print(f"report: {out / 'report.md'}", highlight=False)
    if not verdict["passed"]:
        raise typer.Exit(1)
