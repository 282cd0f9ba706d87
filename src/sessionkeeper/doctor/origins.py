"""Browser origins: is every address the app is served from on the auth server's allow-lists?

The app's addresses come from the conventional names (:data:`APP_URL_NAMES`; ``VERCEL_URL`` and
friends are host names, served over https). Two allow-lists are read:

- ``SESSIONKEEPER_CORS_ORIGINS``: origins whose pages may call the auth API. A page served from
  another origin than the auth server and missing here gets every call blocked by the browser.
  ``*`` allows every origin. When the auth server is configured (``SESSIONKEEPER_ISSUER``) and
  the list is unset, only same-origin pages work.
- ``SESSIONKEEPER_ALLOWED_ORIGINS`` (the session bridge's ``Origin`` check): the explicit list
  plus, from the same environment, ``BASE_URL``, ``APP_BASE_URL``, ``NEXT_PUBLIC_APP_URL`` and
  ``https://$VERCEL_URL`` (the names the bridge adds itself).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sessionkeeper.doctor.envfiles import EnvSource, EnvVar
from sessionkeeper.doctor.findings import Finding, Report, Severity, Status
from sessionkeeper.origins import CONVENTIONAL_NAMES, origin

#: Names holding the URL the app is served at.
APP_URL_NAMES = frozenset(
    {
        "BASE_URL",
        "APP_BASE_URL",
        "APP_URL",
        "SITE_URL",
        "PUBLIC_SITE_URL",
        "PUBLIC_APP_URL",
        "NEXT_PUBLIC_APP_URL",
        "NEXT_PUBLIC_SITE_URL",
        "NEXT_PUBLIC_BASE_URL",
        "VITE_APP_URL",
        "VITE_SITE_URL",
        "EXPO_PUBLIC_APP_URL",
        "GOTRUE_SITE_URL",
        "VERCEL_URL",
        "VERCEL_BRANCH_URL",
        "VERCEL_PROJECT_PRODUCTION_URL",
    }
)
#: Names the session bridge adds to SESSIONKEEPER_ALLOWED_ORIGINS by itself.
BRIDGE_NAMES = CONVENTIONAL_NAMES
CORS = "SESSIONKEEPER_CORS_ORIGINS"
ALLOWED = "SESSIONKEEPER_ALLOWED_ORIGINS"
ISSUER = "SESSIONKEEPER_ISSUER"


@dataclass(frozen=True)
class AppOrigin:
    var: EnvVar
    origin: str


def _origin_of(var: EnvVar) -> str | None:
    value = var.value.strip()
    if var.name.startswith("VERCEL_") and "://" not in value:
        value = f"https://{value}"  # Vercel gives host names; deployments are served over https
    return origin(value)


def app_origins(sources: Sequence[EnvSource]) -> list[AppOrigin]:
    """Every absolute app URL found (Vite's ``BASE_URL=/`` is a path, and is skipped)."""
    found = []
    for source in sources:
        for var in source.variables:
            if var.name in APP_URL_NAMES and var.value.strip():
                value = _origin_of(var)
                if value is not None:
                    found.append(AppOrigin(var, value))
    return found


def _entries(var: EnvVar) -> list[str]:
    return [item.strip() for item in var.value.split(",") if item.strip()]


def _listed(var: EnvVar) -> set[str]:
    return {"*" if item == "*" else (origin(item) or item) for item in _entries(var)}


def _misspelled(var: EnvVar) -> dict[str, str]:
    """CORS entries a browser's ``Origin`` can never equal: the server compares exactly, and a
    browser sends the host in lower case and no default port. Keyed by the origin meant."""
    return {
        meant: item
        for item in _entries(var)
        if (meant := origin(item)) is not None and meant != item and item != "*"
    }


def check_origins(report: Report, sources: Sequence[EnvSource]) -> None:
    apps = app_origins(sources)
    for app in apps:
        report.fact(app.var.name, f"app at {app.origin} ({app.var.where})")
    for source in sources:
        issuer = source.get(ISSUER)
        own = origin(issuer.value) if issuer else None
        cors = source.get(CORS)
        if cors is not None:
            misspelled = _misspelled(cors)
            allowed = _listed(cors) - misspelled.keys() | set(misspelled.values())
            report.fact(cors.name, f"{', '.join(sorted(allowed)) or '(empty)'} ({cors.where})")
            if "*" not in allowed:
                others = [a for a in apps if a.origin != own]
                _report_missing(report, cors, allowed, others, misspelled=misspelled)
        elif issuer is not None:
            others = [a for a in apps if own is not None and a.origin != own]
            if others:
                report.fact(
                    CORS, f"not set ({source.label}): same-origin pages only", Status.WARNING
                )
                _report_missing(report, None, set(), others, source)
        bridge = source.get(ALLOWED)
        if bridge is not None:
            allowed = _listed(bridge)
            for name in BRIDGE_NAMES:
                added = source.get(name)
                value = _origin_of(added) if added else None
                if value:
                    allowed.add(value)
            report.fact(bridge.name, f"{', '.join(sorted(allowed))} ({bridge.where}, with the "
                        "bridge's own BASE_URL & co.)")  # fmt: skip
            _report_missing(report, bridge, allowed, apps)


def _report_missing(
    report: Report,
    setting: EnvVar | None,
    allowed: set[str],
    apps: list[AppOrigin],
    source: EnvSource | None = None,
    misspelled: dict[str, str] | None = None,
) -> None:
    missing: dict[str, list[AppOrigin]] = {}
    for app in apps:
        if app.origin not in allowed:
            missing.setdefault(app.origin, []).append(app)
    if not missing:
        return
    name = setting.name if setting else CORS
    where = setting.where if setting else (source.label if source else "")
    seen = "; ".join(
        f"{value} ({', '.join(f'{a.var.name} in {a.var.where}' for a in found)})"
        for value, found in sorted(missing.items())
    )
    listed = sorted(o for o in allowed if o != "*")
    wrong = {meant: item for meant, item in (misspelled or {}).items() if meant in missing}
    fixed = ",".join([*(o for o in listed if o not in wrong.values()), *sorted(missing)])
    if setting is None:
        message = f"{name} is not set ({where}), and the app is served from another origin: {seen}."
    else:
        message = f"Not in {name} ({where}): {seen}."
    if wrong:
        message += (
            f" Listed as {', '.join(sorted(wrong.values()))}: a browser sends its Origin in lower "
            "case without a default port, and the server compares exactly."
        )
    consequence = (
        " The browser blocks the page's calls to the auth server (CORS)."
        if name == CORS
        else " The session bridge refuses sign-ins posted from there (403)."
    )
    report.add(
        Finding(
            "origin_not_allowed",
            Severity.ERROR,
            message + consequence,
            f"Add the origin (scheme://host[:port], no path or trailing slash): {name}={fixed}",
            {"setting": name, "where": where, "missing": sorted(missing), "allowed": listed},
        )
    )
