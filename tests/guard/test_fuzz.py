"""Property tests: whatever arrives in the Authorization header or the cookie, the answer is a
401 (never a 500, never a 200), and the parsers never raise anything but a Rejection."""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sessionkeeper.core.keys import SigningKey
from sessionkeeper.guard import Rejection, StaticKeys, Verifier, key_from_jwk
from sessionkeeper.guard.jws import DecodeError, b64url_decode
from tests.guard.conftest import ISSUER, Guarded, claims

HEADER_TEXT = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=300)
SEGMENT = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/.!", max_size=80
)
JWTISH = st.builds(lambda a, b, c: f"{a}.{b}.{c}", SEGMENT, SEGMENT, SEGMENT)
SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(value=st.one_of(HEADER_TEXT, JWTISH.map(lambda t: f"Bearer {t}"), st.just("Bearer ")))
async def test_authorization_header_fuzz_is_always_401(
    guarded: Callable[..., Guarded], value: str
) -> None:
    g = guarded()
    response = await g.client.get(
        "/api/hello", headers={"Authorization": (value.strip() or "x").encode("latin-1")}
    )
    assert response.status_code == 401
    assert response.content == b'{"error":"Unauthorized"}'


@SETTINGS
@given(value=st.one_of(HEADER_TEXT, JWTISH))
async def test_cookie_fuzz_is_always_401(guarded: Callable[..., Guarded], value: str) -> None:
    g = guarded(transport="cookie")
    cookie = f"sk-access-token={value}".encode("latin-1")
    response = await g.client.get("/api/hello", headers={"Cookie": cookie})
    assert response.status_code == 401


@SETTINGS
@given(data=st.binary(max_size=200))
def test_b64url_round_trip_and_canonical(data: bytes) -> None:
    encoded = base64.urlsafe_b64encode(data).rstrip(b"=")
    assert b64url_decode(encoded) == data
    if encoded:
        tweaked = encoded[:-1] + (b"B" if encoded[-1:] != b"B" else b"C")
        try:
            decoded = b64url_decode(tweaked)
        except DecodeError:
            return
        assert decoded != data  # a different string never decodes to the same bytes


@pytest.fixture(scope="module")
def verifier(es_key: SigningKey) -> Verifier:
    return Verifier(StaticKeys([key_from_jwk(es_key.public_jwk() or {})]), issuers=[ISSUER])


@SETTINGS
@given(token=st.one_of(st.text(max_size=400), JWTISH))
def test_verifier_only_ever_raises_rejection(verifier: Verifier, token: str) -> None:
    with pytest.raises(Rejection):
        verifier.verify(token)


@SETTINGS
@given(position=st.integers(min_value=0), replacement=st.characters(max_codepoint=0x7F))
def test_any_one_character_change_is_refused(
    verifier: Verifier, es_key: SigningKey, position: int, replacement: str
) -> None:
    logging.disable(logging.CRITICAL)
    token = es_key.sign(claims(exp=2**40))
    position %= len(token)
    changed = token[:position] + replacement + token[position + 1 :]
    if changed == token:
        return
    try:
        verifier.verify(changed)
    except Rejection:
        return
    finally:
        logging.disable(logging.NOTSET)
    # Only the unused low bits of the last signature character may change (canonical check
    # refuses those too), so reaching here is a failure.
    raise AssertionError(f"accepted a modified token at {position}")
