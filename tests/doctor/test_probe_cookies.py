"""``doctor probe --cookie-origin``: the cookie way, against real ``sessionkeeper demo`` processes
(cookie mode; bearer mode to show what a cookie sent to a bearer API looks like)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sessionkeeper.doctor.probe import _cookie_problems
from tests.conftest import ServerProcess, spawn_server
from tests.doctor.conftest import doctor
from tests.doctor.test_probe import facts

pytestmark = pytest.mark.integration

EMAIL, PASSWORD = "demo@example.com", "demo-password"


@pytest.fixture(scope="module")
def cookie_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    path = tmp_path_factory.mktemp("probe")
    server = spawn_server(f"sqlite:///{path}/cookie.db", "--mode", "cookie", command="demo")
    yield server
    server.stop()


def probe(server: ServerProcess, origin: str, *args: str) -> dict[str, Any]:
    outcome = doctor(
        "probe", server.base_url, "--email", EMAIL, "--cookie-origin", origin, *args, "--json",
        env={"SESSIONKEEPER_DOCTOR_PASSWORD": PASSWORD},
    )  # fmt: skip
    report: dict[str, Any] = outcome.json()
    assert outcome.exit_code == report["exit_code"]
    return report


def test_a_working_cookie_deployment_is_all_green_and_leaves_no_session(
    cookie_demo: ServerProcess,
) -> None:
    report = probe(cookie_demo, cookie_demo.base_url, "--endpoint", "/api/jobs")
    assert report["exit_code"] == 0, report["findings"]
    rows = facts(report)
    assert rows["bridge"]["status"] == "ok"
    assert "sk-access-token" in rows["bridge"]["value"]
    assert rows["whoami"]["status"] == "ok" and EMAIL in rows["whoami"]["value"]
    assert rows["/api/jobs"]["status"] == "ok"
    signed_out = [line for line in cookie_demo.log_lines if "bridge signed out" in line]
    assert signed_out and "revoked=true" in signed_out[-1]
    text = json.dumps(report)
    assert "eyJ" not in text  # no token, cookie value or not


def test_an_origin_the_bridge_refuses_is_named_with_the_setting_to_fix(
    cookie_demo: ServerProcess,
) -> None:
    report = probe(cookie_demo, "https://app.example.com")
    assert report["exit_code"] == 1
    (finding,) = report["findings"]
    assert finding["code"] == "origin_not_allowed"
    assert "https://app.example.com" in finding["message"]
    assert "SESSIONKEEPER_ALLOWED_ORIGINS" in finding["hint"]
    assert "whoami" not in facts(report)  # no cookies, nothing to call with


def test_cookies_sent_to_a_bearer_api_are_refused_as_missing_token(tmp_path: Path) -> None:
    server = spawn_server(f"sqlite:///{tmp_path}/bearer.db", command="demo")
    try:
        report = probe(server, server.base_url)
    finally:
        server.stop()
    assert report["exit_code"] == 1
    assert facts(report)["bridge"]["status"] == "ok"
    assert [f["code"] for f in report["findings"]] == ["missing_token"]


@pytest.mark.parametrize(
    ("base", "name", "attributes", "problem"),
    [
        (
            "https://app.example.com",
            "sk-access-token",
            {"httponly", "secure", "samesite"},
            "__Host-",
        ),
        ("http://app.example.com", "sk-access-token", {"httponly", "secure", "samesite"}, "never"),
        ("https://app.example.com", "__Host-sk-access-token", {"secure", "samesite"}, "HttpOnly"),
        ("https://app.example.com", "__Host-sk-access-token", {"httponly", "secure"}, "SameSite"),
    ],
)
def test_cookie_attribute_problems(
    base: str, name: str, attributes: set[str], problem: str
) -> None:
    found = _cookie_problems(base, name, attributes)
    assert len(found) == 1 and problem in found[0]


def test_good_cookies_have_no_problems() -> None:
    attributes = {"httponly", "secure", "samesite", "path", "max-age"}
    assert _cookie_problems("https://app.example.com", "__Host-sk-access-token", attributes) == []
    assert (
        _cookie_problems("http://127.0.0.1:8000", "sk-access-token", attributes - {"secure"}) == []
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cookie-origin", "https://app.example.com"], "needs --email"),
        (
            ["--email", EMAIL, "--cookie-origin", "https://app.example.com/path"],
            "an origin like",
        ),
    ],
)
def test_cookie_origin_usage_errors(args: list[str], message: str) -> None:
    outcome = doctor(
        "probe", "http://127.0.0.1:9", *args, env={"SESSIONKEEPER_DOCTOR_PASSWORD": PASSWORD}
    )
    assert outcome.exit_code == 2
    assert message in outcome.stderr
