"""Bounded lock waits, stale locks, and lifecycle logs that never contain a token.

Complaints answered: lock deadlocks and lock time-outs after sleep or in the background
(supabase-js #936, #2111; auth0-spa-js #589, #706).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from sessionkeeper.client import FileStorage, RefreshPolicy, Session, SessionAuth, SessionKeeper
from sessionkeeper.clock import ManualClock
from sessionkeeper.logs import KeyValueFormatter
from tests.client.conftest import (
    FAST,
    PASSWORD,
    TOKEN_LIFE,
    Api,
    Keepers,
    new_user,
    refresh_requests,
)
from tests.conftest import ServerProcess

pytestmark = pytest.mark.integration

HOLD_LOCK = """
import sys, time, filelock
lock = filelock.FileLock(sys.argv[1])
lock.acquire()
print("held", flush=True)
time.sleep(60)
"""


def _hold_lock(lock_path: Path) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(lock_path)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "held"
    return holder


def _expired_file_keeper(
    auth: ServerProcess, keepers: Keepers, path: Path, lock_timeout: float
) -> SessionKeeper:
    """A keeper on a session file, signed in, whose token then expires by its clock."""
    clock = ManualClock(1_900_000_000.0)
    policy = RefreshPolicy(**{**vars(FAST), "lock_timeout": lock_timeout})
    keeper = keepers(auth, clock=clock, storage=FileStorage(path), policy=policy)
    keeper.sign_in(new_user(auth), PASSWORD)
    clock.advance(TOKEN_LIFE + 1)
    return keeper


def test_a_hung_lock_holder_delays_a_refresh_by_lock_timeout_at_most(
    auth: ServerProcess, api: Api, keepers: Keepers, tmp_path: Path
) -> None:
    path = tmp_path / "session.json"
    keeper = _expired_file_keeper(auth, keepers, path, lock_timeout=0.3)
    holder = _hold_lock(Path(f"{path}.lock"))
    try:
        started = time.monotonic()
        with httpx.Client(auth=SessionAuth(keeper)) as client:
            assert client.get(f"{api.url}/api/echo").status_code == 200
        assert time.monotonic() - started < 5
    finally:
        holder.kill()
        holder.wait()
    assert refresh_requests(auth) == 1


def test_a_lock_left_by_a_killed_process_is_not_stale(
    auth: ServerProcess, api: Api, keepers: Keepers, tmp_path: Path
) -> None:
    path = tmp_path / "session.json"
    keeper = _expired_file_keeper(auth, keepers, path, lock_timeout=30.0)
    holder = _hold_lock(Path(f"{path}.lock"))
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    started = time.monotonic()
    with httpx.Client(auth=SessionAuth(keeper)) as client:
        assert client.get(f"{api.url}/api/echo").status_code == 200
    assert time.monotonic() - started < 5  # the kernel released the dead holder's lock
    assert not keeper.needs_reauth


def test_lifecycle_logs_say_what_happened_and_never_contain_a_token(
    auth: ServerProcess,
    api: Api,
    keepers: Keepers,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="sessionkeeper.client")
    clock = ManualClock(1_900_000_000.0)
    keeper = keepers(auth, clock=clock, storage=FileStorage(tmp_path / "s.json"))
    seen: list[Session] = []
    keeper.subscribe(lambda _event, session: seen.append(session) if session else None)
    first = keeper.sign_in(new_user(auth), PASSWORD)
    with httpx.Client(auth=SessionAuth(keeper)) as client:
        clock.advance(TOKEN_LIFE / 2 + 1)
        client.get(f"{api.url}/api/echo")  # proactive refresh
        deadline = time.monotonic() + 10
        while keeper.session == first and time.monotonic() < deadline:
            time.sleep(0.01)
        current = keeper.session
        assert current is not None
        keeper.set_session(
            Session(
                "revoked.payload-part.signature-part",
                current.refresh_token,
                current.expires_in,
                current.expires_at,
            )
        )
        client.get(f"{api.url}/api/echo")  # 401 recovery
        api.reject_all(True)
        with pytest.raises(Exception, match="rejected"):
            client.get(f"{api.url}/api/echo")  # needs re-auth
    keeper.sign_out()

    formatter = KeyValueFormatter("%(levelname)s %(name)s %(message)s")
    lines = [formatter.format(record) for record in caplog.records]
    text = "\n".join(lines)
    for message in (
        "signed in",
        "proactive refresh",
        "token refreshed",
        "401: recovering",
        "needs re-authentication",
        "signed out",
    ):
        assert message in text, message
    assert "seconds_left=" in text and "token_age=" in text
    secrets = {s.access_token for s in seen} | {s.refresh_token for s in seen if s.refresh_token}
    assert len(secrets) >= 6
    for secret in secrets:
        assert secret not in text
        assert secret.split(".")[-1] not in text  # not even the signature part
