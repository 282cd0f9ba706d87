"""``doctor probe`` against live deployments (auth server + guarded API on loopback).

The acceptance runs against ``sessionkeeper demo`` are in test_demo.py; these cover what the
demo cannot be told to do: a guard without diagnostics, an HS256 server, a server that is not
there, a wrong password, a path that does not exist.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.doctor.conftest import doctor
from tests.doctor.live import Live, live_deployment
from tests.guard.conftest import free_port
from tests.guard.forge import hs256

SECRET = "a-test-only-hs256-secret-of-48-characters-xxxxxx"
ELSEWHERE = {"guard_issuer": "https://elsewhere.example/auth/v1"}


@pytest.fixture
def live(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Live]:
    options: dict[str, Any] = getattr(request, "param", {})
    with live_deployment(tmp_path / "live.db", **options) as deployment:
        yield deployment


def probe(live: Live, *args: str) -> dict[str, Any]:
    outcome = doctor(
        "probe", live.base_url, "--email", live.email, *args, "--json",
        env={"SESSIONKEEPER_DOCTOR_PASSWORD": live.password},
    )  # fmt: skip
    report: dict[str, Any] = outcome.json()
    assert outcome.exit_code == report["exit_code"]
    return report


def facts(report: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {f["name"]: f for f in report["facts"]}


def test_a_working_deployment_is_all_green(live: Live) -> None:
    report = probe(live, "--endpoint", "/api/hello")
    assert report["healthy"], report["findings"]
    assert report["findings"] == []
    rows = facts(report)
    for step in ("health", "jwks", "sign in", "token", "whoami", "/api/hello"):
        assert rows[step]["status"] == "ok", rows[step]
    assert "ada@example.com" in rows["whoami"]["value"]


@pytest.mark.parametrize("live", [{**ELSEWHERE, "diagnostics": False}], indirect=True)
def test_a_refusal_without_diagnostics_says_where_to_look(live: Live) -> None:
    report = probe(live)
    assert report["exit_code"] == 1
    (finding,) = report["findings"]
    assert finding["code"] == "api_refused"
    assert "diagnostics=True" in finding["hint"] and "request refused" in finding["hint"]
    assert facts(report)["whoami"]["value"] == "401 (no X-Auth-Reason)"


@pytest.mark.parametrize("live", [ELSEWHERE], indirect=True)
def test_a_refusal_with_diagnostics_names_the_guards_reason(live: Live) -> None:
    report = probe(live, "--endpoint", "/api/hello")
    codes = [f["code"] for f in report["findings"]]
    assert codes == ["wrong_issuer"]
    finding = report["findings"][0]
    assert finding["details"]["calls"] == ["/api/debug/whoami (401)", "/api/hello (401)"]
    assert f"{live.base_url}/auth/v1" in finding["hint"]


@pytest.mark.parametrize("live", [{"signing_alg": "HS256", "jwt_secret": SECRET}], indirect=True)
def test_an_hs256_server_publishes_no_key_and_that_is_fine(live: Live) -> None:
    report = probe(live)
    assert report["healthy"], report["findings"]
    assert facts(report)["jwks"]["status"] == "info"


def test_a_wrong_password_is_a_sign_in_finding(live: Live) -> None:
    outcome = doctor(
        "probe", live.base_url, "--email", live.email, "--password", "not-the-password", "--json"
    )
    report = outcome.json()
    assert outcome.exit_code == 1
    (finding,) = report["findings"]
    assert finding["code"] == "sign_in_failed"
    assert finding["details"]["error_code"] == "invalid_credentials"
    assert "sessionkeeper users create" in finding["hint"]
    assert "whoami" not in facts(report)


def test_a_given_token_skips_the_sign_in(live: Live) -> None:
    report = probe_with_token(live, live.access_token(), "--endpoint", "/api/hello")
    assert report["healthy"], report["findings"]
    assert facts(report)["sign in"]["value"].startswith("skipped: using the given token")


@pytest.mark.parametrize("live", [{"signing_alg": "HS256", "jwt_secret": SECRET}], indirect=True)
def test_a_given_expired_token_is_explained_twice(live: Live) -> None:
    """By the token check (exp in the past) and by the API's refusal reason."""
    now = int(time.time())
    claims = {"iss": f"{live.base_url}/auth/v1", "sub": "u", "aud": "authenticated",
              "iat": now - 4000, "exp": now - 400}  # fmt: skip
    token = hs256({"alg": "HS256", "typ": "JWT"}, claims, SECRET.encode())
    report = probe_with_token(live, token)
    expired = [f for f in report["findings"] if f["code"] == "expired"]
    assert len(expired) == 2
    assert "expired 6 min" in expired[0]["message"]
    assert expired[1]["details"]["calls"] == ["/api/debug/whoami (401)"]


def probe_with_token(live: Live, token: str, *args: str) -> dict[str, Any]:
    # A password in the environment (set for other runs) does not get in the way of --token.
    outcome = doctor(
        "probe", live.base_url, "--token", "-", *args, "--json", stdin=token,
        env={"SESSIONKEEPER_DOCTOR_PASSWORD": "unused"},
    )  # fmt: skip
    report: dict[str, Any] = outcome.json()
    return report


def test_missing_paths_are_reported(live: Live) -> None:
    report = probe(live, "--whoami-path", "/api/nope/whoami", "--endpoint", "/nope")
    codes = {f["code"]: f["severity"] for f in report["findings"]}
    assert codes == {"whoami_missing": "warning", "endpoint_failed": "error"}


def test_an_unreachable_server_is_a_finding_not_a_traceback() -> None:
    outcome = doctor(
        "probe", f"http://127.0.0.1:{free_port()}", "--token", "x.y.z", "--timeout", "2", "--json"
    )
    assert outcome.exit_code == 1, outcome.stderr
    report = outcome.json()
    assert [f["code"] for f in report["findings"]] == ["unreachable"]
    assert "Traceback" not in outcome.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ftp://x"], "BASE_URL must be an http(s) URL"),
        (["http://x", "--email", "a@b.c"], "--email needs --password"),
        (["http://x", "--email", "a@b.c", "--token", "t"], "not both"),
        (["http://x", "--auth-url", "x"], "--auth-url must be an http(s) URL"),
        (["http://"], "BASE_URL must be an http(s) URL"),
        (["http://[::1/"], "BASE_URL is not a valid URL"),
        (["http://x", "--auth-url", "https://h:port/auth/v1"], "--auth-url is not a valid URL"),
        (["http://x", "--endpoint", "https://[::1/api"], "--endpoint is not a valid URL"),
    ],
)
def test_usage_errors_exit_2_with_one_line(args: list[str], message: str) -> None:
    outcome = doctor("probe", *args)
    assert outcome.exit_code == 2
    assert outcome.stdout == ""
    assert outcome.stderr.startswith("error: ") and message in outcome.stderr
    assert outcome.stderr.count("\n") == 1


def test_credentials_in_a_url_are_a_usage_error_and_never_echoed() -> None:
    """A password in BASE_URL would be printed on every line that names the URL."""
    from typer.testing import CliRunner

    from sessionkeeper.cli.main import app

    for url in (
        "https://ann:hunter2-secret-pw@api.example.com",
        "http://ann:hunter2-secret-pw@[::1/",
    ):
        result = CliRunner().invoke(app, ["doctor", "probe", url])
        assert result.exit_code == 2, result.output
        assert "hunter2-secret-pw" not in result.output
        assert "***@" in result.output or "not a valid URL" in result.output
