"""Unit tests of the browser client (``src/sessionkeeper/web/sessionkeeper.js``) under Node.

``node --test tests/js/unit/`` runs them with Node's built-in test runner (no npm packages): fakes
for the clock, localStorage, Web Locks, the auth server and the API, two tabs over Node's
BroadcastChannel. This test runs that command and fails with Node's output when it fails. Without
``node`` it skips, except under ``CI=true`` where it fails instead.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT_DIR = ROOT / "tests" / "js" / "unit"


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        message = "needs node (20 or later) on PATH for the sessionkeeper.js unit tests"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message} (CI=true: these tests must run)")
        pytest.skip(message)
    return node


def test_sessionkeeper_js_unit_tests_pass() -> None:
    node = _node()
    assert sorted(UNIT_DIR.glob("*.test.mjs")), f"no unit tests found in {UNIT_DIR}"
    result = subprocess.run(
        [node, "--test", "--test-reporter=tap", str(UNIT_DIR.relative_to(ROOT)) + "/"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"node --test failed (exit {result.returncode}):\n{output}"
    assert "\n# fail 0\n" in output, output
    assert re.search(r"^# pass [1-9]", output, re.MULTILINE), output
