"""The bridge's ``Origin`` allow-list: explicit configuration plus the conventional names."""

from __future__ import annotations

import pytest

from sessionkeeper import settings
from sessionkeeper.errors import ConfigError
from sessionkeeper.origins import AllowedOrigins


def allowed(env: dict[str, str], explicit: list[str] | None = None) -> AllowedOrigins:
    return AllowedOrigins.from_settings(explicit or [], env)


def test_an_explicit_origin_is_allowed_and_another_is_not() -> None:
    origins = allowed({}, ["https://app.example.com"])
    assert origins.check("https://app.example.com").allowed
    verdict = origins.check("https://other.example.com")
    assert (verdict.allowed, verdict.reason) == (False, "origin_not_allowed")


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "origin_missing"),
        ("", "origin_missing"),
        ("null", "origin_null"),
        ("NULL", "origin_null"),
    ],
)
def test_null_and_missing_origins_are_refused(header: str | None, reason: str) -> None:
    verdict = allowed({}, ["https://app.example.com"]).check(header)
    assert (verdict.allowed, verdict.reason) == (False, reason)


def test_a_vercel_preview_domain_is_allowed_through_vercel_url() -> None:
    origins = allowed({"VERCEL_URL": "my-app-git-feature-team.vercel.app"})
    assert origins.check("https://my-app-git-feature-team.vercel.app").allowed
    assert not origins.check("http://my-app-git-feature-team.vercel.app").allowed
    assert not origins.check("https://my-app-git-other-team.vercel.app").allowed


@pytest.mark.parametrize("name", ["BASE_URL", "APP_BASE_URL", "NEXT_PUBLIC_APP_URL"])
def test_each_conventional_app_url_is_added(name: str) -> None:
    origins = allowed({name: "https://App.Example.com:443/some/path/"})
    assert origins.origins == frozenset({"https://app.example.com"})


def test_a_conventional_name_holding_a_path_or_junk_is_skipped() -> None:
    assert (
        allowed({"BASE_URL": "/", "APP_BASE_URL": "not a url", "VERCEL_URL": "a b"}).origins
        == frozenset()
    )


def test_other_names_are_not_read() -> None:
    assert (
        allowed({"SITE_URL": "https://site.example.com", "ORIGIN": "https://x.example"}).origins
        == frozenset()
    )


def test_entries_are_normalised_to_what_browsers_send() -> None:
    origins = AllowedOrigins(["HTTPS://App.Example.COM:443", "http://localhost:80"])
    assert origins.check("https://app.example.com").allowed
    assert origins.check("http://localhost").allowed
    assert not origins.check("https://app.example.com:443").allowed  # browsers never send this


def test_the_setting_is_validated_with_a_message_naming_it() -> None:
    with pytest.raises(ConfigError, match="--allowed-origin / SESSIONKEEPER_ALLOWED_ORIGINS"):
        settings.load(allowed_origins=["https://app.example.com/path"])
    with pytest.raises(ConfigError, match="SESSIONKEEPER_ALLOWED_ORIGINS"):
        settings.load(allowed_origins=["app.example.com"])


def test_the_setting_reads_a_comma_separated_environment_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "SESSIONKEEPER_ALLOWED_ORIGINS", "https://a.example.com, https://b.example.com"
    )
    monkeypatch.setenv("NEXT_PUBLIC_APP_URL", "https://c.example.com")
    config = settings.load()
    assert config.bridge.allowed().origins == frozenset(
        {"https://a.example.com", "https://b.example.com", "https://c.example.com"}
    )
