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
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--json"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
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
