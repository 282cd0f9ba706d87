"""Acceptance 2 and 8: OS processes sharing one session file.

Complaints answered: several instances spend the same refresh token and get "Already Used"
(supabase/auth #2136, oidc-client-ts #430); a sign-out in one place is not seen elsewhere.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sessionkeeper.client import AuthEvent, FileStorage, SessionAuth
from tests.client.conftest import (
    PASSWORD,
    REPO,
    Api,
    Events,
    Keepers,
    new_user,
    refresh_requests,
    requests_to,
)
from tests.conftest import API_VERSION, ServerProcess

pytestmark = pytest.mark.integration


class Workers:
    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[str]] = []

    def start(self, *args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.client.worker", *args],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        self.procs.append(proc)
        return proc

    @staticmethod
    def wait_ready(proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"

    @staticmethod
    def result(proc: subprocess.Popen[str]) -> dict[str, object]:
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
        result: dict[str, object] = json.loads(out.strip().splitlines()[-1])
        return result


@pytest.fixture
def workers() -> Iterator[Workers]:
    made = Workers()
    yield made
    for proc in made.procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _expire_in_file(path: Path) -> None:
    """Make the stored session expired by the local clock (the server still accepts it)."""
    data = json.loads(path.read_text())
    data["expires_at"] = data["expires_at"] - 3600
    path.write_text(json.dumps(data))


def test_four_processes_sharing_an_expired_session_file_refresh_once(
    auth: ServerProcess, api: Api, keepers: Keepers, workers: Workers, tmp_path: Path
) -> None:
    path = tmp_path / "session.json"
    keepers(auth, storage=FileStorage(path)).sign_in(new_user(auth), PASSWORD)
    before = json.loads(path.read_text())
    _expire_in_file(path)
    go = tmp_path / "go"
    args = ("calls", "--auth", auth.auth_url, "--api", api.url, "--file", str(path))
    procs = [
        workers.start(*args, "--go", str(go), "--threads", "4", "--each", "5") for _ in range(4)
    ]
    for proc in procs:
        workers.wait_ready(proc)
    go.touch()
    results = [workers.result(proc) for proc in procs]

    assert [r["statuses"] for r in results] == [{"200": 20}] * 4
    assert refresh_requests(auth) == 1
    # One process refreshed; the three others adopted its session from the file.
    assert sorted(len(r["events"]) for r in results) == [1, 1, 1, 1]  # type: ignore[arg-type]
    after = json.loads(path.read_text())
    assert after["refresh_token"] != before["refresh_token"]
    assert after["expires_at"] > before["expires_at"] - 3600


def test_sign_out_clears_memory_and_file_calls_logout_and_other_processes_see_it(
    auth: ServerProcess, api: Api, keepers: Keepers, workers: Workers, tmp_path: Path
) -> None:
    path = tmp_path / "session.json"
    keeper = keepers(auth, storage=FileStorage(path))
    events = Events(keeper)
    session = keeper.sign_in(new_user(auth), PASSWORD)
    with httpx.Client(auth=SessionAuth(keeper)) as client:
        assert client.get(f"{api.url}/api/echo").status_code == 200
    other = workers.start("watch", "--auth", auth.auth_url, "--api", api.url, "--file", str(path))
    workers.wait_ready(other)

    keeper.sign_out()

    assert keeper.session is None
    assert not path.exists()
    assert events.names() == [AuthEvent.SIGNED_IN, AuthEvent.SIGNED_OUT]
    assert any("status=204" in line for line in requests_to(auth, "/logout"))
    # The server ended the session: its refresh token is dead.
    assert session.refresh_token is not None
    gone = httpx.post(
        f"{auth.auth_url}/token?grant_type=refresh_token",
        json={"refresh_token": session.refresh_token},
        headers=API_VERSION,
    )
    assert gone.status_code == 400
    # The other process mirrored the sign-out (within its 0.2 s watch interval).
    result = workers.result(other)
    assert result["error"] in {"signed_out", "not_signed_in"}
    assert result["events"] == ["SIGNED_OUT"]
