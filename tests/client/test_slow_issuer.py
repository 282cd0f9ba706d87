"""An issuer (or a proxy in front of it) that answers byte by byte, huge or compressed: the
client's calls end within their time-out, never hang on a drip, and read compressed answers."""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from sessionkeeper.client.errors import IssuerUnavailableError
from sessionkeeper.client.issuer import MAX_ANSWER_BYTES, Issuer
from sessionkeeper.clock import SystemClock

SESSION = {
    "access_token": "a" * 40,
    "refresh_token": "r" * 12,
    "token_type": "bearer",
    "expires_in": 3600,
    "user": {"id": "u1", "email": "ann@example.com"},
}


def _read_request(conn: socket.socket) -> None:
    """Read the whole request (headers and body) before answering: a socket closed with unread
    request bytes sends a reset, which the client would see instead of our answer."""
    conn.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return
        body += chunk


def _serve(answer: Callable[[socket.socket], None]) -> Iterator[str]:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    stop = threading.Event()

    def run() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                _read_request(conn)
                with contextlib.suppress(OSError):  # the client hung up (its time-out)
                    answer(conn)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}/auth/v1"
    stop.set()
    thread.join(timeout=5)
    listener.close()


def _drip(conn: socket.socket) -> None:
    body = json.dumps(SESSION).encode()
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
    )
    for byte in body:  # one byte every 0.2 s: each read is quick, the whole answer is not
        conn.sendall(bytes([byte]))
        time.sleep(0.2)


def _huge(conn: socket.socket) -> None:
    """An answer that never ends (until the client hangs up, or far past the limit)."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n")
    chunk = b" " * 65536
    for _ in range(64 * (MAX_ANSWER_BYTES // len(chunk) + 1)):
        conn.sendall(chunk)


def _gzipped(conn: socket.socket) -> None:
    body = gzip.compress(json.dumps(SESSION).encode())
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
        + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )


@pytest.fixture
def dripping() -> Iterator[str]:
    yield from _serve(_drip)


@pytest.fixture
def huge() -> Iterator[str]:
    yield from _serve(_huge)


@pytest.fixture
def gzipped() -> Iterator[str]:
    yield from _serve(_gzipped)


def test_a_dripping_answer_ends_within_the_time_out_not_hours_later(dripping: str) -> None:
    issuer = Issuer(dripping, clock=SystemClock(), timeout=1.0)
    started = time.monotonic()
    with pytest.raises(IssuerUnavailableError, match="within the time-out"):
        issuer.refresh_grant("r" * 12)
    # The answer would take ~40 s; the call ends after the 1 s time-out (plus one read).
    assert time.monotonic() - started < 3.0
    issuer.close()


def test_an_endless_answer_is_cut_at_the_size_limit(huge: str) -> None:
    issuer = Issuer(huge, clock=SystemClock(), timeout=10.0)
    with pytest.raises(IssuerUnavailableError, match="larger than"):
        issuer.refresh_grant("r" * 12)
    issuer.close()


def test_a_compressed_answer_is_read(gzipped: str) -> None:
    issuer = Issuer(gzipped, clock=SystemClock(), timeout=5.0)
    session = issuer.refresh_grant("r" * 12)
    assert session.access_token == SESSION["access_token"]
    issuer.close()
