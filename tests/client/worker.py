"""A separate OS process that shares a session file: ``python -m tests.client.worker MODE ...``.

- ``calls``: print ``ready``, wait for the ``--go`` file to appear (so that every worker starts
  at once), make ``--threads`` x ``--each`` calls, print a JSON summary.
- ``watch``: make a call every 50 ms until one fails with ``AuthExpiredError`` (another process
  signed out) or ``--seconds`` pass; print ``ready`` after the first success, then a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

from sessionkeeper.client import AuthExpiredError, FileStorage, SessionAuth, SessionKeeper
from tests.client.conftest import FAST, in_threads


def calls(keeper: SessionKeeper, api: str, go: Path, threads: int, each: int) -> dict[str, object]:
    statuses: Counter[str] = Counter()
    lock = threading.Lock()
    print("ready", flush=True)
    deadline = time.monotonic() + 30
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.002)

    def work() -> None:
        with httpx.Client(auth=SessionAuth(keeper), timeout=60) as client:
            for _ in range(each):
                try:
                    outcome = str(client.get(f"{api}/api/echo").status_code)
                except Exception as exc:
                    outcome = type(exc).__name__
                with lock:
                    statuses[outcome] += 1

    in_threads(threads, work, timeout=60)
    return {"statuses": dict(statuses)}


def watch(keeper: SessionKeeper, api: str, seconds: float) -> dict[str, object]:
    ok = 0
    error = None
    started = time.monotonic()
    with httpx.Client(auth=SessionAuth(keeper), timeout=10) as client:
        while time.monotonic() - started < seconds:
            try:
                client.get(f"{api}/api/echo").raise_for_status()
            except AuthExpiredError as exc:
                error = exc.reason
                break
            ok += 1
            if ok == 1:
                print("ready", flush=True)
            time.sleep(0.05)
    return {"ok": ok, "error": error}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["calls", "watch"])
    parser.add_argument("--auth", required=True)
    parser.add_argument("--api", required=True)
    parser.add_argument("--file", required=True)
    parser.add_argument("--go", default="")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--each", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=15)
    args = parser.parse_args()
    keeper = SessionKeeper(args.auth, storage=FileStorage(args.file), policy=FAST)
    events: list[str] = []
    keeper.subscribe(lambda event, _session: events.append(str(event)))
    if args.mode == "calls":
        result = calls(keeper, args.api, Path(args.go), args.threads, args.each)
    else:
        result = watch(keeper, args.api, args.seconds)
    keeper.close()
    print(json.dumps({**result, "events": events}), flush=True)


if __name__ == "__main__":
    main()
