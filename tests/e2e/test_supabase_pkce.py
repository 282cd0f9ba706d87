"""Acceptance 5: the unmodified supabase-js (npm UMD bundle) with ``flowType: 'pkce'`` signs in
through sessionkeeper's hosted page in Chromium: ``signInWithOAuth({provider: 'email'})`` opens
``/auth/v1/authorize``, the user signs in there, the browser comes back with ``?code=`` and
supabase-js redeems it (``detectSessionInUrl``) with the verifier it kept."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Route

from tests.conftest import serve_in_thread
from tests.e2e.conftest import Browsing, Demo, screenshot
from tests.e2e.test_supabase_js import HERE, UMD
from tests.guard.conftest import free_port

pytestmark = pytest.mark.integration

#: The verifier supabase-js stored under ``<storageKey>-code-verifier`` (JSON), or null.
VERIFIER = """() => {
    const key = Object.keys(localStorage).find((k) => k.endsWith('-auth-token-code-verifier'));
    return key ? JSON.parse(localStorage.getItem(key)) : null;
}"""


@dataclass
class App:
    page: Any
    demo: Demo
    origin: str  # the app's own origin, allow-listed on the demo


@pytest.fixture
def app(start_demo: Any, browsing: Browsing) -> Iterator[App]:
    """The app page on its own loopback origin, the demo (auth server) on another. The page is
    served by a real server, not by the browser's router: Playwright does not route the request
    a redirect leads to, and the hosted page's 303 is what brings the browser back."""
    if not UMD.exists():
        message = "supabase-js is not installed: npm ci --prefix tests/js"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    port = free_port()
    app_origin = f"http://127.0.0.1:{port}"
    demo: Demo = start_demo("--allowed-origin", app_origin, "--cors-origin", app_origin)
    html = (HERE / "pages" / "supabase_pkce.html").read_text()

    async def page_html(request: Request) -> Response:
        return HTMLResponse(html.replace("__AUTH_ORIGIN__", demo.origin))

    async def bundle(request: Request) -> Response:
        return FileResponse(UMD, media_type="text/javascript")

    routes = [Route("/test/pkce.html", page_html), Route("/test/supabase.js", bundle)]
    with serve_in_thread(Starlette(routes=routes), port, "app page"):
        page = browsing.new_page()
        page.goto(f"{app_origin}/test/pkce.html")
        page.wait_for_selector("body[data-ready=true]")
        yield App(page, demo, app_origin)


def test_supabase_js_pkce_sign_in_through_the_hosted_page(app: App, browsing: Browsing) -> None:
    page, demo = app.page, app.demo
    assert page.evaluate("() => window.harness.initial") == {"session": False, "error": None}

    page.evaluate("() => { window.harness.signIn(); }")  # navigates away
    page.wait_for_url(f"{demo.origin}/auth/v1/authorize?**")
    assert "code_challenge_method=s256" in page.url

    # A wrong password first: the page again, with the error and the email kept.
    page.fill("#email", demo.email)
    page.fill("#password", "not-the-password")
    page.click("button[type=submit]")
    page.wait_for_selector("#error")
    assert "Invalid login credentials" in page.inner_text("#error")
    assert page.input_value("#email") == demo.email
    assert page.input_value("#password") == ""
    screenshot(page, "hosted-sign-in-error")

    page.fill("#password", demo.password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{app.origin}/test/pkce.html?**")
    page.wait_for_selector("body[data-ready=true]")

    assert page.evaluate("() => window.harness.initial") == {"session": True, "error": None}
    assert "SIGNED_IN" in page.evaluate("() => window.harness.events")
    assert "code=" not in page.url and "tab=jobs" in page.url  # supabase-js removed the code
    user = page.evaluate(
        """async () => {
            const { data, error } = await window.harness.sb.auth.getUser();
            return { email: data.user && data.user.email, error: error && error.message };
        }"""
    )
    assert user == {"email": demo.email, "error": None}
    assert page.evaluate(VERIFIER) is None  # used up

    posts = [e for e in browsing.network.entries if e["method"] == "POST"]
    summary = [(e["url"].split("/", 3)[-1], e["status"]) for e in posts]
    assert summary == [
        ("auth/v1/authorize", 400),
        ("auth/v1/authorize", 303),
        ("auth/v1/token?grant_type=pkce", 200),
    ], summary
    # The hosted page allowed the 303 to the app's origin (CSP form-action covers redirects).
    # The form's POST carried the page's own origin (the CSRF check needs it: under
    # Referrer-Policy: no-referrer browsers would send "null").
    assert {e["request"].headers.get("origin") for e in posts[:2]} == {demo.origin}
    # No CSP violation, no script error. Expected: the wrong password's 400, and the favicon
    # the browser asks each server for (404; Playwright does not list that request).
    unexpected = [
        e for e in browsing.errors if "status of 400" not in e and "status of 404" not in e
    ]
    assert unexpected == [], browsing.network.summary()
    assert "bad_code_verifier" not in demo.log()


def test_the_code_cannot_be_redeemed_twice_from_the_browser(app: App) -> None:
    page, demo = app.page, app.demo
    # Keep the verifier supabase-js stores (on the app's origin) to replay the exchange later.
    url = page.evaluate(
        """async () => (await window.harness.sb.auth.signInWithOAuth({
            provider: 'email',
            options: { redirectTo: location.href, skipBrowserRedirect: true },
        })).data.url"""
    )
    verifier = page.evaluate(VERIFIER)
    assert verifier
    page.goto(url)
    page.fill("#email", demo.email)
    page.fill("#password", demo.password)
    with page.expect_response(lambda r: "grant_type=pkce" in r.url) as exchanged:
        page.click("button[type=submit]")
    code = exchanged.value.request.post_data_json["auth_code"]
    page.wait_for_selector("body[data-ready=true]")
    replay = page.evaluate(
        """async ([code, verifier]) => {
            const auth = document.documentElement.dataset.auth;
            const r = await fetch(auth + '/auth/v1/token?grant_type=pkce', {
                method: 'POST',
                headers: {
                    'Content-Type': 'application/json',
                    'X-Supabase-Api-Version': '2024-01-01',
                },
                body: JSON.stringify({ auth_code: code, code_verifier: verifier }),
            });
            return [r.status, (await r.json()).code];
        }""",
        [code, verifier],
    )
    assert replay == [404, "flow_state_not_found"]
