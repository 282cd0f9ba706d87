"""The JWKS URL source against a real HTTP server on loopback (uvicorn in a thread).

Warm cache + failing endpoint (500, time-out, garbage) -> requests keep succeeding; cold ->
503; an unknown kid triggers one rate-limited refetch; concurrent requests share one fetch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from sessionkeeper.core.keys import SigningKey
from tests.guard.answers import assert_refused, assert_unavailable
from tests.guard.conftest import Guarded, JwksServer, bearer, claims, jwks_of


def url_guard(guarded: Callable[..., Guarded], server: JwksServer, **config: object) -> Guarded:
    config.setdefault("jwks_timeout", 0.5)
    return guarded(jwks_url=server.url, **config)


async def warm_guard(
    guarded: Callable[..., Guarded], server: JwksServer, key: SigningKey
) -> Guarded:
    """A URL guard whose keys are loaded (one request went through)."""
    g = url_guard(guarded, server)
    assert (await g.client.get("/api/hello", headers=bearer(key.sign(claims())))).status_code == 200
    return g


async def test_warm_cache_survives_a_failing_endpoint(
    guarded: Callable[..., Guarded], jwks_server: JwksServer, es_key: SigningKey
) -> None:
    g = url_guard(guarded, jwks_server, jwks_ttl=60)
    token = es_key.sign(claims())
    assert (await g.client.get("/api/hello", headers=bearer(token))).status_code == 200
    assert jwks_server.hits == 1
    for mode in ("500", "slow", "garbage"):
        jwks_server.mode = mode
        g.clock.advance(61)  # past the TTL: a background refresh starts, and fails
        fresh = es_key.sign(claims(sub=f"user-{mode}"))  # not in the verified-token cache
        response = await g.client.get("/api/hello", headers=bearer(fresh))
        assert response.status_code == 200, mode
        await asyncio.sleep(0.8 if mode == "slow" else 0.2)  # let the refresh finish failing
        again = es_key.sign(claims(sub=f"again-{mode}"))
        assert (await g.client.get("/api/hello", headers=bearer(again))).status_code == 200
    assert jwks_server.hits == 4
    assert g.guard.verifier.keys.healthy is False  # type: ignore[attr-defined]


async def test_cold_cache_and_failing_endpoint_is_503(
    guarded: Callable[..., Guarded], jwks_server: JwksServer, es_key: SigningKey
) -> None:
    for mode in ("500", "slow", "garbage"):
        jwks_server.mode = mode
        g = url_guard(guarded, jwks_server)
        response = await g.client.get("/api/hello", headers=bearer(es_key.sign(claims())))
        assert_unavailable(response, g, "keys_unavailable")
    # When the endpoint recovers, the next attempt (after the retry interval) loads the keys.
    jwks_server.mode = "ok"
    g.clock.advance(6)
    assert (
        await g.client.get("/api/hello", headers=bearer(es_key.sign(claims())))
    ).status_code == 200


async def test_cold_failure_is_not_retried_on_every_request(
    guarded: Callable[..., Guarded], jwks_server: JwksServer, es_key: SigningKey
) -> None:
    jwks_server.mode = "500"
    g = url_guard(guarded, jwks_server)
    for _ in range(5):
        response = await g.client.get("/api/hello", headers=bearer(es_key.sign(claims())))
        assert response.status_code == 503
    assert jwks_server.hits == 1


async def test_unknown_kid_refetches_once_rate_limited(
    guarded: Callable[..., Guarded], jwks_server: JwksServer, es_key: SigningKey
) -> None:
    g = await warm_guard(guarded, jwks_server, es_key)
    rotated = SigningKey.generate("ES256", kid="es-2")
    jwks_server.document = jwks_of(es_key, rotated)
    g.clock.advance(31)  # past the refetch interval
    new = rotated.sign(claims())
    assert (await g.client.get("/api/hello", headers=bearer(new))).status_code == 200
    assert jwks_server.hits == 2
    # A flood of made-up kids costs at most one fetch per interval.
    for i in range(20):
        forged = SigningKey.generate("ES256", kid=f"made-up-{i}").sign(claims())
        assert_refused(await g.client.get("/api/hello", headers=bearer(forged)), g, "unknown_kid")
    assert jwks_server.hits == 2


async def test_unknown_kid_while_the_endpoint_is_down_is_503(
    guarded: Callable[..., Guarded], jwks_server: JwksServer, es_key: SigningKey
) -> None:
    """The token may be signed by a key we have not seen yet: we cannot judge it, so 503."""
    g = await warm_guard(guarded, jwks_server, es_key)
    jwks_server.mode = "500"
    g.clock.advance(31)
    newer = SigningKey.generate("ES256", kid="es-3").sign(claims())
    assert_unavailable(
        await g.client.get("/api/hello", headers=bearer(newer)), g, "keys_unavailable"
    )
    # Known keys keep working meanwhile.
    assert (
        await g.client.get("/api/hello", headers=bearer(es_key.sign(claims(sub="x"))))
    ).status_code == 200


async def test_concurrent_cold_requests_share_one_fetch(
    guarded: Callable[..., Guarded], jwks_server: JwksServer, es_key: SigningKey
) -> None:
    jwks_server.mode = "slow"
    jwks_server.delay = 0.3
    g = url_guard(guarded, jwks_server, jwks_timeout=2.0)
    tokens = [es_key.sign(claims(sub=f"user-{i}")) for i in range(10)]
    responses = await asyncio.gather(
        *(g.client.get("/api/hello", headers=bearer(t)) for t in tokens)
    )
    assert [r.status_code for r in responses] == [200] * 10
    assert jwks_server.hits == 1


async def test_removed_key_drops_cached_tokens(
    guarded: Callable[..., Guarded], jwks_server: JwksServer, es_key: SigningKey
) -> None:
    """A key withdrawn from the JWKS (say, compromised) stops its tokens at the next refresh,
    even those already in the verified-token cache."""
    g = url_guard(guarded, jwks_server, jwks_ttl=60)
    token = es_key.sign(claims())
    assert (await g.client.get("/api/hello", headers=bearer(token))).status_code == 200
    jwks_server.document = jwks_of(SigningKey.generate("ES256", kid="es-9"))
    g.clock.advance(61)
    await g.client.get("/health")  # unprotected, no token: does not start a refresh
    assert jwks_server.hits == 1
    await g.client.get("/api/hello", headers=bearer(token))  # starts the background refresh
    for _ in range(50):
        if jwks_server.hits == 2 and g.guard.verifier.keys.lookup("es-9", "ES256"):  # type: ignore[attr-defined]
            break
        await asyncio.sleep(0.02)
    g.clock.advance(31)  # past the refetch interval, so the unknown kid may refetch once
    assert_refused(await g.client.get("/api/hello", headers=bearer(token)), g, "unknown_kid")


async def test_kid_never_reaches_the_url(
    guarded: Callable[..., Guarded], jwks_server: JwksServer
) -> None:
    g = url_guard(guarded, jwks_server)
    token = SigningKey.generate("ES256", kid="../../admin?x=").sign(claims())
    assert_refused(await g.client.get("/api/hello", headers=bearer(token)), g, "unknown_kid")
    assert jwks_server.paths == ["/.well-known/jwks.json"]


@pytest.mark.parametrize(
    ("cache_control", "kept_until", "refetched_after"),
    [
        ("public, max-age=120", 119, 121),  # shorter than jwks_ttl: honoured
        ("max-age=86400", 599, 601),  # longer: jwks_ttl wins (a retired key stops in time)
        ("no-store", 29, 31),  # floored at the refetch interval: no fetch per request
        ('max-age="soon"', 599, 601),  # unreadable: jwks_ttl
    ],
)
async def test_the_issuers_max_age_shortens_the_cache_but_never_lengthens_it(
    guarded: Callable[..., Guarded],
    jwks_server: JwksServer,
    es_key: SigningKey,
    cache_control: str,
    kept_until: int,
    refetched_after: int,
) -> None:
    jwks_server.cache_control = cache_control
    g = url_guard(guarded, jwks_server, jwks_ttl=600, jwks_refetch_interval=30)
    subjects = iter(range(1000))

    async def call() -> None:
        token = es_key.sign(claims(sub=f"u{next(subjects)}"))  # never in the token cache
        assert (await g.client.get("/api/hello", headers=bearer(token))).status_code == 200
        await asyncio.sleep(0.05)  # a background refresh, if one started, completes

    await call()
    assert jwks_server.hits == 1
    g.clock.advance(kept_until)
    await call()
    assert jwks_server.hits == 1, "refetched before its time"
    g.clock.advance(refetched_after - kept_until)
    await call()
    for _ in range(100):  # the refresh runs in the background
        if jwks_server.hits == 2:
            break
        await asyncio.sleep(0.02)
    assert jwks_server.hits == 2, "not refetched once its time had come"
