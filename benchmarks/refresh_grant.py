"""Refresh-grant throughput and latency on SQLite, with its baselines measured in the same run.

What is measured
----------------
A real ``sessionkeeper serve`` process (fresh temporary SQLite file, default argon2id cost,
rate limits off) is driven over loopback by an asyncio load generator: one ``httpx.AsyncClient``
per worker, each a keep-alive pool of one connection (as C separate app instances would be). With
two or more cores the server is pinned to one core and the load generator to another, so they do
not steal each other's CPU. Each run also records the CPU used by the server, by the load
generator and by every other process, so a reader can tell what limited a figure.

* ``refresh`` -- ``POST /token?grant_type=refresh_token`` at concurrency 1, 8 and 32. Each of
  the C workers owns one session (one sign-up each, made before any timing) and refreshes its
  own chain sequentially, always presenting the newest refresh token, for ``--seconds``. Every
  grant is a write transaction (revoke the old token, insert the new one, touch the session),
  serialised by SQLite's single writer.

Baselines, measured in the same run and interleaved with the refresh runs:

* ``sqlite update`` -- a bare ``sqlite3`` loop on a temporary file in the same directory, in
  the server's mode (WAL, ``synchronous=FULL``), doing ``BEGIN IMMEDIATE; UPDATE one row;
  COMMIT``, pinned to the server's core. This is the ceiling for any store that writes once per
  grant: ``refresh / sqlite`` says which fraction of it the whole HTTP + crypto + SQL path keeps.
* ``health`` -- ``GET /health`` at the same concurrency against the same server (HTTP parsing,
  routing, one thread-pool hop and a ``SELECT 1``): the floor of what any endpoint costs here.
  ``refresh / health`` says how much the grant adds on top of the plumbing.
* ``sign-in`` -- ``POST /token?grant_type=password`` at concurrency 1 and 8. argon2id dominates
  it by design; it is the cost a client pays when a session is lost and must be re-created, the
  cost that refreshing exists to avoid.

Every figure is the median over ``--repetitions`` runs (the machine is noisy); ratios are taken
per repetition (health and refresh at the same C run back to back) and their median is reported.
Every response must be a 200: anything else is counted and printed as an error, and the exit
status is 1. Loops are bounded in both time and count, and only loopback is ever contacted.

Run ``python benchmarks/refresh_grant.py --help`` for the options; ``benchmarks/README.md``
explains how to read the output.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import math
import os
import platform
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

if importlib.util.find_spec("sniffio") is None:
    # httpcore runs ``import sniffio`` on every request and falls back to asyncio when it is
    # missing; a failed import is not cached, so each one searches sys.path again (~18% of the
    # load generator's CPU in a profile at C=32). A None entry makes the import fail at once.
    sys.modules["sniffio"] = None  # type: ignore[assignment]

# Imported after the guard above, which must run before httpx (and so httpcore) loads.
import argon2
import httpx
from rich.console import Console
from rich.table import Table

API_VERSION = {"X-Supabase-Api-Version": "2024-01-01"}
PASSWORD = "benchmark horse battery staple"
REFRESH_LEVELS = (1, 8, 32)
SIGNIN_LEVELS = (1, 8)
SCALE_LEVELS = (1, 8, 32, 64)
SCALE_PROCESSES = (1, 2)
BACKENDS = ("sqlite", "postgres", "postgres+redis")
BENCH_POSTGRES_URL = os.environ.get(
    "SESSIONKEEPER_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
BENCH_REDIS_URL = os.environ.get("SESSIONKEEPER_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
REQUEST_TIMEOUT_S = 30.0  # one request; a sign-in at C=8 on one core takes ~2 s
PHASE_SLACK_S = 90.0  # a phase may overrun --seconds by at most this (in-flight requests)
MAX_REQUESTS_PER_PHASE = 200_000  # count bound on every timed loop
MAX_SQLITE_UPDATES = 2_000_000
SERVER_START_TIMEOUT_S = 60.0
_URL_RE = re.compile(r'url="(http://[^"]+)/auth/v1"')

err = Console(stderr=True)


# Percentiles and aggregation --------------------------------------------------------------------


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..1) of an already sorted list; NaN when empty."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def median(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return statistics.median(finite) if finite else math.nan


@dataclass
class Run:
    """One timed run of one scenario at one concurrency."""

    scenario: str
    concurrency: int
    requests: int  # successful (200) requests inside the timed window
    errors: int
    error_kinds: dict[str, int]
    elapsed_s: float
    latencies_s: list[float] = field(repr=False)
    server_cpu: float | None  # server CPU seconds / wall seconds (1.0 = one core busy)
    loadgen_cpu: float | None
    other_cpu: float | None  # every other process on the machine, in cores (noise)

    @property
    def rps(self) -> float:
        return self.requests / self.elapsed_s if self.elapsed_s > 0 else math.nan

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies_s)
        return {
            "rps": round(self.rps, 2),
            "p50_ms": round(percentile(ordered, 0.50) * 1000, 3),
            "p99_ms": round(percentile(ordered, 0.99) * 1000, 3),
            "requests": self.requests,
            "errors": self.errors,
            "error_kinds": self.error_kinds,
            "elapsed_s": round(self.elapsed_s, 3),
            "server_cpu": None if self.server_cpu is None else round(self.server_cpu, 3),
            "loadgen_cpu": None if self.loadgen_cpu is None else round(self.loadgen_cpu, 3),
            "other_cpu": None if self.other_cpu is None else round(self.other_cpu, 3),
        }


# CPU accounting ---------------------------------------------------------------------------------


def machine_busy_seconds() -> float | None:
    """CPU seconds spent by the whole machine (all cores, not idle/iowait); None off Linux."""
    try:
        first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in first[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _rate(before: float | None, after: float | None, elapsed: float) -> float | None:
    return None if before is None or after is None else (after - before) / elapsed


def _other(machine: float | None, *mine: float | None) -> float | None:
    if machine is None or any(v is None for v in mine):
        return None
    return max(0.0, machine - sum(v for v in mine if v is not None))


# CPU pinning ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pinning:
    server_core: int | None
    loadgen_core: int | None

    @property
    def active(self) -> bool:
        return self.server_core is not None and self.loadgen_core is not None

    def describe(self) -> str:
        if not self.active:
            return "not pinned (fewer than 2 usable cores, or no sched_setaffinity)"
        return f"server on core {self.server_core}, load generator on core {self.loadgen_core}"


def plan_pinning() -> Pinning:
    if not hasattr(os, "sched_setaffinity"):
        return Pinning(None, None)
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return Pinning(None, None)
    return Pinning(cores[0], cores[1])


@contextmanager
def pinned_to(core: int | None) -> Iterator[None]:
    """Run the block with this process on ``core`` (no-op for ``None``), then restore."""
    if core is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {core})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


# The server process -----------------------------------------------------------------------------


class ServerProcess:
    """``sessionkeeper serve`` on an ephemeral loopback port, its output going to a log file."""

    def __init__(
        self,
        workdir: Path,
        core: int | None,
        *,
        database: str | None = None,
        args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        name: str = "server",
    ) -> None:
        self.database = database or f"sqlite:///{workdir / 'sessionkeeper.db'}"
        self.log_path = workdir / f"{name}.log"
        self._log: TextIO | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._core = core
        self._args = args
        self._env = env or {}
        self.auth_url = ""

    def start(self) -> None:
        cmd = [
            sys.executable, "-m", "sessionkeeper.cli", "serve",
            "--host", "127.0.0.1", "--port", "0",
            "--database", self.database,
            "--issuer", "http://bench.test/auth/v1",  # the same on every instance of a store
            "--rate-limit-password-per-ip", "0",
            "--rate-limit-password-per-email", "0",
            "--rate-limit-signup-per-ip", "0",
            *self._args,
        ]  # fmt: skip
        self._log = self.log_path.open("w")
        # The child inherits this process's affinity at fork: pin ourselves, spawn, move back.
        with pinned_to(self._core):
            self._proc = subprocess.Popen(
                cmd,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self._env},
            )
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            match = _URL_RE.search(self.log_path.read_text())
            if match:
                self.auth_url = match.group(1) + "/auth/v1"
                break
            if self._proc.poll() is not None:
                break
            time.sleep(0.05)
        if not self.auth_url:
            self.stop()
            raise RuntimeError("server did not start:\n" + self.log_path.read_text()[-4000:])
        if not self.auth_url.startswith("http://127.0.0.1:"):
            self.stop()
            raise RuntimeError(f"refusing a non-loopback target: {self.auth_url}")

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def cpu_seconds(self) -> float | None:
        """User + system CPU time of the server (all threads) from /proc; None off Linux."""
        try:
            raw = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            return None
        fields = raw.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_bytes(self) -> int | None:
        """Resident memory of the server process now (VmRSS); None off Linux."""
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return None
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        return int(match.group(1)) * 1024 if match else None

    def log_counts(self) -> dict[str, int]:
        text = self.log_path.read_text() if self.log_path.exists() else ""
        return {
            "warning_lines": len(re.findall(r" WARNING ", text)),
            "error_lines": len(re.findall(r" (?:ERROR|CRITICAL) ", text)),
            "tracebacks": text.count("Traceback (most recent call last)"),
        }

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None


# Workers ----------------------------------------------------------------------------------------


class StepError(Exception):
    """A request that did not answer 200; ``kind`` is the status code or the exception name."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


Step = Callable[[httpx.AsyncClient], Awaitable[None]]


async def _checked(request: Awaitable[httpx.Response]) -> httpx.Response:
    try:
        response = await request
    except httpx.HTTPError as exc:
        raise StepError(type(exc).__name__) from exc
    if response.status_code != 200:
        code = response.headers.get("x-sb-error-code", "")
        raise StepError(f"{response.status_code} {code}".strip())
    return response


@dataclass
class Chain:
    """One session's refresh-token chain: always holds the newest token."""

    email: str
    refresh_token: str
    alive: bool = True

    async def refresh(self, client: httpx.AsyncClient) -> None:
        try:
            response = await _checked(
                client.post(
                    "/token?grant_type=refresh_token",
                    json={"refresh_token": self.refresh_token},
                    headers=API_VERSION,
                )
            )
            token = response.json()["refresh_token"]
        except StepError:
            self.alive = False  # rebuilt with a sign-in, untimed, before the next refresh run
            raise
        except (ValueError, KeyError) as exc:
            self.alive = False
            raise StepError("bad_body") from exc
        self.refresh_token = token


async def health(client: httpx.AsyncClient) -> None:
    await _checked(client.get("/health"))


def signin_step(email: str) -> Step:
    async def step(client: httpx.AsyncClient) -> None:
        response = await _checked(
            client.post(
                "/token?grant_type=password",
                json={"email": email, "password": PASSWORD},
                headers=API_VERSION,
            )
        )
        if "refresh_token" not in response.json():
            raise StepError("bad_body")

    return step


def _client(base_url: str, concurrency: int) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url,
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        timeout=REQUEST_TIMEOUT_S,
        trust_env=False,  # loopback only: never route through a proxy from the environment
    )


def _cpu_seconds(servers: list[ServerProcess]) -> float | None:
    readings = [server.cpu_seconds() for server in servers]
    return None if any(r is None for r in readings) else sum(r for r in readings if r is not None)


async def timed_run(
    servers: ServerProcess | list[ServerProcess],
    scenario: str,
    steps: list[Step],
    *,
    seconds: float,
    warmup: int,
) -> Run:
    """Run ``steps`` (one per worker) concurrently, each in a closed loop, for ``seconds``.

    Each worker has its own client (a keep-alive pool of one connection, like one app
    instance): one pool shared by 32 workers costs httpcore O(C) work per request and made
    the load generator, not the server, the bottleneck at C=32. Each worker first does
    ``warmup`` untimed requests (opens its connection). Then all start together; a worker
    issues requests back to back until the deadline or the count bound, or until its first
    error. Throughput is successful requests / time until the last worker finished (in-flight
    requests complete after the deadline and are counted).
    """
    servers = servers if isinstance(servers, list) else [servers]
    concurrency = len(steps)
    per_worker = max(1, MAX_REQUESTS_PER_PHASE // concurrency)
    latencies: list[float] = []
    kinds: Counter[str] = Counter()
    async with AsyncExitStack() as stack:
        # Worker i talks to server i mod n: the load is spread evenly over the instances.
        clients = [
            await stack.enter_async_context(_client(servers[i % len(servers)].auth_url, 1))
            for i in range(len(steps))
        ]

        async def warm(step: Step, client: httpx.AsyncClient) -> None:
            for _ in range(warmup):
                try:
                    await step(client)
                except StepError as exc:
                    kinds[f"warmup {exc.kind}"] += 1
                    return

        async def work(step: Step, client: httpx.AsyncClient, deadline: float) -> None:
            for _ in range(per_worker):
                if time.perf_counter() >= deadline:
                    return
                started = time.perf_counter()
                try:
                    await step(client)
                except StepError as exc:
                    kinds[exc.kind] += 1
                    return
                latencies.append(time.perf_counter() - started)

        pairs = list(zip(steps, clients, strict=True))
        await asyncio.wait_for(asyncio.gather(*(warm(s, c) for s, c in pairs)), PHASE_SLACK_S)
        server_cpu0, gen_cpu0 = _cpu_seconds(servers), time.process_time()
        machine0 = machine_busy_seconds()
        start = time.perf_counter()
        await asyncio.wait_for(
            asyncio.gather(*(work(s, c, start + seconds) for s, c in pairs)),
            seconds + PHASE_SLACK_S,
        )
        elapsed = time.perf_counter() - start
        server_cpu1, gen_cpu1 = _cpu_seconds(servers), time.process_time()
        machine1 = machine_busy_seconds()
    server_cpu = _rate(server_cpu0, server_cpu1, elapsed)
    loadgen_cpu = (gen_cpu1 - gen_cpu0) / elapsed
    return Run(
        scenario=scenario,
        concurrency=concurrency,
        requests=len(latencies),
        errors=sum(kinds.values()),
        error_kinds=dict(kinds),
        elapsed_s=elapsed,
        latencies_s=latencies,
        server_cpu=server_cpu,
        loadgen_cpu=loadgen_cpu,
        other_cpu=_other(_rate(machine0, machine1, elapsed), server_cpu, loadgen_cpu),
    )


# Raw SQLite baseline ----------------------------------------------------------------------------


def sqlite_update_run(path: Path, seconds: float) -> Run:
    """``BEGIN IMMEDIATE; UPDATE one row; COMMIT`` in a loop, WAL + synchronous=FULL."""
    path.unlink(missing_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)")
        conn.execute("INSERT INTO counter (id, n) VALUES (1, 0)")
        latencies: list[float] = []
        cpu0, machine0 = time.process_time(), machine_busy_seconds()
        start = time.perf_counter()
        deadline = start + seconds
        for _ in range(MAX_SQLITE_UPDATES):
            began = time.perf_counter()
            if began >= deadline:
                break
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("UPDATE counter SET n = n + 1 WHERE id = 1")
            conn.execute("COMMIT")
            latencies.append(time.perf_counter() - began)
        elapsed = time.perf_counter() - start
        cpu = (time.process_time() - cpu0) / elapsed
        machine = _rate(machine0, machine_busy_seconds(), elapsed)
        (count,) = conn.execute("SELECT n FROM counter WHERE id = 1").fetchone()
    finally:
        conn.close()
    errors = 0 if count == len(latencies) else abs(count - len(latencies))
    return Run(
        scenario="sqlite update",
        concurrency=1,
        requests=len(latencies),
        errors=errors,
        error_kinds={"lost updates": errors} if errors else {},
        elapsed_s=elapsed,
        latencies_s=latencies,
        server_cpu=cpu,  # the loop runs on the server's core, standing in for the server
        loadgen_cpu=None,
        other_cpu=_other(machine, cpu),
    )


# The benchmark ----------------------------------------------------------------------------------


@dataclass
class Options:
    seconds: float
    repetitions: int
    warmup: int
    quick: bool
    as_json: bool
    backends: tuple[str, ...] = BACKENDS


async def _create_chains(server: ServerProcess, count: int) -> list[Chain]:
    """``count`` users, each signed up once; the sign-up's session starts the chain."""
    chains: list[Chain] = []
    gate = asyncio.Semaphore(4)
    async with _client(server.auth_url, 4) as client:

        async def one(i: int) -> None:
            email = f"bench{i}@example.com"
            async with gate:
                response = await _checked(
                    client.post("/signup", json={"email": email, "password": PASSWORD})
                )
            chains.append(Chain(email=email, refresh_token=response.json()["refresh_token"]))

        await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(count))), PHASE_SLACK_S)
    chains.sort(key=lambda c: int(c.email[5:].split("@")[0]))
    return chains


async def _revive(server: ServerProcess, chains: list[Chain]) -> int:
    """Restart any chain broken by an error with a fresh sign-in (untimed)."""
    dead = [c for c in chains if not c.alive]
    if not dead:
        return 0
    async with _client(server.auth_url, 1) as client:
        for chain in dead:
            response = await _checked(
                client.post(
                    "/token?grant_type=password",
                    json={"email": chain.email, "password": PASSWORD},
                    headers=API_VERSION,
                )
            )
            chain.refresh_token, chain.alive = response.json()["refresh_token"], True
    return len(dead)


async def run_benchmark(opts: Options, pinning: Pinning, workdir: Path) -> dict[str, Any]:
    server = ServerProcess(workdir, pinning.server_core)
    runs: list[tuple[int, Run]] = []
    revived = 0
    wall0 = time.monotonic()
    server.start()
    try:
        if pinning.loadgen_core is not None:
            os.sched_setaffinity(0, {pinning.loadgen_core})
        err.print(f"server {server.auth_url} (pid {server.pid}); {pinning.describe()}")
        err.print(f"signing up {max(REFRESH_LEVELS)} users (argon2id, one core)...")
        chains = await _create_chains(server, max(REFRESH_LEVELS))
        for rep in range(opts.repetitions):
            err.print(f"repetition {rep + 1}/{opts.repetitions}")
            with pinned_to(pinning.server_core):
                runs.append((rep, sqlite_update_run(workdir / "baseline.db", opts.seconds)))
            # Health and refresh at the same C run back to back, so their ratio is paired.
            for level in REFRESH_LEVELS:
                runs.append((rep, await timed_run(
                    server, "health", [health] * level,
                    seconds=opts.seconds, warmup=opts.warmup,
                )))  # fmt: skip
                revived += await _revive(server, chains)
                runs.append((rep, await timed_run(
                    server, "refresh", [c.refresh for c in chains[:level]],
                    seconds=opts.seconds, warmup=opts.warmup,
                )))  # fmt: skip
            for level in SIGNIN_LEVELS:
                # No warm-up: one sign-in costs as much as the whole connection set-up many times.
                runs.append((rep, await timed_run(
                    server, "sign-in", [signin_step(c.email) for c in chains[:level]],
                    seconds=opts.seconds, warmup=0,
                )))  # fmt: skip
            last = runs[-1][1]
            err.print(
                f"  done; last: {last.scenario} C={last.concurrency} {last.rps:.1f} req/s",
                highlight=False,
            )
    finally:
        server.stop()
    return aggregate(opts, pinning, runs, server.log_counts(), revived, time.monotonic() - wall0)


def aggregate(
    opts: Options,
    pinning: Pinning,
    runs: list[tuple[int, Run]],
    log_counts: dict[str, int],
    revived: int,
    wall_s: float,
) -> dict[str, Any]:
    by_key: dict[tuple[str, int], dict[int, Run]] = {}
    for rep, run in runs:
        by_key.setdefault((run.scenario, run.concurrency), {})[rep] = run

    def figures(scenario: str, level: int) -> dict[str, Any]:
        per_rep = by_key[(scenario, level)]
        summaries = [r.summary() for r in per_rep.values()]
        health_runs = by_key.get(("health", level), {})
        sqlite_runs = by_key[("sqlite update", 1)]
        vs_health = [r.rps / health_runs[k].rps for k, r in per_rep.items() if k in health_runs]
        vs_sqlite = [r.rps / sqlite_runs[k].rps for k, r in per_rep.items() if k in sqlite_runs]

        def med(key: str) -> float | None:
            values = [s[key] for s in summaries if s[key] is not None]
            return round(median(values), 3) if values else None

        kinds: Counter[str] = Counter()
        for run in per_rep.values():
            kinds.update(run.error_kinds)
        return {
            "concurrency": level,
            "rps": med("rps"),
            "p50_ms": med("p50_ms"),
            "p99_ms": med("p99_ms"),
            "requests": sum(r.requests for r in per_rep.values()),
            "errors": sum(r.errors for r in per_rep.values()),
            "error_kinds": dict(kinds),
            "ratio_vs_health": round(median(vs_health), 4) if vs_health else None,
            "ratio_vs_sqlite": round(median(vs_sqlite), 5) if vs_sqlite else None,
            "server_cpu": med("server_cpu"),
            "loadgen_cpu": med("loadgen_cpu"),
            "other_cpu": med("other_cpu"),
            "runs": summaries,
        }

    result: dict[str, Any] = {
        "sqlite_update": figures("sqlite update", 1),
        "health": {str(c): figures("health", c) for c in REFRESH_LEVELS},
        "refresh": {str(c): figures("refresh", c) for c in REFRESH_LEVELS},
        "signin": {str(c): figures("sign-in", c) for c in SIGNIN_LEVELS},
    }
    # How many refreshes the server does in the time of one sign-in, paired per repetition.
    refresh_per_signin: dict[str, float | None] = {}
    for level in SIGNIN_LEVELS:
        pairs = [
            run.rps / by_key[("sign-in", level)][rep].rps
            for rep, run in by_key[("refresh", level)].items()
            if rep in by_key[("sign-in", level)] and by_key[("sign-in", level)][rep].rps > 0
        ]
        refresh_per_signin[str(level)] = round(median(pairs), 1) if pairs else None
    result["refreshes_per_signin"] = refresh_per_signin
    result["errors"] = sum(run.errors for _, run in runs)
    result["server_log"] = log_counts
    result["chains_revived"] = revived
    result["diagnostics"] = diagnose(result, pinning)
    hasher = argon2.PasswordHasher()
    result["config"] = {
        "seconds": opts.seconds,
        "repetitions": opts.repetitions,
        "warmup": opts.warmup,
        "quick": opts.quick,
        "pinning": pinning.describe(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "argon2id": {
            "time_cost": hasher.time_cost,
            "memory_cost_kib": hasher.memory_cost,
            "parallelism": hasher.parallelism,
        },
        "wall_s": round(wall_s, 1),
    }
    return result


def diagnose(result: dict[str, Any], pinning: Pinning) -> list[str]:
    """Plain-language warnings about what limited the figures, when it was not the server."""
    notes: list[str] = []
    h1 = result["health"]["1"]
    if (
        h1["p50_ms"] is not None
        and h1["p50_ms"] >= 20
        and (h1["server_cpu"] or 0) < 0.25
        and (h1["loadgen_cpu"] or 0) < 0.25
    ):
        notes.append(
            f"health at C=1 takes {h1['p50_ms']:.0f} ms while server and load generator are "
            "mostly idle: requests wait on the network, not on CPU. ~40 ms per keep-alive "
            "request is the signature of Nagle's algorithm meeting delayed ACKs (TCP_NODELAY "
            "not set on the server's sockets). C=1 and C=8 figures then measure that stall."
        )
    for name in ("health", "refresh", "signin"):
        for level, f in result[name].items():
            if (f["loadgen_cpu"] or 0) >= 0.9:
                notes.append(
                    f"{name} C={level}: the load generator used {f['loadgen_cpu']:.0%} of its "
                    "core; the server may be faster than this figure."
                )
    others = [
        f["other_cpu"]
        for name in ("health", "refresh", "signin")
        for f in result[name].values()
        if f["other_cpu"] is not None
    ]
    if others and max(others) >= 0.25:
        notes.append(
            f"other processes used up to {max(others):.0%} of a core during the runs: the "
            "machine was not quiet, so absolute figures are low; the ratios hold up better."
        )
    if not pinning.active:
        notes.append("server and load generator were not pinned: they shared cores.")
    return notes


# Scale-out: the refresh grant per backend, with one and two server processes ------------------


@dataclass
class Deployment:
    """Two ``serve`` processes sharing one store; the 1-process runs use the first only."""

    backend: str
    servers: list[ServerProcess]
    chains: list[Chain]


@contextmanager
def _store_for(
    backend: str, workdir: Path
) -> Iterator[tuple[str, tuple[str, ...], dict[str, str]]]:
    """A fresh store of kind ``backend``: (database URL, extra serve flags, environment).
    A temporary PostgreSQL database and Redis key prefix are removed afterwards."""
    token = os.urandom(4).hex()
    if backend == "sqlite":
        yield f"sqlite:///{workdir / f'scale-{token}.db'}", (), {}
        return
    import psycopg
    from psycopg import sql

    name = f"sk_bench_{token}"
    with psycopg.connect(BENCH_POSTGRES_URL, autocommit=True, connect_timeout=3) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = BENCH_POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    prefix = f"skbench:{token}:"
    try:
        if backend == "postgres":
            yield url, (), {}
        else:
            yield (
                url,
                ("--session-store", BENCH_REDIS_URL),
                {"SESSIONKEEPER_SESSION_STORE_PREFIX": prefix},
            )
    finally:
        with psycopg.connect(BENCH_POSTGRES_URL, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        if backend == "postgres+redis":
            import redis

            client = redis.Redis.from_url(BENCH_REDIS_URL)
            keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
            for start in range(0, len(keys), 500):
                client.delete(*keys[start : start + 500])
            client.close()


async def scale_out(opts: Options, workdir: Path) -> dict[str, Any]:
    """Refresh throughput and p99 per backend at each C, with one and two processes.

    Nothing is pinned here (every process may use both cores): two server processes can only
    outrun one if they get a core each, and the load generator and the database share the same
    cores, so the server/load-generator CPU columns say what limited each figure.
    """
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    notes: list[str] = []
    samples: dict[tuple[str, int, int], dict[int, tuple[Run, int | None]]] = {}
    with ExitStack() as stack:
        deployments: list[Deployment] = []
        for backend in opts.backends:
            try:
                database, args, env = stack.enter_context(_store_for(backend, workdir))
            except Exception as exc:  # a missing server or driver: report it, measure the rest
                notes.append(f"{backend} skipped: {type(exc).__name__}: {exc}")
                continue
            servers = []
            for i in range(max(SCALE_PROCESSES)):
                server = ServerProcess(
                    workdir, None, database=database, args=args, env=env, name=f"{backend}-{i}"
                )
                stack.callback(server.stop)
                server.start()  # one after the other: the first one migrates
                servers.append(server)
            err.print(f"{backend}: {len(servers)} servers; signing up {max(SCALE_LEVELS)} users...")
            chains = await _create_chains(servers[0], max(SCALE_LEVELS))
            deployments.append(Deployment(backend, servers, chains))
        for rep in range(opts.repetitions):
            err.print(f"scale-out repetition {rep + 1}/{opts.repetitions}")
            for level in SCALE_LEVELS:
                for dep in deployments:
                    for procs in SCALE_PROCESSES:
                        await _revive(dep.servers[0], dep.chains)
                        run = await timed_run(
                            dep.servers[:procs], "refresh",
                            [c.refresh for c in dep.chains[:level]],
                            seconds=opts.seconds, warmup=opts.warmup,
                        )  # fmt: skip
                        rss = [s.rss_bytes() for s in dep.servers[:procs]]
                        total = None if None in rss else sum(r for r in rss if r is not None)
                        samples.setdefault((dep.backend, procs, level), {})[rep] = (run, total)
        logs = {d.backend: [s.log_counts() for s in d.servers] for d in deployments}
    return aggregate_scale_out(samples, notes, logs)


def aggregate_scale_out(
    samples: dict[tuple[str, int, int], dict[int, tuple[Run, int | None]]],
    notes: list[str],
    logs: dict[str, list[dict[str, int]]],
) -> dict[str, Any]:
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for (backend, procs, level), per_rep in samples.items():
        summaries = [run.summary() for run, _ in per_rep.values()]
        base = samples.get(("sqlite", procs, level), {})
        ratios = [run.rps / base[k][0].rps for k, (run, _) in per_rep.items() if k in base]
        one = samples.get((backend, 1, level), {})
        scaling = [run.rps / one[k][0].rps for k, (run, _) in per_rep.items() if k in one]
        rss = [r for _, r in per_rep.values() if r is not None]
        kinds: Counter[str] = Counter()
        for run, _ in per_rep.values():
            kinds.update(run.error_kinds)

        def med(key: str, rows: list[dict[str, Any]] = summaries) -> float | None:
            values = [row[key] for row in rows if row[key] is not None]
            return round(median(values), 3) if values else None

        table.setdefault(backend, {}).setdefault(str(procs), {})[str(level)] = {
            "concurrency": level,
            "processes": procs,
            "rps": med("rps"),
            "p50_ms": med("p50_ms"),
            "p99_ms": med("p99_ms"),
            "requests": sum(run.requests for run, _ in per_rep.values()),
            "errors": sum(run.errors for run, _ in per_rep.values()),
            "error_kinds": dict(kinds),
            "ratio_vs_sqlite": round(median(ratios), 4) if ratios else None,
            "ratio_vs_one_process": round(median(scaling), 4) if scaling else None,
            "server_rss_mib": round(max(rss) / 2**20, 1) if rss else None,
            "server_cpu": med("server_cpu"),
            "loadgen_cpu": med("loadgen_cpu"),
            "other_cpu": med("other_cpu"),
            "runs": summaries,
        }
    errors = sum(f["errors"] for b in table.values() for p in b.values() for f in p.values())
    return {"backends": table, "errors": errors, "notes": notes, "server_logs": logs}


# Output -----------------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:,.{digits}f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def render(result: dict[str, Any], console: Console) -> None:
    cfg = result["config"]
    table = Table(
        title=(
            f"sessionkeeper refresh grant on SQLite -- median of {cfg['repetitions']} x "
            f"{cfg['seconds']:g} s runs"
        ),
        caption=(
            "÷ health: req/s over health req/s at the same C; ÷ SQLite: over raw SQLite "
            "updates/s (medians of per-repetition ratios)\nCPU: busy fraction of one core; "
            "other: all other processes on the machine (100% = one core)"
        ),
    )
    for name in ("scenario", "C", "req/s", "p50 ms", "p99 ms"):
        table.add_column(name, justify="left" if name == "scenario" else "right")
    for name in ("÷ health", "÷ SQLite", "errors", "server CPU", "loadgen CPU", "other CPU"):
        table.add_column(name, justify="right")

    def row(label: str, f: dict[str, Any], *, style: str | None = None) -> None:
        table.add_row(
            label,
            str(f["concurrency"]),
            _fmt(f["rps"], 1),
            _fmt(f["p50_ms"], 3),
            _fmt(f["p99_ms"], 3),
            "-" if label.startswith("SQLite") else _fmt(f["ratio_vs_health"], 3),
            _fmt(f["ratio_vs_sqlite"], 4),
            str(f["errors"]),
            _pct(f["server_cpu"]),
            _pct(f["loadgen_cpu"]),
            _pct(f["other_cpu"]),
            style=style,
        )

    row("SQLite update (ceiling)", result["sqlite_update"], style="dim")
    for level in REFRESH_LEVELS:
        row("health (floor)", result["health"][str(level)], style="dim")
        row("refresh grant", result["refresh"][str(level)], style="bold")
    for level in SIGNIN_LEVELS:
        row("sign-in (argon2id)", result["signin"][str(level)])
    console.print(table)
    a = cfg["argon2id"]
    console.print(
        f"sign-in cost: argon2id t={a['time_cost']} m={a['memory_cost_kib']} KiB "
        f"p={a['parallelism']}; the server completes "
        + ", ".join(
            f"{_fmt(v, 1)} refreshes per sign-in at C={c}"
            for c, v in result["refreshes_per_signin"].items()
        ),
        highlight=False,
    )
    kinds = {
        f"{name} C={level}": f["error_kinds"]
        for name in ("health", "refresh", "signin")
        for level, f in result[name].items()
        if f["error_kinds"]
    }
    console.print(
        f"errors: {result['errors']} {kinds if kinds else ''}; server log: {result['server_log']}; "
        f"chains revived: {result['chains_revived']}",
        highlight=False,
    )
    for note in result["diagnostics"]:
        console.print(f"[yellow]note:[/yellow] {note}", highlight=False)
    console.print(
        f"{cfg['pinning']}; Python {cfg['python']}, SQLite {cfg['sqlite']}; "
        f"wall time {cfg['wall_s']} s",
        highlight=False,
    )


def render_scale_out(scale: dict[str, Any], cfg: dict[str, Any], console: Console) -> None:
    table = Table(
        title=(
            f"refresh grant by store and server processes -- median of {cfg['repetitions']} x "
            f"{cfg['seconds']:g} s runs (not pinned)"
        ),
        caption=(
            "÷ SQLite: req/s over SQLite's with the same processes and C (paired per "
            "repetition); ÷ 1 proc: two processes over one, same store and C\nRSS: resident "
            "memory of the server processes (summed), largest over repetitions"
        ),
    )
    for name in ("store", "procs", "C", "req/s", "p50 ms", "p99 ms", "÷ SQLite", "÷ 1 proc"):
        table.add_column(name, justify="left" if name == "store" else "right")
    for name in ("RSS MiB", "errors", "server CPU", "loadgen CPU"):
        table.add_column(name, justify="right")
    for backend, by_procs in scale["backends"].items():
        for level in SCALE_LEVELS:
            for procs in SCALE_PROCESSES:
                f = by_procs.get(str(procs), {}).get(str(level))
                if f is None:
                    continue
                table.add_row(
                    backend,
                    str(procs),
                    str(level),
                    _fmt(f["rps"], 1),
                    _fmt(f["p50_ms"], 2),
                    _fmt(f["p99_ms"], 2),
                    _fmt(f["ratio_vs_sqlite"], 3),
                    "-" if procs == 1 else _fmt(f["ratio_vs_one_process"], 3),
                    _fmt(f["server_rss_mib"], 1),
                    str(f["errors"]),
                    _pct(f["server_cpu"]),
                    _pct(f["loadgen_cpu"]),
                    style="bold" if procs == 2 else None,
                )
    console.print(table)
    pg = scale["backends"].get("postgres", {}).get("2", {})
    best = max((f["ratio_vs_one_process"] or 0.0 for f in pg.values()), default=None)
    if best is not None:
        console.print(
            f"PostgreSQL, two processes over one: best {best:.2f}x (target >= 1.5x)",
            highlight=False,
        )
    for note in scale["notes"]:
        console.print(f"[yellow]note:[/yellow] {note}", highlight=False)


def parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        description="Refresh-grant throughput and p50/p99 at C=1/8/32 on SQLite, beside the "
        "sign-in (argon2id) cost, the /health floor and the raw SQLite update rate."
    )
    parser.add_argument(
        "--seconds", type=float, default=None, help="length of each timed run (default 3)"
    )
    parser.add_argument(
        "--repetitions", type=int, default=None, help="runs per figure; medians are reported "
        "(default 5)"
    )  # fmt: skip
    parser.add_argument(
        "--warmup", type=int, default=3, help="untimed requests per worker before each run"
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 1 repetition of 0.5 s runs (~20 s)"
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object instead of the table"
    )
    parser.add_argument(
        "--backends",
        default=",".join(BACKENDS),
        help="stores for the scale-out table, comma-separated, or 'none' (default: "
        + ",".join(BACKENDS)
        + "; PostgreSQL and Redis URLs from SESSIONKEEPER_BENCH_POSTGRES_URL "
        "and SESSIONKEEPER_BENCH_REDIS_URL)",
    )
    ns = parser.parse_args(argv)
    chosen = tuple(b for b in ns.backends.split(",") if b and b != "none")
    if unknown := set(chosen) - set(BACKENDS):
        parser.error(f"--backends: unknown {sorted(unknown)}; choose from {', '.join(BACKENDS)}")
    seconds = ns.seconds if ns.seconds is not None else (0.5 if ns.quick else 3.0)
    repetitions = ns.repetitions if ns.repetitions is not None else (1 if ns.quick else 5)
    if not 0 < seconds <= 600:
        parser.error("--seconds must be in (0, 600]")
    if not 1 <= repetitions <= 50:
        parser.error("--repetitions must be in [1, 50]")
    if not 0 <= ns.warmup <= 100:
        parser.error("--warmup must be in [0, 100]")
    return Options(seconds, repetitions, ns.warmup, ns.quick, ns.json, chosen)


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    pinning = plan_pinning()
    with tempfile.TemporaryDirectory(prefix="sessionkeeper-bench-") as tmp:
        result = asyncio.run(run_benchmark(opts, pinning, Path(tmp)))
        if opts.backends:
            result["scale_out"] = asyncio.run(scale_out(opts, Path(tmp)))
            result["errors"] += result["scale_out"]["errors"]
    if opts.as_json:
        print(json.dumps(result, indent=2))
    else:
        console = Console(width=max(Console().width, 150))
        render(result, console)
        if "scale_out" in result:
            render_scale_out(result["scale_out"], result["config"], console)
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
