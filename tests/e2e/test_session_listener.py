"""The session listener with the unmodified ``@supabase/supabase-js`` in Chromium: supabase-js
keeps the session in the page, ``createSessionListener`` mirrors each sign-in, refresh and
sign-out into the bridge's HttpOnly cookies (``sessionkeeper demo --mode cookie``), with retries
on 5xx (3 attempts, 250 ms then 1 s)."""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

import pytest

from tests.e2e.conftest import Browsing, Demo
from tests.e2e.test_supabase_js import HERE, UMD

pytestmark = pytest.mark.integration


@pytest.fixture
def listener_page(start_demo: Any, browsing: Browsing) -> tuple[Any, Demo]:
    if not UMD.exists():
        pytest.fail("supabase-js is not installed: npm ci --prefix tests/js")
    demo: Demo = start_demo("--mode", "cookie")
    browsing.context.route(
        f"{demo.origin}/test/listener.html",
        lambda route: route.fulfill(path=str(HERE / "pages" / "listener.html")),
    )
    browsing.context.route(
        f"{demo.origin}/test/supabase.js",
        lambda route: route.fulfill(path=str(UMD), content_type="text/javascript"),
    )
    page = browsing.new_page()
    page.goto(f"{demo.origin}/test/listener.html")
    page.wait_for_selector("body[data-ready=true]")
    return page, demo


def _callbacks(browsing: Browsing, mark: int) -> list[dict[str, Any]]:
    return [
        e
        for e in browsing.network.since(mark)
        if e["url"].endswith("/auth/callback") and e["method"] == "POST"
    ]


def test_sign_in_refresh_and_sign_out_reach_the_cookies(
    listener_page: tuple[Any, Demo], browsing: Browsing
) -> None:
    page, demo = listener_page
    assert page.evaluate("() => window.harness.api('/api/jobs')") == 401
    mark = browsing.network.mark()
    page.evaluate(
        """async ([email, password]) => {
            await window.harness.sb.auth.signInWithPassword({ email, password });
            await window.harness.listener.idle();
        }""",
        [demo.email, demo.password],
    )
    posted = _callbacks(browsing, mark)
    assert [e["status"] for e in posted] == [200]
    body = json.loads(posted[0]["request"].post_data)
    assert body["event"] == "SIGNED_IN"
    assert set(body["session"]) >= {"access_token", "refresh_token", "expires_in"}
    assert page.evaluate("() => window.harness.api('/api/jobs')") == 200
    assert page.evaluate("() => document.cookie") == ""  # HttpOnly

    mark = browsing.network.mark()
    page.evaluate(
        "async () => { await window.harness.sb.auth.refreshSession();"
        " await window.harness.listener.idle(); }"
    )
    refreshed = _callbacks(browsing, mark)
    assert [json.loads(e["request"].post_data)["event"] for e in refreshed] == ["TOKEN_REFRESHED"]
    assert [e["status"] for e in refreshed] == [200]
    assert page.evaluate("() => window.harness.api('/api/jobs')") == 200

    mark = browsing.network.mark()
    page.evaluate(
        "async () => { await window.harness.sb.auth.signOut();"
        " await window.harness.listener.idle(); }"
    )
    assert [json.loads(e["request"].post_data)["event"] for e in _callbacks(browsing, mark)] == [
        "SIGNED_OUT"
    ]
    assert page.evaluate("() => window.harness.api('/api/jobs')") == 401


def test_a_failing_callback_is_retried_three_times_with_backoff(
    listener_page: tuple[Any, Demo], browsing: Browsing
) -> None:
    page, demo = listener_page
    attempts: list[float] = []

    def flaky(route: Any) -> None:
        attempts.append(time.monotonic())
        if len(attempts) < 3:
            route.fulfill(status=503, body='{"error":"issuer_unavailable"}')
        else:
            route.continue_()

    browsing.context.route(f"{demo.origin}/auth/callback", flaky)
    page.evaluate(
        """async ([email, password]) => {
            await window.harness.sb.auth.signInWithPassword({ email, password });
            await window.harness.listener.idle();
        }""",
        [demo.email, demo.password],
    )
    assert len(attempts) == 3
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert 0.2 <= gaps[0] < 0.9 and 0.9 <= gaps[1] < 2.5, gaps  # 250 ms, then 1 s
    assert page.evaluate("() => window.harness.api('/api/jobs')") == 200


def test_a_refused_callback_is_not_retried(
    listener_page: tuple[Any, Demo], browsing: Browsing
) -> None:
    page, demo = listener_page
    seen: list[int] = []

    def refuse(route: Any) -> None:
        seen.append(1)
        route.fulfill(status=403, body='{"error":"Forbidden","error_code":"origin_not_allowed"}')

    browsing.context.route(f"{demo.origin}/auth/callback", refuse)
    page.evaluate(
        """async ([email, password]) => {
            await window.harness.sb.auth.signInWithPassword({ email, password });
            await window.harness.listener.idle();
        }""",
        [demo.email, demo.password],
    )
    assert seen == [1]
    assert page.evaluate("() => window.harness.api('/api/jobs')") == 401
