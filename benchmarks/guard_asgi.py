"""Requests/s and p99 latency of a guarded endpoint beside an unguarded one, in the same run.

Setup: one uvicorn worker (uvloop + httptools) serving a Starlette app wrapped in
``SessionGuard`` (ES256 keys from a JWKS file, bearer transport, ``protect=["/api/"]``), pinned
to the first core with ``taskset``; ``wrk`` pinned to the second core drives it over loopback.

* ``unprotected`` -- ``GET /public/ping`` with no token: HTTP, routing and the guard's
  pass-through (one path check);
* ``protected``   -- ``GET /api/ping`` with ``Authorization: Bearer <token>``, rotating through
  1,000 distinct users' ES256 tokens (a wrk Lua script), so the guard parses the header and
  looks each token up in its verified-token cache (each token is verified once, on first sight,
  then served from the cache until it expires: the steady state of real clients).

The two run back to back, ``--repetitions`` times; figures are medians, and the ratio
``protected / unprotected`` req/s is taken per repetition, then its median reported. Target (issue
4): protected >= 0.9 x unprotected. Any non-2xx answer or socket error counts as an error and
makes the exit status 1.

Requires ``wrk`` (Debian/Ubuntu: ``apt-get update && apt-get install -y wrk``) and ``taskset``
(util-linux). Only 127.0.0.1 is contacted; each run is bounded by ``--seconds``.

    .venv/bin/python benchmarks/guard_asgi.py            # full run, ~1 minute
    .venv/bin/python benchmarks/guard_asgi.py --quick    # smoke run, ~10 s
    .venv/bin/python benchmarks/guard_asgi.py --json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ISSUER = "https://bench.example/auth/v1"
USERS = 1000
TARGET_RATIO = 0.9
CONNECTIONS = 32

# Both endpoints are driven through a Lua ``request()`` function, so wrk does the same work per
# request on both sides and the ratio measures the server, not the load generator.
PLAIN_LUA = """
request = function()
  return wrk.format("GET", "/public/ping")
end
"""

LUA = """
local tokens = {}
for line in io.lines("%(tokens)s") do tokens[#tokens + 1] = line end
local i = 0
request = function()
  i = (i %% #tokens) + 1
  return wrk.format("GET", "/api/ping", {["Authorization"] = "Bearer " .. tokens[i]})
end
"""


# The server side: ``python guard_asgi.py --serve`` runs this app under uvicorn. ----------------


def build_app(jwks_file: str) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from sessionkeeper.guard import SessionGuard

    async def ping(request: Request) -> PlainTextResponse:
        return PlainTextResponse("pong")

    app = Starlette(routes=[Route("/public/ping", ping), Route("/api/ping", ping)])
    return SessionGuard(app, issuer=ISSUER, jwks=jwks_file, protect=["/api/"])


def serve(jwks_file: str, port: int) -> None:
    import uvicorn

    uvicorn.run(
        build_app(jwks_file),
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        workers=1,
        log_level="warning",
        access_log=False,
        lifespan="off",
    )


# The driver. ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def make_tokens(directory: Path) -> tuple[Path, Path]:
    from sessionkeeper.core.keys import SigningKey

    key = SigningKey.generate("ES256", kid="bench")
    jwks = directory / "jwks.json"
    jwks.write_text(json.dumps({"keys": [key.public_jwk()]}))
    now = int(time.time())
    tokens = directory / "tokens.txt"
    lines = []
    for i in range(USERS):
        lines.append(
            key.sign(
                {
                    "iss": ISSUER,
                    "sub": f"00000000-0000-4000-8000-{i:012d}",
                    "aud": "authenticated",
                    "exp": now + 3600,
                    "iat": now,
                    "email": f"user{i}@example.com",
                    "phone": "",
                    "role": "authenticated",
                    "aal": "aal1",
                    "amr": [{"method": "password", "timestamp": now}],
                    "session_id": f"10000000-0000-4000-8000-{i:012d}",
                    "is_anonymous": False,
                    "app_metadata": {"provider": "email", "providers": ["email"]},
                    "user_metadata": {},
                }
            )
        )
    tokens.write_text("\n".join(lines) + "\n")
    return jwks, tokens


def cores() -> tuple[str | None, str | None]:
    available = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(available) >= 2 and shutil.which("taskset"):
        return str(available[0]), str(available[1])
    return None, None


def pinned(core: str | None, cmd: list[str]) -> list[str]:
    return ["taskset", "-c", core, *cmd] if core is not None else cmd


def wait_ready(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the server exited during start-up")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the server did not start")


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def parse_wrk(text: str) -> dict[str, Any]:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    p50 = re.search(r"^\s+50%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    requests = int(re.search(r"(\d+) requests in", text).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    errors = int(non2xx.group(1)) if non2xx else 0
    if sockets:
        errors += sum(int(g) for g in sockets.groups())
    return {
        "rps": rps,
        "p50_ms": float(p50.group(1)) * _UNITS[p50.group(2)] if p50 else float("nan"),
        "p99_ms": float(p99.group(1)) * _UNITS[p99.group(2)] if p99 else float("nan"),
        "requests": requests,
        "errors": errors,
    }


def wrk(core: str | None, url: str, seconds: float, script: Path) -> dict[str, Any]:
    cmd = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{max(1, round(seconds))}s", "--latency"]
    cmd += ["-s", str(script)]
    done = subprocess.run(
        pinned(core, [*cmd, url]), capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed: {done.stderr.strip()}")
    return parse_wrk(done.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of one wrk run")
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 repetition of 1 s")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--jwks", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.jwks, args.port)
        return 0
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get update && apt-get install -y wrk", file=sys.stderr)
        return 2
    if args.quick:
        args.seconds, args.repetitions = 1.0, 1
    server_core, load_core = cores()
    with tempfile.TemporaryDirectory(prefix="guard-bench-") as tmp:
        directory = Path(tmp)
        jwks, tokens = make_tokens(directory)
        script = directory / "rotate.lua"
        script.write_text(LUA % {"tokens": tokens})
        plain = directory / "plain.lua"
        plain.write_text(PLAIN_LUA)
        port = free_port()
        cmd = [sys.executable, __file__, "--serve", "--jwks", str(jwks), "--port", str(port)]
        proc = subprocess.Popen(pinned(server_core, cmd), stderr=subprocess.PIPE)
        try:
            wait_ready(port, proc)
            base = f"http://127.0.0.1:{port}"
            wrk(load_core, f"{base}/api/ping", 1, script)  # warm-up: every token verified once
            runs = []
            for rep in range(args.repetitions):
                unprotected = wrk(load_core, f"{base}/public/ping", args.seconds, plain)
                protected = wrk(load_core, f"{base}/api/ping", args.seconds, script)
                runs.append(
                    {
                        "unprotected": unprotected,
                        "protected": protected,
                        "ratio": protected["rps"] / unprotected["rps"],
                    }
                )
                print(f"repetition {rep + 1}/{args.repetitions} done", file=sys.stderr)
        finally:
            proc.terminate()
            try:
                _, stderr = proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, stderr = proc.communicate()
    server_errors = stderr.decode(errors="replace").count("Traceback")

    def medians(name: str) -> dict[str, Any]:
        series = [r[name] for r in runs]
        return {
            "rps": statistics.median(s["rps"] for s in series),
            "p50_ms": statistics.median(s["p50_ms"] for s in series),
            "p99_ms": statistics.median(s["p99_ms"] for s in series),
            "requests": sum(s["requests"] for s in series),
            "errors": sum(s["errors"] for s in series),
        }

    output = {
        "config": {
            "quick": args.quick,
            "seconds": args.seconds,
            "repetitions": args.repetitions,
            "connections": CONNECTIONS,
            "users": USERS,
            "server_core": server_core,
            "loadgen_core": load_core,
            "pinned": server_core is not None,
            "python": platform.python_version(),
        },
        "unprotected": medians("unprotected"),
        "protected": medians("protected"),
        "ratio": statistics.median(r["ratio"] for r in runs),
        "target_ratio": TARGET_RATIO,
        "errors": sum(r["unprotected"]["errors"] + r["protected"]["errors"] for r in runs),
        "server_tracebacks": server_errors,
        "runs": runs,
    }
    output["met"] = output["ratio"] >= TARGET_RATIO
    if args.json:
        print(json.dumps(output, indent=2))
    else:
        print_table(output)
    if output["errors"] or server_errors:
        return 1
    return 0 if output["met"] or args.quick else 1


def print_table(output: dict[str, Any]) -> None:
    cfg = output["config"]
    pinning = (
        f"server on core {cfg['server_core']}, wrk on core {cfg['loadgen_core']}"
        if cfg["pinned"]
        else "NOT pinned (fewer than 2 cores or no taskset)"
    )
    print(
        f"uvicorn (uvloop, httptools, 1 worker) + SessionGuard; wrk -c{cfg['connections']}; "
        f"{cfg['users']} users' ES256 tokens in rotation; {pinning}"
    )
    print(f"medians of {cfg['repetitions']} x {cfg['seconds']:g} s\n")
    print(f"{'endpoint':14}{'req/s':>12}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}")
    for name in ("unprotected", "protected"):
        f = output[name]
        print(f"{name:14}{f['rps']:>12.0f}{f['p50_ms']:>10.2f}{f['p99_ms']:>10.2f}{f['errors']:>8}")
    print(
        f"\nprotected / unprotected req/s: {output['ratio']:.3f} (target >= {TARGET_RATIO}) -> "
        f"{'met' if output['met'] else 'MISSED'}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
