"""``sessionkeeper demo``: serve's flags plus its own, the printed URL and credentials."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from sessionkeeper.cli.main import app
from tests.conftest import spawn_server


def test_demo_takes_every_serve_flag_and_its_own() -> None:
    runner = CliRunner()
    serve = runner.invoke(app, ["serve", "--help"], env={"COLUMNS": "200"})
    demo = runner.invoke(app, ["demo", "--help"], env={"COLUMNS": "200"})
    assert demo.exit_code == 0
    serve_flags = set(re.findall(r"--[a-z][a-z-]+", serve.output)) - {"--help"}
    demo_flags = set(re.findall(r"--[a-z][a-z-]+", demo.output))
    assert serve_flags and serve_flags <= demo_flags
    assert {"--guard-issuer", "--demo-email", "--demo-password", "--jwt-exp"} <= demo_flags


def test_a_bad_flag_value_is_a_usage_error_not_a_traceback() -> None:
    result = CliRunner().invoke(app, ["demo", "--jwt-exp", "soon"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output


@pytest.mark.integration
def test_the_demo_prints_where_to_go_and_who_to_be_then_serves(tmp_path: Path) -> None:
    server = spawn_server(
        f"sqlite:///{tmp_path}/demo.db", "--demo-password", "printed-password-1", command="demo"
    )
    try:
        text = "".join(server.log_lines)
        assert re.search(rf"open\s+{re.escape(server.base_url)}/\n", text)
        assert "sign in   demo@example.com / printed-password-1" in text
        signed = httpx.post(
            f"{server.auth_url}/token?grant_type=password",
            json={"email": "demo@example.com", "password": "printed-password-1"},
        )
        assert signed.status_code == 200
        token = signed.json()["access_token"]
        jobs = httpx.get(
            f"{server.base_url}/api/jobs", headers={"Authorization": f"Bearer {token}"}
        )
        assert jobs.status_code == 200 and jobs.json()["count"] == 18
        assert token not in text  # nothing secret beyond the demo's own published password
    finally:
        server.stop()
