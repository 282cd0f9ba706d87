"""``sessionkeeper doctor token | config | probe``: why is a logged-in user refused?

Each command builds a :class:`~sessionkeeper.doctor.findings.Report` and prints it as a table or
as JSON (``--json``). Exit codes: 0 healthy, 1 problems found, 2 bad usage (one line on stderr,
never a traceback). The work lives in ``sessionkeeper.doctor``; this module only reads options.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Annotated

import typer

from sessionkeeper.doctor.findings import EXIT_USAGE, Report
from sessionkeeper.doctor.render import console, render_text, to_json
from sessionkeeper.errors import ConfigError

app = typer.Typer(
    help="Explain why a token, a deployment's configuration or a live endpoint refuses a user.",
    no_args_is_help=True,
)

Json = Annotated[
    bool,
    typer.Option("--json", help="Print one JSON document (schema in docs/doctor.md)."),
]
Color = Annotated[
    bool | None,
    typer.Option(
        "--color/--no-color",
        help="Force colour on or off (default: on when stdout is a terminal; NO_COLOR honoured).",
    ),
]
Timeout = Annotated[
    float,
    typer.Option(help="Seconds to wait for each HTTP answer.", min=0.1, max=120.0),
]


def _emit(build: Callable[[], Report], as_json: bool, color: bool | None) -> None:
    """Build the report, print it, exit with its code; a usage error exits 2 with one line."""
    try:
        report = build()
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    if as_json:
        typer.echo(to_json(report))
    else:
        render_text(report, console(sys.stdout, color))
    raise typer.Exit(report.exit_code)


def _read_token(value: str | None, what: str) -> str:
    """A token from the argument, or from stdin for ``-`` (or no argument and a pipe). Reading
    stdin keeps the token out of the shell history and the process list."""
    if value is not None and value != "-":
        return value
    if value is None and sys.stdin.isatty():
        raise ConfigError(f"give {what} as an argument, or - to read it from stdin")
    return sys.stdin.read()


@app.command("token")
def token_command(
    token: Annotated[
        str | None,
        typer.Argument(
            help="The access token, or - to read it from stdin (the default when piped).",
            show_default=False,
        ),
    ] = None,
    issuer: Annotated[
        str | None,
        typer.Option(help="The issuer the API expects, e.g. https://<ref>.supabase.co/auth/v1."),
    ] = None,
    audience: Annotated[
        list[str] | None,
        typer.Option(help="An audience the API accepts; repeatable (default authenticated)."),
    ] = None,
    jwks_url: Annotated[
        str | None, typer.Option(help="Check against the keys at this JWKS URL.")
    ] = None,
    jwks_file: Annotated[
        str | None, typer.Option(help="Check against the keys in this JWKS file.")
    ] = None,
    secret_env: Annotated[
        str | None,
        typer.Option(
            help="Check against the HS256 secret in this environment variable, e.g. SUPABASE_JWT_SECRET."
        ),
    ] = None,
    now: Annotated[
        str | None,
        typer.Option(help="Judge at this time: epoch seconds or ISO 8601 (default: now)."),
    ] = None,
    leeway: Annotated[
        float, typer.Option(help="Seconds of clock skew the API allows.", min=0, max=300)
    ] = 30.0,
    timeout: Timeout = 5.0,
    as_json: Json = False,
    color: Color = None,
) -> None:
    """Decode a token without trusting it and say everything that makes an API refuse it."""
    from sessionkeeper.doctor import keysets
    from sessionkeeper.doctor.timestamps import parse_instant
    from sessionkeeper.doctor.token_checks import Expectations, diagnose_token
    from sessionkeeper.doctor.tokens import decode_untrusted

    def build() -> Report:
        chosen = [o for o, v in (("--jwks-url", jwks_url), ("--jwks-file", jwks_file),
                                 ("--secret-env", secret_env)) if v]  # fmt: skip
        if len(chosen) != 1:
            raise ConfigError(
                "give exactly one key source: --jwks-url, --jwks-file or --secret-env"
                + (f" (got {' and '.join(chosen)})" if chosen else "")
            )
        expect = Expectations(
            now=parse_instant(now) if now is not None else time.time(),
            issuer=issuer,
            audiences=tuple(audience or ("authenticated",)),
            leeway=leeway,
        )
        decoded = decode_untrusted(_read_token(token, "a token"))
        if jwks_url:
            keys = keysets.jwks_url_keys(jwks_url, timeout=timeout)
        elif jwks_file:
            keys = keysets.jwks_file_keys(jwks_file)
        else:
            assert secret_env is not None
            keys = keysets.secret_env_keys(secret_env, os.environ)
        return diagnose_token(decoded, keys, expect)

    _emit(build, as_json, color)


@app.command("config")
def config_command(
    env_file: Annotated[
        list[str] | None,
        typer.Option(
            "--env-file",
            help="An env file of one part (.env.local, .dev.vars, .env); repeatable.",
        ),
    ] = None,
    process_env: Annotated[
        bool,
        typer.Option(
            "--process-env/--no-process-env",
            help="Also read this process's environment (default on).",
        ),
    ] = True,
    as_json: Json = False,
    color: Color = None,
) -> None:
    """Compare the settings of every part: one issuer, keys of that project, secrets kept out of
    the browser, rotation on, reuse interval >= 10 s, app origins allowed."""
    from sessionkeeper.doctor.config_checks import diagnose_config
    from sessionkeeper.doctor.envfiles import process_environment, read_env_file

    def build() -> Report:
        sources = [read_env_file(path) for path in env_file or ()]
        if process_env:
            sources.append(process_environment(os.environ))
        if not sources:
            raise ConfigError("nothing to read: give --env-file F, or drop --no-process-env")
        return diagnose_config(sources)

    _emit(build, as_json, color)


@app.command("probe")
def probe_command(
    base_url: Annotated[
        str,
        typer.Argument(
            help="Where the app is served: the API under /api/, the auth API under /auth/v1."
        ),
    ],
    email: Annotated[str | None, typer.Option(help="Sign in as this user.")] = None,
    password: Annotated[
        str | None,
        typer.Option(
            envvar="SESSIONKEEPER_DOCTOR_PASSWORD",
            help="The user's password (prefer the variable SESSIONKEEPER_DOCTOR_PASSWORD: flags show up in ps).",
            show_envvar=False,
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(help="Use this access token instead of signing in; - reads it from stdin."),
    ] = None,
    endpoint: Annotated[
        list[str] | None,
        typer.Option(help="Also GET this path (or URL) with the token; repeatable."),
    ] = None,
    auth_url: Annotated[
        str | None,
        typer.Option(
            help="The auth API, when not at BASE_URL/auth/v1 (e.g. https://<ref>.supabase.co/auth/v1)."
        ),
    ] = None,
    apikey: Annotated[
        str | None,
        typer.Option(
            envvar="SESSIONKEEPER_DOCTOR_APIKEY",
            help="The project's anon or publishable key, sent as apikey to the auth API (Supabase needs it).",
            show_envvar=False,
        ),
    ] = None,
    whoami_path: Annotated[
        str, typer.Option(help="Where the guard serves whoami.")
    ] = "/api/debug/whoami",
    whoami: Annotated[
        bool, typer.Option("--whoami/--no-whoami", help="Call whoami (default on).")
    ] = True,
    cookie_origin: Annotated[
        str | None,
        typer.Option(
            help="Cookie mode: post the sign-in to BASE_URL/auth/callback as a page on this origin would, check the cookies, and call whoami and each --endpoint with them."
        ),
    ] = None,
    timeout: Timeout = 5.0,
    as_json: Json = False,
    color: Color = None,
) -> None:
    """Check health and JWKS, sign in, call whoami and each --endpoint; report every status."""
    from sessionkeeper.doctor.keysets import require_http_url
    from sessionkeeper.doctor.probe import Target, probe

    def build() -> Report:
        urls = [("BASE_URL", base_url), ("--auth-url", auth_url)]
        urls += [("--endpoint", p) for p in endpoint or () if p.startswith(("http:", "https:"))]
        for name, url in urls:
            if url is not None:
                require_http_url(name, url)
        if token is not None and email is not None:
            raise ConfigError("give --email/--password or --token, not both")
        if cookie_origin is not None:
            from sessionkeeper.origins import origin

            if email is None:
                raise ConfigError("--cookie-origin needs --email/--password (a whole session)")
            if origin(cookie_origin) != cookie_origin.rstrip("/"):
                raise ConfigError(
                    "--cookie-origin: an origin like https://app.example.com (lower case, "
                    "no path, no default port)"
                )
        if email is not None and password is None:
            raise ConfigError("--email needs --password (or SESSIONKEEPER_DOCTOR_PASSWORD)")
        given = _read_token(token, "--token") if token is not None else None
        if given is not None:
            from sessionkeeper.doctor.tokens import clean_token

            given = clean_token(given)
            if not given:
                raise ConfigError("--token: empty token")
        target = Target(
            base_url=base_url,
            auth_url=auth_url,
            whoami_path=whoami_path if whoami else None,
            endpoints=tuple(endpoint or ()),
            email=email,
            password=password if email is not None else None,
            token=given,
            apikey=apikey,
            timeout=timeout,
            cookie_origin=cookie_origin.rstrip("/") if cookie_origin else None,
        )
        return probe(target)

    _emit(build, as_json, color)
