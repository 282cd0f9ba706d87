"""A soak run, start to finish: set up the real parts, run users, revocations and faults for the
duration, read back the side effects, count, write the reports, tear everything down.

``run(SoakConfig(...))`` returns the report (a JSON-ready dict) and writes ``report.json``,
``report.md`` and (unless ``plot=False``) ``plot.png`` into ``out_dir``, plus the instances'
logs under ``out_dir/logs``. ``sessionkeeper soak`` is its command line.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import os
import platform
import random
import re
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from sessionkeeper.soak import cluster, effects, faults, report
from sessionkeeper.soak.proxy import Backend, Proxy, RefreshFaults
from sessionkeeper.soak.records import (
    AuthEventRecord,
    FaultRecord,
    RequestRecord,
    Revocation,
    SignInRecord,
    Timeline,
)
from sessionkeeper.soak.users import Behaviour, SimUser, SkewedClock, revoke

ISSUER = "http://soak.sessionkeeper.test/auth/v1"  # one fixed issuer for both instances
PASSWORD = "soak horse battery staple"  # noqa: S105 - the simulated users' password
INSTANCES = ("a", "b")
SETTLE = 150.0  # longest wait for the last requests after the run's end (> request_bound)


@dataclass(frozen=True)
class SoakConfig:
    duration: float = 600.0
    users: int = 200
    jwt_exp: int = 10
    store: str = "postgres+redis"  # or "postgres"
    faults: bool = True
    revoked_share: float = 0.1
    skewed_share: float = 0.2
    file_storage_share: float = 0.5
    seed: int = 1
    postgres_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    out_dir: Path = Path("soak-report")
    behaviour: Behaviour = field(default_factory=Behaviour)
    progress: bool = True
    plot: bool = True
    signup_concurrency: int = 4
    command: str = ""


@dataclass
class _Run:
    config: SoakConfig
    timeline: Timeline
    requests: list[RequestRecord] = field(default_factory=list)
    events: list[AuthEventRecord] = field(default_factory=list)
    revocations: list[Revocation] = field(default_factory=list)
    fault_records: list[FaultRecord] = field(default_factory=list)
    sign_ins: list[SignInRecord] = field(default_factory=list)
    users: list[SimUser] = field(default_factory=list)
    current_fault: str = ""
    phase: str = "set-up"
    harness_errors: list[str] = field(default_factory=list)


def run(config: SoakConfig) -> dict[str, Any]:
    """Run a soak; returns the report (also written to ``config.out_dir``)."""
    (config.out_dir / "logs").mkdir(parents=True, exist_ok=True)
    with _client_log(config.out_dir / "logs" / "clients.log"):
        try:
            import uvloop  # the dev extra has it: the users, the proxy and the harness share a loop
        except ImportError:
            return asyncio.run(_main(config))
        return uvloop.run(_main(config))


@contextlib.contextmanager
def _client_log(path: Path) -> Iterator[None]:
    """The users' clients log (fingerprints only, never tokens) to a file, not the terminal."""
    from sessionkeeper.logs import KeyValueFormatter

    logger = logging.getLogger("sessionkeeper.client")
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(
        KeyValueFormatter("%(asctime)s %(levelname)s %(name)s %(threadName)s %(message)s")
    )
    saved = (logger.handlers[:], logger.level, logger.propagate)
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.handlers[:], level, logger.propagate = saved
        logger.setLevel(level)
        handler.close()


async def _main(config: SoakConfig) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(64, "soak"))
    load_start = _load()
    with (
        tempfile.TemporaryDirectory(prefix="sk-soak-") as work,
        cluster.private_database(config.postgres_url) as database,
    ):
        workdir = Path(work)
        effects.create_tables(database)
        redis = None
        if config.store == "postgres+redis":
            redis = cluster.PrivateRedis(workdir / "redis")
            redis.start()
        logs = config.out_dir / "logs"
        instances = {
            name: cluster.Instance(
                name,
                cluster.instance_command(
                    name,
                    database=database,
                    issuer=ISSUER,
                    jwt_exp=config.jwt_exp,
                    session_store=redis.url if redis else None,
                ),
                logs / f"instance-{name}.log",
            )
            for name in INSTANCES
        }
        try:
            for instance in instances.values():  # one after the other: the first migrates
                await asyncio.to_thread(instance.start)
            result = await _soak(config, database, instances, redis, workdir)
        finally:
            for instance in instances.values():
                await asyncio.to_thread(instance.close)
            if redis is not None:
                redis.stop()
    result["machine"]["load_at_start"] = load_start
    _write(config, result)
    return result


async def _soak(
    config: SoakConfig,
    database: str,
    instances: dict[str, cluster.Instance],
    redis: cluster.PrivateRedis | None,
    workdir: Path,
) -> dict[str, Any]:
    rng = random.Random(config.seed)
    timeline = Timeline()
    state = _Run(config, timeline)
    proxy = Proxy(
        [Backend(name, port=inst.port) for name, inst in instances.items()],
        observe=lambda name: timeline.count(f"proxy_{name}"),
    )
    await proxy.start()
    base = f"http://127.0.0.1:{proxy.port}"
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=16)
    http = httpx.AsyncClient(base_url=base, timeout=config.behaviour.http_timeout, limits=limits)
    progress = _Progress(config, state) if config.progress else None
    following = None
    try:
        state.users = _make_users(config, state, base, workdir, rng)
        if progress:
            progress.start()
            following = asyncio.create_task(progress.follow(config.duration))
        await _sign_up_all(config, state, http, progress)
        # The clock starts now: set-up (sign-ups) is not part of the run.
        timeline.t0 = time.monotonic()
        timeline.buckets.clear()
        state.events.clear()
        state.phase = "run"
        revoked = rng.sample(state.users, round(config.users * config.revoked_share))
        for user in revoked:
            user.revocation = Revocation(
                user.index, planned_at=rng.uniform(0.08, 0.8) * config.duration
            )
            state.revocations.append(user.revocation)
        schedule = faults.schedule(config.duration, INSTANCES) if config.faults else []
        parts = _Parts(proxy, instances, redis, database)
        tasks = [asyncio.create_task(user.live(config.duration)) for user in state.users]
        side = [asyncio.create_task(_revoke_later(http, user, timeline)) for user in revoked] + [
            asyncio.create_task(_fault_later(f, state, parts)) for f in schedule
        ]
        side.append(asyncio.create_task(_watch_loop(timeline, config.duration)))
        done, pending = await asyncio.wait(tasks + side, timeout=config.duration + SETTLE)
        for task in pending:
            task.cancel()
        for task in pending:
            state.harness_errors.append(f"a task did not finish in time: {task.get_name()}")
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                state.harness_errors.append(repr(task.exception())[:300])
        ran_for = timeline.now()
    finally:
        if following is not None:
            following.cancel()
        if progress:
            progress.stop()
        await http.aclose()
        await proxy.close()
        for user in state.users:
            await asyncio.to_thread(user.close)
    recorded = await asyncio.to_thread(effects.read_back, database)
    await asyncio.to_thread(_save_records, config.out_dir / "logs" / "records.json.gz", state)
    return _build_report(config, state, recorded, instances, ran_for, schedule_len=len(schedule))


def _make_users(
    config: SoakConfig, state: _Run, base: str, workdir: Path, rng: random.Random
) -> list[SimUser]:
    users = []
    run_tag = f"{int(time.time())}-{rng.randrange(16**6):06x}"
    for i in range(config.users):
        skewed = rng.random() < config.skewed_share
        offset = rng.choice((-1, 1)) * rng.uniform(60, 900) if skewed else 0.0
        on_file = rng.random() < config.file_storage_share
        users.append(
            SimUser(
                index=i,
                email=f"soak-{run_tag}-{i}@example.com",
                password=PASSWORD,
                auth_url=f"{base}/auth/v1",
                clock=SkewedClock(offset),
                storage_path=workdir / "sessions" / f"user-{i}.json" if on_file else None,
                timeline=state.timeline,
                behaviour=config.behaviour,
                requests=state.requests,
                events=state.events,
                sign_ins=state.sign_ins,
                rng=random.Random(rng.random()),
            )
        )
    return users


async def _sign_up_all(
    config: SoakConfig, state: _Run, http: httpx.AsyncClient, progress: _Progress | None
) -> None:
    gate = asyncio.Semaphore(config.signup_concurrency)

    async def one(user: SimUser) -> None:
        async with gate:
            await user.sign_up(http)
            if progress:
                progress.signed_up += 1

    await asyncio.gather(*(one(u) for u in state.users))


async def _watch_loop(timeline: Timeline, duration: float) -> None:
    """The harness's own event-loop lag (the users, the proxy and the flights' callbacks share
    one loop): the worst per second, so a report can say how much of the latency was ours."""
    while timeline.now() < duration:
        before = time.monotonic()
        await asyncio.sleep(0.1)
        lag_ms = int((time.monotonic() - before - 0.1) * 1000)
        second = int(timeline.now())
        with timeline.lock:
            bucket = timeline.buckets.setdefault(second, Counter())
            bucket["loop_lag_ms_max"] = max(bucket["loop_lag_ms_max"], lag_ms)


async def _revoke_later(http: httpx.AsyncClient, user: SimUser, timeline: Timeline) -> None:
    assert user.revocation is not None
    await asyncio.sleep(max(0.0, user.revocation.planned_at - timeline.now()))
    timeline.count("revocations")
    await revoke(http, user, user.revocation, timeline.now)


@dataclass
class _Parts:
    """What faults act on."""

    proxy: Proxy
    instances: dict[str, cluster.Instance]
    redis: cluster.PrivateRedis | None
    database: str


async def _fault_later(fault: faults.Fault, state: _Run, parts: _Parts) -> None:
    timeline = state.timeline
    await asyncio.sleep(max(0.0, fault.at - timeline.now()))
    record = FaultRecord(fault.kind, timeline.now(), target=fault.target)
    state.fault_records.append(record)
    state.current_fault = fault.kind
    timeline.count(f"fault_{fault.kind}")
    try:
        record.detail = await _apply(fault, state, parts)
    except Exception as exc:
        record.error = f"{type(exc).__name__}: {exc}"[:300]
    finally:
        record.ended = timeline.now()
        if state.current_fault == fault.kind:
            state.current_fault = ""


async def _restart(proxy: Proxy, instance: cluster.Instance) -> int:
    port = await asyncio.to_thread(instance.start)
    proxy.set_port(instance.name, port)
    return port


async def _refresh_window(proxy: Proxy, window: RefreshFaults, duration: float) -> None:
    proxy.refresh_faults = window
    try:
        await asyncio.sleep(duration)
    finally:
        proxy.refresh_faults = RefreshFaults()


async def _apply(fault: faults.Fault, state: _Run, parts: _Parts) -> str:
    kind, duration = fault.kind, fault.duration
    proxy, instances, redis = parts.proxy, parts.instances, parts.redis
    if kind == "refresh_latency":
        await _refresh_window(proxy, RefreshFaults(latency=faults.LATENCY), duration)
        return f"+{faults.LATENCY[0]}-{faults.LATENCY[1]} s on every refresh"
    if kind == "refresh_errors":
        window = RefreshFaults(fail_before=faults.FAIL_BEFORE, lose_answer=faults.LOSE_ANSWER)
        await _refresh_window(proxy, window, duration)
        return (
            f"{faults.FAIL_BEFORE:.0%} answered 503 unforwarded, "
            f"{faults.LOSE_ANSWER:.0%} answers lost (502 after rotation)"
        )
    if kind == "restart":
        instance = instances[fault.target]
        await proxy.drain(instance.name)
        await asyncio.to_thread(instance.stop)
        await _restart(proxy, instance)
        return "drained, SIGTERM, new process"
    if kind == "kill9":
        instance = instances[fault.target]
        await asyncio.to_thread(instance.kill)
        await asyncio.sleep(duration)
        await _restart(proxy, instance)
        return f"SIGKILL, restarted after {duration:g} s"
    if kind == "outage":
        await asyncio.gather(*(asyncio.to_thread(i.kill) for i in instances.values()))
        await asyncio.sleep(duration)
        await asyncio.gather(*(_restart(proxy, i) for i in instances.values()))
        return f"both instances SIGKILLed, restarted after {duration:g} s"
    if kind == "store_pause":
        if redis is not None:
            redis.pause()
            try:
                await asyncio.sleep(duration)
            finally:
                redis.resume()
            return f"Redis SIGSTOPped for {duration:g} s"
        await asyncio.to_thread(cluster.pause_postgres_sessions, parts.database, duration)
        return f"sessions and refresh_tokens locked ACCESS EXCLUSIVE for {duration:g} s"
    if kind == "store_disconnect":
        dropped = await asyncio.to_thread(cluster.terminate_connections, parts.database)
        return f"{dropped} PostgreSQL connections terminated"
    if kind == "clock_jump":
        jumped = []
        for user in state.users:
            shift = (-faults.CLOCK_JUMP, faults.CLOCK_JUMP, 0.0)[user.index % 3]
            if shift:
                user.clock.offset += shift
                jumped.append((user, shift))
        try:
            await asyncio.sleep(duration)
        finally:
            for user, shift in jumped:
                user.clock.offset -= shift
        return f"{len(jumped)} clocks moved ±{faults.CLOCK_JUMP:g} s, then back"
    raise ValueError(f"unknown fault {kind!r}")


# -- the report ----------------------------------------------------------------------------------


def _build_report(
    config: SoakConfig,
    state: _Run,
    recorded: effects.RecordedEffects,
    instances: dict[str, cluster.Instance],
    ran_for: float,
    schedule_len: int,
) -> dict[str, Any]:
    user_ids = {u.index: u.user_id for u in state.users}
    windows = [
        (f.started, f.ended if f.ended is not None else ran_for) for f in state.fault_records
    ]
    counts = report.count(
        state.requests,
        state.revocations,
        state.events,
        recorded,
        user_ids,
        windows,
        sign_ins=state.sign_ins,
    )
    seconds = max(1, int(ran_for) + 1)
    timeline = state.timeline
    series = {name: timeline.series(name, seconds) for name in timeline.names()}
    spurious = [0] * seconds
    for item in counts["spurious_examples"]:
        spurious[min(seconds - 1, int(item["at"]))] += 1
    series["spurious"] = spurious
    p50, p99 = _latency_windows(state.requests, seconds)
    faults_failed = sum(1 for f in state.fault_records if f.error)
    faults_failed += max(0, schedule_len - len(state.fault_records))
    result: dict[str, Any] = {
        "command": config.command or "sessionkeeper soak",
        "config": {
            "duration_s": config.duration,
            "users": config.users,
            "jwt_exp_s": config.jwt_exp,
            "store": config.store,
            "faults": config.faults,
            "revoked_share": config.revoked_share,
            "skewed_share": config.skewed_share,
            "file_storage_share": config.file_storage_share,
            "seed": config.seed,
            "behaviour": asdict(config.behaviour),
            "instances": len(instances),
            "users_with_skewed_clocks": sum(1 for u in state.users if u.clock.offset),
        },
        "counts": counts,
        "verdict": report.verdict(
            counts,
            faults_failed=faults_failed,
            revocations_planned=len(state.revocations),
            harness_errors=state.harness_errors,
        ),
        "harness_errors": state.harness_errors,
        "faults": [asdict(f) for f in state.fault_records],
        "proxy": {
            name.removeprefix("proxy_"): timeline.total(name)
            for name in timeline.names()
            if name.startswith("proxy_")
        },
        "server_log": _server_log(instances),
        "instance_starts": {name: i.starts for name, i in instances.items()},
        "sign_ins_again": len(state.sign_ins),
        "revocations": report.revocation_details(
            state.revocations, state.requests, state.events, state.sign_ins
        ),
        "harness_loop_lag_ms": {
            "p99": report.percentile(series.get("loop_lag_ms_max", []), 99),
            "max": max(series.get("loop_lag_ms_max", [0]) or [0]),
        },
        "ran_for_s": round(ran_for, 1),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_at_end": _load(),
            "note": "shared 2-core machine: other work ran at the same time",
        },
        "timeline": {
            "seconds": seconds,
            "series": series,
            "latency_p50_ms_5s": p50,
            "latency_p99_ms_5s": p99,
        },
    }
    return result


def _save_records(path: Path, state: _Run) -> None:
    """Every record of the run (no tokens in them), for a later look at any figure."""
    import gzip

    data = {
        "requests": [asdict(r) for r in state.requests],
        "events": [asdict(e) for e in state.events],
        "revocations": [asdict(r) for r in state.revocations],
        "sign_ins": [asdict(s) for s in state.sign_ins],
        "faults": [asdict(f) for f in state.fault_records],
    }
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        json.dump(data, handle)


def _server_log(instances: dict[str, cluster.Instance]) -> dict[str, Any]:
    """ERROR lines by event (a store outage logs ``store_unavailable`` on purpose) and the
    tracebacks, which no fault should cause."""
    events: Counter[str] = Counter()
    tracebacks: list[str] = []
    for instance in instances.values():
        for line in instance.log_problems:
            if "Traceback" in line:
                tracebacks.append(f"{instance.name}: {line}")
            else:
                match = re.search(r'event="([^"]+)"', line)
                events[match.group(1) if match else line[:80]] += 1
    return {"errors_by_event": dict(events), "tracebacks": tracebacks[:20]}


def _latency_windows(
    requests: list[RequestRecord], seconds: int
) -> tuple[list[float | None], list[float | None]]:
    windows: list[list[float]] = [[] for _ in range(seconds // 5 + 1)]
    for r in requests:
        if r.outcome == "ok" and r.ended is not None:
            windows[min(len(windows) - 1, int(r.ended) // 5)].append((r.ended - r.started) * 1000)
    p50 = [report.percentile(w, 50) for w in windows]
    p99 = [report.percentile(w, 99) for w in windows]
    return (
        [None if v is None else round(v, 1) for v in p50],
        [None if v is None else round(v, 1) for v in p99],
    )


def _write(config: SoakConfig, result: dict[str, Any]) -> None:
    out = config.out_dir
    (out / "report.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    (out / "report.md").write_text(report.render_markdown(result), encoding="utf-8")
    if config.plot:
        from sessionkeeper.soak.plot import render

        render(result, out / "plot.png")


def _load() -> str:
    with contextlib.suppress(OSError):
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    return "?"


# -- progress --------------------------------------------------------------------------------------


class _Progress:
    """A rich progress bar: set-up (sign-ups), then the run with its live counts."""

    def __init__(self, config: SoakConfig, state: _Run) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.config = config
        self.state = state
        self.signed_up = 0
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[info]}"),
            transient=False,
        )
        self._task = self._progress.add_task("set-up", total=config.users, info="signing up")

    def start(self) -> None:
        self._progress.start()
        self._progress.update(self._task, completed=0)

    def stop(self) -> None:
        self._update()
        self._progress.stop()

    async def follow(self, duration: float) -> None:
        while self.state.phase == "set-up" or self.state.timeline.now() < duration + SETTLE:
            self._update()
            await asyncio.sleep(0.5)

    def _update(self) -> None:
        if self.state.phase == "set-up":
            self._progress.update(self._task, completed=self.signed_up)
            return
        timeline = self.state.timeline
        covered = {r.user for r in self.state.revocations if r.started is not None}
        spurious = sum(
            1 for e in self.state.events if e.event == "NEEDS_REAUTH" and e.user not in covered
        )
        info = (
            f"req {timeline.total('outcome_ok'):,} ok · refresh {timeline.total('refreshes'):,} · "
            f"5xx {timeline.total('five_xx'):,} · failed {timeline.total('outcome_failed'):,} · "
            f"revoked {sum(1 for r in self.state.revocations if r.done is not None)} · "
            f"spurious {spurious} · {self.state.current_fault or 'no fault'}"
        )
        self._progress.update(
            self._task,
            description="soak",
            total=self.config.duration,
            completed=min(self.config.duration, max(0.0, timeline.now())),
            info=info,
        )
