"""Smoke test for ``benchmarks/client_overhead.py``: the quick run works and its JSON has the
documented shape. The figures depend on the machine and are not checked; the storm counts are
behaviour, so they are (one refresh each, every call answered 200)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "client_overhead.py"


def test_client_overhead_quick_json() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--json"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout)

    assert {"overhead", "storms", "target_ratio", "errors", "config"} <= result.keys()
    assert result["errors"] == 0
    assert result["config"]["quick"] is True
    overhead = result["overhead"]
    for side in ("sync", "async"):
        figures = overhead[side]
        assert {"baseline_us", "session_auth_us", "ratio", "runs"} <= figures.keys()
        for key in ("baseline_us", "session_auth_us", "ratio"):
            assert isinstance(figures[key], float | int)
            assert math.isfinite(figures[key]) and figures[key] > 0
        assert len(figures["runs"]) == result["config"]["repetitions"]
    assert overhead["get_authorization_ns"] > 0
    assert set(result["storms"]) == {"asyncio", "threads", "processes"}
    for storm in result["storms"].values():
        assert storm["refreshes"] == 1
        assert storm["ok"] == storm["calls"] > 0
