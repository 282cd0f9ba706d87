"""Failures around the refresh that are not the issuer's answer (found in review).

A full disk, a corrupt shared file, a proxy's HTML 404, a flight that dies with a TimeoutError:
none of them may lose the session, sign the user out, or turn every call into a new refresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from sessionkeeper.client import (
    AuthEvent,
    FileStorage,
    IssuerUnavailableError,
    MemoryStorage,
    Session,
    SessionKeeper,
    SessionStorage,
)
from sessionkeeper.clock import ManualClock
from tests.client.conftest import (
    FAST,
    PASSWORD,
    TOKEN_LIFE,
    new_user,
    refresh_requests,
    requests_to,
)
from tests.conftest import ServerProcess


def _signed_in(
    auth: ServerProcess, storage: SessionStorage | None = None, **options: Any
) -> tuple[SessionKeeper, ManualClock, list[AuthEvent]]:
    """A keeper on a manual clock, signed in as a new user, recording its events."""
    clock = ManualClock(time.time())
    keeper = SessionKeeper(auth.auth_url, storage=storage, clock=clock, policy=FAST, **options)
    events: list[AuthEvent] = []
    keeper.subscribe(lambda event, _: events.append(event))
    keeper.sign_in(new_user(auth), PASSWORD)
    return keeper, clock, events


class FullDisk(MemoryStorage):
    """Saves fail with ENOSPC while ``failing`` is set."""

    failing = False

    def save(self, session: Session | None) -> None:
        if self.failing:
            raise OSError(errno.ENOSPC, "No space left on device")
        super().save(session)


def test_a_failed_save_keeps_the_refreshed_session_and_does_not_storm(
    auth: ServerProcess,
) -> None:
    storage = FullDisk()
    keeper, clock, events = _signed_in(auth, storage)
    before = refresh_requests(auth)
    storage.failing = True
    clock.advance(TOKEN_LIFE - 5)  # inside the proactive margin: each call may refresh
    headers = {keeper.get_authorization() for _ in range(20)}
    assert len(headers) == 1  # every call got the refreshed token, kept in memory
    assert refresh_requests(auth) - before == 1  # one grant, not one per call
    assert events == [AuthEvent.SIGNED_IN, AuthEvent.TOKEN_REFRESHED]
    keeper.close()


def test_a_corrupt_shared_file_is_not_a_sign_out(auth: ServerProcess, tmp_path: Path) -> None:
    path = tmp_path / "session.json"
    keeper, clock, events = _signed_in(auth, FileStorage(path))
    path.write_bytes(b'{"access_token": "trunc')  # another writer died mid-write
    time.sleep(FAST.watch_interval + 0.05)
    assert keeper.get_authorization().startswith("Bearer ")
    clock.advance(TOKEN_LIFE + 1)  # expired: the refresh uses the session held in memory
    assert keeper.get_authorization().startswith("Bearer ")
    assert events == [AuthEvent.SIGNED_IN, AuthEvent.TOKEN_REFRESHED]
    assert FileStorage(path).load() is not None  # the refresh repaired the file
    keeper.close()


def test_a_4xx_without_an_auth_error_code_is_transient(auth: ServerProcess) -> None:
    """An HTML 404 from a proxy in front of the auth server says nothing about the session."""

    def proxy(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/token") and request.url.params.get("grant_type") == (
            "refresh_token"
        ):
            return httpx.Response(404, text="<html>Not Found</html>")
        return httpx.Client().send(request)

    keeper, clock, events = _signed_in(auth, transport=httpx.MockTransport(proxy))
    clock.advance(TOKEN_LIFE - 5)  # token still valid: the caller notices nothing
    assert keeper.get_authorization().startswith("Bearer ")  # starts a proactive refresh
    time.sleep(1.0)  # let that background refresh meet the 404 (and back off)
    assert keeper.get_authorization().startswith("Bearer ")
    assert not keeper.needs_reauth
    assert AuthEvent.NEEDS_REAUTH not in events
    keeper.close()


class TimingOutDisk(MemoryStorage):
    """A storage whose save fails with the builtin TimeoutError (fsync on a stuck mount)."""

    def save(self, session: Session | None) -> None:
        if session is not None and session.refresh_token is not None and self.armed:
            raise TimeoutError("fsync timed out")
        super().save(session)

    armed = False


def test_a_flight_failing_with_timeouterror_does_not_spin_its_waiters(
    auth: ServerProcess,
) -> None:
    storage = TimingOutDisk()
    keeper, clock, _ = _signed_in(auth, storage)
    storage.armed = True
    clock.advance(TOKEN_LIFE + 1)
    started = time.monotonic()
    header = keeper.get_authorization()  # kept in memory although the save failed
    assert header.startswith("Bearer ")
    assert time.monotonic() - started < FAST.wait_timeout / 2
    keeper.close()


class BrokenLock(MemoryStorage):
    """A custom storage whose lock raises something no client code expects."""

    armed = False

    def lock(self, timeout: float) -> contextlib.AbstractContextManager[bool]:
        if self.armed:
            raise RuntimeError("storage bug")
        return super().lock(timeout)


def test_unexpected_flight_errors_reach_callers_as_client_errors(auth: ServerProcess) -> None:
    storage = BrokenLock()
    keeper, clock, events = _signed_in(auth, storage)
    storage.armed = True
    clock.advance(TOKEN_LIFE + 1)
    with pytest.raises(IssuerUnavailableError) as caught:
        keeper.get_authorization()
    assert isinstance(caught.value.__cause__, RuntimeError)
    assert not keeper.needs_reauth  # kept: not the issuer's verdict
    storage.armed = False
    time.sleep(FAST.backoff_max + 0.1)  # the back-off this failure started
    assert keeper.get_authorization().startswith("Bearer ")
    assert events == [AuthEvent.SIGNED_IN, AuthEvent.TOKEN_REFRESHED]
    keeper.close()


def test_sign_out_calls_logout_even_when_a_request_sees_the_file_vanish_first(
    auth: ServerProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request thread watching the shared file may notice the sign-out before ``sign_out``
    finishes; the server must still hear ``POST /logout`` (the window is widened here)."""
    keeper, _, events = _signed_in(auth, FileStorage(tmp_path / "session.json"))
    unlink = Path.unlink

    def slow_unlink(self: Path, missing_ok: bool = False) -> None:
        unlink(self, missing_ok=missing_ok)
        time.sleep(0.5)

    monkeypatch.setattr(Path, "unlink", slow_unlink)
    stop = threading.Event()

    def requests() -> None:
        while not stop.is_set():
            with contextlib.suppress(Exception):
                keeper.get_authorization()
            time.sleep(0.01)

    thread = threading.Thread(target=requests)
    thread.start()
    try:
        time.sleep(0.2)
        keeper.sign_out()
    finally:
        stop.set()
        thread.join()
    assert len(requests_to(auth, "/logout")) == 1
    assert events.count(AuthEvent.SIGNED_OUT) == 1
    keeper.close()


class RecordingFileStorage(FileStorage):
    """Notes which thread checks and reads the shared file."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.threads: list[int] = []

    def changed(self) -> bool:
        self.threads.append(threading.get_ident())
        return super().changed()

    def load(self) -> Session | None:
        self.threads.append(threading.get_ident())
        return super().load()


async def test_the_async_path_checks_shared_storage_off_the_event_loop(
    auth: ServerProcess, tmp_path: Path
) -> None:
    storage = RecordingFileStorage(tmp_path / "session.json")
    keeper, _, _ = _signed_in(auth, storage)
    other = FileStorage(tmp_path / "session.json")
    other.save(None)  # another process signs out: the next watch must read the file
    await asyncio.sleep(FAST.watch_interval + 0.05)  # the watch runs at most this often
    storage.threads.clear()
    loop_thread = threading.get_ident()
    with contextlib.suppress(Exception):
        await keeper.aget_authorization()
    assert storage.threads, "the watch ran"
    assert loop_thread not in storage.threads
    keeper.close()


def test_a_listener_that_calls_the_api_and_gets_a_401_does_not_wait_on_its_own_flight(
    auth: ServerProcess,
) -> None:
    """Listeners run after the flight has landed: a TOKEN_REFRESHED listener whose own call is
    refused (a 401 on the new token) gets its recovery at once, not after wait_timeout."""
    keeper, clock, _ = _signed_in(auth)
    outcome: list[Any] = []
    done = threading.Event()
    once = threading.Lock()

    def listener(event: AuthEvent, session: Session | None) -> None:
        # Only the first refresh's listener calls (the recovery's own TOKEN_REFRESHED is heard
        # by this listener too, on another thread).
        if event is AuthEvent.TOKEN_REFRESHED and session is not None and once.acquire(False):
            started = time.monotonic()
            try:
                outcome.append(keeper.recover(session.authorization))
            except Exception as exc:
                outcome.append(exc)
            outcome.append(time.monotonic() - started)
            done.set()

    keeper.subscribe(listener)
    first = keeper.get_authorization()
    clock.advance(TOKEN_LIFE)  # expired: the next call waits for a refresh
    refreshed = keeper.get_authorization()
    assert refreshed != first
    assert done.wait(FAST.wait_timeout + 5)
    recovered, seconds = outcome
    assert isinstance(recovered, str) and recovered not in (first, refreshed)
    assert seconds < FAST.wait_timeout / 4, f"the listener waited {seconds:.1f} s"
    keeper.close()
