"""The unmodified @supabase/supabase-js client (from npm) against a real server process.

``createClient(base, anonKey)`` finds our API under ``/auth/v1``: sign-up, sign-in, getUser,
getClaims (JWKS path), refresh, a repaired lost answer, updateUser, a replay that revokes the
family, and sign-out. Node and the npm packages come from ``scripts/test``; outside CI the test
skips with a hint when they are missing, under ``CI=true`` it fails instead.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import ServerProcess

JS_DIR = Path(__file__).resolve().parent.parent / "js"


def _node() -> str:
    node = shutil.which("node")
    ready = node is not None and (JS_DIR / "node_modules" / "@supabase" / "supabase-js").is_dir()
    if not ready:
        message = "needs node and `npm ci --prefix tests/js` (scripts/test does both)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    assert node is not None
    return node


def test_supabase_js_full_flow(start_server: Callable[..., ServerProcess]) -> None:
    node = _node()
    server = start_server("--reuse-interval", "0")
    result = subprocess.run(
        [node, str(JS_DIR / "supabase_flow.mjs"), server.base_url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome == {
        "signUp": True,
        "signIn": True,
        "getUser": True,
        "getClaims": True,
        "refresh": True,
        "lostAnswerRepaired": True,
        "updateUser": True,
        "wrongPasswordCode": "invalid_credentials",
        "replayCode": "refresh_token_already_used",
        "signedOut": True,
    }
