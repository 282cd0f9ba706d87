"""Smoke test for ``benchmarks/refresh_grant.py``: the quick run works and reports no errors.

It runs the script as a user would (a subprocess starting its own server on loopback) and
checks the shape of ``--json`` output, not the figures: those depend on the machine.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests import backends

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "refresh_grant.py"
FIGURE_KEYS = {
    "concurrency",
    "rps",
    "p50_ms",
    "p99_ms",
    "requests",
    "errors",
    "error_kinds",
    "ratio_vs_health",
    "ratio_vs_sqlite",
    "server_cpu",
    "loadgen_cpu",
    "other_cpu",
    "runs",
}


def _check_figures(figures: dict[str, Any], where: str) -> None:
    assert figures.keys() >= FIGURE_KEYS, where
    assert figures["errors"] == 0, (where, figures["error_kinds"])
    assert figures["requests"] > 0, where
    for key in ("rps", "p50_ms", "p99_ms", "ratio_vs_sqlite"):
        value = figures[key]
        assert isinstance(value, float | int), (where, key)
        assert math.isfinite(value), (where, key)
        assert value > 0, (where, key)
    assert figures["p50_ms"] <= figures["p99_ms"], where


def test_refresh_grant_quick_json() -> None:
    backends.require_postgres()  # the scale-out table runs on the real servers
    backends.require_redis()
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    # The JSON on stdout names the error kinds when a response was not a 200.
    assert done.returncode == 0, done.stderr[-2000:] + done.stdout[-2000:]
    result = json.loads(done.stdout)

    assert {
        "config",
        "sqlite_update",
        "health",
        "refresh",
        "signin",
        "refreshes_per_signin",
        "errors",
        "server_log",
        "diagnostics",
    } <= result.keys()
    assert result["errors"] == 0
    assert result["config"]["quick"] is True
    assert result["server_log"]["error_lines"] == 0
    assert result["server_log"]["tracebacks"] == 0

    _check_figures(result["sqlite_update"], "sqlite_update")
    for level in ("1", "8", "32"):
        _check_figures(result["health"][level], f"health C={level}")
        _check_figures(result["refresh"][level], f"refresh C={level}")
        assert result["refresh"][level]["ratio_vs_health"] > 0
        assert result["refresh"][level]["concurrency"] == int(level)
    for level in ("1", "8"):
        _check_figures(result["signin"][level], f"sign-in C={level}")
        assert result["refreshes_per_signin"][level] > 0

    # The scale-out table: every store, one and two processes, C = 1/8/32/64, RSS reported.
    scale = result["scale_out"]
    assert scale["notes"] == []  # no store was skipped (PostgreSQL and Redis are up in CI)
    assert set(scale["backends"]) == {"sqlite", "postgres", "postgres+redis"}
    for backend, by_procs in scale["backends"].items():
        for procs in ("1", "2"):
            for level in ("1", "8", "32", "64"):
                figures = by_procs[procs][level]
                where = f"{backend} x{procs} C={level}"
                assert figures["errors"] == 0, (where, figures["error_kinds"])
                assert figures["rps"] > 0 and figures["p50_ms"] <= figures["p99_ms"], where
                assert figures["ratio_vs_sqlite"] > 0, where
                assert figures["server_rss_mib"] > 10, where
                if procs == "2":
                    assert figures["ratio_vs_one_process"] > 0, where
        for logs in scale["server_logs"][backend]:
            assert logs["tracebacks"] == 0, backend
