"""``doctor config`` beyond the fixture setups: the rules behind each check, one at a time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.doctor.conftest import Materials, doctor


def run(tmp_path: Path, files: dict[str, str], *extra: str, env: dict[str, str] | None = None,
        materials: Materials | None = None) -> tuple[int, dict[str, dict[str, Any]]]:  # fmt: skip
    """Write ``files`` (placeholders filled), run ``doctor config`` over them, findings by code."""
    materials = materials or Materials()
    args = []
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(materials.fill(text))
        args += ["--env-file", str(path)]
    outcome = doctor("config", *args, *extra, "--json", env=env)
    assert outcome.exit_code in (0, 1), outcome.stderr
    report = outcome.json()
    return outcome.exit_code, {f["code"]: f for f in report["findings"]}


def test_the_process_environment_is_read_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUPABASE_URL", "https://zzzzzzzzzzzzzzzzzzzz.supabase.co")
    code, found = run(
        tmp_path, {"web/.env.local": "VITE_SUPABASE_URL=https://{{ref:A}}.supabase.co"}
    )
    assert code == 1
    names = [v for i in found["issuer_mismatch"]["details"]["issuers"] for v in i["variables"]]
    assert {"name": "SUPABASE_URL", "where": "environment"} in names
    code, found = run(tmp_path, {"web/.env.local": "VITE_SUPABASE_URL=https://x.supabase.co"},
                      "--no-process-env")  # fmt: skip
    assert code == 0 and found == {}


def test_gotrue_names_are_read(tmp_path: Path) -> None:
    _, found = run(
        tmp_path,
        {"auth.env": "GOTRUE_SECURITY_REFRESH_TOKEN_ROTATION_ENABLED=false\n"
                     "GOTRUE_SECURITY_REFRESH_TOKEN_REUSE_INTERVAL=2\n"},
        "--no-process-env",
    )  # fmt: skip
    assert set(found) == {"rotation_off", "reuse_interval_short"}
    assert (
        "GOTRUE_SECURITY_REFRESH_TOKEN_REUSE_INTERVAL=10" in found["reuse_interval_short"]["hint"]
    )


def test_the_bridge_adds_base_url_and_vercel_url_of_its_own_environment(tmp_path: Path) -> None:
    files = {
        "web/.env.local": "NEXT_PUBLIC_APP_URL=https://app.example.com\n",
        "auth/.env": "SESSIONKEEPER_ISSUER=https://app.example.com/auth/v1\n"
        "SESSIONKEEPER_ALLOWED_ORIGINS=https://admin.example.com\n"
        "BASE_URL=https://app.example.com/dashboard\n"
        "VERCEL_URL=my-app-git-main.vercel.app\n"
        "SESSIONKEEPER_CORS_ORIGINS=*\n",
    }
    code, found = run(tmp_path, files, "--no-process-env")
    assert code == 0, found
    files["web/.env.local"] += "NEXT_PUBLIC_SITE_URL=https://www.example.com\n"
    code, found = run(tmp_path, files, "--no-process-env")
    details = found["origin_not_allowed"]["details"]
    assert details["setting"] == "SESSIONKEEPER_ALLOWED_ORIGINS"
    assert details["missing"] == ["https://www.example.com"]
    assert details["allowed"] == [
        "https://admin.example.com", "https://app.example.com", "https://my-app-git-main.vercel.app",
    ]  # fmt: skip


def test_cors_unset_with_a_cross_origin_app(tmp_path: Path) -> None:
    files = {
        "web/.env.local": "VITE_SUPABASE_URL=https://auth.example.com\nVITE_APP_URL=https://app.example.com\n",
        "auth/.env": "SESSIONKEEPER_ISSUER=https://auth.example.com/auth/v1\n",
    }  # fmt: skip
    _, found = run(tmp_path, files, "--no-process-env")
    assert set(found) == {"origin_not_allowed"}
    assert "is not set" in found["origin_not_allowed"]["message"]
    assert found["origin_not_allowed"]["hint"].endswith(
        "SESSIONKEEPER_CORS_ORIGINS=https://app.example.com"
    )
    files["auth/.env"] += "SESSIONKEEPER_CORS_ORIGINS=*\n"
    assert run(tmp_path, files, "--no-process-env") == (0, {})


def test_keys_whose_names_say_otherwise(tmp_path: Path) -> None:
    materials = Materials()
    path = tmp_path / "api.env"
    path.write_text(materials.fill("SUPABASE_URL=https://{{ref:A}}.supabase.co\n"
                                   "SUPABASE_SERVICE_ROLE_KEY={{anon:A}}\n"
                                   "SUPABASE_ANON_KEY={{service_role:A}}\n"))  # fmt: skip
    report = doctor("config", "--no-process-env", "--env-file", str(path), "--json").json()
    found = {f["details"]["variable"]: f["severity"] for f in report["findings"]}
    assert [f["code"] for f in report["findings"]] == ["key_role_mismatch"] * 2
    assert found == {"SUPABASE_SERVICE_ROLE_KEY": "warning", "SUPABASE_ANON_KEY": "error"}


def test_a_server_only_key_in_a_front_ends_file_without_a_public_name_is_only_noted(
    tmp_path: Path,
) -> None:
    files = {"web/.env.local": "NEXT_PUBLIC_SUPABASE_URL=https://{{ref:A}}.supabase.co\n"
                               "SUPABASE_SERVICE_ROLE_KEY={{service_role:A}}\n"}  # fmt: skip
    code, found = run(tmp_path, files, "--no-process-env")
    assert code == 0
    assert found["service_key_in_frontend_file"]["severity"] == "info"


def test_a_jwt_secret_under_a_public_name_is_exposed(tmp_path: Path) -> None:
    files = {"web/.env.local": "VITE_SUPABASE_JWT_SECRET={{secret:A}}\n"}
    _, found = run(tmp_path, files, "--no-process-env")
    assert set(found) == {"service_key_exposed"}
    assert "mint tokens" in found["service_key_exposed"]["message"]


def test_two_different_jwt_secrets(tmp_path: Path) -> None:
    files = {"auth/.env": "SESSIONKEEPER_JWT_SECRET={{secret:A}}\n",
             "api/.env": "SUPABASE_JWT_SECRET={{secret:B}}\n"}  # fmt: skip
    _, found = run(tmp_path, files, "--no-process-env")
    assert set(found) == {"jwt_secret_mismatch"}
    assert len(found["jwt_secret_mismatch"]["details"]["secrets"]) == 2


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ("SUPABASE_URL=https://{{ref:A}}.supabase.co/auth/v1", "project_url_format"),
        ("SUPABASE_JWT_ISSUER=https://{{ref:A}}.supabase.co", "issuer_format"),
        ("SUPABASE_JWT_ISSUER=https://{{ref:A}}.supabase.co/auth/v1/", "issuer_format"),
    ],
)
def test_url_shapes(tmp_path: Path, line: str, code: str) -> None:
    _, found = run(tmp_path, {"api/.env": line + "\n"}, "--no-process-env")
    assert set(found) == {code}


def test_hs256_without_a_secret_names_the_missing_variable(tmp_path: Path) -> None:
    _, found = run(tmp_path, {"auth/.env": "SESSIONKEEPER_SIGNING_ALG=HS256\n"}, "--no-process-env")
    assert found["invalid_setting"]["details"]["variable"] == "SESSIONKEEPER_JWT_SECRET"


def test_nothing_known_is_a_warning(tmp_path: Path) -> None:
    code, found = run(tmp_path, {"empty.env": "# nothing here\nPORT=3000\n"}, "--no-process-env")
    assert code == 1 and set(found) == {"nothing_to_check"}


@pytest.mark.parametrize(
    "front",
    [
        "https://{{REF:A}}.supabase.co",  # the host in capitals
        "http://{{ref:A}}.supabase.co",  # Supabase answers (and its tokens say) https
        "https://{{ref:A}}.supabase.co:443/",
    ],
)
def test_a_project_url_is_a_place_not_an_issuer(tmp_path: Path, front: str) -> None:
    """Tokens of project A carry iss https://<ref>.supabase.co/auth/v1 however the front end
    spells the project's URL: the API's exact issuer is right, and no hint may say otherwise."""
    materials = Materials()
    text = front.replace("{{REF:A}}", materials.ref("A").upper())
    files = {
        "web/.env.local": f"VITE_SUPABASE_URL={text}\n",
        "api/.env": "SUPABASE_URL=https://{{ref:A}}.supabase.co\n"
        "SUPABASE_JWT_ISSUER=https://{{ref:A}}.supabase.co/auth/v1\n",
    }
    _, found = run(tmp_path, files, "--no-process-env", materials=materials)
    assert set(found) == {"project_url_format"}
    assert found["project_url_format"]["hint"].startswith(
        materials.fill("Set VITE_SUPABASE_URL=https://{{ref:A}}.supabase.co;")
    )
    assert "no path." not in found["project_url_format"]["message"]


@pytest.mark.parametrize(
    "issuer",
    ["https://{{REF:A}}.supabase.co/auth/v1", "http://{{ref:A}}.supabase.co/auth/v1"],
)
def test_a_supabase_issuer_is_compared_exactly(tmp_path: Path, issuer: str) -> None:
    materials = Materials()
    text = issuer.replace("{{REF:A}}", materials.ref("A").upper())
    files = {"api/.env": "SUPABASE_URL=https://{{ref:A}}.supabase.co\n"
                         f"SUPABASE_JWT_ISSUER={text}\n"}  # fmt: skip
    _, found = run(tmp_path, files, "--no-process-env", materials=materials)
    assert set(found) == {"issuer_format", "issuer_mismatch"}  # the guard would refuse them all
    expected = materials.fill("https://{{ref:A}}.supabase.co/auth/v1")
    assert found["issuer_format"]["hint"] == f"Set SUPABASE_JWT_ISSUER={expected}."


def test_cors_entries_are_compared_as_the_server_compares_them(tmp_path: Path) -> None:
    """The auth server's CORS check is an exact match on the browser's Origin header (lower-case
    host, no default port): an entry spelled otherwise allows nothing."""
    files = {
        "web/.env.local": "VITE_SUPABASE_URL=https://auth.example.com\n"
        "VITE_APP_URL=https://app.example.com/\n",
        "auth/.env": "SESSIONKEEPER_ISSUER=https://auth.example.com/auth/v1\n"
        "SESSIONKEEPER_CORS_ORIGINS=https://App.Example.com,http://localhost:5173\n",
    }
    _, found = run(tmp_path, files, "--no-process-env")
    assert set(found) == {"origin_not_allowed"}
    finding = found["origin_not_allowed"]
    assert finding["details"]["missing"] == ["https://app.example.com"]
    assert "Listed as https://App.Example.com" in finding["message"]
    assert finding["hint"].endswith(
        "SESSIONKEEPER_CORS_ORIGINS=http://localhost:5173,https://app.example.com"
    )
    files["auth/.env"] = files["auth/.env"].replace(
        "https://App.Example.com", "https://app.example.com:443"
    )
    _, found = run(tmp_path, files, "--no-process-env")
    assert found["origin_not_allowed"]["details"]["missing"] == ["https://app.example.com"]
    files["auth/.env"] = files["auth/.env"].replace(":443", "")
    assert run(tmp_path, files, "--no-process-env") == (0, {})
