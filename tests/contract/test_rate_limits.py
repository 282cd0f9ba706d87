"""Rate limits on the endpoints that cost an argon2 hash, on every store backend.

With ``--session-store`` the counters live in Redis and are shared by all instances; without it
each instance counts on its own. Either way the answers are the same.
"""

from __future__ import annotations

from collections.abc import Callable

from tests.conftest import API_VERSION, PASSWORD, AppHarness
from tests.server.test_endpoints import sign_in


async def test_password_grant_rate_limits(make_app: Callable[..., AppHarness]) -> None:
    app = make_app(
        rate_limit_password_per_email=3, rate_limit_password_per_ip=5, rate_limit_window=60
    )
    async with app.client:
        await app.signup("limited@example.com")
        for _ in range(3):
            assert (await sign_in(app, "limited@example.com", "wrong guess")).status_code == 400
        r = await sign_in(app, "Limited@Example.com")  # same email, other spelling
        assert (r.status_code, r.json()["code"]) == (429, "over_request_rate_limit")
        assert 1 <= int(r.headers["retry-after"]) <= 61
        # Per IP: two more emails fit, the sixth attempt from this IP does not.
        assert (await sign_in(app, "other1@example.com")).status_code == 400
        assert (await sign_in(app, "other2@example.com")).status_code == 429  # 6th from this IP
        app.clock.advance(60)
        assert (await sign_in(app, "limited@example.com")).status_code == 200


async def test_successful_sign_ins_do_not_use_up_the_per_email_limit(
    make_app: Callable[..., AppHarness],
) -> None:
    app = make_app(rate_limit_password_per_email=2, rate_limit_window=60)
    async with app.client:
        await app.signup("regular@example.com")
        for _ in range(5):  # a user who knows the password is never locked out by using it
            assert (await sign_in(app, "regular@example.com")).status_code == 200


async def test_signup_rate_limit_per_ip(make_app: Callable[..., AppHarness]) -> None:
    app = make_app(rate_limit_signup_per_ip=2, rate_limit_window=60)
    async with app.client:
        await app.signup()
        await app.signup()
        r = await app.client.post(
            "/auth/v1/signup",
            json={"email": "third@example.com", "password": PASSWORD},
            headers=API_VERSION,
        )
        assert (r.status_code, r.json()["code"]) == (429, "over_request_rate_limit")
        assert "retry-after" in r.headers
