"""Acceptance 6: an app that signs in with the unmodified ``@supabase/supabase-js`` (its npm UMD
bundle, served as a static file) calls the demo API through ``sessionkeeper.js``'s supabase-js
adapter, also after a silent refresh."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Browsing, Demo

pytestmark = pytest.mark.integration

HERE = Path(__file__).parent
UMD = (
    HERE.parent
    / "js"
    / "node_modules"
    / "@supabase"
    / "supabase-js"
    / "dist"
    / "umd"
    / "supabase.js"
)


@pytest.fixture
def supabase_page(start_demo: Any, browsing: Browsing) -> tuple[Any, Demo]:
    if not UMD.exists():
        message = "supabase-js is not installed: npm ci --prefix tests/js"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    demo: Demo = start_demo("--jwt-exp", "5")
    # Served from the demo's origin (as an app would host its bundle), by the browser's router.
    browsing.context.route(
        f"{demo.origin}/test/supabase.html",
        lambda route: route.fulfill(path=str(HERE / "pages" / "supabase.html")),
    )
    browsing.context.route(
        f"{demo.origin}/test/supabase.js",
        lambda route: route.fulfill(path=str(UMD), content_type="text/javascript"),
    )
    browsing.context.clock.install()
    page = browsing.new_page()
    page.goto(f"{demo.origin}/test/supabase.html")
    page.wait_for_selector("body[data-ready=true]")
    return page, demo


def test_supabase_js_signs_in_and_the_api_client_calls_the_api_also_after_a_silent_refresh(
    supabase_page: tuple[Any, Demo], browsing: Browsing
) -> None:
    page, demo = supabase_page
    signed_in = page.evaluate(
        """async ([email, password]) => {
            const auth = window.harness.sb.auth;
            const { data, error } = await auth.signInWithPassword({ email, password });
            return { error: error && error.message, user: data.user && data.user.email };
        }""",
        [demo.email, demo.password],
    )
    assert signed_in == {"error": None, "user": demo.email}
    first = page.evaluate("() => window.harness.api.json('/jobs')")
    assert first["count"] == 18
    whoami = page.evaluate("() => window.harness.api.json('/debug/whoami')")
    assert whoami["email"] == demo.email

    # 20 s later (5 s tokens): the adapter refreshes through supabase-js before the call.
    before = page.evaluate(
        "async () => (await window.harness.sb.auth.getSession()).data.session.access_token"
    )
    mark = browsing.network.mark()
    page.clock.fast_forward(20_000)
    second = page.evaluate("() => window.harness.api.json('/contacts')")
    assert second["count"] == 14
    browsing.network.settle(page)
    refreshes = browsing.network.refreshes(mark)
    api = browsing.network.api(mark)
    assert len(refreshes) >= 1 and all(e["status"] == 200 for e in refreshes)
    assert [e["status"] for e in api] == [200]
    # The call went out with a refreshed token, not the one from before the idle time.
    assert api[0]["authorization"] != f"Bearer {before}"
    events = page.evaluate("() => window.harness.events")
    assert "NEEDS_REAUTH" not in events
    assert browsing.errors == []


def test_a_revoked_supabase_session_asks_for_re_authentication_once(
    supabase_page: tuple[Any, Demo], browsing: Browsing
) -> None:
    page, demo = supabase_page
    page.evaluate(
        "([e, p]) => window.harness.sb.auth.signInWithPassword({ email: e, password: p })",
        [demo.email, demo.password],
    )
    assert page.evaluate("() => window.harness.api.json('/jobs')")["count"] == 18
    # Revoke every session of the user behind the page's back (scope=global from the server).
    token = page.evaluate(
        "async () => (await window.harness.sb.auth.getSession()).data.session.access_token"
    )
    httpx.post(
        f"{demo.origin}/auth/v1/logout?scope=global",
        headers={"Authorization": f"Bearer {token}"},
    ).raise_for_status()
    outcome = page.evaluate(
        """async () => {
            const api = window.harness.api;
            api.reauthWait = 200;
            try { await api.json('/jobs'); return 'ok'; }
            catch (error) { return error.name; }
        }"""
    )
    assert outcome == "AuthExpiredError"
    assert (
        page.evaluate("() => window.harness.events.filter(e => e === 'NEEDS_REAUTH').length") == 1
    )
    assert page.evaluate("() => !document.querySelector('session-expired-banner').hidden")
