"""Cookie mode's re-authentication through the hosted sign-in in a popup: the banner hands
reconnecting to ``popupSignIn`` (``/auth/login`` → the auth server's page → ``/auth/callback``
sets the cookies), and the export the user clicked completes once the popup has closed."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import Browsing, Demo, sign_in
from tests.e2e.test_demo import _sign_out_everywhere

pytestmark = pytest.mark.integration


def test_the_banner_reconnects_through_the_hosted_sign_in_popup(
    start_demo: Any, browsing: Browsing
) -> None:
    demo: Demo = start_demo("--mode", "cookie")
    page = browsing.new_page()
    sign_in(page, demo)
    page.evaluate(
        """async () => {
            const { popupSignIn } = await import("/sessionkeeper.js");
            document.querySelector("session-expired-banner").reauthenticate = (api) =>
                popupSignIn({ next: "/", interval: 100 }).then(() => api.signIn());
        }"""
    )
    _sign_out_everywhere(demo)
    with page.expect_download(timeout=30_000) as download:
        page.click('.page[data-page="jobs"] [data-action="export"]')
        page.wait_for_selector("session-expired-banner:not([hidden])")
        with page.expect_popup() as opened:
            page.click("session-expired-banner .link")
        popup = opened.value
        popup.wait_for_selector("form input[name=password]")
        assert "/auth/v1/authorize" in popup.url
        popup.fill("input[name=email]", demo.email)
        popup.fill("input[name=password]", demo.password)
        popup.click("button[type=submit]")
        popup.wait_for_event("close", timeout=30_000)  # popupSignIn closes it once back home
    assert download.value.suggested_filename == "jobs.csv"
    page.wait_for_selector("session-expired-banner", state="hidden")
    assert not page.is_visible("session-expired-banner form")  # the inline form never opened
    assert page.evaluate("() => window.sessionkeeperDemo.api.state") == "active"
