"""The auth server's settings in an env file: would it start, and does it keep users signed in?

Values are validated by the server's own settings models (``sessionkeeper.settings``), fed only
what the file says (a subclass drops the process-environment source), so the doctor accepts and
refuses exactly what ``sessionkeeper serve`` would. GoTrue's names for the same two knobs are
read too, for a self-hosted Supabase Auth.

Rotation off, or a reuse interval under 10 s, are the two settings that log users out: without
rotation a stolen refresh token lives for ever; with no reuse interval two tabs refreshing at
once look like a replay and the whole session is revoked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from pydantic import ValidationError
from pydantic_settings import BaseSettings

from sessionkeeper import settings
from sessionkeeper.doctor.envfiles import EnvSource, EnvVar
from sessionkeeper.doctor.findings import Finding, Report, Severity, Status

PREFIX = "SESSIONKEEPER_"
MIN_REUSE_INTERVAL = 10.0
#: GoTrue (self-hosted Supabase Auth) names of the settings the doctor checks.
GOTRUE_NAMES = {
    "GOTRUE_SECURITY_REFRESH_TOKEN_ROTATION_ENABLED": "rotation",
    "GOTRUE_SECURITY_REFRESH_TOKEN_REUSE_INTERVAL": "reuse_interval",
}
_ALL_FIELDS = {name for model in settings.MODELS for name in model.model_fields}


def _only_given(model: type[BaseSettings]) -> type[BaseSettings]:
    """``model`` reading nothing but its constructor arguments (no environment, no .env)."""

    def init_only(cls: Any, /, settings_cls: Any, init_settings: Any, *_: Any, **__: Any) -> Any:
        return (init_settings,)

    name = f"Given{model.__name__}"
    isolated = type(name, (model,), {"settings_customise_sources": classmethod(init_only)})
    return cast(type[BaseSettings], isolated)


_MODELS = [(_only_given(model), set(model.model_fields)) for model in settings.MODELS]


@dataclass
class ServerSettings:
    """One source's server settings: the parsed values, and the variables that are invalid."""

    variables: dict[str, EnvVar] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def _located(error: Any) -> tuple[str, str]:
    """The field and message of a validation error; a model-level error names its field as a
    ``field: message`` prefix (the convention of ``sessionkeeper.settings``)."""
    message = str(error.get("msg", "")).removeprefix("Value error, ")
    loc = error.get("loc") or ()
    if loc:
        return str(loc[0]), message
    name, _, rest = message.partition(": ")
    return name, rest or message


def read_server_settings(source: EnvSource) -> ServerSettings:
    """Validate every ``SESSIONKEEPER_*`` (and GoTrue) setting of one source."""
    found = ServerSettings()
    for var in source.variables:
        name = var.name.removeprefix(PREFIX).lower() if var.name.startswith(PREFIX) else None
        name = GOTRUE_NAMES.get(var.name, name)
        if name in _ALL_FIELDS:
            found.variables[name] = var
    for model, names in _MODELS:
        given: dict[str, Any] = {n: v.value for n, v in found.variables.items() if n in names}
        while given:
            try:
                parsed = model(**given)
            except ValidationError as exc:
                bad = dict(_located(e) for e in exc.errors())
                for name, message in bad.items():
                    found.errors.setdefault(name, message)  # the first error is the cause
                if not bad.keys() & given.keys():
                    break  # a model-level error about a field not given: the rest is unknown
                for name in bad:
                    given.pop(name, None)
                continue
            found.values.update({n: getattr(parsed, n) for n in given})
            break
    return found


def check_server_settings(report: Report, source: EnvSource, skip: set[str]) -> ServerSettings:
    """Findings for invalid values, rotation off and a short reuse interval; facts for both."""
    found = read_server_settings(source)
    for name, message in sorted(found.errors.items()):
        var = found.variables.get(name)
        variable = var.name if var else PREFIX + name.upper()
        where = var.where if var else source.label
        if variable in skip:
            continue
        report.add(
            Finding(
                "invalid_setting",
                Severity.ERROR,
                f"{variable} ({where}) is refused by the server: {message}.",
                f"Fix it: `sessionkeeper serve` stops at start-up with this value. "
                f"docs/configuration.md describes {settings.describe(name)}.",
                {"variable": variable, "where": where, "error": message},
            )
        )
    rotation = found.values.get("rotation")
    if rotation is not None:
        var = found.variables["rotation"]
        report.fact(
            var.name,
            f"{'on' if rotation else 'off'} ({var.where})",
            Status.OK if rotation else Status.ERROR,
        )
        if not rotation:
            report.add(_rotation_off(var))
    reuse = found.values.get("reuse_interval")
    if reuse is not None:
        var = found.variables["reuse_interval"]
        short = reuse < MIN_REUSE_INTERVAL
        report.fact(var.name, f"{reuse:g} s ({var.where})", Status.ERROR if short else Status.OK)
        if short:
            report.add(_reuse_short(var, reuse))
    return found


def _rotation_off(var: EnvVar) -> Finding:
    return Finding(
        "rotation_off",
        Severity.ERROR,
        f"Refresh-token rotation is off ({var.name} in {var.where}): a refresh token is reused "
        "for the session's whole life, so a stolen one works until the session ends and a "
        "replay can never be detected.",
        f"Remove {var.name} or set it to true (the default): rotation with a reuse interval "
        "keeps concurrent tabs signed in and detects stolen tokens.",
        {"variable": var.name, "where": var.where},
    )


def _reuse_short(var: EnvVar, seconds: float) -> Finding:
    return Finding(
        "reuse_interval_short",
        Severity.ERROR,
        f"The refresh-token reuse interval is {seconds:g} s ({var.name} in {var.where}): two "
        "tabs, retries or processes refreshing the same token a moment apart look like a "
        "replay, and the whole session is revoked — the user is logged out.",
        f"Set {var.name}={MIN_REUSE_INTERVAL:g} (the default) or more.",
        {
            "variable": var.name,
            "where": var.where,
            "seconds": seconds,
            "minimum": MIN_REUSE_INTERVAL,
        },
    )
