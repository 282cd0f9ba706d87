"""What ``SessionAuth`` costs per request, and how many refreshes a storm makes.

What is measured
----------------
* ``overhead`` -- sequential ``GET /plain`` calls over one keep-alive connection to a trivial
  Starlette app on loopback, once with bare httpx and a static ``Authorization`` header (the
  baseline), once through ``SessionAuth`` (the token is fresh, so this is the fast path every
  call takes between refreshes). Sync (``httpx.Client``) and async (``httpx.AsyncClient``).
  Each repetition runs both back to back, in alternating order; the ratio is taken per
  repetition and the median reported (target: at most 1.1).
* ``get_authorization`` -- the keeper's fast path alone, in nanoseconds per call.
* ``storms`` -- a real ``sessionkeeper serve`` and the same app verifying every token against
  the server's JWKS: C asyncio tasks (1,000) at once with a token that expired by the keeper's
  clock; T threads (50) doing the same on the sync client; P processes (4) sharing one session
  file whose token has expired. Each must make exactly one refresh (counted in the server's
  access log) and every call must succeed.

Servers run pinned to the first core and the load generator to the second when there are two
or more. Everything is on 127.0.0.1 with temporary files; every loop is bounded. Progress goes to
stderr, the table or (``--json``) one JSON object to stdout; the exit status is 1 if a call
failed or a storm made other than one refresh. See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import timeit
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from sessionkeeper.client import FileStorage, RefreshPolicy, SessionAuth, SessionKeeper
from sessionkeeper.clock import ManualClock

PASSWORD = "benchmark-passw0rd"
TARGET_RATIO = 1.1
POLICY = RefreshPolicy(wait_timeout=60, refresh_deadline=30, backoff_initial=0.05)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# Processes ---------------------------------------------------------------------------------


def _cores() -> tuple[set[int] | None, set[int] | None]:
    """(servers' cores, load generator's cores), or (None, None) when not pinning."""
    try:
        usable = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return None, None
    if len(usable) < 2:
        return None, None
    return {usable[0]}, {usable[1]}


@dataclass
class Process:
    proc: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _spawn(cmd: list[str], log_path: Path, pattern: str, cores: set[int] | None) -> Process:
    out = log_path.open("wb")
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    if cores is not None:
        os.sched_setaffinity(proc.pid, cores)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        match = re.search(pattern, log_path.read_text(errors="replace"))
        if match:
            return Process(proc, match.group(1), log_path)
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{cmd[2:4]} did not start:\n{log_path.read_text(errors='replace')}")


def start_auth_server(workdir: Path, cores: set[int] | None) -> Process:
    cmd = [
        sys.executable, "-m", "sessionkeeper.cli", "serve", "--port", "0",
        "--database", f"sqlite:///{workdir}/auth.db", "--jwt-exp", "120",
        "--rate-limit-password-per-ip", "0", "--rate-limit-password-per-email", "0",
        "--rate-limit-signup-per-ip", "0",
    ]  # fmt: skip
    server = _spawn(cmd, workdir / "auth.log", r'url="(http://[^"]+/auth/v1)"', cores)
    _wait_ok(f"{server.url}/health")
    return server


def start_api(workdir: Path, jwks_url: str, cores: set[int] | None) -> Process:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--serve-api", jwks_url]
    api = _spawn(cmd, workdir / "api.log", r"api listening (http://\S+)", cores)
    _wait_ok(f"{api.url}/plain")
    return api


def _wait_ok(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} never answered 200")


def serve_api(jwks_url: str) -> None:
    """The protected app: ``/plain`` does no work, ``/verified`` checks the JWT locally."""
    import jwt
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    keys = jwt.PyJWKClient(jwks_url, lifespan=3600)

    async def plain(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    async def verified(request: Request) -> PlainTextResponse:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        try:
            key = keys.get_signing_key_from_jwt(token)
            jwt.decode(token, key.key, algorithms=["ES256", "RS256"], audience="authenticated")
        except jwt.PyJWTError:
            return PlainTextResponse("Unauthorized", status_code=401)
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/plain", plain), Route("/verified", verified)])
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    print(f"api listening http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False, backlog=2048)
    uvicorn.Server(config).run(sockets=[sock])


def refresh_count(server: Process) -> int:
    """Refresh grants in the server's access log, once a sentinel request shows it is complete."""
    sentinel = f"sentinel-{uuid.uuid4().hex}"
    httpx.get(f"{server.url}/{sentinel}")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        text = server.log_path.read_text(errors="replace")
        if sentinel in text:
            return sum(
                'path="/auth/v1/token"' in line and 'grant_type="refresh_token"' in line
                for line in text.splitlines()
            )
        time.sleep(0.02)
    raise RuntimeError("the server log never showed the sentinel request")


def new_user(server: Process) -> str:
    email = f"bench-{uuid.uuid4().hex[:12]}@example.com"
    r = httpx.post(f"{server.url}/signup", json={"email": email, "password": PASSWORD})
    r.raise_for_status()
    return email


# Overhead ----------------------------------------------------------------------------------


def _sync_run(client: httpx.Client, url: str, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        if client.get(url).status_code != 200:
            raise RuntimeError("non-200 answer during the overhead run")
    return (time.perf_counter() - started) / n * 1e6


async def _async_run(client: httpx.AsyncClient, url: str, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        if (await client.get(url)).status_code != 200:
            raise RuntimeError("non-200 answer during the overhead run")
    return (time.perf_counter() - started) / n * 1e6


def _summary(runs: list[tuple[float, float]]) -> dict[str, Any]:
    return {
        "baseline_us": round(statistics.median(b for b, _ in runs), 2),
        "session_auth_us": round(statistics.median(s for _, s in runs), 2),
        "ratio": round(statistics.median(s / b for b, s in runs), 4),
        "runs": [{"baseline_us": round(b, 2), "session_auth_us": round(s, 2)} for b, s in runs],
    }


def measure_overhead(keeper: SessionKeeper, api: Process, n: int, reps: int) -> dict[str, Any]:
    url = f"{api.url}/plain"
    static = {"Authorization": keeper.get_authorization()}
    sync_runs: list[tuple[float, float]] = []
    with httpx.Client(headers=static) as bare, httpx.Client(auth=SessionAuth(keeper)) as kept:
        _sync_run(bare, url, 50)  # warm-up: connections open, code paths hot
        _sync_run(kept, url, 50)
        for rep in range(reps):
            if rep % 2:
                s = _sync_run(kept, url, n)
                b = _sync_run(bare, url, n)
            else:
                b = _sync_run(bare, url, n)
                s = _sync_run(kept, url, n)
            sync_runs.append((b, s))
            log(f"  sync  rep {rep + 1}: bare {b:.1f} us, SessionAuth {s:.1f} us")

    async def async_side() -> list[tuple[float, float]]:
        runs: list[tuple[float, float]] = []
        async with (
            httpx.AsyncClient(headers=static) as bare,
            httpx.AsyncClient(auth=SessionAuth(keeper)) as kept,
        ):
            await _async_run(bare, url, 50)
            await _async_run(kept, url, 50)
            for rep in range(reps):
                if rep % 2:
                    s = await _async_run(kept, url, n)
                    b = await _async_run(bare, url, n)
                else:
                    b = await _async_run(bare, url, n)
                    s = await _async_run(kept, url, n)
                runs.append((b, s))
                log(f"  async rep {rep + 1}: bare {b:.1f} us, SessionAuth {s:.1f} us")
        return runs

    async_runs = asyncio.run(async_side())
    calls = 200_000
    fast_path_ns = min(timeit.repeat(keeper.get_authorization, number=calls, repeat=3)) / calls
    return {
        "sync": _summary(sync_runs),
        "async": _summary(async_runs),
        "get_authorization_ns": round(fast_path_ns * 1e9, 1),
        "requests_per_run": n,
    }


# Storms ------------------------------------------------------------------------------------


def _expired_keeper(server: Process) -> SessionKeeper:
    clock = ManualClock(time.time())
    keeper = SessionKeeper(server.url, clock=clock, policy=POLICY)
    keeper.sign_in(new_user(server), PASSWORD)
    clock.advance(3600)  # expired by the keeper's clock; the server still accepts it
    return keeper


def storm_asyncio(server: Process, api: Process, calls: int) -> dict[str, Any]:
    keeper = _expired_keeper(server)
    before = refresh_count(server)

    async def run() -> Counter[str]:
        limits = httpx.Limits(max_connections=20)
        async with httpx.AsyncClient(auth=SessionAuth(keeper), limits=limits, timeout=120) as c:
            results = await asyncio.gather(
                *(c.get(f"{api.url}/verified") for _ in range(calls)), return_exceptions=True
            )
        return Counter(
            str(r.status_code) if isinstance(r, httpx.Response) else type(r).__name__
            for r in results
        )

    statuses = asyncio.run(run())
    keeper.close()
    return _storm(calls, statuses, refresh_count(server) - before, tasks=calls)


def storm_threads(server: Process, api: Process, threads: int, each: int) -> dict[str, Any]:
    keeper = _expired_keeper(server)
    before = refresh_count(server)
    statuses: Counter[str] = Counter()
    lock = threading.Lock()
    barrier = threading.Barrier(threads)

    def work() -> None:
        with httpx.Client(auth=SessionAuth(keeper), timeout=120) as client:
            barrier.wait()
            for _ in range(each):
                try:
                    outcome = str(client.get(f"{api.url}/verified").status_code)
                except Exception as exc:
                    outcome = type(exc).__name__
                with lock:
                    statuses[outcome] += 1

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)
    keeper.close()
    return _storm(threads * each, statuses, refresh_count(server) - before, threads=threads)


def storm_processes(
    server: Process, api: Process, workdir: Path, processes: int, each: int
) -> dict[str, Any]:
    path = workdir / f"session-{uuid.uuid4().hex[:8]}.json"
    keeper = SessionKeeper(server.url, storage=FileStorage(path), policy=POLICY)
    keeper.sign_in(new_user(server), PASSWORD)
    keeper.close()
    stored = json.loads(path.read_text())
    stored["expires_at"] -= 3600  # expired by every process's clock
    path.write_text(json.dumps(stored))
    before = refresh_count(server)
    go = workdir / f"go-{uuid.uuid4().hex[:8]}"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", server.url, api.url]
    procs = [
        subprocess.Popen([*cmd, str(path), str(go), str(each)], stdout=subprocess.PIPE, text=True)
        for _ in range(processes)
    ]
    for proc in procs:
        assert proc.stdout is not None
        proc.stdout.readline()  # "ready"
    go.touch()
    statuses: Counter[str] = Counter()
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        statuses.update(json.loads(out.strip().splitlines()[-1]))
    return _storm(processes * each, statuses, refresh_count(server) - before, processes=processes)


def worker(auth_url: str, api_url: str, path: str, go: str, each: int) -> None:
    """One of the processes of the process storm (started by :func:`storm_processes`)."""
    keeper = SessionKeeper(auth_url, storage=FileStorage(path), policy=POLICY)
    print("ready", flush=True)
    deadline = time.monotonic() + 60
    while not os.path.exists(go) and time.monotonic() < deadline:
        time.sleep(0.002)
    statuses: Counter[str] = Counter()
    with httpx.Client(auth=SessionAuth(keeper), timeout=60) as client:
        for _ in range(each):
            try:
                statuses[str(client.get(f"{api_url}/verified").status_code)] += 1
            except Exception as exc:
                statuses[type(exc).__name__] += 1
    keeper.close()
    print(json.dumps(statuses), flush=True)


def _storm(calls: int, statuses: Counter[str], refreshes: int, **size: int) -> dict[str, Any]:
    return {
        **size,
        "calls": calls,
        "ok": statuses.get("200", 0),
        "errors": calls - statuses.get("200", 0),
        "outcomes": dict(statuses),
        "refreshes": refreshes,
    }


# Output ------------------------------------------------------------------------------------


def render(result: dict[str, Any]) -> str:
    o = result["overhead"]
    lines = [
        "per-request overhead (sequential GET on loopback, median of repetitions)",
        f"{'client':<8}{'bare httpx us':>16}{'SessionAuth us':>17}{'ratio':>8}"
        f"  target <= {TARGET_RATIO}",
    ]
    for side in ("sync", "async"):
        f = o[side]
        lines.append(
            f"{side:<8}{f['baseline_us']:>16.1f}{f['session_auth_us']:>17.1f}{f['ratio']:>8.3f}"
        )
    lines.append(f"keeper fast path (get_authorization): {o['get_authorization_ns']:.0f} ns/call")
    lines.append("")
    lines.append("refresh storms (token expired; every call must succeed with one refresh)")
    for name, s in result["storms"].items():
        size = ", ".join(f"{k}={s[k]}" for k in ("tasks", "threads", "processes") if k in s)
        counts = f"calls={s['calls']:<5} ok={s['ok']:<5} refreshes={s['refreshes']}"
        lines.append(f"{name:<10} {size:<16} {counts}")
    c = result["config"]
    lines.append("")
    lines.append(
        f"repetitions={c['repetitions']} requests/run={c['requests_per_run']} pinned={c['pinned']}"
        f" quick={c['quick']} wall={c['wall_seconds']}s"
    )
    return "\n".join(lines)


@contextmanager
def _pinned(cores: set[int] | None) -> Iterator[None]:
    if cores is None:
        yield
        return
    previous = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cores)
    try:
        yield
    finally:
        os.sched_setaffinity(0, previous)


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    server_cores, load_cores = _cores()
    with tempfile.TemporaryDirectory(prefix="sk-client-bench-") as tmp:
        workdir = Path(tmp)
        server = start_auth_server(workdir, server_cores)
        api = start_api(workdir, f"{server.url}/.well-known/jwks.json", server_cores)
        try:
            with _pinned(load_cores):
                keeper = SessionKeeper(server.url, policy=POLICY)
                keeper.sign_in(new_user(server), PASSWORD)
                log("overhead ...")
                overhead = measure_overhead(keeper, api, args.requests, args.repetitions)
                keeper.close()
                log("storms ...")
                storms = {
                    "asyncio": storm_asyncio(server, api, args.tasks),
                    "threads": storm_threads(server, api, args.threads, 4),
                    "processes": storm_processes(server, api, workdir, args.processes, 10),
                }
        finally:
            api.stop()
            server.stop()
    return {
        "overhead": overhead,
        "storms": storms,
        "target_ratio": TARGET_RATIO,
        "errors": sum(s["errors"] for s in storms.values()),
        "config": {
            "quick": args.quick,
            "repetitions": args.repetitions,
            "requests_per_run": args.requests,
            "pinned": server_cores is not None,
            "python": platform.python_version(),
            "httpx": httpx.__version__,
            "wall_seconds": round(time.monotonic() - started, 1),
        },
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--serve-api"]:
        serve_api(argv[1])
        return 0
    if argv[:1] == ["--worker"]:
        worker(argv[1], argv[2], argv[3], argv[4], int(argv[5]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--repetitions", type=int, help="overhead repetitions (default 7)")
    parser.add_argument("--requests", type=int, help="requests per overhead run (default 2000)")
    args = parser.parse_args(argv)
    args.repetitions = args.repetitions or (3 if args.quick else 7)
    args.requests = args.requests or (200 if args.quick else 2000)
    args.tasks, args.threads, args.processes = (100, 10, 2) if args.quick else (1000, 50, 4)
    result = run(args)
    print(json.dumps(result, indent=2) if args.json else render(result))
    storms_ok = all(s["refreshes"] == 1 for s in result["storms"].values())
    return 0 if result["errors"] == 0 and storms_ok else 1


if __name__ == "__main__":
    sys.exit(main())
