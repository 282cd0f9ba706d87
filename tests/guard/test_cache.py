"""The verified-token cache: entries die at exp, memory is bounded as documented."""

from __future__ import annotations

import gc
import tracemalloc

import pytest

from sessionkeeper.clock import ManualClock
from sessionkeeper.core.keys import SigningKey
from sessionkeeper.guard import Reason, Rejection, StaticKeys, Verifier, key_from_jwk
from sessionkeeper.guard.cache import MEMORY_BOUND_BYTES, TokenCache
from tests.guard.conftest import ISSUER, NOW, claims


def make_verifier(key: SigningKey, clock: ManualClock, **options: int) -> Verifier:
    jwk = key.public_jwk() or {}
    return Verifier(StaticKeys([key_from_jwk(jwk)]), issuers=[ISSUER], clock=clock, **options)


def test_entries_die_at_exp(es_key: SigningKey) -> None:
    clock = ManualClock(NOW)
    verifier = make_verifier(es_key, clock)
    token = es_key.sign(claims(exp=NOW + 10))
    assert verifier.verify(token).user_id == "8d3f7a4e-user"
    assert len(verifier.cache) == 1
    clock.advance(10)  # at exp: the cache no longer answers; the leeway path re-verifies
    assert verifier.verify(token).user_id == "8d3f7a4e-user"
    clock.advance(30)
    with pytest.raises(Rejection) as refused:
        verifier.verify(token)
    assert refused.value.reason is Reason.EXPIRED


def test_failures_are_never_cached(es_key: SigningKey) -> None:
    verifier = make_verifier(es_key, ManualClock(NOW))
    for sub in range(5):
        with pytest.raises(Rejection):
            verifier.verify(es_key.sign(claims(sub=f"u{sub}", iss="https://x")))
    assert len(verifier.cache) == 0


def test_entry_count_and_token_size_are_bounded(es_key: SigningKey) -> None:
    verifier = make_verifier(es_key, ManualClock(NOW), cache_entries=50, cache_token_bytes=2048)
    for i in range(200):
        verifier.verify(es_key.sign(claims(sub=f"user-{i}")))
    assert len(verifier.cache) <= 50
    big = es_key.sign(claims(user_metadata={"x": "y" * 3000}))
    verifier.verify(big)
    assert big not in verifier.cache.data


def test_full_cache_drops_expired_entries_first() -> None:
    cache = TokenCache(max_entries=10)
    principal = object()
    for i in range(10):
        cache.put(f"t{i}", principal, expires_at=100 if i % 2 else 1000, now=0)  # type: ignore[arg-type]
    cache.put("new", principal, expires_at=1000, now=500)  # type: ignore[arg-type]
    assert set(cache.data) == {"t0", "t2", "t4", "t6", "t8", "new"}


def test_default_cache_memory_stays_under_the_documented_bound(es_key: SigningKey) -> None:
    """Fill the default cache with maximum-size tokens and measure what it holds."""
    clock = ManualClock(NOW)
    verifier = make_verifier(es_key, clock)
    limit = verifier.cache.max_token_bytes
    template = es_key.sign(claims(sub="user-00000", user_metadata={"pad": ""}))
    pad = "p" * int((limit - len(template)) * 3 / 4 - 8)
    tokens = [
        es_key.sign(claims(sub=f"user-{i:05d}", user_metadata={"pad": pad}))
        for i in range(verifier.cache.max_entries)
    ]
    assert all(len(t) <= limit for t in tokens) and len(tokens[0]) > limit - 64
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for token in tokens:
        verifier.verify(token)
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert len(verifier.cache) == verifier.cache.max_entries
    assert held < MEMORY_BOUND_BYTES, held
    print(f"cache of {len(verifier.cache)} x {len(tokens[0])}-byte tokens holds {held} bytes")
