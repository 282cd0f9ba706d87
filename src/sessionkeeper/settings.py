"""Settings: one typed model per concern, loaded from ``SESSIONKEEPER_*`` variables and CLI flags.

Each model validates at start-up; :func:`load` turns a validation failure into a ``ConfigError``
whose message names both the flag and the environment variable, so a bad deployment stops with a
sentence an operator can act on instead of starting in a half-working state.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from sessionkeeper.core.key_encryption import MIN_KEK_BYTES, KeyCipher
from sessionkeeper.core.keys import MIN_HMAC_SECRET_BYTES
from sessionkeeper.core.sessions import SessionPolicy
from sessionkeeper.errors import ConfigError
from sessionkeeper.origins import AllowedOrigins, origin

_DURATION_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: object) -> float | None:
    """Seconds from ``3600``, ``"90s"``, ``"15m"``, ``"24h"`` or ``"7d"``.

    ``None``, ``""``, ``0`` and ``"off"`` mean the limit is off (``None``).
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 3600, 90s, 15m, 24h or 7d")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        if value.strip().lower() in ("", "off", "none", "0"):
            return None
        match = _DURATION_RE.fullmatch(value)
        if match is None:
            raise ValueError(
                f"expected a duration such as 3600, 90s, 15m, 24h or 7d, got {value!r}"
            )
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    else:
        raise ValueError("expected a duration such as 3600, 90s, 15m, 24h or 7d")
    if seconds < 0:
        raise ValueError("must not be negative")
    return seconds or None


def _split_list(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class _Base(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SESSIONKEEPER_", extra="ignore")


class ServerSettings(_Base):
    host: str = "127.0.0.1"
    port: int = Field(9999, ge=0, le=65535)
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_json: bool = False
    access_log: bool = True

    _split = field_validator("cors_origins", mode="before")(lambda v: _split_list(v))

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for item in value:
            if item != "*" and not re.fullmatch(r"https?://[^/\s]+", item):
                raise ValueError(f"{item!r} is not an origin like https://app.example.com")
        return value


class StoreSettings(_Base):
    database: str = "sqlite:///./sessionkeeper.db"
    session_store: str | None = None
    session_store_prefix: str = Field("sk:", min_length=1, max_length=64)
    store_lock_timeout: float = Field(5.0, gt=0, le=60)

    @field_validator("database")
    @classmethod
    def _database(cls, value: str) -> str:
        if not value.startswith(("sqlite://", "postgresql://", "postgres://")):
            raise ValueError(
                "expected sqlite:///path/to/file.db or postgresql://user@host:5432/dbname"
            )
        return value

    @field_validator("session_store")
    @classmethod
    def _session_store(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        assert value is not None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("expected redis://host:6379/0 (or rediss://, unix://)")
        return value


class TokenSettings(_Base):
    issuer: str | None = None
    jwt_exp: int = Field(3600, ge=1, le=7 * 86400)
    signing_alg: Literal["ES256", "RS256", "HS256"] = "ES256"
    jwt_secret: SecretStr | None = None
    key_encryption_key: SecretStr | None = None
    key_reload_interval: float = Field(30.0, gt=0)

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"https?://\S+", value):
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value.rstrip("/") if value else value

    @field_validator("key_encryption_key")
    @classmethod
    def _kek(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < MIN_KEK_BYTES:
            raise ValueError(f"must be at least {MIN_KEK_BYTES} bytes")
        return value

    def key_cipher(self) -> KeyCipher | None:
        kek = self.key_encryption_key
        return KeyCipher(kek.get_secret_value()) if kek else None

    @model_validator(mode="after")
    def _secret(self) -> TokenSettings:
        if self.signing_alg == "HS256":
            if self.jwt_secret is None:
                raise ValueError("jwt_secret: HS256 needs SESSIONKEEPER_JWT_SECRET to be set")
            if len(self.jwt_secret.get_secret_value().encode()) < MIN_HMAC_SECRET_BYTES:
                raise ValueError(f"jwt_secret: must be at least {MIN_HMAC_SECRET_BYTES} bytes")
        return self


class SessionSettings(_Base):
    rotation: bool = True
    reuse_interval: float = Field(10.0, ge=0, le=3600)
    session_timebox: float | None = None
    session_inactivity_timeout: float | None = None
    cleanup_interval: float | None = 600.0
    cleanup_retention: float = 7 * 86400.0

    _durations = field_validator(
        "session_timebox",
        "session_inactivity_timeout",
        "cleanup_interval",
        "cleanup_retention",
        mode="before",
    )(lambda v: parse_duration(v))

    def policy(self) -> SessionPolicy:
        return SessionPolicy(
            rotation=self.rotation,
            reuse_interval=self.reuse_interval,
            timebox=self.session_timebox,
            inactivity_timeout=self.session_inactivity_timeout,
        )

    @field_validator("cleanup_retention")
    @classmethod
    def _retention(cls, value: float | None) -> float:
        if value is None or value < 3600:
            raise ValueError("must be at least 1h (revoked tokens are kept that long at least)")
        return value


class BridgeSettings(_Base):
    """The session bridge (``/auth/callback``) and cookie mode.

    ``allowed_origins`` is the explicit half of the bridge's ``Origin`` allow-list; the
    conventional ``BASE_URL``, ``APP_BASE_URL``, ``NEXT_PUBLIC_APP_URL`` and ``VERCEL_URL`` are
    added when set (:meth:`allowed`). ``insecure_dev_cookies`` drops ``Secure`` from the session
    cookies, and only on plain-http requests to a loopback host: a development setting that
    must be asked for by name, never a fallback.
    """

    allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    insecure_dev_cookies: bool = False

    _split = field_validator("allowed_origins", mode="before")(lambda v: _split_list(v))

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for item in value:
            if origin(item) is None:
                raise ValueError(f"{item!r} is not an origin like https://app.example.com")
            parts = urlsplit(item)
            if parts.path not in ("", "/") or parts.query or parts.fragment:
                raise ValueError(f"{item!r}: an origin has no path (https://app.example.com)")
        return value

    def allowed(self, environ: Mapping[str, str] | None = None) -> AllowedOrigins:
        """The explicit list plus the conventional app-URL variables of ``environ``."""
        return AllowedOrigins.from_settings(
            self.allowed_origins, os.environ if environ is None else environ
        )


class SignupSettings(_Base):
    disable_signup: bool = False
    password_min_length: int = Field(6, ge=1, le=256)


class RateLimitSettings(_Base):
    """Limits on the endpoints that cost an argon2 hash. 0 turns a limit off.

    Per IP, every attempt counts. Per email, only failed password checks count, so a user who
    knows their password is not locked out by their own successful sign-ins.
    """

    rate_limit_window: float = Field(300.0, gt=0)
    rate_limit_password_per_ip: int = Field(30, ge=0)
    rate_limit_password_per_email: int = Field(10, ge=0)
    rate_limit_signup_per_ip: int = Field(30, ge=0)


MODELS: tuple[type[BaseSettings], ...] = (
    ServerSettings,
    StoreSettings,
    TokenSettings,
    SessionSettings,
    SignupSettings,
    RateLimitSettings,
    BridgeSettings,
)
"""Every concern's model: what the docs and ``--help`` must cover."""


@dataclass(frozen=True)
class Config:
    server: ServerSettings
    store: StoreSettings
    tokens: TokenSettings
    sessions: SessionSettings
    signup: SignupSettings
    rate_limits: RateLimitSettings
    bridge: BridgeSettings

    def issuer(self) -> str:
        """The configured issuer, or the URL the server is reachable at (``.../auth/v1``)."""
        if self.tokens.issuer:
            return self.tokens.issuer
        host = self.server.host if self.server.host not in ("0.0.0.0", "::") else "127.0.0.1"  # noqa: S104
        return f"http://{host}:{self.server.port}/auth/v1"


M = TypeVar("M", bound=_Base)

# Settings whose CLI flag is not simply --field-name.
FLAG_NAMES = {
    "cors_origins": "--cors-origin",
    "allowed_origins": "--allowed-origin",
    "insecure_dev_cookies": "--insecure-dev-cookies",
    "rotation": "--rotation/--no-rotation",
    "disable_signup": "--disable-signup/--enable-signup",
    "access_log": "--access-log/--no-access-log",
    "log_json": "--log-json/--log-text",
}


# Settings read from the environment only: the secrets (which must not appear in a process
# listing) and a few rarely changed knobs.
ENV_ONLY = {
    "jwt_secret",
    "key_encryption_key",
    "key_reload_interval",
    "password_min_length",
    "session_store_prefix",
    "store_lock_timeout",
}


def describe(field: str) -> str:
    """How an operator sets ``field``: ``--flag / SESSIONKEEPER_FIELD``."""
    env = f"SESSIONKEEPER_{field.upper()}"
    if field in ENV_ONLY:
        return env
    flag = FLAG_NAMES.get(field, "--" + field.replace("_", "-"))
    return f"{flag} / {env}"


def _build(model: type[M], overrides: dict[str, Any]) -> M:
    mine = {k: v for k, v in overrides.items() if k in model.model_fields and v is not None}
    try:
        return model(**mine)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = [str(part) for part in err["loc"]]
            message = err["msg"].removeprefix("Value error, ")
            field = loc[0] if loc else message.split(":", 1)[0]
            if not loc and ":" in message:
                message = message.split(":", 1)[1].strip()
            problems.append(f"{describe(field)}: {message}")
        raise ConfigError("invalid setting " + "; ".join(problems)) from None


def load(**overrides: Any) -> Config:
    """Build every concern's settings; CLI values (``overrides``) win over the environment."""
    return Config(
        server=_build(ServerSettings, overrides),
        store=_build(StoreSettings, overrides),
        tokens=_build(TokenSettings, overrides),
        sessions=_build(SessionSettings, overrides),
        signup=_build(SignupSettings, overrides),
        rate_limits=_build(RateLimitSettings, overrides),
        bridge=_build(BridgeSettings, overrides),
    )
