"""The soak proxy: its message parsing (property-tested) and its routing, failover and refresh
faults against a real upstream on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections import Counter
from collections.abc import AsyncIterator

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from sessionkeeper.soak.proxy import (
    Backend,
    BadMessage,
    Proxy,
    RefreshFaults,
    content_length,
    format_head,
    is_refresh,
    parse_head,
)
from tests.conftest import serve_in_thread

TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
names = st.text(TOKEN_CHARS, min_size=1, max_size=20)
values = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=40)


@given(
    st.sampled_from(["GET / HTTP/1.1", "POST /auth/v1/token?x=1 HTTP/1.1", "HTTP/1.1 200 OK"]),
    st.lists(st.tuples(names, values), max_size=10),
)
def test_a_formatted_head_parses_back(start: str, headers: list[tuple[str, str]]) -> None:
    assert parse_head(format_head(start, headers)) == (start, headers)


@given(st.binary(max_size=300))
def test_any_bytes_parse_or_raise_bad_message(data: bytes) -> None:
    with contextlib.suppress(BadMessage):
        parse_head(data)


@pytest.mark.parametrize(
    "headers",
    [
        [("Content-Length", "-1")],
        [("Content-Length", "1e3")],
        [("Content-Length", "5"), ("content-length", "6")],
        [("Content-Length", str(10**9))],
    ],
)
def test_bad_content_lengths_are_refused(headers: list[tuple[str, str]]) -> None:
    with pytest.raises(BadMessage):
        content_length(headers)


def test_only_the_refresh_grant_is_the_refresh_path() -> None:
    assert is_refresh("POST", "/auth/v1/token?grant_type=refresh_token")
    assert not is_refresh("POST", "/auth/v1/token?grant_type=password")
    assert not is_refresh("GET", "/auth/v1/token?grant_type=refresh_token")
    assert not is_refresh("POST", "/api/effects?grant_type=refresh_token")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _upstream(name: str, seen: Counter[str]) -> Starlette:
    async def echo(request: Request) -> Response:
        body = await request.body()
        seen[name] += 1
        return JSONResponse({"name": name, "body": body.decode(), "path": request.url.path})

    async def chunked(request: Request) -> Response:
        async def parts() -> AsyncIterator[bytes]:
            for part in (b"one,", b"two,", b"three"):
                yield part

        return StreamingResponse(parts())

    return Starlette(
        routes=[
            Route("/auth/v1/token", echo, methods=["POST"]),
            Route("/api/echo", echo, methods=["GET", "POST"]),
            Route("/chunked", chunked),
        ]
    )


async def test_round_robin_failover_and_refresh_faults() -> None:
    seen: Counter[str] = Counter()
    observed: Counter[str] = Counter()
    port_a, port_b, dead = _free_port(), _free_port(), _free_port()
    with (
        serve_in_thread(_upstream("a", seen), port_a),
        serve_in_thread(_upstream("b", seen), port_b),
    ):
        proxy = Proxy(
            [Backend("a", port_a), Backend("b", port_b), Backend("dead", dead)],
            observe=lambda name: observed.update([name]),
        )
        await proxy.start()
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{proxy.port}") as http:
                answers = [await http.post("/api/echo", content=b"x" * i) for i in range(12)]
                assert {r.status_code for r in answers} == {200}
                assert [r.json()["body"] for r in answers] == ["x" * i for i in range(12)]
                assert seen["a"] >= 4 and seen["b"] >= 4  # the dead one fails over
                assert observed["failover"] >= 1

                r = await http.get("/chunked")
                assert r.status_code == 200 and r.content == b"one,two,three"

                proxy.refresh_faults = RefreshFaults(fail_before=1.0)
                before = seen.total()
                r = await http.post("/auth/v1/token?grant_type=refresh_token", json={})
                assert r.status_code == 503 and seen.total() == before  # never forwarded

                proxy.refresh_faults = RefreshFaults(lose_answer=1.0)
                r = await http.post("/auth/v1/token?grant_type=refresh_token", json={})
                assert r.status_code == 502 and seen.total() == before + 1  # ran, answer lost

                proxy.refresh_faults = RefreshFaults()
                r = await http.post("/auth/v1/token?grant_type=refresh_token", json={"a": 1})
                assert r.status_code == 200 and json.loads(r.json()["body"]) == {"a": 1}

                await proxy.drain("a")
                proxy.set_port("dead", None)
                before_a = seen["a"]
                for _ in range(4):
                    assert (await http.get("/api/echo")).json()["name"] == "b"
                assert seen["a"] == before_a
                proxy.set_port("a", port_a)
                names = {(await http.get("/api/echo")).json()["name"] for _ in range(4)}
                assert names == {"a", "b"}
                assert observed["refresh"] == 3
                assert observed["injected_503"] == 1 and observed["injected_lost"] == 1
        finally:
            await proxy.close()


async def test_no_instance_up_is_a_502() -> None:
    proxy = Proxy([Backend("a", None)])
    await proxy.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{proxy.port}") as http:
            r = await http.get("/api/echo")
            assert r.status_code == 502
    finally:
        await proxy.close()
    await asyncio.sleep(0)
