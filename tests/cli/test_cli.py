"""The command line: settings validation at start-up, users, keys and migrations."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import ServerProcess


def run(
    *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sessionkeeper", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize(
    ("args", "env", "names"),
    [
        (["--jwt-exp", "0"], {}, "--jwt-exp / SESSIONKEEPER_JWT_EXP"),
        (
            [],
            {"SESSIONKEEPER_REUSE_INTERVAL": "-1"},
            "--reuse-interval / SESSIONKEEPER_REUSE_INTERVAL",
        ),
        (["--signing-alg", "HS256"], {}, "SESSIONKEEPER_JWT_SECRET"),
        (
            ["--signing-alg", "HS256"],
            {"SESSIONKEEPER_JWT_SECRET": "short"},
            "SESSIONKEEPER_JWT_SECRET",
        ),
        (["--signing-alg", "PS999"], {}, "--signing-alg / SESSIONKEEPER_SIGNING_ALG"),
        (["--database", "mysql://x"], {}, "--database / SESSIONKEEPER_DATABASE"),
        (["--session-timebox", "soon"], {}, "--session-timebox / SESSIONKEEPER_SESSION_TIMEBOX"),
        (["--cors-origin", "not an origin"], {}, "--cors-origin / SESSIONKEEPER_CORS_ORIGINS"),
        (["--issuer", "ftp://x"], {}, "--issuer / SESSIONKEEPER_ISSUER"),
    ],
)
def test_invalid_settings_stop_start_up_naming_the_setting(
    tmp_path: Path, args: list[str], env: dict[str, str], names: str
) -> None:
    database = [] if "--database" in args else ["--database", f"sqlite:///{tmp_path}/x.db"]
    result = run("serve", "--port", "0", *database, *args, env=env)
    assert result.returncode == 2, result.stderr
    assert names in result.stderr
    assert "Traceback" not in result.stderr


def test_users_create_from_stdin_then_sign_in(
    tmp_path: Path, start_server: Callable[..., ServerProcess]
) -> None:
    db = f"sqlite:///{tmp_path}/users.db"
    created = run(
        "users", "create", "Admin@Example.com", "--database", db, stdin="a-long-passw0rd\n"
    )
    assert created.returncode == 0, created.stderr
    assert "admin@example.com" in created.stdout
    again = run("users", "create", "admin@example.com", "--database", db, stdin="a-long-passw0rd\n")
    assert again.returncode == 1
    assert "user_already_exists" in again.stderr
    weak = run("users", "create", "weak@example.com", "--database", db, stdin="123\n")
    assert weak.returncode == 1 and "weak_password" in weak.stderr

    server = start_server(database=db)
    r = httpx.post(
        f"{server.auth_url}/token?grant_type=password",
        json={"email": "admin@example.com", "password": "a-long-passw0rd"},
    )
    assert r.status_code == 200


def test_keys_rotate_list_retire(
    tmp_path: Path, start_server: Callable[..., ServerProcess]
) -> None:
    db = f"sqlite:///{tmp_path}/keys.db"
    server = start_server(database=db)
    old_kid = httpx.get(f"{server.auth_url}/.well-known/jwks.json").json()["keys"][0]["kid"]

    rotated = run("keys", "rotate", "--database", db)
    assert rotated.returncode == 0, rotated.stderr
    listing = run("keys", "list", "--database", db).stdout
    assert old_kid in listing and "published" in listing and "active" in listing
    new_kid = rotated.stdout.split()[3]
    assert new_kid != old_kid

    refused = run("keys", "retire", new_kid, "--database", db)
    assert refused.returncode == 1 and "active" in refused.stderr
    unknown = run("keys", "retire", "nope", "--database", db)
    assert unknown.returncode == 1 and "no key" in unknown.stderr
    assert run("keys", "retire", old_kid, "--database", db).returncode == 0
    assert "retired" in run("keys", "list", "--database", db).stdout


def test_running_server_picks_up_a_rotation(
    tmp_path: Path, start_server: Callable[..., ServerProcess]
) -> None:
    db = f"sqlite:///{tmp_path}/live.db"
    server = start_server(database=db, env={"SESSIONKEEPER_KEY_RELOAD_INTERVAL": "0.2"})
    before = {
        k["kid"] for k in httpx.get(f"{server.auth_url}/.well-known/jwks.json").json()["keys"]
    }
    assert run("keys", "rotate", "--database", db).returncode == 0
    deadline = time.monotonic() + 10
    while True:
        after = {
            k["kid"] for k in httpx.get(f"{server.auth_url}/.well-known/jwks.json").json()["keys"]
        }
        if len(after) == 2:
            break
        assert time.monotonic() < deadline, "rotation not picked up"
        time.sleep(0.1)
    assert before < after


def test_migrate_and_version(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/m.db"
    first = run("migrate", "--database", db)
    assert first.returncode == 0 and "0001_initial.sql" in first.stdout
    assert "up to date" in run("migrate", "--database", db).stdout
    assert run("--version").stdout.startswith("sessionkeeper ")


def test_listen_socket_is_tcp_so_asyncio_sets_nodelay() -> None:
    import socket

    from sessionkeeper.cli.serving import listen_socket

    sock = listen_socket("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
        assert sock.getsockname()[1] > 0
    finally:
        sock.close()


def test_users_create_changes_no_key_and_starts_no_session(
    tmp_path: Path, start_server: Callable[..., ServerProcess]
) -> None:
    import sqlite3

    db = f"sqlite:///{tmp_path}/rs.db"
    server = start_server("--signing-alg", "RS256", database=db)
    created = run("users", "create", "ops@example.com", "--database", db, stdin="a-long-passw0rd\n")
    assert created.returncode == 0, created.stderr
    raw = sqlite3.connect(f"{tmp_path}/rs.db")
    assert raw.execute("SELECT alg, status FROM signing_keys").fetchall() == [("RS256", "active")]
    assert raw.execute("SELECT count(*) FROM sessions").fetchone() == (0,)
    raw.close()
    r = httpx.post(
        f"{server.auth_url}/token?grant_type=password",
        json={"email": "ops@example.com", "password": "a-long-passw0rd"},
    )
    assert r.status_code == 200
    assert r.json()["access_token"].count(".") == 2


def test_keys_rotate_to_another_algorithm_keeps_the_server_signing(
    tmp_path: Path, start_server: Callable[..., ServerProcess]
) -> None:
    db = f"sqlite:///{tmp_path}/switch.db"
    server = start_server(database=db, env={"SESSIONKEEPER_KEY_RELOAD_INTERVAL": "0.2"})
    rotated = run("keys", "rotate", "--alg", "RS256", "--database", db)
    assert rotated.returncode == 0, rotated.stderr
    assert run("keys", "rotate", "--alg", "HS256", "--database", db).returncode == 2
    time.sleep(0.5)  # one reload interval of the running server (0.2 s)
    r = httpx.post(
        f"{server.auth_url}/signup",
        json={"email": "after-switch@example.com", "password": "a-long-passw0rd"},
    )
    assert r.status_code == 200, r.text
    import jwt

    assert jwt.get_unverified_header(r.json()["access_token"])["alg"] == "RS256"


def test_signing_keys_encrypted_at_rest_with_a_kek(
    tmp_path: Path, start_server: Callable[..., ServerProcess]
) -> None:
    import sqlite3

    db = f"sqlite:///{tmp_path}/kek.db"
    kek = {"SESSIONKEEPER_KEY_ENCRYPTION_KEY": "a" * 40}
    first = start_server(database=db, env=kek)
    jwks = httpx.get(f"{first.auth_url}/.well-known/jwks.json").json()
    first.stop()
    raw = sqlite3.connect(f"{tmp_path}/kek.db")
    [(material,)] = raw.execute("SELECT material FROM signing_keys").fetchall()
    raw.close()
    assert material.startswith("enc:v1:")
    assert "PRIVATE KEY" not in material
    assert "encrypted" in run("keys", "list", "--database", db).stdout

    # Without the KEK the server refuses to start, and says which setting is missing.
    refused = run("serve", "--port", "0", "--database", db)
    assert refused.returncode == 2
    assert "SESSIONKEEPER_KEY_ENCRYPTION_KEY" in refused.stderr
    assert "Traceback" not in refused.stderr
    # With it, the same keys come back.
    again = start_server(database=db, env=kek)
    assert httpx.get(f"{again.auth_url}/.well-known/jwks.json").json() == jwks


def test_cleanup_command_and_background_cleanup(
    tmp_path: Path, start_server: Callable[..., ServerProcess]
) -> None:
    db = f"sqlite:///{tmp_path}/clean.db"
    result = run("cleanup", "--database", db)
    assert result.returncode == 0, result.stderr
    assert "deleted 0 sessions, 0 refresh tokens and 0 sign-in codes" in result.stdout
    too_short = run("cleanup", "--database", db, "--retention", "5m")
    assert too_short.returncode == 2
    assert "--cleanup-retention / SESSIONKEEPER_CLEANUP_RETENTION" in too_short.stderr

    # The server's periodic clean-up runs alongside requests without disturbing them.
    server = start_server("--cleanup-interval", "0.2", database=db)
    for _ in range(5):
        r = httpx.post(
            f"{server.auth_url}/signup",
            json={"email": f"c{time.monotonic_ns()}@example.com", "password": "a-long-passw0rd"},
        )
        assert r.status_code == 200
        time.sleep(0.2)
    assert not any("clean-up failed" in line for line in server.log_lines)


def test_serve_help_names_each_flags_environment_variable() -> None:
    from sessionkeeper import settings

    text = run("serve", "--help", env={"COLUMNS": "250"}).stdout
    for model in settings.MODELS:
        for name in model.model_fields:
            if name not in settings.ENV_ONLY:
                assert f"SESSIONKEEPER_{name.upper()}" in text, name
