"""The soak's load balancer: an asyncio HTTP/1.1 reverse proxy in front of the instances, which
also injects the faults of the refresh path.

- Requests go round-robin to the instances that are up and not draining. A connection that is
  refused (an instance killed or restarting) is retried on the next instance: nothing was sent.
  A failure after the request was sent is a 502 for a POST (it may have run; the user retries
  with the same request id) and is retried once elsewhere for a GET.
- ``drain(name)`` stops routing to an instance and closes its idle connections before a graceful
  restart, as a load balancer deregisters a target first; a ``kill -9`` gets no such notice.
- On ``POST /auth/v1/token?grant_type=refresh_token`` during a fault window: added latency,
  a 503 before forwarding (the server never saw it), or the request forwarded and its answer
  replaced by a 502 (the server rotated the token, the client never learns it: a lost answer).

Only what the soak needs of HTTP/1.1: requests with a ``Content-Length`` body (or none),
answers with a ``Content-Length``, chunked or close-delimited body. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

MAX_HEAD = 64 * 1024
MAX_BODY = 2 * 1024 * 1024
CLIENT_IDLE = 75.0  # seconds a client connection may sit between requests
CONNECT_TIMEOUT = 2.0
ANSWER_TIMEOUT = 25.0  # the whole upstream answer (the server's statement timeout is 15 s)
POOL_IDLE = 1.0  # pooled upstream connections unused longer than this are closed, not reused
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
    }
)

Headers = list[tuple[str, str]]


class BadMessage(ValueError):
    """Not an HTTP/1.1 message this proxy handles."""


def parse_head(head: bytes) -> tuple[str, Headers]:
    """The start line and headers of a message head (ending in a blank line)."""
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError as exc:  # latin-1 decodes every byte; kept for clarity
        raise BadMessage("undecodable head") from exc
    lines = text.split("\r\n")
    if len(lines) < 3 or lines[-1] != "" or lines[-2] != "":
        raise BadMessage("head does not end with a blank line")
    start = lines[0]
    if not start or any(c in start for c in "\r\n\0"):
        raise BadMessage("bad start line")
    headers: Headers = []
    for line in lines[1:-2]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or any(c in name for c in " \t\0"):
            raise BadMessage("bad header line")
        headers.append((name, value.strip(" \t")))
    return start, headers


def header(headers: Headers, name: str) -> str | None:
    name = name.lower()
    values = [v for k, v in headers if k.lower() == name]
    if len(values) > 1 and name == "content-length" and len(set(values)) > 1:
        raise BadMessage("conflicting Content-Length")
    return values[0] if values else None


def content_length(headers: Headers) -> int:
    value = header(headers, "content-length")
    if value is None:
        return 0
    if not value.isdigit() or len(value) > 12:
        raise BadMessage("bad Content-Length")
    length = int(value)
    if length > MAX_BODY:
        raise BadMessage("body too large")
    return length


def format_head(start: str, headers: Headers) -> bytes:
    lines = [start, *(f"{k}: {v}" for k, v in headers), "", ""]
    return "\r\n".join(lines).encode("latin-1")


def is_refresh(method: str, target: str) -> bool:
    path, _, query = target.partition("?")
    return method == "POST" and path == "/auth/v1/token" and "grant_type=refresh_token" in query


@dataclass
class RefreshFaults:
    """What the proxy does to refresh requests now (all off by default)."""

    latency: tuple[float, float] | None = None  # seconds, uniform
    fail_before: float = 0.0  # share answered 503 without forwarding
    lose_answer: float = 0.0  # share forwarded, answer replaced by 502


@dataclass
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    used_at: float = field(default_factory=time.monotonic)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


@dataclass
class Backend:
    name: str
    port: int | None = None
    draining: bool = False
    in_flight: int = 0
    idle: list[_Conn] = field(default_factory=list)

    def close_idle(self) -> None:
        idle, self.idle = self.idle, []
        for conn in idle:
            conn.close()


class _Upstream(Exception):
    """The upstream exchange failed; ``sent``: whether the request may have reached it."""

    def __init__(self, sent: bool, what: str) -> None:
        super().__init__(what)
        self.sent = sent


@dataclass
class Answer:
    status: int
    reason: str
    headers: Headers
    body: bytes
    keep_alive: bool


def _plain(status: int, reason: str, body: bytes = b"") -> Answer:
    headers = [("content-type", "application/json")] if body else []
    return Answer(status, reason, headers, body, True)


Observer = Callable[[str], None]


class Proxy:
    """``await start()`` gives the port; ``observe(name)`` is called for every event worth
    counting (``refresh``, ``injected_503``, ``injected_lost``, ``injected_latency``,
    ``upstream_502``, ``failover``)."""

    def __init__(self, backends: list[Backend], observe: Observer | None = None) -> None:
        self.backends = backends
        self.refresh_faults = RefreshFaults()
        self._observe = observe or (lambda name: None)
        self._next = 0
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.StreamWriter] = set()
        self.port = 0

    async def start(self) -> int:
        self._server = await asyncio.start_server(
            self._client, "127.0.0.1", 0, limit=MAX_HEAD, backlog=1024
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._clients):
                writer.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 5)
        for backend in self.backends:
            backend.close_idle()

    def backend(self, name: str) -> Backend:
        return next(b for b in self.backends if b.name == name)

    def set_port(self, name: str, port: int | None) -> None:
        backend = self.backend(name)
        backend.close_idle()
        backend.port = port
        backend.draining = False

    async def drain(self, name: str, within: float = 10.0) -> None:
        """Stop sending new requests to ``name`` and wait (bounded) for those it is serving."""
        backend = self.backend(name)
        backend.draining = True
        backend.close_idle()
        deadline = time.monotonic() + within
        while backend.in_flight and time.monotonic() < deadline:  # noqa: ASYNC110 - polled, bounded
            await asyncio.sleep(0.02)

    # -- the client side --------------------------------------------------------------------

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients.add(writer)
        try:
            while True:
                try:
                    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), CLIENT_IDLE)
                except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
                    return
                except asyncio.LimitOverrunError:
                    await self._reply(writer, _plain(431, "Request Header Fields Too Large"))
                    return
                try:
                    start, headers = parse_head(head)
                    method, target, version = start.split(" ")
                    if not version.startswith("HTTP/1.") or header(headers, "transfer-encoding"):
                        raise BadMessage("unsupported")
                    body = await asyncio.wait_for(
                        reader.readexactly(content_length(headers)), CLIENT_IDLE
                    )
                except (BadMessage, ValueError):
                    await self._reply(writer, _plain(400, "Bad Request"), close=True)
                    return
                except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
                    return
                answer = await self._handle(method, target, headers, body)
                closing = (header(headers, "connection") or "").lower() == "close"
                await self._reply(writer, answer, close=closing)
                if closing:
                    return
        finally:
            self._clients.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()

    async def _reply(
        self, writer: asyncio.StreamWriter, answer: Answer, close: bool = False
    ) -> None:
        headers = [(k, v) for k, v in answer.headers if k.lower() not in HOP_BY_HOP]
        headers.append(("content-length", str(len(answer.body))))
        if close:
            headers.append(("connection", "close"))
        with contextlib.suppress(ConnectionError):
            writer.write(format_head(f"HTTP/1.1 {answer.status} {answer.reason}", headers))
            writer.write(answer.body)
            await writer.drain()

    async def _handle(self, method: str, target: str, headers: Headers, body: bytes) -> Answer:
        refresh = is_refresh(method, target)
        faults = self.refresh_faults
        lose = False
        if refresh:
            self._observe("refresh")
            if faults.latency is not None:
                self._observe("injected_latency")
                await asyncio.sleep(random.uniform(*faults.latency))
            if random.random() < faults.fail_before:
                self._observe("injected_503")
                return _plain(
                    503,
                    "Service Unavailable",
                    b'{"code":503,"error_code":"injected","msg":"soak: injected failure"}',
                )
            lose = random.random() < faults.lose_answer
        answer = await self._forward(method, target, headers, body)
        if lose:
            self._observe("injected_lost")
            return _plain(502, "Bad Gateway")
        return answer

    # -- the upstream side ------------------------------------------------------------------

    def _candidates(self) -> list[Backend]:
        up = [b for b in self.backends if b.port is not None and not b.draining]
        if not up:
            return []
        self._next = (self._next + 1) % len(up)
        return up[self._next :] + up[: self._next]

    async def _forward(self, method: str, target: str, headers: Headers, body: bytes) -> Answer:
        retried_get = False
        for backend in self._candidates():
            try:
                return await self._exchange(backend, method, target, headers, body)
            except _Upstream as exc:
                if not exc.sent:
                    self._observe("failover")
                    continue
                if method == "GET" and not retried_get:
                    retried_get = True
                    self._observe("failover")
                    continue
                self._observe("upstream_502")
                return _plain(502, "Bad Gateway")
        self._observe("upstream_502")
        return _plain(502, "Bad Gateway")

    async def _connection(self, backend: Backend) -> _Conn:
        now = time.monotonic()
        while backend.idle:
            conn = backend.idle.pop()
            fresh = now - conn.used_at <= POOL_IDLE
            if fresh and not conn.reader.at_eof() and not conn.writer.is_closing():
                return conn
            conn.close()
        assert backend.port is not None
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", backend.port, limit=MAX_HEAD),
                CONNECT_TIMEOUT,
            )
        except (OSError, TimeoutError) as exc:
            raise _Upstream(False, f"connect: {type(exc).__name__}") from exc
        return _Conn(reader, writer)

    async def _exchange(
        self, backend: Backend, method: str, target: str, headers: Headers, body: bytes
    ) -> Answer:
        conn = await self._connection(backend)
        port = backend.port
        backend.in_flight += 1
        try:
            answer = await asyncio.wait_for(
                self._send_and_read(conn, method, target, headers, body), ANSWER_TIMEOUT
            )
        except TimeoutError as exc:
            conn.close()
            raise _Upstream(True, "answer timed out") from exc
        except (OSError, asyncio.IncompleteReadError, BadMessage, ValueError) as exc:
            conn.close()
            raise _Upstream(True, f"exchange: {type(exc).__name__}") from exc
        except RuntimeError as exc:  # uvloop: the upstream closed the connection under us
            conn.close()
            raise _Upstream(True, f"exchange: {exc}"[:100]) from exc
        finally:
            backend.in_flight -= 1
        if answer.keep_alive and not backend.draining and backend.port == port:
            conn.used_at = time.monotonic()
            backend.idle.append(conn)
        else:
            conn.close()
        return answer

    async def _send_and_read(
        self, conn: _Conn, method: str, target: str, headers: Headers, body: bytes
    ) -> Answer:
        out = [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP]
        if body or method in ("POST", "PUT", "PATCH"):
            out.append(("content-length", str(len(body))))
        conn.writer.write(format_head(f"{method} {target} HTTP/1.1", out) + body)
        await conn.writer.drain()
        head = await conn.reader.readuntil(b"\r\n\r\n")
        start, rheaders = parse_head(head)
        version, status_text, *rest = start.split(" ", 2)
        status = int(status_text)
        reason = rest[0] if rest else ""
        keep_alive = (header(rheaders, "connection") or "").lower() != "close"
        if (header(rheaders, "transfer-encoding") or "").lower() == "chunked":
            data = await _read_chunked(conn.reader)
        elif header(rheaders, "content-length") is not None:
            data = await conn.reader.readexactly(content_length(rheaders))
        elif status in (204, 304) or method == "HEAD":
            data = b""
        else:
            data = await conn.reader.read(MAX_BODY)
            keep_alive = False
        return Answer(status, reason, rheaders, data, keep_alive and version == "HTTP/1.1")


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    size = 0
    while True:
        line = await reader.readuntil(b"\r\n")
        length = int(line.split(b";", 1)[0].strip() or b"x", 16)
        if length == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                pass
            return b"".join(parts)
        size += length
        if size > MAX_BODY:
            raise BadMessage("body too large")
        parts.append(await reader.readexactly(length))
        await reader.readexactly(2)
