"""Parsing untrusted session data: a server's answer and a file another process wrote.

Whatever arrives, the parsers return a valid :class:`Session` or raise ``ValueError``, and a
keeper started on a corrupt file starts signed out instead of crashing.
"""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sessionkeeper.client import (
    FileStorage,
    MemoryStorage,
    RefreshPolicy,
    Session,
    SessionKeeper,
    StorageUnreadableError,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
token_text = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=60
)
session_like = st.fixed_dictionaries(
    {},
    optional={
        "access_token": token_text | json_values,
        "refresh_token": token_text | json_values,
        "expires_in": st.integers(-10, 10**6) | st.floats() | json_values,
        "expires_at": json_values,
        "token_type": st.sampled_from(["bearer", "Bearer", "mac"]) | json_values,
        "user": st.fixed_dictionaries({"id": st.text(max_size=10)}) | json_values,
    },
)
sessions = st.builds(
    Session,
    access_token=token_text,
    refresh_token=st.none() | token_text,
    expires_in=st.none() | st.floats(min_value=1, max_value=10**6),
    expires_at=st.none() | st.floats(min_value=0, max_value=4e9),
    user=st.dictionaries(st.text(max_size=8), st.text(max_size=8) | st.integers(), max_size=3),
)


@given(session_like | json_values)
def test_a_server_answer_is_a_valid_session_or_a_value_error(data: Any) -> None:
    try:
        session = Session.from_response(data, received_at=1_900_000_000.0)
    except ValueError:
        return
    assert session.access_token and " " not in session.access_token
    assert session.authorization == f"Bearer {session.access_token}"
    if session.expires_in is not None:
        assert session.expires_in > 0
        assert session.expires_at == 1_900_000_000.0 + session.expires_in


def test_expiry_comes_from_expires_in_at_receipt_never_from_the_servers_expires_at() -> None:
    answer = {"access_token": "a.b.c", "refresh_token": "r1", "expires_in": 300, "expires_at": 5}
    session = Session.from_response(answer, received_at=1000.0)
    assert session.expires_at == 1300.0


@given(sessions)
def test_a_stored_session_reads_back_equal(session: Session) -> None:
    assert Session.from_stored(json.loads(json.dumps(session.to_stored()))) == session


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300) | session_like.map(lambda d: json.dumps(d).encode()))
def test_any_file_contents_load_as_a_session_or_none(tmp_path_factory: Any, data: bytes) -> None:
    """Whatever the file holds: a session, nothing (empty file), or the one documented error
    for unreadable contents — never anything else (the keeper then keeps its memory session)."""
    path = tmp_path_factory.mktemp("corrupt") / "session.json"
    path.write_bytes(data)
    try:
        loaded = FileStorage(path).load()
    except StorageUnreadableError:
        return
    assert loaded is None or isinstance(loaded, Session)


@pytest.mark.parametrize(
    "contents",
    [b"", b"{", b"\xff\xfe\x00", b"[]", b'{"version": 1}', b"[" * 100_000, b"null"],
    ids=["empty", "truncated", "binary", "list", "no-token", "deep", "null"],
)
def test_a_keeper_started_on_a_corrupt_file_starts_signed_out(
    tmp_path: Path, contents: bytes
) -> None:
    path = tmp_path / "session.json"
    path.write_bytes(contents)
    keeper = SessionKeeper("http://127.0.0.1:9/auth/v1", storage=FileStorage(path))
    try:
        assert keeper.session is None
    finally:
        keeper.close()


def test_the_file_is_written_atomically_with_mode_0600_and_removed_on_sign_out(
    tmp_path: Path,
) -> None:
    path = tmp_path / "dir" / "session.json"
    storage = FileStorage(path)
    first = Session("a1", "r1", 60.0, 1060.0, user={"id": "u"})
    storage.save(first)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    inode = os.stat(path).st_ino
    storage.save(Session("a2", "r2", 60.0, 1120.0))
    assert os.stat(path).st_ino != inode  # replaced by rename, never rewritten in place
    assert sorted(p.name for p in path.parent.iterdir()) == ["session.json"]  # no temp left
    assert FileStorage(path).load() == Session("a2", "r2", 60.0, 1120.0)
    storage.save(None)
    assert not path.exists()
    assert FileStorage(path).load() is None


def test_changed_sees_other_writers_but_not_its_own_writes(tmp_path: Path) -> None:
    path = tmp_path / "session.json"
    mine, theirs = FileStorage(path), FileStorage(path)
    assert not mine.changed()
    mine.save(Session("a1", "r1"))
    assert not mine.changed()
    theirs.save(Session("a2", "r2"))  # same size, maybe the same mtime tick: the inode differs
    assert mine.changed()
    assert mine.load() == Session("a2", "r2")
    assert not mine.changed()
    theirs.save(None)
    assert mine.changed()


def test_memory_storage_lock_is_bounded_across_threads_and_reentrant_in_one() -> None:
    storage = MemoryStorage()
    other: list[bool] = []

    def try_lock() -> None:
        with storage.lock(0.05) as acquired:
            other.append(acquired)

    with storage.lock(1.0) as first:
        assert first
        with storage.lock(0.05) as again:
            assert again
        thread = threading.Thread(target=try_lock)
        thread.start()
        thread.join()
    assert other == [False]


@pytest.mark.parametrize(("lifetime", "margin"), [(3600, 120), (30, 15), (5, 2.5), (200, 100)])
def test_the_margin_is_capped_at_half_the_lifetime(lifetime: float, margin: float) -> None:
    assert RefreshPolicy().effective_margin(lifetime) == margin


@given(st.integers(1, 200))
def test_backoff_grows_and_stays_bounded(failures: int) -> None:
    policy = RefreshPolicy(backoff_initial=0.5, backoff_max=30)
    ceiling = min(30.0, 0.5 * 2 ** (failures - 1))
    assert ceiling / 2 <= policy.backoff(failures) <= ceiling  # jitter: half to full
