"""The seed incident, end to end: a signed-in user clicks view and export on Jobs, Contacts and
Reports in a real Chromium against a real ``sessionkeeper demo`` process, and never sees
"session expired" while the session is alive.

Every scenario runs twice: with the session in the browser and a bearer header (``--mode
bearer``), and with the session in HttpOnly cookies set by the session bridge (``--mode cookie``),
where the guard renews an expired access cookie itself.
"""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import Any

import pytest
from supabase_auth import SyncGoTrueClient

from tests.e2e.conftest import Browsing, Demo, banner_visible, screenshot, sign_in

pytestmark = pytest.mark.integration

PAGES = ("jobs", "contacts", "reports")
STORAGE_KEYS = {"bearer": "sessionkeeper.session", "cookie": "sessionkeeper.cookie-session"}


@pytest.fixture(params=["bearer", "cookie"])
def mode(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


@pytest.fixture
def start(start_demo: Any, mode: str) -> Any:
    """``start_demo`` in this test's mode."""
    return lambda *args: start_demo("--mode", mode, *args)


def _is_refresh(url: str) -> bool:
    """A refresh in either mode: the issuer's grant (bearer) or the bridge's (cookie)."""
    return "grant_type=refresh_token" in url or url.endswith("/auth/refresh")


def _whoami(page: Any) -> dict[str, Any]:
    result: dict[str, Any] = page.evaluate(
        "() => window.sessionkeeperDemo.api.json('/debug/whoami')"
    )
    return result


def _download(page: Any, selector: str) -> tuple[str, str]:
    with page.expect_download() as info:
        page.click(selector)
    download = info.value
    return download.suggested_filename, Path(download.path()).read_text()


def _sign_out_everywhere(demo: Demo) -> None:
    """Another client of the same user (supabase-auth from PyPI) signs out of every session."""
    other = SyncGoTrueClient(url=f"{demo.origin}/auth/v1")
    other.sign_in_with_password({"email": demo.email, "password": demo.password})
    other.sign_out({"scope": "global"})


def _record_initiators(browsing: Browsing, page: Any) -> dict[str, str]:
    """Request id → the script at the top of the stack that sent each /api request (CDP)."""
    initiators: dict[str, str] = {}
    cdp = browsing.context.new_cdp_session(page)
    cdp.send("Network.enable")

    def sent(event: dict[str, Any]) -> None:
        if "/api/" not in event["request"]["url"]:
            return
        frames = event.get("initiator", {}).get("stack", {}).get("callFrames", [])
        initiators[event["requestId"]] = frames[0]["url"] if frames else "(no script)"

    cdp.on("Network.requestWillBeSent", sent)
    return initiators


def _no_expired_ui(page: Any) -> None:
    assert not banner_visible(page)
    assert "expired" not in page.inner_text("body").lower()


def test_every_view_and_export_action_works_and_exports_hold_the_users_rows(
    start: Any, browsing: Browsing, mode: str
) -> None:
    demo: Demo = start()
    page = browsing.new_page()
    initiators = _record_initiators(browsing, page)
    page.goto(demo.url)
    page.wait_for_selector("#signin:not([hidden])")
    screenshot(page, "sign-in")
    sign_in(page, demo)
    me = _whoami(page)

    clicked = {"view": 0, "export": 0}
    for name in PAGES:
        page.click(f'[data-nav="{name}"]')
        section = f'.page[data-page="{name}"]'
        page.wait_for_selector(f"{section} [data-action='view']")
        count = int(page.inner_text(f"{section} [data-count]"))
        views = page.locator(f"{section} [data-action='view']")
        for i in range(views.count()):
            mark = browsing.network.mark()
            view = views.nth(i)
            item = (view.get_attribute("data-path") or "").rsplit("/", 1)[-1]
            view.click()
            page.wait_for_selector(f'{section} .detail[data-item="{item}"]:not([hidden])')
            assert [e["status"] for e in browsing.network.wait_api(page, mark, 1)] == [200]
            clicked["view"] += 1
        screenshot(page, f"page-{name}")
        exports = page.locator(f"{section} [data-action='export']")
        for i in range(exports.count()):
            button = exports.nth(i)
            expected_name = button.get_attribute("data-filename")
            with page.expect_download() as info:
                button.click()
            filename = info.value.suggested_filename
            rows = list(csv.DictReader(io.StringIO(Path(info.value.path()).read_text())))
            assert filename == expected_name
            assert rows, f"{filename} is empty"
            assert {row["owner"] for row in rows} == {me["user_id"]}, filename
            if filename == f"{name}.csv":
                assert len(rows) == count
            clicked["export"] += 1
        _no_expired_ui(page)

    page.click('[data-nav="session"]')
    page.click('.page[data-page="session"] [data-action="view"]')
    page.wait_for_selector("#whoami dt")
    assert me["email"] in page.inner_text("#whoami")
    screenshot(page, "page-session")

    assert clicked["view"] >= 18 + 14 + 6 and clicked["export"] >= 3 + 6
    api_calls = browsing.network.api()
    assert api_calls and all(e["status"] == 200 for e in api_calls), browsing.network.summary()
    # Acceptance 7, from the browser's side: every /api request carried the bearer token the
    # client adds (or, in cookie mode, no header but the CSRF marker: the cookie rides along),
    # and the code that sent it was sessionkeeper.js (the top of its JS stack).
    if mode == "bearer":
        assert all((e["authorization"] or "").startswith("Bearer ") for e in api_calls)
    else:
        assert all(e["authorization"] is None and e["csrf"] == "1" for e in api_calls)
        assert page.evaluate("() => document.cookie") == ""  # HttpOnly: no script sees them
        stored = page.evaluate(f"() => localStorage.getItem('{STORAGE_KEYS[mode]}')")
        assert "eyJ" not in stored and "token" not in stored.lower()
    assert len(initiators) >= len(api_calls)
    assert {url.rsplit("/", 1)[-1] for url in initiators.values()} == {"sessionkeeper.js"}
    assert browsing.errors == []


def test_a_second_user_sees_only_their_own_rows(start: Any, browsing: Browsing) -> None:
    demo: Demo = start()
    other = SyncGoTrueClient(url=f"{demo.origin}/auth/v1")
    other.sign_up({"email": "second@example.com", "password": "second-password-1"})
    page = browsing.new_page()
    sign_in(page, Demo(demo.server, "second@example.com", "second-password-1", demo.url))
    me = _whoami(page)
    filename, text = _download(page, '.page[data-page="jobs"] [data-action="export"]')
    rows = list(csv.DictReader(io.StringIO(text)))
    assert filename == "jobs.csv"
    assert {row["owner"] for row in rows} == {me["user_id"]}
    assert me["email"] == "second@example.com"


def test_idle_past_expiry_then_click_refreshes_silently(start: Any, browsing: Browsing) -> None:
    """Access token 5 s, 20 s idle (the page's clock jumps, as after a laptop sleep): the click
    works, after one refresh before the call or one 401 → refresh → retry."""
    demo: Demo = start("--jwt-exp", "5")
    browsing.context.clock.install()
    page = browsing.new_page()
    sign_in(page, demo)
    mark = browsing.network.mark()
    page.clock.fast_forward(20_000)  # milliseconds (an int), or "00:20"
    with page.expect_download() as info:
        page.click('.page[data-page="jobs"] [data-action="export"]')
    assert info.value.suggested_filename == "jobs.csv"
    browsing.network.settle(page)
    log = [e for e in browsing.network.since(mark) if "/api/" in e["url"] or _is_refresh(e["url"])]
    shapes = [("refresh" if _is_refresh(e["url"]) else "api", e["status"]) for e in log]
    assert shapes in (
        [("refresh", 200), ("api", 200)],
        [("api", 401), ("refresh", 200), ("api", 200)],
    ), shapes
    _no_expired_ui(page)
    assert browsing.errors == []


def test_idle_twenty_real_seconds_with_five_second_tokens_then_click(
    start: Any, browsing: Browsing
) -> None:
    """The same on the wall clock, no fake time: the visible tab refreshes on its own while idle
    (at half the token's life), and the click after 20 s needs no 401 and shows nothing."""
    demo: Demo = start("--jwt-exp", "5")
    page = browsing.new_page()
    sign_in(page, demo)
    mark = browsing.network.mark()
    page.wait_for_timeout(20_000)
    idle_refreshes = browsing.network.refreshes(mark)
    assert len(idle_refreshes) >= 4, browsing.network.summary(mark)  # one per ~2.5 s of 5 s life
    assert all(e["status"] == 200 for e in idle_refreshes)
    assert browsing.network.api(mark) == []  # nothing else happened while idle
    click = browsing.network.mark()
    with page.expect_download() as info:
        page.click('.page[data-page="jobs"] [data-action="export"]')
    assert info.value.suggested_filename == "jobs.csv"
    assert [e["status"] for e in browsing.network.wait_api(page, click, 1)] == [200]
    _no_expired_ui(page)
    assert browsing.errors == []


def test_a_token_expired_at_the_server_gets_one_401_one_refresh_one_retry(
    start: Any, browsing: Browsing, mode: str
) -> None:
    """The page's clock stands still (a slow clock) while the server's runs past expiry: the
    client sends a token it believes valid, gets 401, refreshes once, retries once. In cookie
    mode the guard renews the expired cookie itself: one call, answered 200 with new cookies."""
    demo: Demo = start("--jwt-exp", "3")
    start = time.time()  # Playwright's Python clock API takes seconds
    browsing.context.clock.install(time=start)
    page = browsing.new_page()
    page.clock.pause_at(start + 1)  # from sign-in on, the page's clock stands still
    sign_in(page, demo)
    time.sleep(3.5)  # the server's clock, not the client's, must pass the token's expiry
    mark = browsing.network.mark()
    page.click('.page[data-page="jobs"] [data-action="view"] >> nth=0')
    page.wait_for_selector('.page[data-page="jobs"] .detail:not([hidden])')
    browsing.network.settle(page)
    shapes = [
        ("refresh" if _is_refresh(e["url"]) else "api", e["status"])
        for e in browsing.network.since(mark)
        if "/api/" in e["url"] or _is_refresh(e["url"])
    ]
    if mode == "bearer":
        assert shapes == [("api", 401), ("refresh", 200), ("api", 200)]
    else:
        assert shapes == [("api", 200)]
        renewed = browsing.network.api(mark)[0]["response_headers"]
        assert "x-session-expires-at" in renewed  # the guard renewed the cookies on this answer
    _no_expired_ui(page)


def test_two_tabs_with_an_expired_token_click_at_once_and_make_one_refresh(
    start: Any, browsing: Browsing
) -> None:
    demo: Demo = start()
    browsing.context.clock.install()
    tab_a = browsing.new_page()
    sign_in(tab_a, demo)
    tab_b = browsing.new_page()
    tab_b.goto(demo.url)  # restored from localStorage: same session, same refresh token
    tab_b.wait_for_selector('.page[data-page="jobs"] tbody tr')
    # Both tabs wake up two hours later (timers do not fire): the access token has expired.
    later = time.time() + 2 * 3600  # seconds, as Playwright's Python clock API takes them
    tab_a.clock.set_system_time(later)
    tab_b.clock.set_system_time(later)
    mark = browsing.network.mark()
    click = "() => document.querySelector('.page[data-page=\"jobs\"] [data-action=view]').click()"
    tab_a.evaluate(f"setTimeout({click}, 0)")
    tab_b.evaluate(f"setTimeout({click}, 0)")
    for tab in (tab_a, tab_b):
        tab.wait_for_selector('.page[data-page="jobs"] .detail:not([hidden])')
        tab.wait_for_load_state("networkidle")
    refreshes = browsing.network.refreshes(mark)
    api = browsing.network.api(mark)
    assert len(refreshes) == 1, browsing.network.summary(mark)
    assert [e["status"] for e in api] == [200, 200]
    _no_expired_ui(tab_a)
    _no_expired_ui(tab_b)


def test_revoked_elsewhere_shows_the_banner_keeps_the_page_and_replays_after_reconnect(
    start: Any, browsing: Browsing
) -> None:
    demo: Demo = start()
    page = browsing.new_page()
    sign_in(page, demo)
    # Page state the banner must not clear: a filter and an open detail panel.
    page.fill('.page[data-page="jobs"] [data-filter]', "J-100")
    page.click('.page[data-page="jobs"] [data-action="view"] >> nth=0')
    page.wait_for_selector('.page[data-page="jobs"] .detail:not([hidden])')
    url_before = page.url

    _sign_out_everywhere(demo)

    mark = browsing.network.mark()
    with page.expect_download(timeout=30_000) as info:
        page.click('.page[data-page="jobs"] [data-action="export"]')
        page.wait_for_selector("session-expired-banner:not([hidden])")
        assert page.url == url_before
        assert page.input_value('.page[data-page="jobs"] [data-filter]') == "J-100"
        assert page.is_visible('.page[data-page="jobs"] .detail')
        assert page.locator("[role=dialog], dialog[open]").count() == 0
        assert "Session expired" in page.inner_text("session-expired-banner .bar")
        assert not page.is_visible("session-expired-banner form")  # one line until clicked
        screenshot(page, "banner")
        page.click("session-expired-banner .link")
        page.fill("session-expired-banner input[name=password]", demo.password)
        screenshot(page, "banner-reconnect")
        page.click("session-expired-banner button[type=submit]")
    assert info.value.suggested_filename == "jobs.csv"
    page.wait_for_selector("session-expired-banner", state="hidden")
    assert page.input_value('.page[data-page="jobs"] [data-filter]') == "J-100"
    api = browsing.network.api(mark)
    assert [e["status"] for e in api] == [401, 200], browsing.network.summary(mark)
    assert page.url == url_before


def test_sign_out_in_one_tab_shows_signed_out_in_the_other_within_a_second(
    start: Any, browsing: Browsing, mode: str
) -> None:
    demo: Demo = start()
    tab_a = browsing.new_page()
    sign_in(tab_a, demo)
    tab_b = browsing.new_page()
    tab_b.goto(demo.url)
    tab_b.wait_for_selector('.page[data-page="jobs"] tbody tr')
    started = time.monotonic()
    tab_a.click("#sign-out")
    tab_b.wait_for_selector("#signin:not([hidden])", timeout=1000)
    elapsed = time.monotonic() - started
    assert elapsed < 1.0
    assert tab_b.evaluate(f"() => localStorage.getItem('{STORAGE_KEYS[mode]}')") is None
    assert tab_b.locator(".grid tbody tr").count() == 0  # no data left on screen
    screenshot(tab_b, "signed-out")


def test_the_banner_works_from_the_keyboard_and_says_what_went_wrong(
    start: Any, browsing: Browsing
) -> None:
    demo: Demo = start()
    page = browsing.new_page()
    sign_in(page, demo)
    _sign_out_everywhere(demo)

    export = page.locator('.page[data-page="jobs"] [data-action="export"]')
    export.focus()
    page.keyboard.press("Enter")  # the export, from the keyboard
    page.wait_for_selector("session-expired-banner:not([hidden])")
    banner = page.locator("session-expired-banner")
    assert banner.locator(".bar").get_attribute("role") == "status"  # announced, not a dialog

    page.click("session-expired-banner .link")
    assert page.is_visible("session-expired-banner form")
    page.keyboard.press("Escape")  # "not now": the form closes, focus stays in the banner
    assert not page.is_visible("session-expired-banner form")
    assert (
        page.evaluate(
            "() => document.querySelector('session-expired-banner').shadowRoot.activeElement"
            "?.className"
        )
        == "link"
    )

    page.keyboard.press("Enter")  # reopen from the focused link
    page.fill("session-expired-banner input[name=password]", "not-the-password")
    page.keyboard.press("Enter")
    page.wait_for_function(
        "() => document.querySelector('session-expired-banner').shadowRoot"
        ".querySelector('.error').textContent.length > 0"
    )
    assert "Wrong email or password." in banner.locator(".error").inner_text()
    assert banner.is_visible()

    with page.expect_download() as info:
        page.fill("session-expired-banner input[name=password]", demo.password)
        page.keyboard.press("Enter")
    assert info.value.suggested_filename == "jobs.csv"  # the queued export completed
    page.wait_for_selector("session-expired-banner", state="hidden")
    # Focus returns to where the user was (the export button), not to <body>.
    assert page.evaluate("() => document.activeElement?.dataset?.action") == "export"


def test_the_banner_hands_reconnecting_to_the_apps_own_flow_when_given_one(
    start: Any, browsing: Browsing
) -> None:
    """``banner.reauthenticate = fn`` (a popup, say) replaces the inline form; the queued
    export completes once the app's flow has signed the user back in."""
    demo: Demo = start()
    page = browsing.new_page()
    sign_in(page, demo)
    page.evaluate(
        """([email, password]) => {
            document.querySelector('session-expired-banner').reauthenticate = async (api) => {
                window.reauthCalls = (window.reauthCalls || 0) + 1;
                await api.signIn({ email, password });
            };
        }""",
        [demo.email, demo.password],
    )
    _sign_out_everywhere(demo)
    with page.expect_download() as info:
        page.click('.page[data-page="jobs"] [data-action="export"]')
        page.wait_for_selector("session-expired-banner:not([hidden])")
        page.click("session-expired-banner .link")
    assert info.value.suggested_filename == "jobs.csv"
    assert page.evaluate("() => window.reauthCalls") == 1
    assert not page.is_visible("session-expired-banner form")  # the inline form never opened
    page.wait_for_selector("session-expired-banner", state="hidden")
