"""Entry point: ``sessionkeeper serve | users | keys | migrate``."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console

from sessionkeeper import __version__
from sessionkeeper.cli import doctor, keys, users
from sessionkeeper.cli.options import Database, SigningAlg
from sessionkeeper.errors import ConfigError, StoreUnavailableError

app = typer.Typer(
    name="sessionkeeper",
    help="Sessions that stay alive: a Supabase-Auth-compatible auth server and its tools.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(users.app, name="users")
app.add_typer(keys.app, name="keys")
app.add_typer(doctor.app, name="doctor")
err = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"sessionkeeper {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    pass


@app.command()
def serve(
    host: Annotated[
        str | None,
        typer.Option(help="Address to listen on (env SESSIONKEEPER_HOST) (default 127.0.0.1)"),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(help="Port (env SESSIONKEEPER_PORT) (default 9999; 0 picks a free one)"),
    ] = None,
    database: Database = None,
    session_store: Annotated[
        str | None,
        typer.Option(
            help="Keep sessions and refresh-token families in Redis, e.g. redis://127.0.0.1:6379/0 (env SESSIONKEEPER_SESSION_STORE) (default: in --database)"
        ),
    ] = None,
    issuer: Annotated[
        str | None,
        typer.Option(
            help="iss claim (env SESSIONKEEPER_ISSUER) (default http://HOST:PORT/auth/v1)"
        ),
    ] = None,
    jwt_exp: Annotated[
        int | None,
        typer.Option(
            "--jwt-exp",
            help="Access-token life in seconds (env SESSIONKEEPER_JWT_EXP) (default 3600)",
        ),
    ] = None,
    reuse_interval: Annotated[
        float | None,
        typer.Option(
            help="Seconds a rotated refresh token may still be used (env SESSIONKEEPER_REUSE_INTERVAL) (default 10)"
        ),
    ] = None,
    rotation: Annotated[
        bool | None,
        typer.Option(
            "--rotation/--no-rotation",
            help="Rotate refresh tokens on use (env SESSIONKEEPER_ROTATION) (default on)",
        ),
    ] = None,
    session_timebox: Annotated[
        str | None,
        typer.Option(
            help="Absolute session life, e.g. 24h; off by default (env SESSIONKEEPER_SESSION_TIMEBOX)"
        ),
    ] = None,
    session_inactivity_timeout: Annotated[
        str | None,
        typer.Option(
            help="End sessions idle this long, e.g. 8h; off by default (env SESSIONKEEPER_SESSION_INACTIVITY_TIMEOUT)"
        ),
    ] = None,
    cleanup_interval: Annotated[
        str | None,
        typer.Option(
            help="How often to delete ended sessions and spent tokens, e.g. 10m; 0 = never (env SESSIONKEEPER_CLEANUP_INTERVAL) (default 10m)"
        ),
    ] = None,
    cleanup_retention: Annotated[
        str | None,
        typer.Option(
            help="How long ended sessions and spent tokens are kept, e.g. 7d (env SESSIONKEEPER_CLEANUP_RETENTION) (default 7d)"
        ),
    ] = None,
    signing_alg: SigningAlg = None,
    cors_origin: Annotated[
        list[str] | None,
        typer.Option(
            "--cors-origin",
            help="Allowed browser origin; repeatable (env SESSIONKEEPER_CORS_ORIGINS, comma-separated)",
        ),
    ] = None,
    allowed_origin: Annotated[
        list[str] | None,
        typer.Option(
            "--allowed-origin",
            help="Origin whose pages may post to the session bridge /auth/callback and use unsafe methods under cookie auth; repeatable (env SESSIONKEEPER_ALLOWED_ORIGINS, comma-separated; BASE_URL, APP_BASE_URL, NEXT_PUBLIC_APP_URL and VERCEL_URL are added when set)",
        ),
    ] = None,
    insecure_dev_cookies: Annotated[
        bool | None,
        typer.Option(
            "--insecure-dev-cookies",
            help="Development only: session cookies without Secure on plain-http loopback requests (env SESSIONKEEPER_INSECURE_DEV_COOKIES)",
        ),
    ] = None,
    disable_signup: Annotated[
        bool | None,
        typer.Option(
            "--disable-signup/--enable-signup",
            help="Refuse /signup (env SESSIONKEEPER_DISABLE_SIGNUP)",
        ),
    ] = None,
    rate_limit_window: Annotated[
        float | None,
        typer.Option(
            help="Rate-limit window in seconds (env SESSIONKEEPER_RATE_LIMIT_WINDOW) (default 300)"
        ),
    ] = None,
    rate_limit_password_per_ip: Annotated[
        int | None,
        typer.Option(
            help="Password grants per IP per window; 0 = off (env SESSIONKEEPER_RATE_LIMIT_PASSWORD_PER_IP) (default 30)"
        ),
    ] = None,
    rate_limit_password_per_email: Annotated[
        int | None,
        typer.Option(
            help="Failed password checks per email per window; 0 = off (env SESSIONKEEPER_RATE_LIMIT_PASSWORD_PER_EMAIL) (default 10)"
        ),
    ] = None,
    rate_limit_signup_per_ip: Annotated[
        int | None,
        typer.Option(
            help="Sign-ups per IP per window; 0 = off (env SESSIONKEEPER_RATE_LIMIT_SIGNUP_PER_IP) (default 30)"
        ),
    ] = None,
    log_level: Annotated[
        str | None, typer.Option(help="debug, info, warning or error (env SESSIONKEEPER_LOG_LEVEL)")
    ] = None,
    log_json: Annotated[
        bool | None,
        typer.Option("--log-json/--log-text", help="JSON log lines (env SESSIONKEEPER_LOG_JSON)"),
    ] = None,
    access_log: Annotated[
        bool | None,
        typer.Option(
            "--access-log/--no-access-log",
            help="One log line per request, with the refusal code (env SESSIONKEEPER_ACCESS_LOG) (default on)",
        ),
    ] = None,
) -> None:
    """Serve the auth API under /auth/v1 (Supabase clients: url=http://HOST:PORT/auth/v1)."""
    from sessionkeeper.cli.serving import run

    run(
        host=host,
        port=port,
        database=database,
        session_store=session_store,
        issuer=issuer,
        jwt_exp=jwt_exp,
        reuse_interval=reuse_interval,
        rotation=rotation,
        session_timebox=session_timebox,
        session_inactivity_timeout=session_inactivity_timeout,
        cleanup_interval=cleanup_interval,
        cleanup_retention=cleanup_retention,
        signing_alg=signing_alg,
        cors_origins=cors_origin or None,
        allowed_origins=allowed_origin or None,
        insecure_dev_cookies=insecure_dev_cookies,
        disable_signup=disable_signup,
        rate_limit_window=rate_limit_window,
        rate_limit_password_per_ip=rate_limit_password_per_ip,
        rate_limit_password_per_email=rate_limit_password_per_email,
        rate_limit_signup_per_ip=rate_limit_signup_per_ip,
        log_level=log_level,
        log_json=log_json,
        access_log=access_log,
    )


class DemoMode(StrEnum):
    bearer = "bearer"
    cookie = "cookie"


def demo(**flags: Any) -> None:
    """Run the demo app: sign-in, Jobs, Contacts and Reports pages on one SQLite file.

    The auth API is at /auth/v1, the guarded API at /api, the app at /. Takes serve's flags;
    --jwt-exp 5 makes silent refresh visible.
    """
    from sessionkeeper.cli.serving import run_demo

    flags["cors_origins"] = flags.pop("cors_origin", None) or None
    flags["allowed_origins"] = flags.pop("allowed_origin", None) or None
    mode = flags.pop("mode", None)
    run_demo(mode=mode.value if mode else "bearer", **flags)


_DEMO_OPTIONS: dict[str, Any] = {
    "mode": Annotated[
        DemoMode | None,
        typer.Option(
            help="bearer: the browser keeps the session and sends Authorization headers; cookie: HttpOnly cookies set by the session bridge /auth/callback (default bearer)"
        ),
    ],
    "guard_issuer": Annotated[
        str | None,
        typer.Option(
            help="Issuer the demo API expects (default: this server's). Another value reproduces the wrong-issuer outage."
        ),
    ],
    "demo_email": Annotated[
        str | None,
        typer.Option(
            help="The demo user (env SESSIONKEEPER_DEMO_EMAIL) (default demo@example.com)"
        ),
    ],
    "demo_password": Annotated[
        str | None,
        typer.Option(
            help="The demo user's password, printed at start (env SESSIONKEEPER_DEMO_PASSWORD) (default demo-password)"
        ),
    ],
}


def _with_serve_options(command: Callable[..., None]) -> Callable[..., None]:
    """Give ``command`` serve's flags (one definition, so the demo takes every serve flag) plus
    the demo's own. Typer reads the signature, so the signature is what is shared."""
    params = list(inspect.signature(serve, eval_str=True).parameters.values())
    params += [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=hint)
        for name, hint in _DEMO_OPTIONS.items()
    ]
    params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in params]
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    return command


app.command("demo")(_with_serve_options(demo))


@app.command("cleanup")
def cleanup_command(
    database: Database = None,
    retention: Annotated[
        str | None,
        typer.Option(
            help="Keep ended sessions and spent tokens this long, e.g. 7d (env SESSIONKEEPER_CLEANUP_RETENTION) (default 7d)"
        ),
    ] = None,
    session_timebox: Annotated[
        str | None,
        typer.Option(help="The timebox serve runs with (env SESSIONKEEPER_SESSION_TIMEBOX)"),
    ] = None,
    session_inactivity_timeout: Annotated[
        str | None,
        typer.Option(
            help="The inactivity timeout serve runs with (env SESSIONKEEPER_SESSION_INACTIVITY_TIMEOUT)"
        ),
    ] = None,
) -> None:
    """Delete ended sessions and spent refresh tokens now (serve also does it every 10 min).

    Give it the session limits serve runs with: a shorter timebox here would delete sessions
    serve still honours.
    """
    from sessionkeeper import settings
    from sessionkeeper.service.cleanup import cleanup
    from sessionkeeper.service.context import AuthContext
    from sessionkeeper.service.keyring import KeyRing
    from sessionkeeper.store import open_store

    config = settings.load(
        database=database,
        cleanup_retention=retention,
        session_timebox=session_timebox,
        session_inactivity_timeout=session_inactivity_timeout,
    )
    store = open_store(config.store.database)
    store.migrate()
    policy = config.sessions.policy()
    ctx = AuthContext(store=store, keyring=KeyRing(store), issuer=config.issuer(), policy=policy)
    report = cleanup(ctx, retention=config.sessions.cleanup_retention)
    typer.echo(
        f"deleted {report.sessions} sessions, {report.tokens} refresh tokens"
        f" and {report.flow_states} sign-in codes"
    )


@app.command()
def migrate(database: Database = None) -> None:
    """Apply pending schema migrations and exit."""
    from sessionkeeper import settings
    from sessionkeeper.store import open_store

    config = settings.load(database=database)
    store = open_store(config.store.database)
    applied = store.migrate()
    typer.echo(f"applied: {', '.join(applied)}" if applied else "schema is up to date")


# sessionkeeper soak (its options live in cli/soak.py)
from sessionkeeper.cli.soak import soak_command  # noqa: E402

app.command("soak")(soak_command)


def main() -> None:
    try:
        app()
    except ConfigError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(2)
    except StoreUnavailableError as exc:
        err.print(f"[bold red]error:[/] the store is unavailable: {exc}", highlight=False)
        sys.exit(3)
