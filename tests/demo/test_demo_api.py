"""The demo server in process (real app, real SQLite store): the API behind the guard, the
browser assets, the seeded data and the demo user."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from sessionkeeper import settings
from sessionkeeper.clock import ManualClock
from sessionkeeper.demo.app import CONTENT_SECURITY_POLICY, create_demo_app
from sessionkeeper.demo.data import dataset_for, to_csv
from sessionkeeper.demo.users import ensure_demo_user
from sessionkeeper.server.app import build_context
from sessionkeeper.store import Store
from tests.conftest import PASSWORD, AppHarness, fast_passwords

ISSUER = "http://demo.test/auth/v1"


@pytest.fixture
def make_demo(make_store: Callable[..., Store]) -> Callable[..., AppHarness]:
    def factory(guard_issuer: str | None = None, **overrides: Any) -> AppHarness:
        overrides.setdefault("issuer", ISSUER)
        config = settings.load(**overrides)
        store = make_store(config)
        clock = ManualClock()
        ctx = build_context(config, store, clock=clock, passwords=fast_passwords())
        app = create_demo_app(config, ctx, guard_issuer=guard_issuer)
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://demo.test"
        )
        return AppHarness(client=client, clock=clock, ctx=ctx, store=store)

    return factory


async def _signed_in(demo: AppHarness, email: str = "ann@example.com") -> dict[str, str]:
    session = await demo.signup(email)
    return {"Authorization": f"Bearer {session['access_token']}"}


async def test_each_collection_lists_views_and_exports_the_users_rows(
    make_demo: Callable[..., AppHarness],
) -> None:
    demo = make_demo()
    headers = await _signed_in(demo)
    me = (await demo.client.get("/api/debug/whoami", headers=headers)).json()
    for collection, count in (("jobs", 18), ("contacts", 14), ("reports", 6)):
        listed = await demo.client.get(f"/api/{collection}", headers=headers)
        assert listed.status_code == 200
        assert listed.headers["cache-control"] == "no-store"
        items = listed.json()["items"]
        assert listed.json()["count"] == len(items) == count
        assert {item["owner"] for item in items} == {me["user_id"]}
        first = items[0]["id"]
        viewed = await demo.client.get(f"/api/{collection}/{first}", headers=headers)
        assert viewed.status_code == 200 and viewed.json()["id"] == first
        exported = await demo.client.get(f"/api/{collection}/export.csv", headers=headers)
        assert exported.status_code == 200
        assert exported.headers["content-type"] == "text/csv; charset=utf-8"
        assert exported.headers["content-disposition"] == f'attachment; filename="{collection}.csv"'
        assert exported.headers["cache-control"] == "no-store"
        rows = list(csv.DictReader(io.StringIO(exported.text)))
        assert [row["id"] for row in rows] == [item["id"] for item in items]
    report = await demo.client.get("/api/reports/R-01/export.csv", headers=headers)
    assert report.status_code == 200
    assert 'filename="report-R-01.csv"' in report.headers["content-disposition"]
    assert {row["owner"] for row in csv.DictReader(io.StringIO(report.text))} == {me["user_id"]}


async def test_unknown_rows_and_collections_are_404_not_500(
    make_demo: Callable[..., AppHarness],
) -> None:
    demo = make_demo()
    headers = await _signed_in(demo)
    for path in ("/api/jobs/J-9999", "/api/reports/R-99/export.csv", "/api/contacts/%00"):
        response = await demo.client.get(path, headers=headers)
        assert response.status_code == 404, path
        assert response.json()["error"] == "not_found"
    assert (await demo.client.get("/api/secrets", headers=headers)).status_code == 404


async def test_users_never_see_each_others_rows(make_demo: Callable[..., AppHarness]) -> None:
    demo = make_demo()
    ann = await _signed_in(demo, "ann@example.com")
    bob = await _signed_in(demo, "bob@example.com")
    ann_jobs = (await demo.client.get("/api/jobs/export.csv", headers=ann)).text
    bob_jobs = (await demo.client.get("/api/jobs/export.csv", headers=bob)).text
    ann_owner = {r["owner"] for r in csv.DictReader(io.StringIO(ann_jobs))}
    bob_owner = {r["owner"] for r in csv.DictReader(io.StringIO(bob_jobs))}
    assert len(ann_owner) == len(bob_owner) == 1 and ann_owner != bob_owner


async def test_the_api_refuses_without_a_token_with_the_guards_answer_and_reason(
    make_demo: Callable[..., AppHarness],
) -> None:
    demo = make_demo()
    response = await demo.client.get("/api/jobs/export.csv")
    assert response.status_code == 401
    assert response.json() == {"error": "Unauthorized"}
    assert response.headers["x-auth-reason"] == "missing_token"


async def test_an_api_expecting_another_issuer_refuses_with_wrong_issuer(
    make_demo: Callable[..., AppHarness],
) -> None:
    demo = make_demo(guard_issuer="https://other-project.supabase.co/auth/v1")
    headers = await _signed_in(demo)
    response = await demo.client.get("/api/jobs", headers=headers)
    assert response.status_code == 401
    assert response.headers["x-auth-reason"] == "wrong_issuer"


async def test_a_global_sign_out_is_refused_at_the_next_call(
    make_demo: Callable[..., AppHarness],
) -> None:
    demo = make_demo()
    headers = await _signed_in(demo)
    assert (await demo.client.get("/api/jobs", headers=headers)).status_code == 200
    out = await demo.client.post("/auth/v1/logout?scope=global", headers=headers)
    assert out.status_code == 204
    response = await demo.client.get("/api/jobs", headers=headers)
    assert response.status_code == 401
    assert response.headers["x-auth-reason"] == "session_revoked"


async def test_an_expired_token_is_refused_at_once_in_the_demo(
    make_demo: Callable[..., AppHarness],
) -> None:
    """Issuer and API share a clock in the demo: no leeway, so --jwt-exp 5 shows refreshes."""
    demo = make_demo(jwt_exp=5)
    headers = await _signed_in(demo)
    demo.clock.advance(5.5)
    response = await demo.client.get("/api/jobs", headers=headers)
    assert response.status_code == 401
    assert response.headers["x-auth-reason"] == "expired"


async def test_the_page_the_client_and_the_assets_are_served(
    make_demo: Callable[..., AppHarness],
) -> None:
    demo = make_demo()
    page = await demo.client.get("/")
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert '<script type="module" src="/assets/app.js">' in page.text
    script = await demo.client.get("/sessionkeeper.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert script.headers["access-control-allow-origin"] == "*"
    assert "export function createApiClient" in script.text
    for asset in ("/assets/app.js", "/assets/styles.css"):
        assert (await demo.client.get(asset)).status_code == 200


async def test_the_plain_server_serves_the_browser_client_too(
    make_app: Callable[..., AppHarness],
) -> None:
    app = make_app()
    script = await app.client.get("/sessionkeeper.js")
    assert script.status_code == 200
    assert "export class SessionExpiredBanner" in script.text


def test_seeded_data_is_a_pure_function_of_the_user() -> None:
    assert dataset_for("user-a") == dataset_for("user-a")
    assert dataset_for("user-a").jobs != dataset_for("user-b").jobs
    assert all(job["owner"] == "user-a" for job in dataset_for("user-a").jobs)


def test_csv_cells_that_a_spreadsheet_would_run_are_defused() -> None:
    text = to_csv(
        [{"a": '=HYPERLINK("x")', "b": "-12.5", "c": "@SUM(A1)", "d": "+cmd"}],
        ("a", "b", "c", "d"),
    )
    row = next(csv.DictReader(io.StringIO(text)))
    assert row == {"a": '\'=HYPERLINK("x")', "b": "-12.5", "c": "'@SUM(A1)", "d": "'+cmd"}


async def test_the_demo_user_is_created_then_its_password_follows_the_printed_one(
    make_demo: Callable[..., AppHarness],
) -> None:
    demo = make_demo()
    ensure_demo_user(demo.ctx, email="Demo@Example.com", password=PASSWORD)
    signed = await demo.client.post(
        "/auth/v1/token?grant_type=password",
        json={"email": "demo@example.com", "password": PASSWORD},
    )
    assert signed.status_code == 200
    ensure_demo_user(demo.ctx, email="demo@example.com", password=PASSWORD)  # idempotent
    ensure_demo_user(demo.ctx, email="demo@example.com", password="another-password-9")
    old = await demo.client.post(
        "/auth/v1/token?grant_type=password",
        json={"email": "demo@example.com", "password": PASSWORD},
    )
    new = await demo.client.post(
        "/auth/v1/token?grant_type=password",
        json={"email": "demo@example.com", "password": "another-password-9"},
    )
    assert old.status_code == 400 and new.status_code == 200


async def test_an_hs256_server_and_its_guard_share_the_secret(
    make_demo: Callable[..., AppHarness],
) -> None:
    demo = make_demo(signing_alg="HS256", jwt_secret="s" * 40)
    headers = await _signed_in(demo)
    assert (await demo.client.get("/api/jobs", headers=headers)).status_code == 200


async def test_the_guard_follows_key_rotation_and_retirement_without_a_restart(
    make_demo: Callable[..., AppHarness],
) -> None:
    """The in-process key source learns a new kid on first sight, and a retired key stops
    verifying once the keys are reloaded (in the background, every 30 s)."""
    demo = make_demo()
    old = await _signed_in(demo, "old@example.com")
    old_kid = demo.ctx.keyring.current().active.kid
    demo.ctx.keyring.rotate()
    new = await _signed_in(demo, "new@example.com")
    assert (await demo.client.get("/api/jobs", headers=new)).status_code == 200  # unknown kid
    assert (await demo.client.get("/api/jobs", headers=old)).status_code == 200  # still published
    demo.ctx.keyring.retire(old_kid)
    demo.clock.advance(31)
    assert (await demo.client.get("/api/jobs", headers=new)).status_code == 200  # starts a reload
    for _ in range(100):
        refused = await demo.client.get("/api/contacts", headers=old)
        if refused.status_code == 401:
            break
        await asyncio.sleep(0.02)
    assert refused.status_code == 401
    assert refused.headers["x-auth-reason"] == "unknown_kid"
