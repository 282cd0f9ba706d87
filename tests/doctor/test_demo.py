"""Acceptance 3: ``doctor probe`` against a real ``sessionkeeper demo`` process.

All green against the demo as it starts; against a demo whose API expects another issuer
(``--guard-issuer``), the probe names the mismatch with the guard's own reason.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import stop_process
from tests.doctor.conftest import doctor

pytestmark = pytest.mark.integration

OTHER_ISSUER = "https://abcdefghijklmnopqrst.supabase.co/auth/v1"
ENDPOINTS = ("/api/jobs", "/api/contacts", "/api/reports")


@dataclass
class Demo:
    url: str
    email: str
    password: str


def _start_demo(database: Path, *args: str) -> tuple[subprocess.Popen[str], Demo]:
    """Start the demo and read the three lines it promises on stdout."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "sessionkeeper.cli", "demo", "--port", "0",
         "--database", f"sqlite:///{database}", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "SESSIONKEEPER_LOG_LEVEL": "warning"},
    )  # fmt: skip
    assert proc.stdout is not None
    lines = [proc.stdout.readline() for _ in range(3)]
    opened = re.search(r"open\s+(http://\S+?)/?$", lines[1].rstrip())
    signed = re.search(r"sign in\s+(\S+) / (\S+)$", lines[2].rstrip())
    if lines[0].strip() != "sessionkeeper demo" or not opened or not signed:
        stop_process(proc)
        raise RuntimeError(f"unexpected demo banner: {lines!r}")
    demo = Demo(opened.group(1), signed.group(1), signed.group(2))
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{demo.url}/auth/v1/health", timeout=2).status_code == 200:
                return proc, demo
        except httpx.HTTPError:
            time.sleep(0.05)
    stop_process(proc)
    raise RuntimeError("the demo never became healthy")


@pytest.fixture
def start_demo(tmp_path: Path) -> Iterator[Callable[..., Demo]]:
    started: list[subprocess.Popen[str]] = []

    def factory(*args: str) -> Demo:
        proc, demo = _start_demo(tmp_path / f"demo{len(started)}.db", *args)
        started.append(proc)
        return demo

    yield factory
    for proc in started:
        stop_process(proc)


def probe(demo: Demo) -> tuple[int, dict[str, Any]]:
    endpoints = [arg for path in ENDPOINTS for arg in ("--endpoint", path)]
    outcome = doctor(
        "probe", demo.url, "--email", demo.email, *endpoints, "--json",
        env={"SESSIONKEEPER_DOCTOR_PASSWORD": demo.password},
    )  # fmt: skip
    report: dict[str, Any] = outcome.json()
    return outcome.exit_code, report


def test_probe_against_the_demo_is_all_green(start_demo: Callable[..., Demo]) -> None:
    exit_code, report = probe(start_demo())
    assert exit_code == 0, report["findings"]
    assert report["findings"] == []
    steps = {f["name"]: f["status"] for f in report["facts"]}
    assert steps == {
        "health": "ok", "jwks": "ok", "sign in": "ok", "token": "ok", "whoami": "ok",
        **dict.fromkeys(ENDPOINTS, "ok"),
    }  # fmt: skip


def test_probe_against_a_demo_expecting_another_issuer_names_the_mismatch(
    start_demo: Callable[..., Demo],
) -> None:
    demo = start_demo("--guard-issuer", OTHER_ISSUER)
    exit_code, report = probe(demo)
    assert exit_code == 1
    assert [f["code"] for f in report["findings"]] == ["wrong_issuer"]
    finding = report["findings"][0]
    assert f"{demo.url}/auth/v1" in finding["message"]
    assert f"Set the API guard's issuer to {demo.url}/auth/v1" in finding["hint"]
    assert len(finding["details"]["calls"]) == 1 + len(ENDPOINTS)
    steps = {f["name"]: (f["status"], f["value"]) for f in report["facts"]}
    assert steps["sign in"][0] == "ok" and steps["token"][0] == "ok"
    assert steps["whoami"] == ("error", "401 wrong_issuer")
