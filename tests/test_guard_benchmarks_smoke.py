"""Smoke tests for ``benchmarks/verify.py`` and ``benchmarks/guard_asgi.py``: the quick runs
work and their ``--json`` output has the documented shape. Figures are not checked: they
depend on the machine.

The ASGI benchmark needs ``wrk``; without it the test skips, except under ``CI=true`` where a
missing load generator is a failure (CI must install it: ``apt-get install -y wrk``).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def run_quick(script: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--quick", "--json"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def positive(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


def test_verify_benchmark_quick_json() -> None:
    result = run_quick("verify.py")
    assert result["config"]["quick"] is True
    assert set(result["algorithms"]) == {"HS256", "ES256", "RS256"}
    for alg, figures in result["algorithms"].items():
        for key in ("floor", "decode", "guard", "guard_cached", "pyjwt", "joserfc"):
            assert positive(figures[key]), (alg, key)
        assert positive(figures["guard_vs_floor_plus_decode"]), alg
        assert len(figures["runs"]) == result["config"]["repetitions"]
    assert {"es256_uncached_vs_floor_plus_decode", "cached_us_max", "met"} <= set(result["targets"])


def test_guard_asgi_benchmark_quick_json() -> None:
    if shutil.which("wrk") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("wrk is required under CI: apt-get install -y wrk")
        pytest.skip("wrk not installed (apt-get install -y wrk)")
    result = run_quick("guard_asgi.py")
    assert result["config"]["quick"] is True
    assert result["config"]["users"] == 1000
    assert result["errors"] == 0
    assert result["server_tracebacks"] == 0
    for name in ("unprotected", "protected"):
        figures = result[name]
        for key in ("rps", "p50_ms", "p99_ms"):
            assert positive(figures[key]), (name, key)
        assert figures["p50_ms"] <= figures["p99_ms"]
        assert figures["requests"] > 0
    assert positive(result["ratio"])
