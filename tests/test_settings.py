"""Protects configuration: defaults, SESSIONKEEPER_* variables, overrides, and actionable errors."""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sessionkeeper import settings
from sessionkeeper.errors import ConfigError
from sessionkeeper.settings import describe, load, parse_duration

SECRET = "a-very-secret-value-of-40-bytes-length!!"
UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "": 1.0}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No SESSIONKEEPER_* variable of the surrounding shell leaks into a test."""
    for name in list(os.environ):
        if name.upper().startswith("SESSIONKEEPER_"):
            monkeypatch.delenv(name)


# Defaults ---------------------------------------------------------------------------------------


def test_defaults() -> None:
    config = load()
    assert config.server.host == "127.0.0.1"
    assert config.server.port == 9999
    assert config.server.cors_origins == []
    assert config.server.log_level == "info"
    assert config.server.log_json is False
    assert config.store.database == "sqlite:///./sessionkeeper.db"
    assert config.tokens.issuer is None
    assert config.tokens.jwt_exp == 3600
    assert config.tokens.signing_alg == "ES256"
    assert config.tokens.jwt_secret is None
    assert config.tokens.key_reload_interval == 30.0
    assert config.sessions.rotation is True
    assert config.sessions.reuse_interval == 10.0
    assert config.sessions.session_timebox is None
    assert config.sessions.session_inactivity_timeout is None
    assert config.signup.disable_signup is False
    assert config.signup.password_min_length == 6
    assert config.rate_limits.rate_limit_window == 300.0
    assert config.rate_limits.rate_limit_password_per_ip == 30
    assert config.rate_limits.rate_limit_password_per_email == 10


def test_default_issuer_is_the_servers_own_url() -> None:
    assert load().issuer() == "http://127.0.0.1:9999/auth/v1"
    assert load(host="0.0.0.0", port=8000).issuer() == "http://127.0.0.1:8000/auth/v1"
    assert load(host="::").issuer() == "http://127.0.0.1:9999/auth/v1"
    assert load(issuer="https://auth.example.com/auth/v1").issuer() == (
        "https://auth.example.com/auth/v1"
    )


# Environment ------------------------------------------------------------------------------------


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "SESSIONKEEPER_HOST": "0.0.0.0",
        "SESSIONKEEPER_PORT": "8080",
        "SESSIONKEEPER_CORS_ORIGINS": "https://app.example.com, http://localhost:3000",
        "SESSIONKEEPER_LOG_LEVEL": "debug",
        "SESSIONKEEPER_LOG_JSON": "true",
        "SESSIONKEEPER_DATABASE": "sqlite:////var/lib/sk.db",
        "SESSIONKEEPER_ISSUER": "https://auth.example.com/auth/v1/",
        "SESSIONKEEPER_JWT_EXP": "900",
        "SESSIONKEEPER_SIGNING_ALG": "HS256",
        "SESSIONKEEPER_JWT_SECRET": SECRET,
        "SESSIONKEEPER_KEY_RELOAD_INTERVAL": "5",
        "SESSIONKEEPER_ROTATION": "false",
        "SESSIONKEEPER_REUSE_INTERVAL": "20",
        "SESSIONKEEPER_SESSION_TIMEBOX": "24h",
        "SESSIONKEEPER_SESSION_INACTIVITY_TIMEOUT": "30m",
        "SESSIONKEEPER_DISABLE_SIGNUP": "1",
        "SESSIONKEEPER_PASSWORD_MIN_LENGTH": "12",
        "SESSIONKEEPER_RATE_LIMIT_WINDOW": "60",
        "SESSIONKEEPER_RATE_LIMIT_PASSWORD_PER_IP": "0",
        "SESSIONKEEPER_RATE_LIMIT_PASSWORD_PER_EMAIL": "3",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = load()
    assert config.server.host == "0.0.0.0"
    assert config.server.port == 8080
    assert config.server.cors_origins == ["https://app.example.com", "http://localhost:3000"]
    assert config.server.log_level == "debug"
    assert config.server.log_json is True
    assert config.store.database == "sqlite:////var/lib/sk.db"
    assert config.tokens.issuer == "https://auth.example.com/auth/v1"  # trailing slash dropped
    assert config.tokens.jwt_exp == 900
    assert config.tokens.signing_alg == "HS256"
    assert config.tokens.jwt_secret is not None
    assert config.tokens.jwt_secret.get_secret_value() == SECRET
    assert config.tokens.key_reload_interval == 5.0
    assert config.sessions.rotation is False
    assert config.sessions.reuse_interval == 20.0
    assert config.sessions.session_timebox == 86400.0
    assert config.sessions.session_inactivity_timeout == 1800.0
    assert config.signup.disable_signup is True
    assert config.signup.password_min_length == 12
    assert config.rate_limits.rate_limit_window == 60.0
    assert config.rate_limits.rate_limit_password_per_ip == 0
    assert config.rate_limits.rate_limit_password_per_email == 3


def test_environment_variable_names_are_case_insensitive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("sessionkeeper_port", "7001")
    assert load().server.port == 7001


def test_durations_turned_off_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSIONKEEPER_SESSION_TIMEBOX", "off")
    monkeypatch.setenv("SESSIONKEEPER_SESSION_INACTIVITY_TIMEOUT", "0")
    config = load()
    assert config.sessions.session_timebox is None
    assert config.sessions.session_inactivity_timeout is None


def test_secret_is_not_shown_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSIONKEEPER_JWT_SECRET", SECRET)
    config = load()
    assert SECRET not in repr(config)
    assert SECRET not in str(config.tokens)


# Overrides --------------------------------------------------------------------------------------


def test_explicit_overrides_win_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSIONKEEPER_PORT", "8080")
    monkeypatch.setenv("SESSIONKEEPER_ROTATION", "true")
    monkeypatch.setenv("SESSIONKEEPER_SESSION_TIMEBOX", "1h")
    monkeypatch.setenv("SESSIONKEEPER_CORS_ORIGINS", "https://env.example.com")
    config = load(
        port=7000,
        rotation=False,
        session_timebox="2h",
        cors_origins=["https://flag.example.com"],
    )
    assert config.server.port == 7000
    assert config.sessions.rotation is False
    assert config.sessions.session_timebox == 7200.0
    assert config.server.cors_origins == ["https://flag.example.com"]


def test_none_overrides_fall_back_to_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """An unset CLI flag arrives as None and must not hide the environment variable."""
    monkeypatch.setenv("SESSIONKEEPER_PORT", "8080")
    assert load(port=None, issuer=None).server.port == 8080


def test_valid_override_rescues_an_invalid_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSIONKEEPER_PORT", "not-a-port")
    assert load(port=7000).server.port == 7000


def test_unknown_overrides_are_ignored() -> None:
    assert load(no_such_setting=1).server.port == 9999


# Errors -----------------------------------------------------------------------------------------

# Settings without a CLI flag (secrets stay out of process listings) are named by their
# environment variable alone.
INVALID: list[tuple[str, dict[str, Any], str | None, str]] = [
    # (field, overrides, flag or None, environment variable)
    ("port", {"port": 70000}, "--port", "SESSIONKEEPER_PORT"),
    ("port", {"port": -1}, "--port", "SESSIONKEEPER_PORT"),
    ("log_level", {"log_level": "loud"}, "--log-level", "SESSIONKEEPER_LOG_LEVEL"),
    ("log_json", {"log_json": "sometimes"}, "--log-json/--log-text", "SESSIONKEEPER_LOG_JSON"),
    (
        "cors_origins",
        {"cors_origins": ["ftp://files.example.com"]},
        "--cors-origin",
        "SESSIONKEEPER_CORS_ORIGINS",
    ),
    (
        "cors_origins",
        {"cors_origins": ["https://app.example.com/path"]},
        "--cors-origin",
        "SESSIONKEEPER_CORS_ORIGINS",
    ),
    ("issuer", {"issuer": "auth.example.com"}, "--issuer", "SESSIONKEEPER_ISSUER"),
    ("jwt_exp", {"jwt_exp": 0}, "--jwt-exp", "SESSIONKEEPER_JWT_EXP"),
    ("jwt_exp", {"jwt_exp": 8 * 86400}, "--jwt-exp", "SESSIONKEEPER_JWT_EXP"),
    ("signing_alg", {"signing_alg": "PS256"}, "--signing-alg", "SESSIONKEEPER_SIGNING_ALG"),
    ("jwt_secret", {"signing_alg": "HS256"}, None, "SESSIONKEEPER_JWT_SECRET"),
    (
        "jwt_secret",
        {"signing_alg": "HS256", "jwt_secret": "too-short"},
        None,
        "SESSIONKEEPER_JWT_SECRET",
    ),
    (
        "key_reload_interval",
        {"key_reload_interval": 0},
        None,
        "SESSIONKEEPER_KEY_RELOAD_INTERVAL",
    ),
    ("rotation", {"rotation": "maybe"}, "--rotation/--no-rotation", "SESSIONKEEPER_ROTATION"),
    ("reuse_interval", {"reuse_interval": -1}, "--reuse-interval", "SESSIONKEEPER_REUSE_INTERVAL"),
    (
        "reuse_interval",
        {"reuse_interval": 3601},
        "--reuse-interval",
        "SESSIONKEEPER_REUSE_INTERVAL",
    ),
    (
        "session_timebox",
        {"session_timebox": "soon"},
        "--session-timebox",
        "SESSIONKEEPER_SESSION_TIMEBOX",
    ),
    (
        "session_inactivity_timeout",
        {"session_inactivity_timeout": -5},
        "--session-inactivity-timeout",
        "SESSIONKEEPER_SESSION_INACTIVITY_TIMEOUT",
    ),
    (
        "disable_signup",
        {"disable_signup": "perhaps"},
        "--disable-signup/--enable-signup",
        "SESSIONKEEPER_DISABLE_SIGNUP",
    ),
    (
        "password_min_length",
        {"password_min_length": 0},
        None,
        "SESSIONKEEPER_PASSWORD_MIN_LENGTH",
    ),
    (
        "rate_limit_window",
        {"rate_limit_window": 0},
        "--rate-limit-window",
        "SESSIONKEEPER_RATE_LIMIT_WINDOW",
    ),
    (
        "rate_limit_password_per_ip",
        {"rate_limit_password_per_ip": -1},
        "--rate-limit-password-per-ip",
        "SESSIONKEEPER_RATE_LIMIT_PASSWORD_PER_IP",
    ),
    (
        "rate_limit_password_per_email",
        {"rate_limit_password_per_email": "many"},
        "--rate-limit-password-per-email",
        "SESSIONKEEPER_RATE_LIMIT_PASSWORD_PER_EMAIL",
    ),
]


def assert_names_setting(message: str, field: str, flag: str | None, env: str) -> None:
    expected = f"{flag} / {env}" if flag else env
    assert f"{expected}: " in message
    assert describe(field) == expected
    if flag is None:
        assert f"--{field.replace('_', '-')}" not in message  # no flag that does not exist


@pytest.mark.parametrize(("field", "overrides", "flag", "env"), INVALID)
def test_invalid_override_names_flag_and_env(
    field: str, overrides: dict[str, Any], flag: str | None, env: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load(**overrides)
    assert_names_setting(str(info.value), field, flag, env)


@pytest.mark.parametrize(("field", "overrides", "flag", "env"), INVALID)
def test_invalid_environment_names_flag_and_env(
    monkeypatch: pytest.MonkeyPatch,
    field: str,
    overrides: dict[str, Any],
    flag: str | None,
    env: str,
) -> None:
    for name, value in overrides.items():
        text = ",".join(value) if isinstance(value, list) else str(value)
        monkeypatch.setenv(f"SESSIONKEEPER_{name.upper()}", text)
    with pytest.raises(ConfigError) as info:
        load()
    assert_names_setting(str(info.value), field, flag, env)


def test_config_error_never_shows_the_secret() -> None:
    with pytest.raises(ConfigError) as info:
        load(signing_alg="HS256", jwt_secret="short-but-secret")
    assert "short-but-secret" not in str(info.value)
    assert "32 bytes" in str(info.value)


def test_every_invalid_field_of_a_concern_is_reported() -> None:
    with pytest.raises(ConfigError) as info:
        load(port=-1, log_level="loud")
    assert "--port / SESSIONKEEPER_PORT" in str(info.value)
    assert "--log-level / SESSIONKEEPER_LOG_LEVEL" in str(info.value)


def test_hs256_with_a_long_enough_secret_is_accepted() -> None:
    config = load(signing_alg="HS256", jwt_secret="x" * 32)
    assert config.tokens.signing_alg == "HS256"


def test_flag_names_for_irregular_settings() -> None:
    assert settings.FLAG_NAMES["cors_origins"] == "--cors-origin"
    assert describe("jwt_exp") == "--jwt-exp / SESSIONKEEPER_JWT_EXP"


# parse_duration ---------------------------------------------------------------------------------


@given(st.integers(min_value=1, max_value=10**9), st.sampled_from(sorted(UNITS)))
def test_parse_duration_n_units(n: int, unit: str) -> None:
    assert parse_duration(f"{n}{unit}") == pytest.approx(n * UNITS[unit])
    assert parse_duration(f" {n} {unit} ") == pytest.approx(n * UNITS[unit])


@given(st.integers(min_value=1, max_value=10**9))
def test_parse_duration_plain_numbers_are_seconds(n: int) -> None:
    assert parse_duration(n) == float(n)
    assert parse_duration(float(n)) == float(n)
    assert parse_duration(str(n)) == float(n)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("3600", 3600.0), ("90s", 90.0), ("15m", 900.0), ("24h", 86400.0), ("7d", 604800.0)],
)
def test_parse_duration_documented_examples(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_parse_duration_fractions() -> None:
    assert parse_duration("1.5h") == 5400.0
    assert parse_duration("250ms") == pytest.approx(0.25)


@pytest.mark.parametrize("value", [None, "", "  ", "off", "OFF", "none", "0", 0, 0.0, "0s", "0ms"])
def test_parse_duration_off(value: object) -> None:
    assert parse_duration(value) is None


@pytest.mark.parametrize(
    "value",
    [True, False, -1, -0.5, "-5", "-5m", "5 minutes", "5x", "m", "1.2.3s", "1e3", "1h30m", [1], {}],
)
def test_parse_duration_refuses(value: object) -> None:
    with pytest.raises(ValueError, match=r"duration|negative"):
        parse_duration(value)


@given(st.text(), st.sampled_from("xyzXYZ-+/!#,;_"), st.text())
def test_parse_duration_garbage_raises_value_error(before: str, bad: str, after: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(before + bad + after)


def test_store_settings_refuse_unknown_schemes_naming_flag_and_variable() -> None:
    with pytest.raises(ConfigError, match="--session-store / SESSIONKEEPER_SESSION_STORE"):
        settings.load(session_store="http://127.0.0.1:6379")
    with pytest.raises(ConfigError, match="--database / SESSIONKEEPER_DATABASE"):
        settings.load(database="mysql://localhost/db")
    with pytest.raises(ConfigError, match="SESSIONKEEPER_STORE_LOCK_TIMEOUT"):
        settings.load(store_lock_timeout=0)
    config = settings.load(database="postgresql://u@h/db", session_store="redis://h:6379/0")
    assert config.store.session_store == "redis://h:6379/0"
    assert settings.load(session_store="").store.session_store is None
