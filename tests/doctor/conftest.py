"""Doctor fixtures: setups on disk with placeholders, filled at test time with fresh keys.

A setup is a folder under ``tests/doctor/fixtures/``: env files, maybe a JWKS file, and a
``setup.json`` saying what to run and what the doctor must find (see fixtures/README.md). No
real secret is committed: every ``{{...}}`` placeholder is replaced by material generated here,
and :class:`Materials` remembers every secret and token it made, for the test that proves none
is ever printed.
"""

from __future__ import annotations

import json
import re
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sessionkeeper.cli.main import app
from sessionkeeper.core.keys import SigningKey
from tests.guard.forge import es256, hs256

FIXTURES = Path(__file__).parent / "fixtures"
NOW = 1_800_000_000
_PLACEHOLDER = re.compile(r"\{\{([a-z_]+)(?::([A-Za-z0-9_-]+))?(?::(\d+))?\}\}")
_TIME = re.compile(r"now([+-]\d+)?")


def setups() -> list[str]:
    return sorted(p.name for p in FIXTURES.iterdir() if (p / "setup.json").is_file())


def _random(length: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


@dataclass
class Materials:
    """Keys, secrets and project refs by name, made on first use, the same for the whole setup."""

    refs: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    keys: dict[str, SigningKey] = field(default_factory=dict)
    #: Every secret or token handed out: none may ever appear in the doctor's output.
    sensitive: list[str] = field(default_factory=list)

    def ref(self, name: str) -> str:
        return self.refs.setdefault(name, _random(20, string.ascii_lowercase))

    def secret(self, name: str, length: int = 48) -> str:
        if name not in self.secrets:
            self.secrets[name] = _random(length)
            self.sensitive.append(self.secrets[name])
        return self.secrets[name]

    def key(self, name: str) -> SigningKey:
        if name not in self.keys:
            self.keys[name] = SigningKey.generate("ES256", kid=name)
        return self.keys[name]

    def keep(self, value: str) -> str:
        self.sensitive.append(value)
        return value

    def api_key(self, role: str, project: str) -> str:
        """A legacy Supabase API key: HS256, signed with the project's JWT secret."""
        claims = {"iss": "supabase", "ref": self.ref(project), "role": role,
                  "iat": NOW - 86400, "exp": NOW + 10 * 365 * 86400}  # fmt: skip
        header = {"alg": "HS256", "typ": "JWT"}
        return self.keep(hs256(header, claims, self.secret(project).encode()))

    def jwks(self, name: str) -> str:
        return json.dumps({"keys": [self.key(name).public_jwk()]})

    def token(self, spec: dict[str, Any]) -> str:
        """A user's access token from a setup's ``token`` spec (claims over the defaults;
        ``"now+60"`` is a time relative to NOW; ``null`` removes a claim)."""
        claims: dict[str, Any] = {
            "iss": "https://{{ref:A}}.supabase.co/auth/v1", "sub": "8d3f7a4e-user",
            "aud": "authenticated", "exp": "now+3600", "iat": "now",
            "email": "ada@example.com", "role": "authenticated", "session_id": "5e55-session",
        }  # fmt: skip
        claims.update(spec.get("claims", {}))
        claims = {k: self.value(v) for k, v in claims.items() if v is not None}
        kind, _, name = spec.get("sign", "es:A").partition(":")
        header: dict[str, Any] = {"alg": "ES256" if kind == "es" else "HS256", "typ": "JWT"}
        header["kid"] = spec.get("kid", name)
        header = {k: v for k, v in {**header, **spec.get("header", {})}.items() if v is not None}
        if kind == "es":
            token = es256(header, claims, self.key(name).material)  # type: ignore[arg-type]
        elif kind == "api":
            role, _, project = name.partition("/")
            return self.api_key(role, project)
        else:
            token = hs256(header, claims, self.secret(name).encode())
        return self.keep(token)

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            match = _TIME.fullmatch(value)
            if match:
                return NOW + int(match.group(1) or 0)
            return self.fill(value)
        return value

    def fill(self, text: str, token: str = "") -> str:
        def replace(match: re.Match[str]) -> str:
            kind, name, size = match.group(1), match.group(2) or "A", match.group(3)
            if kind == "ref":
                return self.ref(name)
            if kind == "secret":
                return self.secret(name, int(size) if size else 48)
            if kind in ("anon", "service_role"):
                return self.api_key(kind, name)
            if kind == "sb_secret":
                return self.keep(f"sb_secret_{_random(32)}")
            if kind == "sb_publishable":
                return f"sb_publishable_{_random(32)}"
            if kind == "jwks":
                return self.jwks(name)
            if kind == "token":
                return token
            raise ValueError(f"unknown placeholder {match.group()}")

        return _PLACEHOLDER.sub(replace, text)


@dataclass
class Setup:
    name: str
    root: Path
    spec: dict[str, Any]
    materials: Materials
    args: list[str]
    stdin: str
    env: dict[str, str]


def materialise(name: str, destination: Path) -> Setup:
    """Copy setup ``name`` to ``destination`` with every placeholder filled."""
    source = FIXTURES / name
    spec = json.loads((source / "setup.json").read_text())
    materials = Materials()
    token = materials.token(spec["token"]) if "token" in spec else ""
    destination.mkdir(parents=True, exist_ok=True)
    for path in source.rglob("*"):
        if path.is_file() and path.name not in ("setup.json",):
            target = destination / path.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(materials.fill(path.read_text(), token))
    args = [materials.fill(a, token) for a in spec["args"]]
    env = {k: materials.fill(v, token) for k, v in spec.get("env", {}).items()}
    stdin = materials.fill(spec.get("stdin", ""), token)
    return Setup(name, destination, spec, materials, args, stdin, env)


@dataclass
class Outcome:
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.stdout)
        return document


def doctor(*args: str, stdin: str = "", env: dict[str, str] | None = None) -> Outcome:
    """``sessionkeeper doctor ARGS`` in-process (CliRunner), with stdout and stderr apart."""
    result = CliRunner().invoke(app, ["doctor", *args], input=stdin, env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Outcome(result.exit_code, result.stdout, result.stderr)


@pytest.fixture
def setup_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], Setup]:
    """Materialise a setup in a temporary folder and run from there (relative paths work)."""

    def factory(name: str) -> Setup:
        made = materialise(name, tmp_path / name)
        monkeypatch.chdir(made.root)
        return made

    return factory
